/* POSIX shared memory and named semaphores across checkpoint and restart.
 *
 *   posix_shm CTL pair NAME   a parent and its child share the shm_open segment NAME
 *                             (each maps it by name; mode 0640, owner 65534) and one more
 *                             segment, NAME-gone, unlinked while mapped; after GO each
 *                             writes to both and sees the other's writes, and checks the
 *                             content both wrote before the checkpoint. With KEEP_FD
 *                             set, the parent also keeps NAME open as a descriptor,
 *                             which must name the file both map after restart.
 *   posix_shm CTL sem NAME    the child blocks in sem_wait on named semaphore NAME; after
 *                             GO the parent opens NAME again (a mapping of its own, made
 *                             after restart) and posts it; the child answers on NAME-back.
 *
 * The parent prints "READY <pid> child=<pid>" and, once all is checked, PASS. */
#include "wl.h"
#include <semaphore.h>
#include <sys/mman.h>

#define SIZE (3 * 4096 + 100)
#define CHILD_AT (2 * 4096)

/* Control words at the start of the segment. */
struct marks {
	volatile uint32_t child_ready, parent_after, child_after;
};

static unsigned char expected(size_t i)
{
	if (i >= 4096 && i < 2 * 4096)
		return 0; /* a page never written: a hole */
	if (i >= CHILD_AT && i < CHILD_AT + 100)
		return (unsigned char)(i ^ 0x5c); /* the child's */
	return (unsigned char)(i * 7 + 3);
}

static unsigned char *map_by_name(const char *name, int flags)
{
	int fd = shm_open(name, flags, 0600);
	if (fd < 0)
		wl_fail("shm_open %s: %s", name, strerror(errno));
	if (flags & O_CREAT) {
		if (ftruncate(fd, SIZE) != 0 || fchmod(fd, 0640) != 0 ||
		    fchown(fd, 65534, 65534) != 0)
			wl_fail("set up %s: %s", name, strerror(errno));
	}
	void *p = mmap(NULL, SIZE, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	if (p == MAP_FAILED)
		wl_fail("mmap %s: %s", name, strerror(errno));
	close(fd);
	return p;
}

static void check_content(const unsigned char *seg, const char *who)
{
	for (size_t i = sizeof(struct marks); i < SIZE; i++)
		if (seg[i] != expected(i))
			wl_fail("%s: byte %zu is %d, want %d", who, i, seg[i], expected(i));
}

/* Descriptor `fd` is on the file now at `name`, and reads what `seg` holds. */
static void check_descriptor(int fd, const char *name, const unsigned char *seg)
{
	char path[512];
	struct stat a, b;
	static unsigned char buf[SIZE];
	snprintf(path, sizeof path, "/dev/shm%s", name);
	if (fstat(fd, &a) != 0 || stat(path, &b) != 0 || a.st_ino != b.st_ino ||
	    a.st_dev != b.st_dev)
		wl_fail("descriptor not on %s", path);
	if (pread(fd, buf, SIZE, 0) != SIZE || memcmp(buf, seg, SIZE) != 0)
		wl_fail("descriptor reads other content than the mapping");
}

static void wait_go(void)
{
	while (!wl_go())
		wl_sleep_ms(10);
}

static void reap(pid_t child)
{
	int st;
	if (waitpid(child, &st, 0) != child || !WIFEXITED(st) || WEXITSTATUS(st) != 0)
		wl_fail("child %d ended with status %#x", (int)child, st);
}

static void pair(const char *name)
{
	char gone_name[256];
	snprintf(gone_name, sizeof gone_name, "%s-gone", name);
	unsigned char *seg = map_by_name(name, O_CREAT | O_EXCL | O_RDWR);
	for (size_t i = sizeof(struct marks); i < SIZE; i++)
		if (expected(i) && (i < CHILD_AT || i >= CHILD_AT + 100))
			seg[i] = expected(i);
	unsigned char *gone = map_by_name(gone_name, O_CREAT | O_EXCL | O_RDWR);
	if (shm_unlink(gone_name) != 0)
		wl_fail("shm_unlink: %s", strerror(errno));
	gone[10] = 0x42;
	struct marks *m = (struct marks *)seg;
	int kept = getenv("KEEP_FD") ? shm_open(name, O_RDWR, 0) : -1;
	if (getenv("KEEP_FD") && kept < 0)
		wl_fail("shm_open %s: %s", name, strerror(errno));
	pid_t child = fork();
	if (child < 0)
		wl_fail("fork: %s", strerror(errno));
	if (child == 0) {
		/* a mapping of its own, by name */
		unsigned char *mine = map_by_name(name, O_RDWR);
		struct marks *cm = (struct marks *)mine;
		for (size_t i = CHILD_AT; i < CHILD_AT + 100; i++)
			mine[i] = expected(i);
		cm->child_ready = 1;
		wait_go();
		while (cm->parent_after != 1 || gone[20] != 0x43)
			wl_sleep_ms(5);
		check_content(mine, "child");
		if (gone[10] != 0x42)
			wl_fail("child: unlinked segment lost its content");
		gone[30] = 0x44;
		cm->child_after = 1;
		exit(0);
	}
	while (!m->child_ready)
		wl_sleep_ms(5);
	wl_ready("child=%d", (int)child);
	wait_go();
	gone[20] = 0x43;
	m->parent_after = 1;
	while (m->child_after != 1 || gone[30] != 0x44)
		wl_sleep_ms(5);
	check_content(seg, "parent");
	if (kept >= 0)
		check_descriptor(kept, name, seg);
	reap(child);
	wl_pass("shared");
}

static sem_t *open_sem(const char *name, int flags)
{
	sem_t *s = sem_open(name, flags, 0640, 0);
	if (s == SEM_FAILED)
		wl_fail("sem_open %s: %s", name, strerror(errno));
	return s;
}

static void sem_wait_all(sem_t *s, const char *who)
{
	while (sem_wait(s) != 0)
		if (errno != EINTR)
			wl_fail("%s: sem_wait: %s", who, strerror(errno));
}

static void semaphores(const char *name)
{
	char back_name[256];
	snprintf(back_name, sizeof back_name, "%s-back", name);
	sem_t *s = open_sem(name, O_CREAT | O_EXCL);
	sem_t *back = open_sem(back_name, O_CREAT | O_EXCL);
	pid_t child = fork();
	if (child < 0)
		wl_fail("fork: %s", strerror(errno));
	if (child == 0) {
		sem_t *mine = open_sem(name, 0);
		sem_wait_all(mine, "child");
		int v = -1;
		if (sem_getvalue(mine, &v) != 0 || v != 0)
			wl_fail("child: value %d after the wait", v);
		sem_post(back);
		exit(0);
	}
	wl_ready("child=%d", (int)child);
	wait_go();
	/* closed and opened again: glibc maps the file by its name anew */
	sem_close(s);
	s = open_sem(name, 0);
	if (sem_post(s) != 0)
		wl_fail("sem_post: %s", strerror(errno));
	sem_wait_all(back, "parent");
	reap(child);
	wl_pass("posted");
}

int main(int argc, char **argv)
{
	wl_init(argc, argv, 3, "CTL pair|sem NAME");
	wl_close_inherited();
	if (strcmp(argv[2], "pair") == 0)
		pair(argv[3]);
	else if (strcmp(argv[2], "sem") == 0)
		semaphores(argv[3]);
	wl_fail("unknown role %s", argv[2]);
}
