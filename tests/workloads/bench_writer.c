/* bench_writer CTL MIB [PERMILLE [RATE]]: allocates MIB MiB, page-aligned (so that a page of
 * its own is one page of the kernel's, and rewriting K of them dirties K), and fills each with
 * pseudo-random data derived from its index and its version (one 32-bit version a page,
 * kept in a separate array), then idles. On SIGUSR2 it rewrites PERMILLE thousandths of
 * its pages (spread over the heap, each with its next version) and prints
 * "WROTE n=K pages=P". With RATE > 0 (MiB/s) it also rewrites pages continuously at about
 * that rate, in steps of 10 ms. On SIGUSR1 it regenerates every page from its index and
 * version, compares every word and prints "PASS check=K pid=P ..." (or FAIL and exits).
 * Never exits by itself. A page being written when the process is frozen is finished by
 * this same thread before any check, so a check after restart sees whole pages. */
#include "wl.h"

#define PAGE 4096
#define WORDS (PAGE / 8)

static uint64_t *heap;
static uint32_t *version;
static size_t pages;
static size_t cursor;
static volatile sig_atomic_t usr2;

static void on_usr2(int sig)
{
	(void)sig;
	usr2 = 1;
}

static uint64_t seed_of(size_t page, uint32_t v)
{
	uint64_t x = (page + 1) * 0x9e3779b97f4a7c15ULL ^ ((uint64_t)v + 1) * 0xd1b54a32d192ed03ULL;
	return x ? x : 1;
}

static void fill_page(size_t page)
{
	uint64_t x = seed_of(page, version[page]);
	uint64_t *w = heap + page * WORDS;
	for (size_t i = 0; i < WORDS; i++)
		w[i] = wl_xorshift(&x);
}

static int page_ok(size_t page)
{
	uint64_t x = seed_of(page, version[page]);
	const uint64_t *w = heap + page * WORDS;
	for (size_t i = 0; i < WORDS; i++)
		if (w[i] != wl_xorshift(&x))
			return 0;
	return 1;
}

/* Rewrites the next n pages of a walk with a prime stride (every page once per lap). */
static void write_pages(size_t n)
{
	for (size_t k = 0; k < n; k++) {
		size_t p = (cursor++ * 7919) % pages;
		version[p]++;
		fill_page(p);
	}
}

int main(int argc, char **argv)
{
	wl_init(argc, argv, 2, "CTL MIB [PERMILLE [RATE]]");
	unsigned long mib = strtoul(argv[2], NULL, 10);
	unsigned long permille = argc > 3 ? strtoul(argv[3], NULL, 10) : 10;
	double rate = argc > 4 ? atof(argv[4]) : 0;
	pages = (mib << 20) / PAGE;
	if (pages == 0 || pages % 7919 == 0)
		wl_fail("bad MIB %lu", mib);
	heap = aligned_alloc(PAGE, pages * PAGE);
	version = calloc(pages, sizeof *version);
	if (!heap || !version)
		wl_fail("malloc %lu MiB", mib);
	for (size_t p = 0; p < pages; p++)
		fill_page(p);
	wl_catch_usr1();
	struct sigaction sa = { .sa_handler = on_usr2 };
	sigaction(SIGUSR2, &sa, NULL);
	wl_ready("mib=%lu permille=%lu rate=%g", mib, permille, rate);

	unsigned checks = 0, bursts = 0;
	double per_step = rate * (1 << 20) / PAGE / 100, owed = 0;
	for (;;) {
		wl_sleep_ms(10);
		if (per_step > 0) {
			owed += per_step;
			write_pages((size_t)owed);
			owed -= (size_t)owed;
		}
		if (usr2) {
			usr2 = 0;
			size_t n = pages * permille / 1000;
			write_pages(n);
			printf("WROTE n=%u pages=%zu pid=%d\n", ++bursts, n, (int)getpid());
		}
		if (wl_usr1) {
			wl_usr1 = 0;
			checks++;
			for (size_t p = 0; p < pages; p++)
				if (!page_ok(p))
					wl_fail("check=%u pid=%d page %zu (version %u) differs", checks,
						(int)getpid(), p, version[p]);
			printf("PASS check=%u pid=%d mib=%lu written=%zu\n", checks, (int)getpid(), mib,
			       cursor);
		}
	}
}
