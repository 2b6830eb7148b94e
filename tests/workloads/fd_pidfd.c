/* fd_pidfd CTL: pidfds of a forked child (non-blocking) and of the process itself.
 * After CTL/GO: on the parent's word (a pipe) the child exits 7; waitid(P_PIDFD) on the
 * child's pidfd reports that child and that status; the pidfd keeps O_NONBLOCK; the
 * own pidfd signals this process (signal 0). Prints PASS or FAIL. */
#include "wl.h"

#include <sys/syscall.h>

#ifndef P_PIDFD
#define P_PIDFD 3
#endif

int main(int argc, char **argv)
{
	wl_close_inherited();
	wl_init(argc, argv, 1, "CTL");
	int c[2];
	if (pipe(c))
		wl_fail("pipe");
	pid_t kid = fork();
	if (kid == 0) {
		char w;
		_exit(read(c[0], &w, 1) == 1 ? 7 : 2);
	}
	int kfd = syscall(SYS_pidfd_open, kid, O_NONBLOCK);
	int me = syscall(SYS_pidfd_open, getpid(), 0);
	if (kfd < 0 || me < 0)
		wl_fail("pidfd_open: %s", strerror(errno));
	wl_ready("child=%d", (int)kid);
	while (!wl_go())
		wl_sleep_ms(10);
	if (!(fcntl(kfd, F_GETFL) & O_NONBLOCK))
		wl_fail("the child's pidfd lost O_NONBLOCK");
	if (syscall(SYS_pidfd_send_signal, me, 0, NULL, 0))
		wl_fail("own pidfd: %s", strerror(errno));
	if (write(c[1], "g", 1) != 1)
		wl_fail("write");
	siginfo_t si;
	memset(&si, 0, sizeof si);
	while (waitid(P_PIDFD, kfd, &si, WEXITED) != 0)
		if (errno != EAGAIN)
			wl_fail("waitid: %s", strerror(errno));
		else
			wl_sleep_ms(5);
	if (si.si_pid != kid || si.si_status != 7)
		wl_fail("waitid reports pid %d status %d, want %d 7", si.si_pid, si.si_status,
			(int)kid);
	wl_pass("pidfds");
}
