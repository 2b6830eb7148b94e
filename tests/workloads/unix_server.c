/* A UNIX server and its client, in one process group, with every kind of named socket.
 *
 * unix_server CTL
 *     The parent listens on CTL/listen.sock (mode 0640, backlog 5, O_NONBLOCK) and on
 *     the abstract name "@cpr-unixsock-<pid>" (backlog 3); it forks the client, which
 *     connects to the path twice and to the abstract name once. The parent accepts the
 *     first connection only: the other two wait in the listeners' queues. Over the
 *     accepted one each side sends a message the other leaves unread, and the client
 *     shuts down its writing side. The parent's datagram socket CTL/dgp.sock (SO_PASSCRED,
 *     set once they are queued) holds "d1" and an empty message from the client's CTL/dgc.sock (which is connected
 *     to it) and "u1" from an unnamed socket; the client's holds "dp1" from the parent.
 *     The accepted socket has SO_RCVTIMEO 2.5 s and SO_RCVLOWAT 3.
 *     Prints "READY <pid> child=<pid>" once all is in place. Once CTL/GO exists each side
 *     checks names, queues, data, message boundaries and senders, options, flags and the
 *     socket file's mode, accepts the waiting connections and talks over them; the
 *     parent prints "PASS server" once the client exited 0. */
#include "wl.h"
#include <sys/socket.h>
#include <stddef.h>
#include <sys/un.h>

static socklen_t path_addr(struct sockaddr_un *a, const char *name)
{
	memset(a, 0, sizeof *a);
	a->sun_family = AF_UNIX;
	wl_path(a->sun_path, sizeof a->sun_path, name);
	return sizeof *a;
}

static socklen_t abstract_addr(struct sockaddr_un *a, int leader)
{
	memset(a, 0, sizeof *a);
	a->sun_family = AF_UNIX;
	int n = snprintf(a->sun_path + 1, sizeof a->sun_path - 1, "cpr-unixsock-%d", leader);
	return (socklen_t)(offsetof(struct sockaddr_un, sun_path) + 1 + n);
}

static int sock(int type)
{
	int s = socket(AF_UNIX, type, 0);
	if (s < 0)
		wl_fail("socket: %s", strerror(errno));
	return s;
}

static void must(int ok, const char *what)
{
	if (!ok)
		wl_fail("%s: %s", what, strerror(errno));
}

static void expect_read(int fd, const char *want, const char *what)
{
	char buf[256];
	ssize_t n = recv(fd, buf, sizeof buf, 0);
	if (n != (ssize_t)strlen(want) || memcmp(buf, want, n) != 0)
		wl_fail("%s: read %zd bytes, want \"%s\" (%s)", what, n, want, strerror(errno));
}

/* recvfrom: the message and its sender's path (empty: unnamed) */
static void expect_from(int fd, const char *want, const char *sender, const char *what)
{
	char buf[256];
	struct sockaddr_un a;
	socklen_t len = sizeof a;
	memset(&a, 0, sizeof a);
	ssize_t n = recvfrom(fd, buf, sizeof buf, MSG_DONTWAIT, (struct sockaddr *)&a, &len);
	if (n != (ssize_t)strlen(want) || memcmp(buf, want, n) != 0)
		wl_fail("%s: got %zd bytes, want \"%s\" (%s)", what, n, want, strerror(errno));
	const char *got = len > offsetof(struct sockaddr_un, sun_path) ? a.sun_path : "";
	char path[sizeof a.sun_path] = "";
	if (*sender)
		wl_path(path, sizeof path, sender);
	if (strcmp(got, path) != 0)
		wl_fail("%s: from \"%s\", want \"%s\"", what, got, path);
}

static void wait_go(void)
{
	while (!wl_go())
		wl_sleep_ms(20);
}

