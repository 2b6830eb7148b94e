/* Processes in a process group whose leader has exited and been reaped, children of the
 * leader's parent (zdtm zombie01): the parent P forks C, which makes its own group and
 * forks with CLONE_PARENT a zombie Z (exit status 5) and a live L, both P's children in
 * group C; C exits and P reaps it. After restart (GO) L checks getpgid(0) == C and its
 * parent, and P checks getpgid(Z) == getpgid(L) == C, then reaps L and Z with their
 * statuses. Prints PASS or FAIL. */
#include "wl.h"
#include <sched.h>
#include <sys/syscall.h>

static pid_t fork_sibling(void)
{
	return (pid_t)syscall(SYS_clone, CLONE_PARENT | SIGCHLD, 0, 0, 0, 0);
}

int main(int argc, char **argv)
{
	wl_init(argc, argv, 0, "CTL");
	wl_close_inherited();
	pid_t p = getpid();
	int ids[2];
	if (pipe(ids))
		wl_fail("pipe");
	pid_t c = fork();
	if (c == 0) {
		pid_t leader = getpid();
		if (setpgid(0, 0))
			_exit(1);
		pid_t z = fork_sibling();
		if (z == 0)
			_exit(5);
		pid_t l = fork_sibling();
		if (l == 0) {
			while (!wl_go())
				wl_sleep_ms(20);
			_exit(getpgid(0) == leader && getppid() == p ? 0 : 1);
		}
		pid_t both[2] = { z, l };
		_exit(write(ids[1], both, sizeof both) == sizeof both ? 0 : 1);
	}
	int status;
	pid_t kids[2];
	if (waitpid(c, &status, 0) != c || status || read(ids[0], kids, sizeof kids) != sizeof kids)
		wl_fail("leader C: status %x", status);
	close(ids[0]);
	close(ids[1]);
	pid_t z = kids[0], l = kids[1];
	siginfo_t info;
	if (waitid(P_PID, z, &info, WEXITED | WNOWAIT))
		wl_fail("waitid Z: %s", strerror(errno));
	wl_ready("leader=%d zombie=%d live=%d", c, z, l);
	while (!wl_go())
		wl_sleep_ms(20);
	if (getpgid(z) != c || getpgid(l) != c)
		wl_fail("groups: zombie %d live %d, not %d", getpgid(z), getpgid(l), c);
	if (waitpid(l, &status, 0) != l || !WIFEXITED(status) || WEXITSTATUS(status))
		wl_fail("L: status %x", status);
	if (waitpid(z, &status, 0) != z || !WIFEXITED(status) || WEXITSTATUS(status) != 5)
		wl_fail("Z: status %x", status);
	wl_pass("group %d without its leader kept its zombie and its live member", c);
}
