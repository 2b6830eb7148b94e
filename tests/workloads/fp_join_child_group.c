/* A process that joined its own child's group: the workload forks P, P forks C, C leads
 * a group of its own and P joins it. After restart P and C check with getpgid that both
 * are in C's group; the workload reaps P (whose status says it and C agree) and passes. */
#include "wl.h"

int main(int argc, char **argv)
{
	wl_init(argc, argv, 0, "CTL");
	int ready[2];
	if (pipe(ready) != 0)
		wl_fail("pipe");
	pid_t p = fork();
	if (p == 0) {
		pid_t c = fork();
		if (c == 0) {
			close(ready[0]);
			close(ready[1]);
			setpgid(0, 0);
			while (!wl_go())
				wl_sleep_ms(20);
			_exit(getpgid(0) == getpid() ? 0 : 1);
		}
		setpgid(c, c);
		if (setpgid(0, c) != 0)
			_exit(3);
		close(ready[0]);
		if (write(ready[1], "x", 1) != 1)
			_exit(3);
		close(ready[1]);
		while (!wl_go())
			wl_sleep_ms(20);
		int cs;
		waitpid(c, &cs, 0);
		_exit(getpgid(0) == c && WIFEXITED(cs) && WEXITSTATUS(cs) == 0 ? 0 : 2);
	}
	close(ready[1]);
	char x;
	if (read(ready[0], &x, 1) != 1)
		wl_fail("child set-up");
	close(ready[0]);
	wl_ready("p=%d", (int)p);
	while (!wl_go())
		wl_sleep_ms(20);
	int ps;
	waitpid(p, &ps, 0);
	if (!WIFEXITED(ps) || WEXITSTATUS(ps) != 0)
		wl_fail("status %#x (2: P not in C's group, or C not leading it)", ps);
	wl_pass("P in its child's group");
	return 0;
}
