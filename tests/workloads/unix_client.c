/* A client of a UNIX server that the test runs outside the checkpoint.
 *
 * unix_client CTL PATH stream|dgram
 *     Connects a stream socket, or a datagram socket (as a /dev/log client does), to
 *     PATH, sends "before\n", prints "READY <pid>" and waits for CTL/GO, whose content
 *     says what the test expects of the socket after restart:
 *       still      the same connection (the checkpoint was refused): send "after\n"
 *       reconnect  a new connection to PATH (SOCKET RECONNECT): send "after\n"
 *       close      the peer is gone (SOCKET CLOSE): a stream reads end of file, a
 *                  write fails with EPIPE; a datagram send fails
 *     and prints "PASS <what>". */
#include "wl.h"
#include <sys/socket.h>
#include <sys/un.h>

static void read_go(char *what, size_t size)
{
	char p[4096];
	wl_path(p, sizeof p, "GO");
	for (;;) {
		int fd = open(p, O_RDONLY | O_CLOEXEC);
		if (fd >= 0) {
			ssize_t n = read(fd, what, size - 1);
			close(fd);
			what[n > 0 ? n : 0] = 0;
			return;
		}
		wl_sleep_ms(20);
	}
}

int main(int argc, char **argv)
{
	wl_init(argc, argv, 3, "CTL PATH stream|dgram");
	int stream = strcmp(argv[3], "stream") == 0;
	struct sockaddr_un a = { .sun_family = AF_UNIX };
	snprintf(a.sun_path, sizeof a.sun_path, "%s", argv[2]);
	int s = socket(AF_UNIX, stream ? SOCK_STREAM : SOCK_DGRAM, 0);
	if (s < 0 || connect(s, (struct sockaddr *)&a, sizeof a) != 0)
		wl_fail("connect %s: %s", argv[2], strerror(errno));
	if (send(s, "before\n", 7, 0) != 7)
		wl_fail("send: %s", strerror(errno));
	wl_ready(NULL);
	char what[64];
	read_go(what, sizeof what);
	signal(SIGPIPE, SIG_IGN);
	if (strcmp(what, "close") == 0) {
		char buf[16];
		if (stream && recv(s, buf, sizeof buf, 0) != 0)
			wl_fail("a closed stream should read end of file");
		if (send(s, "after\n", 6, MSG_DONTWAIT) != -1)
			wl_fail("a write to a closed socket worked");
		if (stream && errno != EPIPE)
			wl_fail("a write to a closed stream: %s, want EPIPE", strerror(errno));
		wl_pass("close");
	}
	if (send(s, "after\n", 6, 0) != 6)
		wl_fail("send after: %s", strerror(errno));
	wl_pass("%s", what);
}
