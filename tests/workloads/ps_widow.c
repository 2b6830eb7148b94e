/* ps_widow CTL: a pipe whose write end is closed in every process, with 5 bytes still in
 * it (make gives its jobs such a pipe for stdin), and a pipe whose read end is closed
 * everywhere. READY; on CTL/GO the first must give "hello" then end of file, writing to
 * the second must fail with EPIPE; PASS. */
#include "wl.h"

int main(int argc, char **argv)
{
	wl_init(argc, argv, 1, "CTL");
	signal(SIGPIPE, SIG_IGN);
	int a[2], b[2];
	if (pipe(a) || pipe(b))
		wl_fail("pipe");
	if (write(a[1], "hello", 5) != 5)
		wl_fail("write");
	close(a[1]);
	close(b[0]);
	wl_ready("");
	while (!wl_go())
		wl_sleep_ms(20);
	char buf[16];
	ssize_t n = read(a[0], buf, sizeof buf);
	if (n != 5 || memcmp(buf, "hello", 5) != 0)
		wl_fail("read %zd bytes", n);
	n = read(a[0], buf, sizeof buf);
	if (n != 0)
		wl_fail("no end of file: %zd", n);
	if (write(b[1], "x", 1) != -1 || errno != EPIPE)
		wl_fail("write to a pipe without readers: %s", strerror(errno));
	wl_pass("");
}
