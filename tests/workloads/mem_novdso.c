/* A process that unmapped its vDSO (keeping the vvar data pages) does not get one back at
 * restart. It must not call anything the C library would route through the vDSO
 * (clock_gettime, gettimeofday, time, getcpu) once it is gone. */
#include "wl.h"
#include <sys/mman.h>

/* Whether /proc/self/maps has a mapping named `name`; unmaps it if `unmap`. */
static int find(const char *name, int unmap)
{
	FILE *f = fopen("/proc/self/maps", "r");
	char line[4096];
	unsigned long start = 0, end = 0;
	while (fgets(line, sizeof line, f)) {
		unsigned long s, e;
		line[strcspn(line, "\n")] = 0;
		size_t n = strlen(line), k = strlen(name);
		if (sscanf(line, "%lx-%lx", &s, &e) == 2 && n >= k && !strcmp(line + n - k, name)) {
			start = s;
			end = e;
		}
	}
	fclose(f);
	if (start && unmap && munmap((void *)start, end - start) != 0)
		wl_fail("munmap %s errno %d", name, errno);
	return start != 0;
}

int main(int argc, char **argv)
{
	wl_init(argc, argv, 0, "CTL");
	wl_close_inherited();
	if (!find(" [vdso]", 1))
		wl_fail("no vDSO to unmap");
	if (find(" [vdso]", 0))
		wl_fail("vDSO still mapped");
	int vvar = find(" [vvar]", 0);
	wl_ready("vvar=%d", vvar);
	while (!wl_go())
		wl_sleep_ms(20);
	if (find(" [vdso]", 0))
		wl_fail("a vDSO is mapped again after restart");
	if (find(" [vvar]", 0) != vvar)
		wl_fail("[vvar] was %s, now %s", vvar ? "mapped" : "gone", vvar ? "gone" : "mapped");
	wl_pass("vDSO stays unmapped");
	return 0;
}
