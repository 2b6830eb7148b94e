/* Memory objects without a name on disk come back as what they were.
 * A memfd (named, sparse, sealed against growing and shrinking), mapped shared and mapped
 * private past its end: after restart it is still a memfd on tmpfs (fstatfs), with its
 * name, mode, size, seals (F_GET_SEALS), holes (SEEK_DATA/SEEK_HOLE) and bytes, and one
 * object behind both mappings.
 * A file deleted while mapped shared and private (sparse, mode 0640, its mtime set):
 * still one file behind both mappings, shown as "<path> (deleted)", with its mode, mtime,
 * size, holes and bytes.
 * The workload keeps no descriptor to either (descriptors are files.rs's); it looks at the
 * objects through /proc/self/map_files, as a program could. */
#include "wl.h"
#include <linux/magic.h>
#include <sys/mman.h>
#include <sys/vfs.h>

static long pg;

/* A descriptor on the object mapped at `addr` (through /proc/self/map_files). */
static int open_mapped(const void *addr)
{
	FILE *f = fopen("/proc/self/maps", "r");
	char line[4096], path[128];
	int fd = -1;
	while (fgets(line, sizeof line, f)) {
		unsigned long s, e;
		if (sscanf(line, "%lx-%lx", &s, &e) == 2 && s == (unsigned long)addr) {
			snprintf(path, sizeof path, "/proc/self/map_files/%lx-%lx", s, e);
			fd = open(path, O_RDONLY | O_CLOEXEC);
		}
	}
	fclose(f);
	if (fd < 0)
		wl_fail("no mapping at %p to open (errno %d)", addr, errno);
	return fd;
}

/* The name /proc/self/maps shows for the mapping at `addr`. */
static void name_of(const void *addr, char *out, size_t size)
{
	FILE *f = fopen("/proc/self/maps", "r");
	char line[4096];
	out[0] = 0;
	while (fgets(line, sizeof line, f)) {
		unsigned long s, e;
		int at = 0;
		if (sscanf(line, "%lx-%lx %*s %*s %*s %*s %n", &s, &e, &at) >= 2 &&
		    s == (unsigned long)addr && at > 0) {
			line[strcspn(line, "\n")] = 0;
			snprintf(out, size, "%s", line + at);
		}
	}
	fclose(f);
}

/* The object's layout, as text: its size and where its data lies (SEEK_DATA/SEEK_HOLE). */
static void layout(int fd, char *out, size_t size)
{
	struct stat st;
	fstat(fd, &st);
	int n = snprintf(out, size, "size %ld data", (long)st.st_size);
	off_t pos = 0;
	while (pos < st.st_size && n < (int)size - 40) {
		off_t data = lseek(fd, pos, SEEK_DATA);
		if (data < 0)
			break;
		off_t hole = lseek(fd, data, SEEK_HOLE);
		n += snprintf(out + n, size - (size_t)n, " %ld-%ld", (long)data, (long)hole);
		pos = hole;
	}
}

static void same_layout(int fd, const char *before, const char *what)
{
	char now[512];
	layout(fd, now, sizeof now);
	if (strcmp(now, before) != 0)
		wl_fail("%s layout was '%s', now '%s'", what, before, now);
}

static void same_object(const void *a, const void *b, const char *what)
{
	int fa = open_mapped(a), fb = open_mapped(b);
	struct stat sa, sb;
	fstat(fa, &sa);
	fstat(fb, &sb);
	if (sa.st_dev != sb.st_dev || sa.st_ino != sb.st_ino)
		wl_fail("%s: the two mappings are different objects now", what);
	close(fa);
	close(fb);
}

static void expect_bytes(const unsigned char *p, long len, unsigned char v, const char *what)
{
	for (long i = 0; i < len; i++)
		if (p[i] != v)
			wl_fail("%s: byte %ld is %#x, want %#x", what, i, p[i], v);
}

