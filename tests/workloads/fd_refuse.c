/* fd_refuse CTL MODE: state cpr cannot bring back identically, which the checkpoint must
 * refuse (naming the process and the object). MODE:
 *   epoll-reused  an epoll set watches a pipe end as fd N; N is then closed (the pipe end
 *                 stays open as another number) and opened again for /dev/null.
 *   inotify-pending  an inotify instance with an event queued and not read.
 *   pty-data      a pty (master and slave held) with "x" written to the master, unread.
 *   owner-outside a pipe end whose SIGIO owner (F_SETOWN) is this process's parent, which
 *                 is outside the checkpoint.
 *   sem-undo      a private SysV semaphore set, one semaphore taken with SEM_UNDO.
 *   msgq          a private SysV message queue holding one message it sent.
 *   link-removed  CTL/h1 and its hard link CTL/h2; h1 open, then h1 removed (the file
 *                 lives on as h2, which restart could not find from the descriptor).
 * Prints READY (with id=N, the SysV set or queue, which the test removes) and sleeps. */
#include "wl.h"

#include <sys/epoll.h>
#include <sys/inotify.h>
#include <sys/ipc.h>
#include <sys/msg.h>
#include <sys/sem.h>

static int ipc_id = -1;

static void owner_outside(void)
{
	int p[2];
	if (pipe(p) || fcntl(p[0], F_SETOWN, getppid()))
		wl_fail("owner: %s", strerror(errno));
}

static void pty_data(void)
{
	int m = posix_openpt(O_RDWR | O_NOCTTY);
	if (m < 0 || grantpt(m) || unlockpt(m))
		wl_fail("openpt: %s", strerror(errno));
	int s = open(ptsname(m), O_RDWR | O_NOCTTY);
	if (s < 0 || write(m, "x", 1) != 1)
		wl_fail("pty: %s", strerror(errno));
}

static void link_removed(void)
{
	char a[4096], b[4096];
	wl_path(a, sizeof a, "h1");
	wl_path(b, sizeof b, "h2");
	int fd = open(a, O_CREAT | O_RDWR, 0600);
	if (fd < 0 || link(a, b) || unlink(a))
		wl_fail("links: %s", strerror(errno));
}

static void sem_undo(void)
{
	int id = semget(IPC_PRIVATE, 1, IPC_CREAT | 0600);
	struct sembuf up = { 0, 1, SEM_UNDO };
	if (id < 0 || semop(id, &up, 1))
		wl_fail("sem: %s", strerror(errno));
	ipc_id = id;
}

static void msgq(void)
{
	int id = msgget(IPC_PRIVATE, IPC_CREAT | 0600);
	struct {
		long type;
		char text[8];
	} m = { 1, "hello" };
	if (id < 0 || msgsnd(id, &m, sizeof m.text, 0))
		wl_fail("msg: %s", strerror(errno));
	ipc_id = id;
}

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
	else if (strcmp(mode, "link-removed") == 0)
		link_removed();
	else if (strcmp(mode, "owner-outside") == 0)
		owner_outside();
	else if (strcmp(mode, "pty-data") == 0)
		pty_data();
	else if (strcmp(mode, "sem-undo") == 0)
		sem_undo();
	else if (strcmp(mode, "msgq") == 0)
		msgq();
	else
		wl_fail("unknown mode %s", mode);
	wl_ready("mode=%s id=%d", mode, ipc_id);
	for (;;)
		wl_sleep_ms(100);
}
