/* Every kind of mapping keeps its bytes: private anonymous, private file mappings partly
 * written (then grown, shrunk or moved with mremap, or with the file grown under them),
 * shared file and shared anonymous mappings, a private /dev/zero mapping, a private
 * mapping of a deleted file grown past the file's end. Each page holds
 * a pattern that names its kind and index; after GO each is read back and compared. */
#include "wl.h"
#include <sys/mman.h>
#include <sys/prctl.h>

#ifndef PR_SET_VMA
#define PR_SET_VMA 0x53564d41
#define PR_SET_VMA_ANON_NAME 0
#endif

static long pg;

struct area {
	const char *name;
	unsigned char *addr;
	long pages;
	/* per page: the byte it must hold (0 = file content, checked against the file) */
	unsigned char want[16];
	long file_page0; /* file page the mapping's page 0 shows */
};

static struct area areas[16];
static int nareas;
static int file_fd;

/* The file's own content: page p holds 0x40 + p. */
static unsigned char file_byte(long p)
{
	return (unsigned char)(0x40 + p);
}

static struct area *add(const char *name, void *addr, long pages, long file_page0)
{
	struct area *a = &areas[nareas++];
	a->name = name;
	a->addr = addr;
	a->pages = pages;
	a->file_page0 = file_page0;
	memset(a->want, 0, sizeof a->want);
	return a;
}

static void put(struct area *a, long page, unsigned char v)
{
	memset(a->addr + page * pg, v, (size_t)pg);
	a->want[page] = v;
}

static void *map_file(long pages, long file_page, int flags)
{
	void *p = mmap(NULL, (size_t)(pages * pg), PROT_READ | PROT_WRITE, flags, file_fd,
		       file_page * pg);
	if (p == MAP_FAILED)
		wl_fail("mmap file errno %d", errno);
	return p;
}

static void *remap(void *old, long old_pages, long new_pages, int flags, void *to)
{
	void *p = mremap(old, (size_t)(old_pages * pg), (size_t)(new_pages * pg), flags, to);
	if (p == MAP_FAILED)
		wl_fail("mremap errno %d", errno);
	return p;
}

