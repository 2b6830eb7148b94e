/* A session whose leader is gone: the launcher forks C, which starts a session, forks
 * G1 (which leads a group of its own) and G2 (which stays in C's group), and exits. The
 * launcher prints "READY <pid> c=C g1=G1 g2=G2" and exits. After restart G1 and G2 check
 * with getsid and getpgid that they are still in session C, in groups G1 and C, and
 * print "PASS g1" / "PASS g2" (or FAIL). */
#include "wl.h"

static void member(const char *name, pid_t sid, pid_t pgid)
{
	while (!wl_go())
		wl_sleep_ms(20);
	pid_t s = getsid(0), g = getpgid(0);
	if (s != sid || g != pgid)
		wl_fail("%s: session %d group %d, were %d %d", name, (int)s, (int)g, (int)sid,
			(int)pgid);
	wl_pass("%s: session %d group %d", name, (int)s, (int)g);
}

int main(int argc, char **argv)
{
	wl_init(argc, argv, 0, "CTL");
	int p[2];
	if (pipe(p) != 0)
		wl_fail("pipe");
	pid_t c = fork();
	if (c == 0) {
		close(p[0]);
		pid_t sid = setsid();
		pid_t g1 = fork();
		if (g1 == 0) {
			close(p[1]);
			setpgid(0, 0);
			member("g1", sid, getpid());
		}
		pid_t g2 = fork();
		if (g2 == 0) {
			close(p[1]);
			member("g2", sid, sid);
		}
		setpgid(g1, g1); /* no race with g1's own call */
		pid_t kids[2] = { g1, g2 };
		if (write(p[1], kids, sizeof kids) != sizeof kids)
			_exit(1);
		_exit(0);
	}
	close(p[1]);
	pid_t kids[2];
	if (read(p[0], kids, sizeof kids) != sizeof kids)
		wl_fail("read");
	waitpid(c, NULL, 0);
	wl_ready("c=%d g1=%d g2=%d", (int)c, (int)kids[0], (int)kids[1]);
	return 0;
}
