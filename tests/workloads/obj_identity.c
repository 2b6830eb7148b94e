/* obj_identity CTL MODE: one kernel object held both as a descriptor and as a mapping
 * (or a memfd held only as a descriptor) comes back as one object of the same kind.
 *   deleted: a file in CTL holding "hello" then 16 MiB of noise, opened read-write, its
 *            first page mapped MAP_SHARED, then unlinked. After restart, "WORLD" written through the descriptor is read
 *            through the mapping, and "mapw" written through the mapping is read through
 *            the descriptor; fstat of the descriptor and of the mapping (map_files) give
 *            one inode.
 *   memfd:   a memfd "cpr-sealed" holding "sealed data", mode 0640, sealed against
 *            growing, shrinking and further seals, held only as a descriptor (and by a
 *            forked child). After restart it is on tmpfs (fstatfs), F_GET_SEALS is the
 *            same, /proc/self/fd shows "/memfd:cpr-sealed (deleted)", it keeps mode and
 *            bytes, and the child's descriptor is the same object.
 *   hugetlb: a memfd made with MFD_HUGETLB, held as a descriptor: the checkpoint must
 *            refuse it (restart makes memfds on tmpfs); it runs on and passes at GO.
 *   both:    a memfd "cpr-both" mapped MAP_SHARED and held as a descriptor: as for
 *            "deleted", one object, still a memfd with its name.
 * Prints PASS or FAIL. */
#include "wl.h"
#include <linux/magic.h>
#include <sys/mman.h>
#include <sys/vfs.h>
#include <sys/wait.h>

#define SEALS (F_SEAL_GROW | F_SEAL_SHRINK | F_SEAL_SEAL)
#define BIG (16L << 20)

static void expect_link(int fd, const char *want)
{
	char p[64], got[4096];
	snprintf(p, sizeof p, "/proc/self/fd/%d", fd);
	ssize_t n = readlink(p, got, sizeof got - 1);
	got[n < 0 ? 0 : n] = 0;
	if (strcmp(got, want) != 0)
		wl_fail("fd %d links to '%s', not '%s'", fd, got, want);
}

/* Writes through `fd` are seen in `map` and the other way round; both one inode. */
static void expect_one_object(int fd, char *map)
{
	if (pwrite(fd, "WORLD", 5, 0) != 5)
		wl_fail("write through fd: %s", strerror(errno));
	if (memcmp(map, "WORLD", 5) != 0)
		wl_fail("mapping reads '%.5s' after a write through the fd: two objects", map);
	memcpy(map + 8, "mapw", 4);
	char buf[8] = "";
	if (pread(fd, buf, 4, 8) != 4 || memcmp(buf, "mapw", 4) != 0)
		wl_fail("fd reads '%.4s' after a write through the mapping: two objects", buf);
	char p[128];
	snprintf(p, sizeof p, "/proc/self/map_files/%lx-%lx", (unsigned long)map,
		 (unsigned long)map + 4096);
	struct stat a, b;
	if (fstat(fd, &a) || stat(p, &b) || a.st_ino != b.st_ino || a.st_dev != b.st_dev)
		wl_fail("fd and mapping are different files");
}