int main(int argc, char **argv)
{
	wl_init(argc, argv, 0, "CTL");
	wl_close_inherited();
	pg = sysconf(_SC_PAGESIZE);
	char path[4096];
	wl_path(path, sizeof path, "mapped.dat");
	file_fd = open(path, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	if (file_fd < 0)
		wl_fail("open errno %d", errno);
	for (long p = 0; p < 16; p++) {
		unsigned char b[4096];
		memset(b, file_byte(p), sizeof b);
		if (pwrite(file_fd, b, (size_t)pg, p * pg) != pg)
			wl_fail("pwrite errno %d", errno);
	}

	/* private anonymous, every other page written */
	struct area *a = add("anon", mmap(NULL, 8 * pg, PROT_READ | PROT_WRITE,
					  MAP_PRIVATE | MAP_ANONYMOUS, -1, 0), 8, -1);
	for (long p = 0; p < 8; p += 2)
		put(a, p, (unsigned char)(0x10 + p));

	/* private file, partly written */
	a = add("file-private", map_file(6, 2, MAP_PRIVATE), 6, 2);
	put(a, 1, 0xa1);
	put(a, 4, 0xa4);

	/* private file, partly written, then grown in place or moved */
	unsigned char *g = map_file(4, 0, MAP_PRIVATE);
	memset(g + 1 * pg, 0xb1, (size_t)pg);
	memset(g + 3 * pg, 0xb3, (size_t)pg);
	g = remap(g, 4, 10, MREMAP_MAYMOVE, NULL);
	a = add("file-private-grown", g, 10, 0);
	a->want[1] = 0xb1;
	a->want[3] = 0xb3;
	put(a, 7, 0xb7);

	/* private file, partly written, then shrunk */
	unsigned char *s = map_file(8, 4, MAP_PRIVATE);
	memset(s + 0 * pg, 0xc0, (size_t)pg);
	memset(s + 6 * pg, 0xc6, (size_t)pg);
	s = remap(s, 8, 3, 0, NULL);
	a = add("file-private-shrunk", s, 3, 4);
	a->want[0] = 0xc0;

	/* private file, partly written, then moved to a fixed place in a reservation */
	unsigned char *hole = mmap(NULL, 32 * pg, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	unsigned char *m = map_file(5, 1, MAP_PRIVATE);
	memset(m + 2 * pg, 0xd2, (size_t)pg);
	m = remap(m, 5, 5, MREMAP_MAYMOVE | MREMAP_FIXED, hole + 8 * pg);
	a = add("file-private-moved", m, 5, 1);
	a->want[2] = 0xd2;

	/* private file, written, the file grown afterwards, then the mapping grown */
	unsigned char *e = map_file(2, 14, MAP_PRIVATE);
	memset(e, 0xe0, (size_t)pg);
	{
		unsigned char b[4096];
		for (long p = 16; p < 20; p++) {
			memset(b, file_byte(p), sizeof b);
			if (pwrite(file_fd, b, (size_t)pg, p * pg) != pg)
				wl_fail("pwrite errno %d", errno);
		}
	}
	e = remap(e, 2, 6, MREMAP_MAYMOVE, NULL);
	a = add("file-private-extended", e, 6, 14);
	a->want[0] = 0xe0;
	put(a, 5, 0xe5);

	/* private anonymous, written, then grown (moves) */
	unsigned char *ag = mmap(NULL, 3 * pg, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS,
				 -1, 0);
	memset(ag, 0x21, (size_t)(3 * pg));
	ag = remap(ag, 3, 9, MREMAP_MAYMOVE, NULL);
	a = add("anon-grown", ag, 9, -1);
	for (long p = 0; p < 3; p++)
		a->want[p] = 0x21;
	put(a, 8, 0x28);

	/* shared file, written (file pages no private mapping shows) */
	a = add("file-shared", map_file(3, 10, MAP_SHARED), 3, 10);
	put(a, 1, 0x31);

	/* shared anonymous, written, then moved (its object keeps its size: only the first
	 * two pages of a grown one could be touched) */
	unsigned char *sa = mmap(NULL, 2 * pg, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS,
				 -1, 0);
	memset(sa, 0x51, (size_t)pg);
	sa = remap(sa, 2, 2, MREMAP_MAYMOVE | MREMAP_FIXED, hole + 20 * pg);
	a = add("shared-anon-moved", sa, 2, -1);
	a->want[0] = 0x51;
	put(a, 1, 0x53);

	/* private /dev/zero, partly written */
	int z = open("/dev/zero", O_RDWR | O_CLOEXEC);
	a = add("dev-zero-private", mmap(NULL, 4 * pg, PROT_READ | PROT_WRITE, MAP_PRIVATE, z, 0),
		4, -1);
	close(z);
	put(a, 2, 0x62);

	/* a private mapping of a file deleted since, partly written, then grown past the
	 * file's end (the pages beyond it cannot be touched: only its first 4 are checked) */
	{
		char dpath[4096];
		wl_path(dpath, sizeof dpath, "deleted.dat");
		int dfd = open(dpath, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
		unsigned char b[4096];
		for (long p = 0; p < 4; p++) {
			memset(b, file_byte(p), sizeof b);
			if (dfd < 0 || pwrite(dfd, b, (size_t)pg, p * pg) != pg)
				wl_fail("deleted.dat errno %d", errno);
		}
		unsigned char *d = mmap(NULL, (size_t)(4 * pg), PROT_READ | PROT_WRITE, MAP_PRIVATE,
					dfd, 0);
		if (d == MAP_FAILED)
			wl_fail("mmap deleted.dat errno %d", errno);
		close(dfd);
		unlink(dpath);
		memset(d + 2 * pg, 0xf2, (size_t)pg);
		d = remap(d, 4, 8, MREMAP_MAYMOVE, NULL);
		a = add("deleted-private-grown", d, 4, 0);
		a->want[2] = 0xf2;
	}

	/* named anonymous memory, private and shared (where the kernel names memory) */
	unsigned char *np = mmap(NULL, (size_t)(2 * pg), PROT_READ | PROT_WRITE,
				 MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	unsigned char *ns = mmap(NULL, (size_t)(2 * pg), PROT_READ | PROT_WRITE,
				 MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	int named_ok = prctl(PR_SET_VMA, PR_SET_VMA_ANON_NAME, np, 2 * pg, "cpr-named") == 0 &&
		       prctl(PR_SET_VMA, PR_SET_VMA_ANON_NAME, ns, 2 * pg, "cpr-shared") == 0;
	if (!named_ok)
		printf("note: anonymous memory cannot be named here (errno %d)\n", errno);
	a = add("named-private", np, 2, -1);
	put(a, 1, 0x81);
	a = add("named-shared", ns, 2, -1);
	put(a, 0, 0x90);

	/* a page of the file read through each private mapping, to have page cache pages */
	volatile unsigned char sink = 0;
	for (int i = 0; i < nareas; i++)
		for (long p = 0; p < areas[i].pages; p++)
			if (areas[i].file_page0 < 0 || areas[i].file_page0 + p < 20)
				sink ^= areas[i].addr[p * pg];
	(void)sink;

	wl_ready("areas=%d", nareas);
	while (!wl_go())
		wl_sleep_ms(20);
	for (int i = 0; i < nareas; i++) {
		struct area *r = &areas[i];
		for (long p = 0; p < r->pages; p++) {
			unsigned char want = r->want[p];
			if (!want && r->file_page0 >= 0)
				want = file_byte(r->file_page0 + p);
			for (long k = 0; k < pg; k++)
				if (r->addr[p * pg + k] != want)
					wl_fail("%s page %ld byte %ld: %#x, want %#x", r->name, p, k,
						r->addr[p * pg + k], want);
		}
	}
	/* shared anonymous memory is still that, not some other file */
	FILE *maps = fopen("/proc/self/maps", "r");
	char line[4096];
	int named = 0, named_private = 0, named_shared = 0;
	while (fgets(line, sizeof line, maps)) {
		unsigned long s0, e0;
		if (sscanf(line, "%lx-%lx", &s0, &e0) != 2)
			continue;
		if (s0 == (unsigned long)sa)
			named = strstr(line, " /dev/zero (deleted)\n") != NULL;
		if (s0 == (unsigned long)np)
			named_private = strstr(line, " [anon:cpr-named]\n") != NULL;
		if (s0 == (unsigned long)ns)
			named_shared = strstr(line, " [anon_shmem:cpr-shared]\n") != NULL;
	}
	fclose(maps);
	if (!named)
		wl_fail("shared anonymous mapping at %p is not /dev/zero (deleted) now", (void *)sa);
	if (named_ok && (!named_private || !named_shared))
		wl_fail("named anonymous memory lost its name (private %d, shared %d)", named_private,
			named_shared);
	wl_pass("areas=%d contents kept", nareas);
	return 0;
}
