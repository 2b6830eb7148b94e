/* bigheap CTL MIB: mallocs MIB MiB (0 allowed), fills it with a deterministic
 * pseudo-random pattern, also a 1 MiB .bss array and a 64 KiB array on the stack, then
 * idles. On each SIGUSR1 it regenerates the pattern from the seed, compares every word
 * and prints "PASS check=K pid=P ..." or "FAIL check=K ...", and goes on idling (it never
 * exits by itself: the test kills it). */
#include "wl.h"

static uint64_t bss[(1 << 20) / 8];

static void fill(uint64_t *w, size_t words, uint64_t seed)
{
	uint64_t x = seed;
	for (size_t i = 0; i < words; i++)
		w[i] = wl_xorshift(&x);
}

/* Index of the first word that differs from the pattern, or `words`. */
static size_t verify(const uint64_t *w, size_t words, uint64_t seed)
{
	uint64_t x = seed;
	for (size_t i = 0; i < words; i++)
		if (w[i] != wl_xorshift(&x))
			return i;
	return words;
}

static uint64_t checksum(const uint64_t *w, size_t words)
{
	uint64_t h = 0xcbf29ce484222325ULL;
	for (size_t i = 0; i < words; i++)
		h = (h ^ w[i]) * 0x100000001b3ULL;
	return h;
}

int main(int argc, char **argv)
{
	wl_init(argc, argv, 1, "CTL [MIB]");
	unsigned long mib = argc > 2 ? strtoul(argv[2], NULL, 10) : 256;
	size_t words = (mib << 20) / 8;
	uint64_t *heap = NULL;
	if (words) {
		heap = malloc(words * 8);
		if (!heap)
			wl_fail("malloc %lu MiB", mib);
		fill(heap, words, 0x9e3779b97f4a7c15ULL);
	}
	uint64_t stack[(64 << 10) / 8];
	fill(bss, sizeof bss / 8, 0x243f6a8885a308d3ULL);
	fill(stack, sizeof stack / 8, 0x13198a2e03707344ULL);
	uint64_t sum = checksum(heap, words);

	wl_catch_usr1();
	wl_ready("mib=%lu sum=%016" PRIx64, mib, sum);

	unsigned checks = 0;
	for (;;) {
		wl_wait_usr1(20);
		checks++;
		size_t bad;
		if ((bad = verify(heap, words, 0x9e3779b97f4a7c15ULL)) != words)
			wl_fail("check=%u pid=%d heap word %zu of %zu differs", checks, (int)getpid(),
				bad, words);
		if ((bad = verify(bss, sizeof bss / 8, 0x243f6a8885a308d3ULL)) != sizeof bss / 8)
			wl_fail("check=%u pid=%d bss word %zu differs", checks, (int)getpid(), bad);
		if ((bad = verify(stack, sizeof stack / 8, 0x13198a2e03707344ULL)) !=
		    sizeof stack / 8)
			wl_fail("check=%u pid=%d stack word %zu differs", checks, (int)getpid(), bad);
		if (checksum(heap, words) != sum)
			wl_fail("check=%u pid=%d checksum differs", checks, (int)getpid());
		printf("PASS check=%u pid=%d mib=%lu sum=%016" PRIx64 "\n", checks, (int)getpid(),
		       mib, sum);
		fflush(stdout);
	}
}