static char *map_shared(int fd)
{
	char *m = mmap(NULL, 4096, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	if (m == MAP_FAILED)
		wl_fail("mmap: %s", strerror(errno));
	return m;
}

static void deleted(void)
{
	char p[4096];
	wl_path(p, sizeof p, "del");
	int fd = open(p, O_RDWR | O_CREAT | O_TRUNC, 0600);
	if (fd < 0 || write(fd, "hello", 5) != 5 || ftruncate(fd, BIG))
		wl_fail("create %s: %s", p, strerror(errno));
	/* data past the first page (which is mapped), that nothing compresses away */
	uint64_t x = 88172645463325252ull, noise[512];
	for (long at = 4096; at < BIG; at += 4096) {
		for (int i = 0; i < 512; i++)
			noise[i] = wl_xorshift(&x);
		if (pwrite(fd, noise, 4096, at) != 4096)
			wl_fail("write %s: %s", p, strerror(errno));
	}
	char *m = map_shared(fd);
	if (unlink(p))
		wl_fail("unlink: %s", strerror(errno));
	wl_ready("mode=deleted");
	while (!wl_go())
		wl_sleep_ms(10);
	if (memcmp(m, "hello", 5) != 0)
		wl_fail("mapping lost its bytes");
	expect_one_object(fd, m);
	wl_pass("deleted file mapped and open is one file");
}

static int child_checks(int fd, int go)
{
	char c, buf[16] = "";
	if (read(go, &c, 1) != 1)
		return 3;
	/* the parent wrote "SEALED" over the start */
	if (pread(fd, buf, 6, 0) != 6 || memcmp(buf, "SEALED", 6) != 0)
		return 1;
	return 0;
}

static void memfd(void)
{
	int fd = memfd_create("cpr-sealed", MFD_ALLOW_SEALING);
	if (fd < 0 || write(fd, "sealed data", 11) != 11 || fchmod(fd, 0640) ||
	    fcntl(fd, F_ADD_SEALS, SEALS))
		wl_fail("memfd: %s", strerror(errno));
	int c[2];
	if (pipe(c))
		wl_fail("pipe");
	pid_t kid = fork();
	if (kid == 0)
		_exit(child_checks(fd, c[0]));
	wl_ready("child=%d", (int)kid);
	while (!wl_go())
		wl_sleep_ms(10);
	struct statfs fs;
	if (fstatfs(fd, &fs) || fs.f_type != TMPFS_MAGIC)
		wl_fail("memfd not on tmpfs (f_type %lx)", (long)fs.f_type);
	int seals = fcntl(fd, F_GET_SEALS);
	if (seals != SEALS)
		wl_fail("seals %x, not %x", seals, SEALS);
	expect_link(fd, "/memfd:cpr-sealed (deleted)");
	struct stat st;
	char buf[16] = "";
	if (fstat(fd, &st) || (st.st_mode & 07777) != 0640 || st.st_size != 11 ||
	    pread(fd, buf, 11, 0) != 11 || memcmp(buf, "sealed data", 11) != 0)
		wl_fail("memfd mode %o size %ld bytes '%.11s'", st.st_mode & 07777,
			(long)st.st_size, buf);
	if (ftruncate(fd, 100) == 0)
		wl_fail("memfd grew despite F_SEAL_GROW");
	if (pwrite(fd, "SEALED", 6, 0) != 6 || write(c[1], "g", 1) != 1)
		wl_fail("write memfd: %s", strerror(errno));
	int status;
	if (waitpid(kid, &status, 0) != kid || !WIFEXITED(status) || WEXITSTATUS(status))
		wl_fail("the child's memfd is another object (status %x)", status);
	wl_pass("memfd held as a descriptor");
}

static void both(void)
{
	int fd = memfd_create("cpr-both", 0);
	if (fd < 0 || write(fd, "hello", 5) != 5 || ftruncate(fd, 4096))
		wl_fail("memfd: %s", strerror(errno));
	char *m = map_shared(fd);
	wl_ready("mode=both");
	while (!wl_go())
		wl_sleep_ms(10);
	if (memcmp(m, "hello", 5) != 0)
		wl_fail("mapping lost its bytes");
	expect_one_object(fd, m);
	struct statfs fs;
	if (fstatfs(fd, &fs) || fs.f_type != TMPFS_MAGIC)
		wl_fail("memfd not on tmpfs (f_type %lx)", (long)fs.f_type);
	expect_link(fd, "/memfd:cpr-both (deleted)");
	wl_pass("memfd mapped and open is one object");
}

static void hugetlb(void)
{
	int fd = memfd_create("cpr-huge", MFD_HUGETLB);
	if (fd < 0)
		wl_fail("memfd_create(MFD_HUGETLB): %s", strerror(errno));
	wl_ready("mode=hugetlb");
	while (!wl_go())
		wl_sleep_ms(10);
	wl_pass("hugetlb memfd left alone");
}

int main(int argc, char **argv)
{
	wl_close_inherited();
	wl_init(argc, argv, 2, "CTL deleted|memfd|both");
	if (strcmp(argv[2], "deleted") == 0)
		deleted();
	else if (strcmp(argv[2], "memfd") == 0)
		memfd();
	else if (strcmp(argv[2], "hugetlb") == 0)
		hugetlb();
	else if (strcmp(argv[2], "both") == 0)
		both();
	else
		wl_fail("mode %s", argv[2]);
	return 0;
}
