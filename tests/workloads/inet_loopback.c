/* TCP and UDP sockets whose both ends are in the checkpoint.
 *
 * inet_loopback CTL tcp4|tcp6: a server (this process) listening on loopback and a
 *   client (its child, same process group). Connection A is accepted; the server writes
 *   SERVER_BYTES the client has not read (its receive buffer is small, so part stays in
 *   the server's send queue, unsent), the client writes CLIENT_BYTES the server has not
 *   read. Connection B is left in the listening socket's accept queue. After GO: each
 *   side reads and checks every byte, then they talk both ways on A; the server accepts
 *   B and reads what the client sends on it; options (TCP_NODELAY, SO_KEEPALIVE,
 *   TCP_KEEPIDLE, SO_REUSEADDR) are checked. The client reports to the server over A.
 * inet_loopback CTL udp6: two UDP sockets on ::1, bound and connected to each other,
 *   three datagrams waiting in each; after GO each is read back in order, with its
 *   boundaries, and both can still talk.
 * inet_loopback CTL udp4shut: two UDP sockets on 127.0.0.1 connected to each other, the
 *   first shut down for writing, the second for reading; after GO the second still
 *   sends to the first, and the first still cannot send (EPIPE). */
#include "wl.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/ioctl.h>
#include <sys/socket.h>

#define SERVER_BYTES 300000
#define CLIENT_BYTES 50000

static unsigned char pattern(int who, size_t i)
{
	return (unsigned char)(i * 7 + who * 13 + (i >> 8));
}

static int v6;

static socklen_t make_addr(struct sockaddr_storage *ss, int port)
{
	memset(ss, 0, sizeof *ss);
	if (v6) {
		struct sockaddr_in6 *a = (struct sockaddr_in6 *)ss;
		a->sin6_family = AF_INET6;
		a->sin6_addr = in6addr_loopback;
		a->sin6_port = htons(port);
		return sizeof *a;
	}
	struct sockaddr_in *a = (struct sockaddr_in *)ss;
	a->sin_family = AF_INET;
	a->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	a->sin_port = htons(port);
	return sizeof *a;
}

static int port_of(int fd)
{
	struct sockaddr_storage ss;
	socklen_t len = sizeof ss;
	getsockname(fd, (struct sockaddr *)&ss, &len);
	return ntohs(v6 ? ((struct sockaddr_in6 *)&ss)->sin6_port
			: ((struct sockaddr_in *)&ss)->sin_port);
}

static void read_exact(int fd, unsigned char *buf, size_t n, const char *what)
{
	size_t got = 0;
	while (got < n) {
		ssize_t r = read(fd, buf + got, n - got);
		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0)
			wl_fail("%s: read %zd after %zu of %zu: %s", what, r, got, n,
				r < 0 ? strerror(errno) : "end of file");
		got += (size_t)r;
	}
}

static void write_all(int fd, const void *buf, size_t n, const char *what)
{
	size_t put = 0;
	while (put < n) {
		ssize_t w = write(fd, (const char *)buf + put, n - put);
		if (w < 0 && errno == EINTR)
			continue;
		if (w < 0 && errno == EAGAIN) {
			struct pollfd p = { fd, POLLOUT, 0 };
			poll(&p, 1, -1);
			continue;
		}
		if (w <= 0)
			wl_fail("%s: write: %s", what, strerror(errno));
		put += (size_t)w;
	}
}

static int opt(int fd, int level, int name)
{
	int v = -1;
	socklen_t l = sizeof v;
	getsockopt(fd, level, name, &v, &l);
	return v;
}

static void check_pattern(const unsigned char *buf, size_t n, int who, const char *what)
{
	for (size_t i = 0; i < n; i++)
		if (buf[i] != pattern(who, i))
			wl_fail("%s: byte %zu is %u, not %u", what, i, buf[i], pattern(who, i));
}

