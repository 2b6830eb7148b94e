/* fd_refuse CTL MODE: state cpr cannot bring back identically, which the checkpoint must
 * refuse (naming the process and the object). MODE:
 *   epoll-reused  an epoll set watches a pipe end as fd N; N is then closed (the pipe end
 *                 stays open as another number) and opened again for /dev/null.
 *   inotify-pending  an inotify instance with an event queued and not read.
 * Prints READY and sleeps. */
#include "wl.h"

#include <sys/epoll.h>
#include <sys/inotify.h>

static void inotify_pending(void)
{
	int in = inotify_init1(0);
	if (in < 0 || inotify_add_watch(in, wl_ctl, IN_CREATE) < 0)
		wl_fail("inotify: %s", strerror(errno));
	char p[4096];
	wl_path(p, sizeof p, "new");
	int fd = open(p, O_CREAT | O_WRONLY, 0600);
	if (fd < 0)
		wl_fail("create: %s", strerror(errno));
	close(fd);
}

static void epoll_reused(void)
{
	int p[2];
	if (pipe(p))
		wl_fail("pipe");
	int ep = epoll_create1(0);
	struct epoll_event e = { EPOLLIN, { .u64 = 7 } };
	if (ep < 0 || epoll_ctl(ep, EPOLL_CTL_ADD, p[0], &e))
		wl_fail("epoll: %s", strerror(errno));
	int keep = dup(p[0]);
	close(p[0]);
	int again = open("/dev/null", O_RDONLY);
	if (keep < 0 || again != p[0])
		wl_fail("reuse fd %d got %d", p[0], again);
}

int main(int argc, char **argv)
{
	wl_close_inherited();
	wl_init(argc, argv, 2, "CTL MODE");
	const char *mode = argv[2];
	if (strcmp(mode, "epoll-reused") == 0)
		epoll_reused();
	else if (strcmp(mode, "inotify-pending") == 0)
		inotify_pending();
	else
		wl_fail("unknown mode %s", mode);
	wl_ready("mode=%s", mode);
	for (;;)
		wl_sleep_ms(100);
}
