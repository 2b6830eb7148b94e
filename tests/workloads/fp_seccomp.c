/* A process without capabilities (no_new_privs) under a seccomp filter that fails getitimer with
 * EPERM (a call cpr injects at checkpoint) and allows everything else. After restart the
 * filter must still be there: getitimer fails with EPERM, other calls work. */
#include "wl.h"
#include <linux/capability.h>
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <stddef.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <sys/time.h>

static int seccomp_line(const char *key)
{
	FILE *f = fopen("/proc/self/status", "r");
	char line[256];
	int v = -1;
	size_t n = strlen(key);
	while (f && fgets(line, sizeof line, f))
		if (strncmp(line, key, n) == 0 && line[n] == ':')
			v = atoi(line + n + 1);
	if (f)
		fclose(f);
	return v;
}

int main(int argc, char **argv)
{
	wl_init(argc, argv, 0, "CTL");
	struct sock_filter filter[] = {
		BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, nr)),
		BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, SYS_getitimer, 0, 1),
		BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ERRNO | EPERM),
		BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW),
	};
	struct sock_fprog prog = { 4, filter };
	if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0 ||
	    prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, &prog, 0, 0) != 0)
		wl_fail("seccomp: %s", strerror(errno));
	struct __user_cap_header_struct h = { _LINUX_CAPABILITY_VERSION_3, 0 };
	struct __user_cap_data_struct d[2] = { { 0 } };
	if (syscall(SYS_capset, &h, d) != 0)
		wl_fail("capset: %s", strerror(errno));
	wl_ready(NULL);
	while (!wl_go())
		wl_sleep_ms(20);
	struct itimerval it;
	errno = 0;
	long rc = syscall(SYS_getitimer, ITIMER_REAL, &it);
	if (rc != -1 || errno != EPERM)
		wl_fail("getitimer after restart: %ld errno %d, not EPERM", rc, errno);
	struct timeval tv;
	if (gettimeofday(&tv, NULL) != 0 || syscall(SYS_capget, &h, d) != 0 || d[0].effective ||
	    d[0].permitted)
		wl_fail("other calls after restart");
	wl_pass("getitimer EPERM, filters %d mode %d", seccomp_line("Seccomp_filters"),
		seccomp_line("Seccomp"));
	return 0;
}
