/* Memory with unusual protections keeps its data and its protection: a PROT_NONE page
 * holding data (saved through /proc/PID/mem), a read-only page, a mlock'ed region, and
 * a PROT_NONE guard reservation without data. */
#include "wl.h"
#include <sys/mman.h>

int main(int argc, char **argv)
{
	wl_init(argc, argv, 0, "CTL");
	long pg = sysconf(_SC_PAGESIZE);
	unsigned char *none = mmap(NULL, 4 * pg, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	unsigned char *ro = mmap(NULL, pg, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	unsigned char *locked = mmap(NULL, 2 * pg, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	unsigned char *guard = mmap(NULL, 16 * pg, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
	if (none == MAP_FAILED || ro == MAP_FAILED || locked == MAP_FAILED || guard == MAP_FAILED)
		wl_fail("mmap errno %d", errno);
	for (long i = 0; i < 4 * pg; i++)
		none[i] = (unsigned char)(i * 7 + 3);
	memset(ro, 0x5a, pg);
	memset(locked, 0xa5, 2 * pg);
	if (mprotect(none, 4 * pg, PROT_NONE) || mprotect(ro, pg, PROT_READ))
		wl_fail("mprotect errno %d", errno);
	if (mlock(locked, 2 * pg))
		wl_fail("mlock errno %d", errno);
	wl_ready("none=%p", (void *)none);
	while (!wl_go())
		wl_sleep_ms(20);
	/* protections as they were: a read of the PROT_NONE page would fault, so ask
	 * /proc/self/maps */
	FILE *m = fopen("/proc/self/maps", "r");
	char line[512];
	int seen_none = 0, seen_ro = 0, seen_guard = 0;
	while (fgets(line, sizeof line, m)) {
		unsigned long s, e;
		char perms[8];
		if (sscanf(line, "%lx-%lx %7s", &s, &e, perms) != 3)
			continue;
		if (s == (unsigned long)none && e - s == (unsigned long)(4 * pg) && !strcmp(perms, "---p"))
			seen_none = 1;
		if (s == (unsigned long)ro && !strncmp(perms, "r--p", 4))
			seen_ro = 1;
		if (s == (unsigned long)guard && e - s == (unsigned long)(16 * pg) && !strcmp(perms, "---p"))
			seen_guard = 1;
	}
	fclose(m);
	if (!seen_none || !seen_ro || !seen_guard)
		wl_fail("protections none=%d ro=%d guard=%d", seen_none, seen_ro, seen_guard);
	/* locked again */
	char st[4096];
	snprintf(st, sizeof st, "/proc/self/status");
	FILE *s = fopen(st, "r");
	long vmlck = -1;
	while (fgets(line, sizeof line, s))
		if (sscanf(line, "VmLck: %ld", &vmlck) == 1)
			break;
	fclose(s);
	if (vmlck < 2 * pg / 1024)
		wl_fail("VmLck %ld kB", vmlck);
	if (mprotect(none, 4 * pg, PROT_READ))
		wl_fail("mprotect back errno %d", errno);
	for (long i = 0; i < 4 * pg; i++)
		if (none[i] != (unsigned char)(i * 7 + 3))
			wl_fail("PROT_NONE data differs at %ld", i);
	for (long i = 0; i < pg; i++)
		if (ro[i] != 0x5a)
			wl_fail("read-only data differs");
	for (long i = 0; i < 2 * pg; i++)
		if (locked[i] != 0xa5)
			wl_fail("locked data differs");
	wl_pass("protections, data and lock kept");
	return 0;
}
