/* fd_pty CTL: a pseudo-terminal whose master and slave this process holds (not its
 * controlling terminal): raw-ish termios (no ECHO, no ICANON, no OPOST, VMIN 3), window
 * 33x101, packet mode on; a forked child holds the slave too. After CTL/GO: termios,
 * window size and packet mode are as set; ptsname names the slave; "hi" written to the
 * slave reads from the master as a packet (0, "hi"); "xyz" written to the master reads
 * from the slave. Prints PASS or FAIL. */
#include "wl.h"

#include <sys/ioctl.h>
#include <termios.h>

int main(int argc, char **argv)
{
	wl_close_inherited();
	wl_init(argc, argv, 1, "CTL");
	int m = posix_openpt(O_RDWR | O_NOCTTY);
	if (m < 0 || grantpt(m) || unlockpt(m))
		wl_fail("openpt: %s", strerror(errno));
	int s = open(ptsname(m), O_RDWR | O_NOCTTY);
	struct termios t;
	if (s < 0 || tcgetattr(s, &t))
		wl_fail("slave: %s", strerror(errno));
	t.c_lflag &= ~(ECHO | ICANON);
	t.c_oflag &= ~OPOST;
	t.c_cc[VMIN] = 3;
	struct winsize ws = { 33, 101, 0, 0 };
	int one = 1;
	if (tcsetattr(s, TCSANOW, &t) || ioctl(m, TIOCSWINSZ, &ws) || ioctl(m, TIOCPKT, &one))
		wl_fail("setup: %s", strerror(errno));
	/* the slave's owner and mode, as a login program sets them (zdtm pty01) */
	if (fchown(s, 13333, 44444) || fchmod(s, 0620))
		wl_fail("chown slave: %s", strerror(errno));
	pid_t kid = fork();
	if (kid == 0) {
		for (;;)
			pause();
	}
	wl_ready("child=%d", (int)kid);
	while (!wl_go())
		wl_sleep_ms(10);
	struct termios now;
	struct winsize w2;
	int pkt = 0;
	if (tcgetattr(s, &now) || (now.c_lflag & (ECHO | ICANON)) || (now.c_oflag & OPOST) ||
	    now.c_cc[VMIN] != 3)
		wl_fail("termios lflag %o oflag %o vmin %d", now.c_lflag, now.c_oflag, now.c_cc[VMIN]);
	if (ioctl(s, TIOCGWINSZ, &w2) || w2.ws_row != 33 || w2.ws_col != 101)
		wl_fail("window %dx%d", w2.ws_row, w2.ws_col);
	if (ioctl(m, TIOCGPKT, &pkt) || pkt != 1)
		wl_fail("packet mode %d", pkt);
	struct stat a, b;
	if (fstat(s, &a) || stat(ptsname(m), &b) || a.st_rdev != b.st_rdev)
		wl_fail("ptsname does not name the slave");
	if (a.st_uid != 13333 || a.st_gid != 44444 || (a.st_mode & 07777) != 0620)
		wl_fail("slave owner %d:%d mode %o", (int)a.st_uid, (int)a.st_gid,
			a.st_mode & 07777);
	char buf[8] = "";
	if (write(s, "hi", 2) != 2 || read(m, buf, sizeof buf) != 3 || buf[0] != 0 ||
	    memcmp(buf + 1, "hi", 2) != 0)
		wl_fail("slave to master");
	if (write(m, "xyz", 3) != 3 || read(s, buf, 3) != 3 || memcmp(buf, "xyz", 3) != 0)
		wl_fail("master to slave");
	kill(kid, SIGKILL);
	waitpid(kid, NULL, 0);
	wl_pass("pty");
}
