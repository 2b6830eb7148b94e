/* A seccomp filter (allow everything) with no_new_privs: cpr cannot restore filters yet,
 * so the checkpoint must be refused, and the program carries on unharmed. */
#include "wl.h"
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <sys/prctl.h>

int main(int argc, char **argv)
{
	wl_init(argc, argv, 0, "CTL");
	struct sock_filter allow = BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW);
	struct sock_fprog prog = { 1, &allow };
	if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0 ||
	    prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, &prog, 0, 0) != 0)
		wl_fail("seccomp: %s", strerror(errno));
	wl_ready(NULL);
	while (!wl_go())
		wl_sleep_ms(20);
	wl_pass("still running");
	return 0;
}
