/* A parent and its child talking over socketpairs, with data in flight both ways.
 *
 * unix_pair CTL stream|dgram|seqpacket|rights
 *     leads a process group of its own; makes a socketpair of that type and forks. Each
 *     side sends 8 messages the other has not read yet (a stream's bytes in writes of
 *     varied sizes; a datagram's or seqpacket's lengths vary, empty ones included, so
 *     their boundaries are checked). A second pair (stream) carries "bye" from the
 *     child, which then shuts down its writing side; the child's end of it is O_NONBLOCK
 *     with SO_PASSCRED, the parent's SO_SNDBUF is set to 50000. `rights` queues a
 *     descriptor (SCM_RIGHTS) to the child instead of the 8 messages. Prints "READY <pid> child=<pid>" once all is in flight.
 *     Once CTL/GO exists each side reads and checks what the other sent, they play 50
 *     rounds of ping-pong, the parent reads "bye" then end of file and answers "ok" on
 *     the second pair, checks its SO_SNDBUF, and prints "PASS" once the child exited 0. */
#include "wl.h"
#include <poll.h>
#include <sys/socket.h>
#include <sys/wait.h>

#define IN_FLIGHT 8
#define ROUNDS 50

static int mode_type;
static int rights;

static size_t msg_len(int from, int i)
{
	/* empty messages too, where there are messages */
	if (mode_type != SOCK_STREAM && i % 5 == 3)
		return 0;
	return 1 + (size_t)((i * 37 + from * 101) % 300);
}

static unsigned char msg_byte(int from, int i, size_t j)
{
	return (unsigned char)(from * 53 + i * 7 + j * 13);
}

static void wait_readable(int fd)
{
	struct pollfd p = { .fd = fd, .events = POLLIN };
	while (poll(&p, 1, -1) < 0 && errno == EINTR)
		;
}

static void send_all(int fd, const void *buf, size_t len, const char *who)
{
	const char *p = buf;
	if (mode_type != SOCK_STREAM && len == 0 && send(fd, p, 0, MSG_NOSIGNAL) != 0)
		wl_fail("%s: send of an empty message: %s", who, strerror(errno));
	while (len > 0) {
		ssize_t n = send(fd, p, len, MSG_NOSIGNAL);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			wl_fail("%s: send: %s", who, strerror(errno));
		if (mode_type != SOCK_STREAM && (size_t)n != len)
			wl_fail("%s: short send of a message", who);
		p += n;
		len -= (size_t)n;
	}
}

static void recv_exact(int fd, void *buf, size_t len, const char *who)
{
	char *p = buf;
	while (len > 0) {
		wait_readable(fd);
		ssize_t n = recv(fd, p, len, 0);
		if (n < 0 && (errno == EINTR || errno == EAGAIN))
			continue;
		if (n <= 0)
			wl_fail("%s: recv: %s", who, n ? strerror(errno) : "end of file");
		p += n;
		len -= (size_t)n;
	}
}

/* Sends message i of side `from`: one message, or its bytes on a stream. */
static void send_msg(int fd, int from, int i)
{
	unsigned char buf[512];
	size_t len = msg_len(from, i);
	for (size_t j = 0; j < len; j++)
		buf[j] = msg_byte(from, i, j);
	send_all(fd, buf, len, from ? "child" : "parent");
}

static void check_msg(int fd, int from, int i, const char *who)
{
	unsigned char buf[1024];
	size_t len = msg_len(from, i);
	if (mode_type == SOCK_STREAM) {
		recv_exact(fd, buf, len, who);
	} else {
		wait_readable(fd);
		ssize_t n = recv(fd, buf, sizeof buf, 0);
		if (n != (ssize_t)len)
			wl_fail("%s: message %d has %zd bytes, not %zu", who, i, n, len);
	}
	for (size_t j = 0; j < len; j++)
		if (buf[j] != msg_byte(from, i, j))
			wl_fail("%s: message %d byte %zu differs", who, i, j);
}

/* Reads the other side's messages in flight, then plays ping-pong. */
static void converse(int fd, int me)
{
	const char *who = me ? "child" : "parent";
	for (int i = 0; i < IN_FLIGHT; i++)
		check_msg(fd, !me, i, who);
	for (int r = 0; r < ROUNDS; r++) {
		int i = IN_FLIGHT + r;
		if (me == 0) {
			send_msg(fd, 0, i);
			check_msg(fd, 1, i, who);
		} else {
			check_msg(fd, 0, i, who);
			send_msg(fd, 1, i);
		}
	}
}

static void wait_go(void)
{
	while (!wl_go())
		wl_sleep_ms(20);
}

