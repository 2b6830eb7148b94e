/* A seccomp filter that hands getitimer to a user-space listener
 * (SECCOMP_RET_USER_NOTIF), the listener closed at once: cpr cannot tell whether a
 * listener is there, so the checkpoint must be refused; the program carries on. */
#include "wl.h"
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <stddef.h>
#include <sys/prctl.h>
#include <sys/syscall.h>

int main(int argc, char **argv)
{
	wl_init(argc, argv, 0, "CTL");
	struct sock_filter filter[] = {
		BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, nr)),
		BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, SYS_getitimer, 0, 1),
		BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_USER_NOTIF),
		BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW),
	};
	struct sock_fprog prog = { 4, filter };
	if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0)
		wl_fail("no_new_privs: %s", strerror(errno));
	long fd = syscall(SYS_seccomp, SECCOMP_SET_MODE_FILTER, SECCOMP_FILTER_FLAG_NEW_LISTENER,
			  &prog);
	if (fd < 0)
		wl_fail("seccomp: %s", strerror(errno));
	close(fd);
	wl_ready(NULL);
	while (!wl_go())
		wl_sleep_ms(20);
	wl_pass("still running");
	return 0;
}
