/* Objects the checkpoint must refuse, one per mode; the workload runs on and passes at GO
 * when nothing was checkpointed (it checks that its object still works).
 *   aio:             a Linux AIO context (io_setup): its ring is a mapping of an
 *                    anon_inode ([aio]) with requests that may be in flight.
 *   fanotify:        a fanotify descriptor marking CTL.
 *   inotify-removed: an inotify watch on CTL/w, a directory removed since (the watch
 *                    was dropped by the kernel, IN_IGNORED not read yet).
 *   inotify-unlinked: an inotify watch on CTL/f, a file removed since but still open (the
 *                    watch lives on, on a file with no name); its events were read.
 *   epoll-closed:    an epoll set watching an eventfd through fd N, N closed since
 *                    (the set still watches the eventfd, reachable by no number).
 * Prints "READY <pid> mode=<mode>", then PASS or FAIL at GO. */
#include "wl.h"
#include <linux/aio_abi.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/fanotify.h>
#include <sys/inotify.h>
#include <sys/syscall.h>

static void wait_go(void)
{
	while (!wl_go())
		wl_sleep_ms(20);
}

static void aio(void)
{
	aio_context_t ctx = 0;
	if (syscall(SYS_io_setup, 8, &ctx))
		wl_fail("io_setup: %s", strerror(errno));
	wl_ready("mode=aio");
	wait_go();
	if (syscall(SYS_io_destroy, ctx))
		wl_fail("io_destroy: %s", strerror(errno));
	wl_pass("aio context kept");
}

static void fanotify(void)
{
	int fd = fanotify_init(FAN_CLASS_NOTIF, O_RDONLY);
	if (fd < 0 || fanotify_mark(fd, FAN_MARK_ADD, FAN_OPEN, AT_FDCWD, wl_ctl))
		wl_fail("fanotify: %s", strerror(errno));
	wl_ready("mode=fanotify");
	wait_go();
	wl_pass("fanotify kept");
}

static void inotify_removed(void)
{
	char dir[4096];
	wl_path(dir, sizeof dir, "w");
	int fd = inotify_init1(IN_NONBLOCK);
	if (fd < 0 || mkdir(dir, 0700) || inotify_add_watch(fd, dir, IN_CREATE) < 0 || rmdir(dir))
		wl_fail("inotify: %s", strerror(errno));
	wl_ready("mode=inotify-removed");
	wait_go();
	char buf[4096];
	if (read(fd, buf, sizeof buf) <= 0)
		wl_fail("the watch's IN_IGNORED event is gone");
	wl_pass("inotify events kept");
}

static void inotify_unlinked(void)
{
	char file[4096];
	wl_path(file, sizeof file, "f");
	int keep = open(file, O_RDWR | O_CREAT, 0600);
	int fd = inotify_init1(IN_NONBLOCK);
	if (keep < 0 || fd < 0 || inotify_add_watch(fd, file, IN_MODIFY) < 0 || unlink(file))
		wl_fail("inotify: %s", strerror(errno));
	char buf[4096];
	while (read(fd, buf, sizeof buf) > 0)
		;
	wl_ready("mode=inotify-unlinked");
	wait_go();
	if (write(keep, "x", 1) != 1)
		wl_fail("write");
	if (read(fd, buf, sizeof buf) <= 0)
		wl_fail("no IN_MODIFY from the watch on the removed file");
	wl_pass("inotify watch kept");
}

static void epoll_closed(void)
{
	int ep = epoll_create1(0), ev = eventfd(1, 0);
	struct epoll_event e = { .events = EPOLLIN, .data.u64 = 7 };
	if (ep < 0 || ev < 0 || epoll_ctl(ep, EPOLL_CTL_ADD, ev, &e))
		wl_fail("epoll: %s", strerror(errno));
	/* another reference keeps the eventfd (and the watch) alive */
	int keep = dup(ev);
	close(ev);
	wl_ready("mode=epoll-closed");
	wait_go();
	struct epoll_event got;
	if (epoll_wait(ep, &got, 1, 0) != 1 || got.data.u64 != 7)
		wl_fail("the watch of the closed number is gone");
	close(keep);
	wl_pass("epoll watch kept");
}

int main(int argc, char **argv)
{
	wl_init(argc, argv, 1, "CTL MODE");
	wl_close_inherited();
	const char *mode = argv[2];
	if (!strcmp(mode, "aio"))
		aio();
	else if (!strcmp(mode, "fanotify"))
		fanotify();
	else if (!strcmp(mode, "inotify-removed"))
		inotify_removed();
	else if (!strcmp(mode, "inotify-unlinked"))
		inotify_unlinked();
	else if (!strcmp(mode, "epoll-closed"))
		epoll_closed();
	wl_fail("unknown mode %s", mode);
}
