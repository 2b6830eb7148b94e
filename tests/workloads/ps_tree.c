/* ps_tree CTL: a parent, two children, a grandchild under each. On CTL/GO each grandchild
 * exits with 20+i, each child reaps its grandchild (checking that status) and exits with
 * 40+i (or 1 on a mismatch); the parent counts SIGCHLD, reaps each child by PID and checks
 * the status it chose, then prints PASS. "READY <pid> c1=.. c2=.. g1=.. g2=.." first. */
#include "wl.h"
#include <sys/wait.h>

static volatile sig_atomic_t sigchld;

static void on_chld(int sig)
{
	(void)sig;
	sigchld++;
}

static void wait_go(void)
{
	while (!wl_go())
		wl_sleep_ms(20);
}

int main(int argc, char **argv)
{
	wl_init(argc, argv, 1, "CTL");
	struct sigaction sa = { 0 };
	sa.sa_handler = on_chld;
	sa.sa_flags = SA_RESTART;
	sigaction(SIGCHLD, &sa, NULL);
	int pfd[2];
	if (pipe(pfd))
		wl_fail("pipe");
	pid_t c[2], g[2];
	for (int i = 0; i < 2; i++) {
		c[i] = fork();
		if (c[i] == 0) {
			close(pfd[0]);
			pid_t gc = fork();
			if (gc == 0) {
				wait_go();
				wl_sleep_ms(100 * (i + 1));
				_exit(20 + i);
			}
			if (write(pfd[1], &gc, sizeof gc) != sizeof gc)
				_exit(1);
			wait_go();
			int st;
			if (waitpid(gc, &st, 0) != gc || !WIFEXITED(st) || WEXITSTATUS(st) != 20 + i) {
				printf("child %d: grandchild %d status %#x\n", (int)getpid(), (int)gc, st);
				_exit(1);
			}
			wl_sleep_ms(100);
			_exit(40 + i);
		}
		if (read(pfd[0], &g[i], sizeof g[i]) != sizeof g[i])
			wl_fail("read grandchild pid");
	}
	wl_ready("c1=%d c2=%d g1=%d g2=%d", (int)c[0], (int)c[1], (int)g[0], (int)g[1]);
	wait_go();
	for (int i = 1; i >= 0; i--) {
		int st;
		pid_t r = waitpid(c[i], &st, 0);
		if (r != c[i])
			wl_fail("waitpid %d: %d %s", (int)c[i], (int)r, strerror(errno));
		if (!WIFEXITED(st) || WEXITSTATUS(st) != 40 + i)
			wl_fail("child %d status %#x, wanted exit %d", (int)c[i], st, 40 + i);
		printf("reaped %d status %d\n", (int)c[i], WEXITSTATUS(st));
	}
	if (sigchld < 1)
		wl_fail("no SIGCHLD");
	wl_pass("sigchld=%d", (int)sigchld);
}