int main(int argc, char **argv)
{
	wl_init(argc, argv, 0, "CTL");
	wl_close_inherited();
	pg = sysconf(_SC_PAGESIZE);

	/* memfd: data in pages 0 and 6, a hole between, 7 pages and 100 bytes long */
	int m = memfd_create("cpr-test:memfd", MFD_CLOEXEC | MFD_ALLOW_SEALING);
	off_t msize = 7 * pg + 100;
	if (m < 0 || ftruncate(m, msize) != 0)
		wl_fail("memfd errno %d", errno);
	unsigned char *ms = mmap(NULL, (size_t)(8 * pg), PROT_READ | PROT_WRITE, MAP_SHARED, m, 0);
	unsigned char *mp = mmap(NULL, (size_t)(12 * pg), PROT_READ | PROT_WRITE, MAP_PRIVATE, m, 0);
	if (ms == MAP_FAILED || mp == MAP_FAILED)
		wl_fail("mmap memfd errno %d", errno);
	memset(ms, 0x11, (size_t)pg);
	memset(ms + 6 * pg, 0x16, 100);
	memset(mp + 3 * pg, 0x33, (size_t)pg); /* private copy of a hole page */
	if (fchmod(m, 0640) != 0)
		wl_fail("fchmod memfd errno %d", errno);
	int seals = F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_SEAL;
	if (fcntl(m, F_ADD_SEALS, seals) != 0)
		wl_fail("F_ADD_SEALS errno %d", errno);
	char mlayout[512];
	layout(m, mlayout, sizeof mlayout);
	close(m);

	/* a deleted file: data in pages 0 and 9, 12 pages long, mode 0640 */
	char path[4096];
	wl_path(path, sizeof path, "gone.dat");
	int d = open(path, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	off_t dsize = 12 * pg;
	if (d < 0 || ftruncate(d, dsize) != 0 || fchmod(d, 0640) != 0)
		wl_fail("gone.dat errno %d", errno);
	unsigned char *ds = mmap(NULL, (size_t)(12 * pg), PROT_READ | PROT_WRITE, MAP_SHARED, d, 0);
	unsigned char *dp = mmap(NULL, (size_t)(12 * pg), PROT_READ | PROT_WRITE, MAP_PRIVATE, d, 0);
	if (ds == MAP_FAILED || dp == MAP_FAILED)
		wl_fail("mmap gone.dat errno %d", errno);
	memset(ds, 0x21, (size_t)pg);
	memset(ds + 9 * pg, 0x29, (size_t)pg);
	memset(dp + 5 * pg, 0x55, (size_t)pg); /* private copy of a hole page */
	if (fsync(d) != 0)
		wl_fail("fsync errno %d", errno);
	struct timespec times[2] = { { 1000000000, 5 }, { 1100000000, 7 } };
	if (futimens(d, times) != 0)
		wl_fail("futimens errno %d", errno);
	char dlayout[512];
	layout(d, dlayout, sizeof dlayout);
	close(d);
	unlink(path);
	char want_name[4200];
	snprintf(want_name, sizeof want_name, "%s (deleted)", path);

	wl_ready("memfd=%p deleted=%p memfd-layout=[%s] deleted-layout=[%s]", (void *)ms, (void *)ds,
		 mlayout, dlayout);
	while (!wl_go())
		wl_sleep_ms(20);

	/* the memfd */
	char name[4200];
	name_of(ms, name, sizeof name);
	if (strcmp(name, "/memfd:cpr-test:memfd (deleted)") != 0)
		wl_fail("memfd mapping is now '%s'", name);
	same_object(ms, mp, "memfd");
	int fm = open_mapped(ms);
	struct statfs fs;
	if (fstatfs(fm, &fs) != 0 || fs.f_type != TMPFS_MAGIC)
		wl_fail("memfd is on a filesystem of type %#lx, not tmpfs", (long)fs.f_type);
	struct stat mst;
	if (fstat(fm, &mst) != 0 || (mst.st_mode & 07777) != 0640)
		wl_fail("memfd mode %o, want 640", mst.st_mode & 07777);
	int got = fcntl(fm, F_GET_SEALS);
	if (got != seals)
		wl_fail("memfd seals %#x, want %#x", got, seals);
	same_layout(fm, mlayout, "memfd");
	expect_bytes(ms, pg, 0x11, "memfd page 0");
	expect_bytes(ms + 6 * pg, 100, 0x16, "memfd page 6");
	expect_bytes(mp + 3 * pg, pg, 0x33, "memfd private copy");
	expect_bytes(mp + 6 * pg, 100, 0x16, "memfd private view of page 6");
	ms[pg] = 0x44; /* a write through the shared mapping shows in the private one */
	if (mp[pg] != 0x44)
		wl_fail("memfd: the private mapping no longer sees the object");
	close(fm);

	/* the deleted file */
	name_of(ds, name, sizeof name);
	if (strcmp(name, want_name) != 0)
		wl_fail("deleted file mapping is now '%s', want '%s'", name, want_name);
	same_object(ds, dp, "deleted file");
	int fd = open_mapped(ds);
	struct stat st;
	if (fstat(fd, &st) != 0 || (st.st_mode & 07777) != 0640 || st.st_nlink != 0)
		wl_fail("deleted file mode %o nlink %ld", st.st_mode & 07777, (long)st.st_nlink);
	/* (the access time moves with every mmap and read, here as before) */
	if (st.st_mtim.tv_sec != 1100000000 || st.st_mtim.tv_nsec != 7)
		wl_fail("deleted file modified at %ld.%09ld", (long)st.st_mtim.tv_sec,
			st.st_mtim.tv_nsec);
	same_layout(fd, dlayout, "deleted file");
	expect_bytes(ds, pg, 0x21, "deleted page 0");
	expect_bytes(ds + 9 * pg, pg, 0x29, "deleted page 9");
	expect_bytes(dp + 5 * pg, pg, 0x55, "deleted private copy");
	expect_bytes(dp + 9 * pg, pg, 0x29, "deleted private view of page 9");
	ds[2 * pg] = 0x77;
	if (dp[2 * pg] != 0x77)
		wl_fail("deleted file: the private mapping no longer sees the file");
	close(fd);
	wl_pass("memfd and deleted file kept");
	return 0;
}