static void client(int port)
{
	struct sockaddr_storage ss;
	socklen_t len = make_addr(&ss, port);
	int a = socket(v6 ? AF_INET6 : AF_INET, SOCK_STREAM, 0);
	int small = 8192, one = 1;
	setsockopt(a, SOL_SOCKET, SO_RCVBUF, &small, sizeof small);
	setsockopt(a, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
	if (connect(a, (struct sockaddr *)&ss, len) != 0)
		wl_fail("client connect A: %s", strerror(errno));
	unsigned char *out = malloc(CLIENT_BYTES);
	for (size_t i = 0; i < CLIENT_BYTES; i++)
		out[i] = pattern(2, i);
	write_all(a, out, CLIENT_BYTES, "client A");
	int b = socket(v6 ? AF_INET6 : AF_INET, SOCK_STREAM, 0);
	if (connect(b, (struct sockaddr *)&ss, len) != 0)
		wl_fail("client connect B: %s", strerror(errno));
	/* the server learns B's port from this line: B is never accepted before GO */
	char line[64];
	snprintf(line, sizeof line, "B %d\n", port_of(b));
	write_all(a, line, strlen(line), "client A line");
	while (!wl_go())
		wl_sleep_ms(20);
	unsigned char *in = malloc(SERVER_BYTES);
	read_exact(a, in, SERVER_BYTES, "client A");
	check_pattern(in, SERVER_BYTES, 1, "client A from server");
	if (opt(a, IPPROTO_TCP, TCP_NODELAY) != 1)
		wl_fail("client A lost TCP_NODELAY");
	write_all(b, "hello-on-B", 10, "client B");
	char ping[5];
	read_exact(a, (unsigned char *)ping, 4, "client A ping");
	if (memcmp(ping, "ping", 4) != 0)
		wl_fail("client A: no ping");
	write_all(a, "CHILD-OK", 8, "client A report");
	wl_sleep_ms(100);
	_exit(0);
}

static void tcp(void)
{
	int l = socket(v6 ? AF_INET6 : AF_INET, SOCK_STREAM, 0);
	int one = 1, idle = 77, big = 1 << 20;
	setsockopt(l, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
	struct sockaddr_storage ss;
	socklen_t len = make_addr(&ss, 0);
	if (bind(l, (struct sockaddr *)&ss, len) != 0 || listen(l, 7) != 0)
		wl_fail("listen: %s", strerror(errno));
	int port = port_of(l);
	pid_t kid = fork();
	if (kid == 0)
		client(port);
	int a = accept(l, NULL, NULL);
	if (a < 0)
		wl_fail("accept A: %s", strerror(errno));
	setsockopt(a, SOL_SOCKET, SO_KEEPALIVE, &one, sizeof one);
	setsockopt(a, IPPROTO_TCP, TCP_KEEPIDLE, &idle, sizeof idle);
	setsockopt(a, SOL_SOCKET, SO_SNDBUF, &big, sizeof big);
	fcntl(a, F_SETFL, O_NONBLOCK);
	unsigned char *out = malloc(SERVER_BYTES);
	for (size_t i = 0; i < SERVER_BYTES; i++)
		out[i] = pattern(1, i);
	write_all(a, out, SERVER_BYTES, "server A");
	fcntl(a, F_SETFL, 0);
	/* the client's bytes are all there before READY, then its line */
	unsigned char *in = malloc(CLIENT_BYTES);
	int avail = 0;
	while (avail < CLIENT_BYTES + 4) {
		wl_sleep_ms(10);
		if (ioctl(a, FIONREAD, &avail) != 0)
			wl_fail("FIONREAD: %s", strerror(errno));
	}
	wl_ready("child=%d port=%d", (int)kid, port);
	while (!wl_go())
		wl_sleep_ms(20);
	read_exact(a, in, CLIENT_BYTES, "server A");
	check_pattern(in, CLIENT_BYTES, 2, "server A from client");
	char line[64] = "";
	for (size_t i = 0; i < sizeof line - 1; i++) {
		read_exact(a, (unsigned char *)line + i, 1, "server A line");
		if (line[i] == '\n')
			break;
	}
	int bport = 0;
	if (sscanf(line, "B %d", &bport) != 1)
		wl_fail("server A: line '%s'", line);
	if (opt(a, SOL_SOCKET, SO_KEEPALIVE) != 1 || opt(a, IPPROTO_TCP, TCP_KEEPIDLE) != idle)
		wl_fail("server A lost its keepalive options");
	if (opt(l, SOL_SOCKET, SO_REUSEADDR) != 1)
		wl_fail("listener lost SO_REUSEADDR");
	if (port_of(l) != port)
		wl_fail("listener port %d, not %d", port_of(l), port);
	write_all(a, "ping", 4, "server A ping");
	struct sockaddr_storage peer;
	socklen_t plen = sizeof peer;
	int b = accept(l, (struct sockaddr *)&peer, &plen);
	if (b < 0)
		wl_fail("accept B: %s", strerror(errno));
	int got_port = ntohs(v6 ? ((struct sockaddr_in6 *)&peer)->sin6_port
				: ((struct sockaddr_in *)&peer)->sin_port);
	if (got_port != bport)
		wl_fail("accepted B from port %d, not %d", got_port, bport);
	char hello[11] = "";
	read_exact(b, (unsigned char *)hello, 10, "server B");
	if (memcmp(hello, "hello-on-B", 10) != 0)
		wl_fail("server B: '%s'", hello);
	char report[9] = "";
	read_exact(a, (unsigned char *)report, 8, "server A report");
	if (memcmp(report, "CHILD-OK", 8) != 0)
		wl_fail("server A: report '%s'", report);
	int st;
	waitpid(kid, &st, 0);
	wl_pass("%s", v6 ? "tcp6" : "tcp4");
}

static void udp6(void)
{
	int s[2];
	struct sockaddr_in6 at[2];
	for (int i = 0; i < 2; i++) {
		s[i] = socket(AF_INET6, SOCK_DGRAM, 0);
		memset(&at[i], 0, sizeof at[i]);
		at[i].sin6_family = AF_INET6;
		at[i].sin6_addr = in6addr_loopback;
		if (bind(s[i], (struct sockaddr *)&at[i], sizeof at[i]) != 0)
			wl_fail("bind: %s", strerror(errno));
		socklen_t l = sizeof at[i];
		getsockname(s[i], (struct sockaddr *)&at[i], &l);
	}
	for (int i = 0; i < 2; i++)
		if (connect(s[i], (struct sockaddr *)&at[1 - i], sizeof at[1 - i]) != 0)
			wl_fail("connect: %s", strerror(errno));
	char msg[64];
	for (int i = 0; i < 2; i++)
		for (int k = 0; k < 3; k++) {
			int n = snprintf(msg, sizeof msg, "dgram %d.%d %.*s", i, k, k * 5, "xxxxxxxxxxxxxxx");
			if (send(s[i], msg, (size_t)n, 0) != n)
				wl_fail("send: %s", strerror(errno));
		}
	wl_ready("udp6");
	while (!wl_go())
		wl_sleep_ms(20);
	for (int i = 0; i < 2; i++)
		for (int k = 0; k < 3; k++) {
			char want[64], got[64];
			int n = snprintf(want, sizeof want, "dgram %d.%d %.*s", 1 - i, k, k * 5,
					 "xxxxxxxxxxxxxxx");
			ssize_t r = recv(s[i], got, sizeof got, MSG_DONTWAIT);
			if (r != n || memcmp(got, want, (size_t)n) != 0)
				wl_fail("socket %d datagram %d: %zd bytes '%.*s', want '%s'", i, k, r,
					(int)(r > 0 ? r : 0), got, want);
		}
	struct sockaddr_in6 p;
	socklen_t pl = sizeof p;
	if (getpeername(s[0], (struct sockaddr *)&p, &pl) != 0 || p.sin6_port != at[1].sin6_port)
		wl_fail("socket 0 is not connected to socket 1 any more");
	send(s[0], "after", 5, 0);
	char got[8];
	if (recv(s[1], got, sizeof got, 0) != 5 || memcmp(got, "after", 5) != 0)
		wl_fail("no datagram after restart");
	wl_pass("udp6");
}

static void udp4shut(void)
{
	int s[2];
	struct sockaddr_in at[2];
	for (int i = 0; i < 2; i++) {
		s[i] = socket(AF_INET, SOCK_DGRAM, 0);
		memset(&at[i], 0, sizeof at[i]);
		at[i].sin_family = AF_INET;
		at[i].sin_addr.s_addr = htonl(INADDR_LOOPBACK);
		if (bind(s[i], (struct sockaddr *)&at[i], sizeof at[i]) != 0)
			wl_fail("bind: %s", strerror(errno));
		socklen_t l = sizeof at[i];
		getsockname(s[i], (struct sockaddr *)&at[i], &l);
	}
	for (int i = 0; i < 2; i++)
		if (connect(s[i], (struct sockaddr *)&at[1 - i], sizeof at[1 - i]) != 0)
			wl_fail("connect: %s", strerror(errno));
	if (shutdown(s[0], SHUT_WR) != 0 || shutdown(s[1], SHUT_RD) != 0)
		wl_fail("shutdown: %s", strerror(errno));
	if (send(s[0], "x", 1, MSG_NOSIGNAL) >= 0 || errno != EPIPE)
		wl_fail("a socket shut down for writing sent");
	wl_ready("udp4shut");
	while (!wl_go())
		wl_sleep_ms(20);
	if (send(s[1], "hello", 5, 0) != 5)
		wl_fail("the second socket cannot send: %s", strerror(errno));
	char got[8];
	if (recv(s[0], got, sizeof got, MSG_DONTWAIT) != 5 || memcmp(got, "hello", 5) != 0)
		wl_fail("the first socket did not receive");
	if (send(s[0], "x", 1, MSG_NOSIGNAL) >= 0)
		wl_fail("the socket shut down for writing sends after restart");
	if (errno != EPIPE)
		wl_fail("send after shutdown: %s, want EPIPE", strerror(errno));
	wl_pass("udp4shut");
}

int main(int argc, char **argv)
{
	wl_init(argc, argv, 2, "CTL tcp4|tcp6|udp6|udp4shut");
	wl_close_inherited();
	/* its own process group, checkpointed as PGID:GID */
	setpgid(0, 0);
	const char *mode = argv[2];
	v6 = strcmp(mode, "tcp4") != 0;
	if (strcmp(mode, "udp6") == 0)
		udp6();
	else if (strcmp(mode, "udp4shut") == 0)
		udp4shut();
	else
		tcp();
	return 0;
}
