/* mem_many CTL N: maps N one-page anonymous mappings, every other one made read-only
 * after it is written (so that no two neighbours merge), and names each "mI" where the
 * kernel has anonymous names. On each SIGUSR1 it checks every page's bytes and, where
 * names worked, that /proc/self/maps shows all N; prints "PASS check=K pid=P maps=N" or
 * FAIL. */
#include "wl.h"
#include <sys/mman.h>
#include <sys/prctl.h>

#ifndef PR_SET_VMA
#define PR_SET_VMA 0x53564d41
#define PR_SET_VMA_ANON_NAME 0
#endif

static size_t named_in_maps(void)
{
	FILE *f = fopen("/proc/self/maps", "r");
	if (!f)
		wl_fail("open maps: %s", strerror(errno));
	char line[512];
	size_t n = 0;
	while (fgets(line, sizeof line, f))
		if (strstr(line, "[anon:m"))
			n++;
	fclose(f);
	return n;
}

/* The first page (index) whose mapping in /proc/self/maps is not "rw-p" (even index) or
 * "r--p" (odd), or n. */
static size_t protections_differ(unsigned char **pages, size_t n)
{
	FILE *f = fopen("/proc/self/maps", "r");
	if (!f)
		wl_fail("open maps: %s", strerror(errno));
	static unsigned long starts[65536], ends[65536];
	static char perms[65536][5];
	size_t m = 0;
	char line[512];
	while (m < 65536 && fgets(line, sizeof line, f))
		if (sscanf(line, "%lx-%lx %4s", &starts[m], &ends[m], perms[m]) == 3)
			m++;
	fclose(f);
	for (size_t i = 0; i < n; i++) {
		unsigned long a = (unsigned long)pages[i];
		const char *want = i % 2 ? "r--p" : "rw-p";
		size_t k = 0;
		while (k < m && !(starts[k] <= a && a < ends[k]))
			k++;
		if (k == m || strcmp(perms[k], want))
			return i;
	}
	return n;
}

int main(int argc, char **argv)
{
	wl_init(argc, argv, 2, "CTL N");
	size_t n = strtoul(argv[2], NULL, 10);
	unsigned char **pages = calloc(n, sizeof *pages);
	int named = 1; /* every name given (the kernel has CONFIG_ANON_VMA_NAME) */
	for (size_t i = 0; i < n; i++) {
		pages[i] = mmap(NULL, 4096, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
		if (pages[i] == MAP_FAILED)
			wl_fail("mmap %zu: %s", i, strerror(errno));
		memset(pages[i], (int)(i * 7 + 1), 4096);
		memcpy(pages[i], &i, sizeof i);
		char name[32];
		snprintf(name, sizeof name, "m%zu", i);
		named &= prctl(PR_SET_VMA, PR_SET_VMA_ANON_NAME, (unsigned long)pages[i], 4096,
			       (unsigned long)name) == 0;
		if (i % 2 == 1 && mprotect(pages[i], 4096, PROT_READ))
			wl_fail("mprotect %zu: %s", i, strerror(errno));
	}
	wl_catch_usr1();
	wl_ready("maps=%zu named=%d", n, named);
	unsigned checks = 0;
	for (;;) {
		wl_wait_usr1(20);
		checks++;
		for (size_t i = 0; i < n; i++) {
			size_t got;
			memcpy(&got, pages[i], sizeof got);
			if (got != i || pages[i][4095] != (unsigned char)(i * 7 + 1))
				wl_fail("check=%u pid=%d page %zu differs", checks, (int)getpid(), i);
		}
		size_t shown = named ? named_in_maps() : n;
		if (shown != n)
			wl_fail("check=%u pid=%d %zu named mappings, %zu made", checks, (int)getpid(),
				shown, n);
		size_t bad = protections_differ(pages, n);
		if (bad != n)
			wl_fail("check=%u pid=%d page %zu has the wrong protection", checks,
				(int)getpid(), bad);
		printf("PASS check=%u pid=%d maps=%zu\n", checks, (int)getpid(), n);
		fflush(stdout);
	}
}
