/* fd_timerfd CTL: a periodic timerfd (every 50 ms) that has fired and was not read, so
 * its fdinfo shows no time left (it_value 0) and expirations waiting; and an epoll set
 * that watches one pipe end through two descriptors (a dup). After CTL/GO: the timerfd
 * reads at least one expiration at once, still has its 50 ms interval, and fires again;
 * the epoll set still reports both descriptors. Prints PASS or FAIL. */
#include "wl.h"

#include <poll.h>
#include <sys/epoll.h>
#include <sys/timerfd.h>

int main(int argc, char **argv)
{
	wl_close_inherited();
	wl_init(argc, argv, 1, "CTL");
	int tfd = timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK);
	struct itimerspec its = { { 0, 50000000 }, { 0, 50000000 } };
	if (tfd < 0 || timerfd_settime(tfd, 0, &its, NULL))
		wl_fail("timerfd: %s", strerror(errno));
	struct pollfd pf = { tfd, POLLIN, 0 };
	if (poll(&pf, 1, -1) != 1)
		wl_fail("poll: %s", strerror(errno));
	int p[2];
	if (pipe(p))
		wl_fail("pipe");
	int d = dup(p[0]);
	int ep = epoll_create1(0);
	struct epoll_event e1 = { EPOLLIN, { .u64 = 1 } }, e2 = { EPOLLIN, { .u64 = 2 } };
	if (epoll_ctl(ep, EPOLL_CTL_ADD, p[0], &e1) || epoll_ctl(ep, EPOLL_CTL_ADD, d, &e2))
		wl_fail("epoll_ctl: %s", strerror(errno));
	if (write(p[1], "x", 1) != 1)
		wl_fail("write");
	wl_ready("tfd=%d", tfd);
	while (!wl_go())
		wl_sleep_ms(10);
	uint64_t ticks = 0;
	if (read(tfd, &ticks, sizeof ticks) != sizeof ticks || ticks < 1)
		wl_fail("no expiration waiting (%s)", strerror(errno));
	struct itimerspec cur;
	if (timerfd_gettime(tfd, &cur) || cur.it_interval.tv_sec != 0 ||
	    cur.it_interval.tv_nsec != 50000000)
		wl_fail("interval %ld.%09ld, want 0.050", (long)cur.it_interval.tv_sec,
			cur.it_interval.tv_nsec);
	if (poll(&pf, 1, -1) != 1 || read(tfd, &ticks, sizeof ticks) != sizeof ticks)
		wl_fail("the timer does not fire again");
	struct epoll_event got[4];
	int n = epoll_wait(ep, got, 4, 0);
	if (n != 2 || got[0].data.u64 + got[1].data.u64 != 3)
		wl_fail("epoll reports %d descriptors", n);
	wl_pass("periodic timerfd, epoll with a dup");
}