static void client(int leader, int ready)
{
	struct sockaddr_un a;
	socklen_t len = path_addr(&a, "listen.sock");
	int c1 = sock(SOCK_STREAM), c2 = sock(SOCK_STREAM), c3 = sock(SOCK_STREAM);
	must(connect(c1, (struct sockaddr *)&a, len) == 0, "connect c1");
	must(connect(c2, (struct sockaddr *)&a, len) == 0, "connect c2");
	struct sockaddr_un ab;
	socklen_t ablen = abstract_addr(&ab, leader);
	must(connect(c3, (struct sockaddr *)&ab, ablen) == 0, "connect c3");
	must(send(c1, "from-client", 11, 0) == 11, "send c1");
	must(shutdown(c1, SHUT_WR) == 0, "shutdown c1");
	int dc = sock(SOCK_DGRAM), u = sock(SOCK_DGRAM);
	struct sockaddr_un dca, dpa;
	must(bind(dc, (struct sockaddr *)&dca, path_addr(&dca, "dgc.sock")) == 0, "bind dgc");
	socklen_t dplen = path_addr(&dpa, "dgp.sock");
	must(connect(dc, (struct sockaddr *)&dpa, dplen) == 0, "connect dc");
	must(send(dc, "d1", 2, 0) == 2 && send(dc, "", 0, 0) == 0, "send dc");
	must(sendto(u, "u1", 2, 0, (struct sockaddr *)&dpa, dplen) == 2, "sendto u");
	close(u);
	must(write(ready, "c", 1) == 1, "tell the parent");
	char one;
	must(read(ready, &one, 1) == 1, "wait for the parent");
	wait_go();
	signal(SIGPIPE, SIG_IGN);
	expect_read(c1, "from-server", "c1");
	if (send(c1, "x", 1, 0) != -1 || errno != EPIPE)
		wl_fail("c1: a write after shutdown should be EPIPE");
	struct sockaddr_un peer;
	socklen_t plen = sizeof peer;
	must(getpeername(c1, (struct sockaddr *)&peer, &plen) == 0, "getpeername c1");
	if (strcmp(peer.sun_path, a.sun_path) != 0)
		wl_fail("c1: peer \"%s\", want \"%s\"", peer.sun_path, a.sun_path);
	expect_read(dc, "dp1", "dc queued");
	expect_read(c2, "hello2", "c2");
	expect_read(c3, "abs", "c3");
	expect_read(dc, "bye", "dc");
	exit(0);
}

