/* Processes stopped by SIGTSTP and SIGTTIN come back stopped by that signal (zdtm
 * stopped03): the main process M forks P, which makes its own process group (not
 * orphaned: M, in another group of the session, is its parent) and forks C1 and C2;
 * P stops C1 with SIGTSTP and C2 with SIGTTIN and sees each stop with waitid(WSTOPPED,
 * WNOWAIT). After restart (GO) P sees the same stops with the same signals, continues
 * both, and reaps them; M reaps P. Prints PASS or FAIL. */
#include "wl.h"

static pid_t stopped_child(int sig)
{
	pid_t c = fork();
	if (c == 0) {
		/* runs on once continued */
		for (;;)
			wl_sleep_ms(20);
	}
	if (c < 0 || kill(c, sig))
		_exit(10);
	return c;
}

/* 0 if `c` is stopped by `sig` (reported, not consumed), else why not */
static int stopped_by(pid_t c, int sig)
{
	siginfo_t info = { 0 };
	if (waitid(P_PID, c, &info, WSTOPPED | WNOWAIT))
		return 20;
	if (info.si_code != CLD_STOPPED)
		return 21;
	return info.si_status == sig ? 0 : 30 + info.si_status;
}

static void parent_of_stopped(int ready)
{
	if (setpgid(0, 0))
		_exit(11);
	pid_t c1 = stopped_child(SIGTSTP), c2 = stopped_child(SIGTTIN);
	int why = stopped_by(c1, SIGTSTP);
	if (!why && (why = stopped_by(c2, SIGTTIN)))
		why += 100;
	if (why)
		_exit(why);
	pid_t both[2] = { c1, c2 };
	if (write(ready, both, sizeof both) != sizeof both)
		_exit(12);
	close(ready);
	while (!wl_go())
		wl_sleep_ms(20);
	why = stopped_by(c1, SIGTSTP);
	if (!why && (why = stopped_by(c2, SIGTTIN)))
		why += 100;
	kill(c1, SIGKILL);
	kill(c2, SIGKILL);
	waitpid(c1, NULL, 0);
	waitpid(c2, NULL, 0);
	_exit(why);
}

int main(int argc, char **argv)
{
	wl_init(argc, argv, 0, "CTL");
	wl_close_inherited();
	int ready[2];
	if (pipe(ready))
		wl_fail("pipe");
	pid_t p = fork();
	if (p == 0) {
		close(ready[0]);
		parent_of_stopped(ready[1]);
	}
	close(ready[1]);
	pid_t kids[2];
	if (read(ready[0], kids, sizeof kids) != sizeof kids) {
		int status = 0;
		waitpid(p, &status, 0);
		wl_fail("P: status %x before the checkpoint", status);
	}
	close(ready[0]);
	wl_ready("parent=%d c1=%d c2=%d", p, kids[0], kids[1]);
	int status;
	if (waitpid(p, &status, 0) != p || !WIFEXITED(status))
		wl_fail("P: status %x", status);
	int why = WEXITSTATUS(status);
	const char *who = why >= 100 ? "C2 (SIGTTIN)" : "C1 (SIGTSTP)";
	why %= 100;
	if (why >= 30)
		wl_fail("%s stopped by signal %d", who, why - 30);
	if (why)
		wl_fail("%s: %d", who, why);
	wl_pass("stopped by SIGTSTP and SIGTTIN again");
}
