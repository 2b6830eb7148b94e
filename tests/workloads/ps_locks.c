/* ps_locks run CTL: the parent takes flock(LOCK_EX) on CTL/lock-a and forks (the child
 * shares that description); the child takes a POSIX write lock on bytes 10-19 of
 * CTL/lock-b. READY <pid> child=..; on CTL/GO the child checks it still holds its lock
 * (F_GETLK from a grandchild sees it) and the parent that flock converts in place; PASS.
 * ps_locks probe CTL OWNER: from another process: flock on lock-a must be refused
 * (EWOULDBLOCK), F_GETLK on lock-b must report a write lock of 10-19 held by OWNER.
 * Prints "PROBE ok" or "PROBE FAIL why", exit 0/1. */
#include "wl.h"
#include <sys/file.h>
#include <sys/wait.h>

static int lock_b_owner(void)
{
	char p[4200];
	wl_path(p, sizeof p, "lock-b");
	int fd = open(p, O_RDWR);
	if (fd < 0)
		return -1;
	struct flock fl = { .l_type = F_WRLCK, .l_whence = SEEK_SET, .l_start = 0, .l_len = 100 };
	if (fcntl(fd, F_GETLK, &fl) < 0)
		return -1;
	close(fd);
	if (fl.l_type != F_WRLCK || fl.l_start != 10 || fl.l_len != 10)
		return 0;
	return fl.l_pid;
}

static int probe(pid_t owner)
{
	char p[4200];
	wl_path(p, sizeof p, "lock-a");
	int a = open(p, O_RDONLY);
	if (a < 0) {
		printf("PROBE FAIL open lock-a: %s\n", strerror(errno));
		return 1;
	}
	if (flock(a, LOCK_SH | LOCK_NB) == 0 || errno != EWOULDBLOCK) {
		printf("PROBE FAIL the flock on lock-a is not held\n");
		return 1;
	}
	int o = lock_b_owner();
	if (o != owner) {
		printf("PROBE FAIL lock-b: owner %d, wanted %d\n", o, (int)owner);
		return 1;
	}
	printf("PROBE ok\n");
	return 0;
}

int main(int argc, char **argv)
{
	wl_init(argc, argv, 2, "run|probe CTL [OWNER]");
	wl_ctl = argv[2];
	if (strcmp(argv[1], "probe") == 0)
		return probe(argc > 3 ? atoi(argv[3]) : -1);
	char p[4200];
	wl_path(p, sizeof p, "lock-a");
	int a = open(p, O_RDWR | O_CREAT, 0644);
	wl_path(p, sizeof p, "lock-b");
	int b = open(p, O_RDWR | O_CREAT, 0644);
	if (a < 0 || b < 0)
		wl_fail("open: %s", strerror(errno));
	if (flock(a, LOCK_EX | LOCK_NB))
		wl_fail("flock: %s", strerror(errno));
	pid_t c = fork();
	if (c == 0) {
		struct flock fl = { .l_type = F_WRLCK, .l_whence = SEEK_SET, .l_start = 10, .l_len = 10 };
		if (fcntl(b, F_SETLK, &fl)) {
			printf("FAIL child F_SETLK: %s\n", strerror(errno));
			_exit(1);
		}
		while (!wl_go())
			wl_sleep_ms(10);
		pid_t me = getpid();
		pid_t g = fork();
		if (g == 0)
			_exit(lock_b_owner() == me ? 0 : 1);
		int st;
		waitpid(g, &st, 0);
		if (!WIFEXITED(st) || WEXITSTATUS(st) != 0) {
			printf("FAIL child: its lock on lock-b is not seen\n");
			_exit(1);
		}
		_exit(0);
	}
	/* the child holds its lock before READY */
	while (lock_b_owner() != c)
		wl_sleep_ms(5);
	wl_ready("child=%d", (int)c);
	while (!wl_go())
		wl_sleep_ms(10);
	if (flock(a, LOCK_EX | LOCK_NB))
		wl_fail("flock again: %s", strerror(errno));
	int st;
	if (waitpid(c, &st, 0) != c || !WIFEXITED(st) || WEXITSTATUS(st) != 0)
		wl_fail("child status %#x", st);
	wl_pass("child=%d", (int)c);
}
