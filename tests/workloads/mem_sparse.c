/* A large private anonymous mapping (48 MiB, enough that restart fills it from two
 * threads at once) written in stretches of 1.5 MiB with untouched holes between them,
 * and two large parts of it made read-only and PROT_NONE after they were written. After
 * GO: every written page holds its pattern, every hole is still unpopulated (mincore)
 * and reads as zero, and the protections are as they were. */
#include "wl.h"
#include <sys/mman.h>

#define MIB (1L << 20)
#define SIZE (48 * MIB)
#define STRETCH (3 * MIB / 2)
/* [NONE_AT, NONE_AT + PART) PROT_NONE, [RO_AT, RO_AT + PART) read only: each covers
 * written stretches and a hole */
#define PART (4 * MIB)
#define NONE_AT (12 * MIB)
#define RO_AT (30 * MIB)

static long pg;

/* Whether offset `off` is in a written stretch (every other one). */
static int written(long off)
{
	return (off / STRETCH) % 2 == 0;
}

static uint64_t word(long off)
{
	uint64_t x = 0x9e3779b97f4a7c15ULL ^ (uint64_t)off;
	return wl_xorshift(&x);
}

static int perms_of(unsigned char *base, long off, const char *want)
{
	FILE *m = fopen("/proc/self/maps", "r");
	char line[512];
	int ok = 0;
	unsigned long at = (unsigned long)(base + off);
	while (fgets(line, sizeof line, m)) {
		unsigned long s, e;
		char perms[8];
		if (sscanf(line, "%lx-%lx %7s", &s, &e, perms) == 3 && s == at &&
		    e - s == (unsigned long)PART && !strcmp(perms, want))
			ok = 1;
	}
	fclose(m);
	return ok;
}

int main(int argc, char **argv)
{
	wl_init(argc, argv, 0, "CTL");
	pg = sysconf(_SC_PAGESIZE);
	unsigned char *base = mmap(NULL, SIZE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (base == MAP_FAILED)
		wl_fail("mmap errno %d", errno);
	for (long off = 0; off < SIZE; off += 8)
		if (written(off))
			*(uint64_t *)(base + off) = word(off);
	if (mprotect(base + NONE_AT, PART, PROT_NONE) || mprotect(base + RO_AT, PART, PROT_READ))
		wl_fail("mprotect errno %d", errno);
	wl_ready("base=%p", (void *)base);
	while (!wl_go())
		wl_sleep_ms(20);
	if (!perms_of(base, NONE_AT, "---p") || !perms_of(base, RO_AT, "r--p"))
		wl_fail("protections differ");
	/* holes untouched: not populated by the restart */
	unsigned char *vec = malloc(SIZE / pg);
	if (mprotect(base + NONE_AT, PART, PROT_READ) || mincore(base, SIZE, vec))
		wl_fail("mprotect/mincore errno %d", errno);
	for (long p = 0; p < SIZE / pg; p++)
		if (!written(p * pg) && (vec[p] & 1))
			wl_fail("hole page %ld is populated", p);
	for (long off = 0; off < SIZE; off += 8) {
		uint64_t want = written(off) ? word(off) : 0;
		if (*(uint64_t *)(base + off) != want)
			wl_fail("word at offset %ld differs", off);
	}
	wl_pass("sparse %ld MiB", SIZE / MIB);
	return 0;
}