int main(int argc, char **argv)
{
	wl_init(argc, argv, 1, "CTL");
	setpgid(0, 0);
	struct sockaddr_un a, ab, dpa, dca;
	socklen_t len = path_addr(&a, "listen.sock");
	int l = sock(SOCK_STREAM), la = sock(SOCK_STREAM), dp = sock(SOCK_DGRAM);
	must(bind(l, (struct sockaddr *)&a, len) == 0, "bind listen.sock");
	must(chmod(a.sun_path, 0640) == 0, "chmod");
	must(listen(l, 5) == 0, "listen");
	socklen_t ablen = abstract_addr(&ab, getpid());
	must(bind(la, (struct sockaddr *)&ab, ablen) == 0 && listen(la, 3) == 0, "abstract");
	must(bind(dp, (struct sockaddr *)&dpa, path_addr(&dpa, "dgp.sock")) == 0, "bind dgp");
	int sv[2];
	must(socketpair(AF_UNIX, SOCK_STREAM, 0, sv) == 0, "socketpair");
	int leader = getpid();
	pid_t child = fork();
	if (child == 0) {
		close(sv[0]);
		client(leader, sv[1]);
	}
	close(sv[1]);
	char one;
	must(read(sv[0], &one, 1) == 1, "wait for the client");
	/* after the client's datagrams: queued credentials are not checkpoint safe */
	int on = 1;
	must(setsockopt(dp, SOL_SOCKET, SO_PASSCRED, &on, sizeof on) == 0, "SO_PASSCRED");
	int s1 = accept(l, NULL, NULL);
	must(s1 >= 0, "accept");
	must(send(s1, "from-server", 11, 0) == 11, "send s1");
	struct timeval tv = { 2, 500000 };
	must(setsockopt(s1, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv) == 0, "SO_RCVTIMEO");
	int lowat = 3;
	must(setsockopt(s1, SOL_SOCKET, SO_RCVLOWAT, &lowat, sizeof lowat) == 0, "SO_RCVLOWAT");
	must(sendto(dp, "dp1", 3, 0, (struct sockaddr *)&dca, path_addr(&dca, "dgc.sock")) == 3,
	     "sendto dgc");
	must(fcntl(l, F_SETFL, O_NONBLOCK) == 0, "O_NONBLOCK");
	must(write(sv[0], "p", 1) == 1, "tell the client");
	wl_ready("child=%d", (int)child);
	wait_go();

	struct sockaddr_un got;
	socklen_t glen = sizeof got;
	must(getsockname(l, (struct sockaddr *)&got, &glen) == 0, "getsockname");
	if (strcmp(got.sun_path, a.sun_path) != 0)
		wl_fail("listener named \"%s\"", got.sun_path);
	struct stat st;
	must(stat(a.sun_path, &st) == 0, "stat listen.sock");
	if (!S_ISSOCK(st.st_mode) || (st.st_mode & 07777) != 0640)
		wl_fail("listen.sock mode %o", st.st_mode);
	if (!(fcntl(l, F_GETFL) & O_NONBLOCK))
		wl_fail("the listener lost O_NONBLOCK");
	glen = sizeof got;
	must(getsockname(s1, (struct sockaddr *)&got, &glen) == 0, "getsockname s1");
	if (strcmp(got.sun_path, a.sun_path) != 0)
		wl_fail("accepted socket named \"%s\"", got.sun_path);
	struct timeval tv2;
	socklen_t tlen = sizeof tv2;
	must(getsockopt(s1, SOL_SOCKET, SO_RCVTIMEO, &tv2, &tlen) == 0, "SO_RCVTIMEO");
	socklen_t ilen = sizeof lowat;
	must(getsockopt(s1, SOL_SOCKET, SO_RCVLOWAT, &lowat, &ilen) == 0, "SO_RCVLOWAT");
	if (tv2.tv_sec != 2 || tv2.tv_usec != 500000 || lowat != 3)
		wl_fail("s1 options: timeout %ld.%06ld lowat %d", (long)tv2.tv_sec,
			(long)tv2.tv_usec, lowat);
	expect_read(s1, "from-client", "s1");
	char buf[8];
	if (recv(s1, buf, sizeof buf, 0) != 0)
		wl_fail("s1: no end of file after the client's shutdown");
	int s2 = accept(l, NULL, NULL);
	must(s2 >= 0, "accept the waiting connection");
	if (accept(l, NULL, NULL) != -1 || errno != EAGAIN)
		wl_fail("a third connection in the queue");
	must(send(s2, "hello2", 6, 0) == 6, "send s2");
	on = 0;
	socklen_t olen = sizeof on;
	must(getsockopt(dp, SOL_SOCKET, SO_PASSCRED, &on, &olen) == 0 && on, "SO_PASSCRED");
	expect_from(dp, "d1", "dgc.sock", "dp 1");
	expect_from(dp, "", "dgc.sock", "dp 2");
	expect_from(dp, "u1", "", "dp 3");
	int s3 = accept(la, NULL, NULL);
	must(s3 >= 0, "accept on the abstract name");
	must(send(s3, "abs", 3, 0) == 3, "send s3");
	must(sendto(dp, "bye", 3, 0, (struct sockaddr *)&dca, path_addr(&dca, "dgc.sock")) == 3,
	     "sendto bye");
	int status;
	must(waitpid(child, &status, 0) == child, "waitpid");
	if (!WIFEXITED(status) || WEXITSTATUS(status) != 0)
		wl_fail("the client failed (status %d)", status);
	wl_pass("server");
}
