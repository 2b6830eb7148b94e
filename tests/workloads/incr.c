/* incr CTL MIB [busy|pipe]: maps MIB MiB of private anonymous memory and fills every page from
 * its index and its generation (a per-page counter kept in a malloc'd array). A step
 * (SIGUSR2, or without pause with "busy") rewrites about a tenth of the pages with their
 * next generation and discards a few others (MADV_DONTNEED: they read as zeros, their
 * generation marked so), then prints "STEP n" (not in busy mode). On SIGUSR1 it checks
 * every word of every page against its generation and prints
 * "PASS check=K step=N" or "FAIL ...". It never exits by itself: the test kills it.
 * With "pipe" it holds a pipe to a child of its own, which a checkpoint of it alone
 * refuses. */
#include "wl.h"

#include <sys/mman.h>
#include <sys/prctl.h>

#define PAGE 4096
#define DISCARDED 0xffffffffu

static volatile sig_atomic_t step_asked;

static void on_usr2(int sig)
{
	(void)sig;
	step_asked = 1;
}

static uint64_t word(size_t page, uint32_t gen, size_t i)
{
	uint64_t x = (page * 0x9e3779b97f4a7c15ULL) ^ ((uint64_t)gen << 32) ^ (i + 1);
	return wl_xorshift(&x);
}

static void fill(uint64_t *p, size_t page, uint32_t gen)
{
	for (size_t i = 0; i < PAGE / 8; i++)
		p[i] = word(page, gen, i);
}

/* Step `n`: pages chosen by a hash of page and step get their next generation, every
 * 97th (shifted by n) is discarded. */
static void step(unsigned char *mem, uint32_t *gen, size_t pages, unsigned n)
{
	for (size_t pg = 0; pg < pages; pg++) {
		if ((pg + n) % 97 == 0) {
			madvise(mem + pg * PAGE, PAGE, MADV_DONTNEED);
			gen[pg] = DISCARDED;
		} else if (((pg * 2654435761u) >> 7 ^ n * 40503u) % 10 == 0) {
			gen[pg] = gen[pg] == DISCARDED ? 0 : gen[pg] + 1;
			fill((uint64_t *)(mem + pg * PAGE), pg, gen[pg]);
		}
	}
}

/* The first page that does not hold what its generation says, or `pages`. */
static size_t verify(const unsigned char *mem, const uint32_t *gen, size_t pages)
{
	for (size_t pg = 0; pg < pages; pg++) {
		const uint64_t *p = (const uint64_t *)(mem + pg * PAGE);
		for (size_t i = 0; i < PAGE / 8; i++) {
			uint64_t want = gen[pg] == DISCARDED ? 0 : word(pg, gen[pg], i);
			if (p[i] != want)
				return pg;
		}
	}
	return pages;
}

int main(int argc, char **argv)
{
	wl_init(argc, argv, 1, "CTL [MIB] [busy]");
	unsigned long mib = argc > 2 ? strtoul(argv[2], NULL, 10) : 32;
	int busy = argc > 3 && strcmp(argv[3], "busy") == 0;
	if (argc > 3 && strcmp(argv[3], "pipe") == 0) {
		int p[2];
		if (pipe(p) != 0)
			wl_fail("pipe");
		if (fork() == 0) {
			prctl(PR_SET_PDEATHSIG, SIGKILL);
			close(p[1]);
			for (;;)
				pause();
		}
		close(p[0]);
	}
	size_t pages = (mib << 20) / PAGE;
	unsigned char *mem =
		mmap(NULL, pages * PAGE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	uint32_t *gen = calloc(pages, sizeof *gen);
	if (mem == MAP_FAILED || !gen)
		wl_fail("no memory for %lu MiB", mib);
	for (size_t pg = 0; pg < pages; pg++)
		fill((uint64_t *)(mem + pg * PAGE), pg, 0);
	signal(SIGUSR2, on_usr2);
	wl_catch_usr1();
	wl_ready("mib=%lu", mib);

	unsigned steps = 0, checks = 0;
	for (;;) {
		if (busy) {
			/* blocked while a step runs: a check sees whole steps only */
			sigset_t m = wl_block(SIGUSR1);
			step(mem, gen, pages, ++steps);
			sigprocmask(SIG_UNBLOCK, &m, NULL);
		} else {
			while (!wl_usr1 && !step_asked)
				wl_sleep_ms(20);
		}
		if (step_asked) {
			step_asked = 0;
			step(mem, gen, pages, ++steps);
			printf("STEP %u\n", steps);
			fflush(stdout);
		}
		if (wl_usr1) {
			wl_usr1 = 0;
			checks++;
			size_t bad = verify(mem, gen, pages);
			if (bad != pages)
				wl_fail("check=%u step=%u page %zu of %zu differs (generation %u)",
					checks, steps, bad, pages, gen[bad]);
			printf("PASS check=%u step=%u pid=%d\n", checks, steps, (int)getpid());
			fflush(stdout);
		}
	}
}
