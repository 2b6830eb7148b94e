/* A pseudo-terminal that is the controlling terminal of a session whose processes no
 * longer hold it as a descriptor (zdtm tty03): the main process M holds the master; its
 * child C makes a session, takes the slave as its controlling terminal (TIOCSCTTY) and
 * closes it, after forking G, which makes a session of its own and keeps the slave open
 * as a plain descriptor. The checkpoint must refuse the pty (restart could not make it
 * C's controlling terminal again). At GO (nothing was checkpointed) M checks that the
 * pty is still C's controlling terminal (TIOCGSID on the master), then lets C end (G
 * ends at GO), and prints PASS or FAIL. */
#include "wl.h"
#include <sys/ioctl.h>

static void wait_go_and_exit(void)
{
	while (!wl_go())
		wl_sleep_ms(20);
	_exit(0);
}

int main(int argc, char **argv)
{
	wl_init(argc, argv, 0, "CTL");
	wl_close_inherited();
	int m = posix_openpt(O_RDWR | O_NOCTTY);
	if (m < 0 || grantpt(m) || unlockpt(m))
		wl_fail("pty: %s", strerror(errno));
	char *name = ptsname(m);
	int ready[2], done[2];
	if (pipe(ready) || pipe(done))
		wl_fail("pipe");
	pid_t c = fork();
	if (c == 0) {
		close(ready[0]);
		int s;
		if (setsid() < 0 || (s = open(name, O_RDWR | O_NOCTTY)) < 0 ||
		    ioctl(s, TIOCSCTTY, 1))
			_exit(1);
		pid_t g = fork();
		if (g == 0) {
			close(ready[1]);
			close(done[0]);
			close(done[1]);
			if (setsid() < 0)
				_exit(1);
			wait_go_and_exit();
		}
		close(s);
		close(done[1]);
		if (write(ready[1], &g, sizeof g) != sizeof g)
			_exit(1);
		close(ready[1]);
		/* M checks the terminal first, then lets C end */
		char b;
		_exit(read(done[0], &b, 1) == 1 ? 0 : 1);
	}
	close(ready[1]);
	close(done[0]);
	pid_t g;
	if (read(ready[0], &g, sizeof g) != sizeof g)
		wl_fail("C did not set up its terminal");
	close(ready[0]);
	pid_t sid = 0;
	if (ioctl(m, TIOCGSID, &sid) || sid != c)
		wl_fail("the pty is not C's controlling terminal (%d)", sid);
	wl_ready("child=%d grandchild=%d", c, g);
	while (!wl_go())
		wl_sleep_ms(20);
	sid = 0;
	if (ioctl(m, TIOCGSID, &sid) || sid != c)
		wl_fail("the pty is no longer C's controlling terminal (%d)", sid);
	if (write(done[1], "d", 1) != 1)
		wl_fail("pipe to C");
	int status;
	if (waitpid(c, &status, 0) != c || status)
		wl_fail("C: status %x", status);
	wl_pass("controlling terminal kept");
}
