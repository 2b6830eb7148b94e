/* mem_compressible CTL MIB: mallocs MIB MiB and fills it with memory that compresses in
 * places and not in others, page by page: runs of one repeated word, zeros, text-like
 * bytes, and pseudo-random pages. On each SIGUSR1 it recomputes every page from its index
 * and prints "PASS check=K pid=P" or "FAIL ...", and goes on idling. */
#include "wl.h"

static void page(unsigned char *p, size_t i)
{
	uint64_t x = 0x9e3779b97f4a7c15ULL ^ (i * 0x100000001b3ULL);
	switch (i % 4) {
	case 0: /* one word repeated */
		for (size_t k = 0; k < 4096; k += 8)
			memcpy(p + k, &i, 8);
		break;
	case 1: /* zeros but for the index at the start */
		memset(p, 0, 4096);
		memcpy(p, &i, sizeof i);
		break;
	case 2: /* text-like: a line with the index, repeated */
		for (size_t k = 0; k < 4096; k++)
			p[k] = "page of text "[k % 13] + (k / 13 == i % 300);
		break;
	default: /* pseudo-random */
		for (size_t k = 0; k < 4096; k += 8) {
			uint64_t w = wl_xorshift(&x);
			memcpy(p + k, &w, 8);
		}
	}
}

int main(int argc, char **argv)
{
	wl_init(argc, argv, 2, "CTL MIB");
	size_t pages = (strtoul(argv[2], NULL, 10) << 20) / 4096;
	unsigned char *heap = aligned_alloc(4096, pages * 4096);
	if (!heap)
		wl_fail("aligned_alloc");
	for (size_t i = 0; i < pages; i++)
		page(heap + i * 4096, i);
	wl_catch_usr1();
	wl_ready("pages=%zu", pages);
	unsigned checks = 0;
	unsigned char want[4096];
	for (;;) {
		wl_wait_usr1(20);
		checks++;
		for (size_t i = 0; i < pages; i++) {
			page(want, i);
			if (memcmp(want, heap + i * 4096, 4096))
				wl_fail("check=%u pid=%d page %zu of %zu differs", checks, (int)getpid(),
					i, pages);
		}
		printf("PASS check=%u pid=%d pages=%zu\n", checks, (int)getpid(), pages);
		fflush(stdout);
	}
}
