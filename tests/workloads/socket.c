/* socket CTL: holds a TCP socket listening on 127.0.0.1 (any port) and a netlink socket
 * (a family cpr does not restore), prints "READY <pid> port=<port>" and "tick N" every
 * 50 ms until CTL/GO exists. cpr must refuse to checkpoint it and leave it running. */
#include "wl.h"
#include <arpa/inet.h>
#include <linux/netlink.h>
#include <netinet/in.h>
#include <sys/socket.h>

int main(int argc, char **argv)
{
	wl_init(argc, argv, 1, "CTL");
	int s = socket(AF_INET, SOCK_STREAM, 0);
	struct sockaddr_in a = { .sin_family = AF_INET, .sin_port = 0 };
	a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	if (s < 0 || bind(s, (struct sockaddr *)&a, sizeof a) || listen(s, 8))
		wl_fail("listen: %s", strerror(errno));
	if (socket(AF_NETLINK, SOCK_DGRAM, NETLINK_ROUTE) < 0)
		wl_fail("netlink: %s", strerror(errno));
	socklen_t len = sizeof a;
	getsockname(s, (struct sockaddr *)&a, &len);
	wl_ready("port=%d", ntohs(a.sin_port));
	for (unsigned long n = 1; !wl_go(); n++) {
		printf("tick %lu\n", n);
		wl_sleep_ms(50);
	}
	wl_pass("socket");
}
