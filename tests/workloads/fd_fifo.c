/* fd_fifo CTL: a named FIFO (CTL/f) opened by two processes. The parent opens it
 * read-write (fr) and read-only non-blocking (pr); a forked child opens it write-only
 * (cw) and writes "abc", which stays in flight. After CTL/GO: pr reads "abc" at once; on
 * the parent's word (a pipe) the child writes "def" through cw and exits, and the parent
 * reads "def" through fr; every descriptor keeps its access mode and O_NONBLOCK.
 * Prints PASS or FAIL. */
#include "wl.h"

#include <sys/ioctl.h>

int main(int argc, char **argv)
{
	wl_close_inherited();
	wl_init(argc, argv, 1, "CTL");
	char path[4096];
	wl_path(path, sizeof path, "f");
	if (mkfifo(path, 0600))
		wl_fail("mkfifo: %s", strerror(errno));
	int fr = open(path, O_RDWR);
	int pr = open(path, O_RDONLY | O_NONBLOCK);
	int c[2];
	if (fr < 0 || pr < 0 || pipe(c))
		wl_fail("open: %s", strerror(errno));
	pid_t kid = fork();
	if (kid == 0) {
		int cw = open(path, O_WRONLY);
		char w;
		if (cw < 0 || write(cw, "abc", 3) != 3 || read(c[0], &w, 1) != 1)
			_exit(2);
		if ((fcntl(cw, F_GETFL) & (O_ACCMODE | O_NONBLOCK)) != O_WRONLY)
			_exit(3);
		_exit(write(cw, "def", 3) == 3 ? 0 : 1);
	}
	int n = 0;
	while (ioctl(fr, FIONREAD, &n) == 0 && n < 3)
		wl_sleep_ms(5);
	wl_ready("child=%d", (int)kid);
	while (!wl_go())
		wl_sleep_ms(10);
	if ((fcntl(fr, F_GETFL) & (O_ACCMODE | O_NONBLOCK)) != O_RDWR ||
	    (fcntl(pr, F_GETFL) & (O_ACCMODE | O_NONBLOCK)) != (O_RDONLY | O_NONBLOCK))
		wl_fail("flags fr %o pr %o", fcntl(fr, F_GETFL), fcntl(pr, F_GETFL));
	char buf[8] = "";
	ssize_t got = read(pr, buf, sizeof buf);
	if (got != 3 || memcmp(buf, "abc", 3) != 0)
		wl_fail("data in flight: read %zd '%.*s'", got, got > 0 ? (int)got : 0, buf);
	if (write(c[1], "g", 1) != 1)
		wl_fail("write to child");
	int st;
	if (waitpid(kid, &st, 0) != kid || !WIFEXITED(st) || WEXITSTATUS(st))
		wl_fail("child status %x", st);
	if (read(fr, buf, 3) != 3 || memcmp(buf, "def", 3) != 0)
		wl_fail("read '%.3s' from the child, not def", buf);
	wl_pass("FIFO data, opens and flags");
}
