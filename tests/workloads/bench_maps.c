/* bench_maps CTL [N]: N separate one-page anonymous private mappings (N defaults to
 * 10000), with alternating protections (read-write, read-only) so that the kernel cannot
 * merge neighbours into one mapping, each filled with a pattern of its index. On each
 * SIGUSR1 it checks that every mapping is still where it was with its contents and that
 * the read-write ones are still writable (writing a word and putting it back), then prints
 * "PASS check=K pid=P maps=N" (or FAIL and exits). Never exits by itself. */
#include "wl.h"
#include <sys/mman.h>

#define PAGE 4096

static uint64_t word_of(size_t i, size_t k)
{
	return (i + 1) * 0x9e3779b97f4a7c15ULL + k * 0x2545f4914f6cdd1dULL;
}

int main(int argc, char **argv)
{
	wl_init(argc, argv, 1, "CTL [N]");
	size_t n = argc > 2 ? strtoul(argv[2], NULL, 10) : 10000;
	uint64_t **maps = calloc(n, sizeof *maps);
	if (!maps)
		wl_fail("calloc");
	for (size_t i = 0; i < n; i++) {
		uint64_t *m = mmap(NULL, PAGE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS,
				   -1, 0);
		if (m == MAP_FAILED)
			wl_fail("mmap %zu: %s", i, strerror(errno));
		for (size_t k = 0; k < PAGE / 8; k++)
			m[k] = word_of(i, k);
		if (i % 2 && mprotect(m, PAGE, PROT_READ) != 0)
			wl_fail("mprotect %zu: %s", i, strerror(errno));
		maps[i] = m;
	}
	wl_catch_usr1();
	wl_ready("maps=%zu", n);

	unsigned checks = 0;
	for (;;) {
		wl_wait_usr1(20);
		checks++;
		for (size_t i = 0; i < n; i++) {
			uint64_t *m = maps[i];
			for (size_t k = 0; k < PAGE / 8; k++)
				if (m[k] != word_of(i, k))
					wl_fail("check=%u pid=%d mapping %zu word %zu differs", checks,
						(int)getpid(), i, k);
			if (i % 2 == 0) {
				m[1] = ~m[1];
				m[1] = ~m[1];
			}
		}
		printf("PASS check=%u pid=%d maps=%zu\n", checks, (int)getpid(), n);
	}
}