static int child_main(int fd, int side)
{
	int fl = fcntl(side, F_GETFL);
	fcntl(side, F_SETFL, fl | O_NONBLOCK);
	int one = 1;
	setsockopt(side, SOL_SOCKET, SO_PASSCRED, &one, sizeof one);
	if (!rights)
		for (int i = 0; i < IN_FLIGHT; i++)
			send_msg(fd, 1, i);
	send_all(side, "bye", 3, "child");
	shutdown(side, SHUT_WR);
	wait_go();
	if (rights) {
		char c;
		char ctl[CMSG_SPACE(sizeof(int))];
		struct iovec iov = { &c, 1 };
		struct msghdr m = { .msg_iov = &iov, .msg_iovlen = 1, .msg_control = ctl,
				    .msg_controllen = sizeof ctl };
		wait_readable(fd);
		if (recvmsg(fd, &m, 0) != 1 || !CMSG_FIRSTHDR(&m) ||
		    CMSG_FIRSTHDR(&m)->cmsg_type != SCM_RIGHTS)
			wl_fail("child: the descriptor in flight is gone");
	} else {
		converse(fd, 1);
	}
	if (!(fcntl(side, F_GETFL) & O_NONBLOCK))
		wl_fail("child: O_NONBLOCK lost");
	int cred = 0;
	socklen_t len = sizeof cred;
	if (getsockopt(side, SOL_SOCKET, SO_PASSCRED, &cred, &len) || !cred)
		wl_fail("child: SO_PASSCRED lost");
	char ok[2];
	recv_exact(side, ok, 2, "child");
	if (memcmp(ok, "ok", 2) != 0)
		wl_fail("child: no ok");
	return 0;
}

static void check_side(int side, int snd)
{
	char bye[3];
	recv_exact(side, bye, 3, "parent");
	if (memcmp(bye, "bye", 3) != 0)
		wl_fail("parent: no bye");
	if (recv(side, bye, 1, MSG_DONTWAIT) != 0)
		wl_fail("parent: no end of file after bye (%s)", strerror(errno));
	send_all(side, "ok", 2, "parent");
	int now;
	socklen_t len = sizeof now;
	getsockopt(side, SOL_SOCKET, SO_SNDBUF, &now, &len);
	if (now != snd)
		wl_fail("parent: SO_SNDBUF %d, was %d", now, snd);
}

int main(int argc, char **argv)
{
	wl_init(argc, argv, 2, "CTL stream|dgram|seqpacket|rights");
	const char *mode = argv[2];
	mode_type = strcmp(mode, "dgram") == 0       ? SOCK_DGRAM
		    : strcmp(mode, "seqpacket") == 0 ? SOCK_SEQPACKET
						     : SOCK_STREAM;
	rights = strcmp(mode, "rights") == 0;
	wl_close_inherited();
	setpgid(0, 0);
	int sv[2], side[2];
	if (socketpair(AF_UNIX, mode_type, 0, sv) || socketpair(AF_UNIX, SOCK_STREAM, 0, side))
		wl_fail("socketpair: %s", strerror(errno));
	int val = 50000;
	setsockopt(side[0], SOL_SOCKET, SO_SNDBUF, &val, sizeof val);
	int snd;
	socklen_t len = sizeof snd;
	getsockopt(side[0], SOL_SOCKET, SO_SNDBUF, &snd, &len);
	pid_t kid = fork();
	if (kid < 0)
		wl_fail("fork: %s", strerror(errno));
	if (kid == 0) {
		close(sv[0]);
		close(side[0]);
		exit(child_main(sv[1], side[1]));
	}
	close(sv[1]);
	close(side[1]);
	if (rights) {
		int devnull = open("/dev/null", O_RDONLY);
		char c = 'x';
		char ctl[CMSG_SPACE(sizeof(int))] = { 0 };
		struct iovec iov = { &c, 1 };
		struct msghdr m = { .msg_iov = &iov, .msg_iovlen = 1, .msg_control = ctl,
				    .msg_controllen = sizeof ctl };
		struct cmsghdr *h = CMSG_FIRSTHDR(&m);
		h->cmsg_level = SOL_SOCKET;
		h->cmsg_type = SCM_RIGHTS;
		h->cmsg_len = CMSG_LEN(sizeof(int));
		memcpy(CMSG_DATA(h), &devnull, sizeof(int));
		if (sendmsg(sv[0], &m, 0) != 1)
			wl_fail("sendmsg: %s", strerror(errno));
		close(devnull);
	} else {
		for (int i = 0; i < IN_FLIGHT; i++)
			send_msg(sv[0], 0, i);
	}
	/* the child has sent all it sends before the checkpoint once it shut down */
	struct pollfd p = { .fd = side[0], .events = POLLRDHUP };
	while (!(p.revents & POLLRDHUP))
		if (poll(&p, 1, -1) < 0 && errno != EINTR)
			wl_fail("poll: %s", strerror(errno));
	wl_ready("child=%d", (int)kid);
	wait_go();
	if (!rights)
		converse(sv[0], 0);
	check_side(side[0], snd);
	int status;
	if (waitpid(kid, &status, 0) != kid || !WIFEXITED(status) || WEXITSTATUS(status) != 0)
		wl_fail("the child failed (status %x)", status);
	wl_pass("%s", mode);
}
