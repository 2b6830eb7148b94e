/* A client of a TCP server outside the checkpoint (the test runs it: it echoes lines).
 *
 * inet_client CTL PORT echo|eof [udp]: connects to 127.0.0.1:PORT, has "hello" echoed,
 *   with "udp" also binds a UDP socket on 127.0.0.1 (its port in READY as udp=PORT, for
 *   the test to send it a datagram it never reads), prints READY. After GO, with "echo": sends "after" on the same descriptor and must get it
 *   back (the connection was repaired, or reconnected); with "eof": reading must give end
 *   of file or ECONNRESET (the connection came back closed). */
#include "wl.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>

static void read_line(int fd, char *buf, size_t size)
{
	size_t n = 0;
	while (n < size - 1) {
		ssize_t r = read(fd, buf + n, 1);
		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0)
			wl_fail("read: %s", r < 0 ? strerror(errno) : "end of file");
		if (buf[n++] == '\n')
			break;
	}
	buf[n] = 0;
}

int main(int argc, char **argv)
{
	wl_init(argc, argv, 3, "CTL PORT echo|eof [udp]");
	wl_close_inherited();
	int port = atoi(argv[2]);
	const char *expect = argv[3];
	int fd = socket(AF_INET, SOCK_STREAM, 0);
	struct sockaddr_in at = { .sin_family = AF_INET, .sin_port = htons(port) };
	at.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	if (connect(fd, (struct sockaddr *)&at, sizeof at) != 0)
		wl_fail("connect: %s", strerror(errno));
	char line[64];
	write(fd, "hello\n", 6);
	read_line(fd, line, sizeof line);
	if (strcmp(line, "hello\n") != 0)
		wl_fail("echo '%s'", line);
	int udp_port = 0;
	if (argc > 4 && strcmp(argv[4], "udp") == 0) {
		int u = socket(AF_INET, SOCK_DGRAM, 0);
		struct sockaddr_in ua = { .sin_family = AF_INET };
		ua.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
		socklen_t ul = sizeof ua;
		if (bind(u, (struct sockaddr *)&ua, sizeof ua) != 0 ||
		    getsockname(u, (struct sockaddr *)&ua, &ul) != 0)
			wl_fail("udp: %s", strerror(errno));
		udp_port = ntohs(ua.sin_port);
	}
	wl_ready("fd=%d udp=%d", fd, udp_port);
	while (!wl_go())
		wl_sleep_ms(20);
	if (strcmp(expect, "eof") == 0) {
		char c;
		ssize_t r = read(fd, &c, 1);
		if (r == 0 || (r < 0 && errno == ECONNRESET))
			wl_pass("eof");
		wl_fail("read gave %zd (%s), not end of file", r, r < 0 ? strerror(errno) : "data");
	}
	if (write(fd, "after\n", 6) != 6)
		wl_fail("write after: %s", strerror(errno));
	read_line(fd, line, sizeof line);
	if (strcmp(line, "after\n") != 0)
		wl_fail("echo after '%s'", line);
	wl_pass("echo");
}
