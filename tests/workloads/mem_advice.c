/* Memory advice and locks come back: each mapping gets one madvise (or mlock, mlock2
 * ONFAULT, MAP_NORESERVE, mseal), and after GO /proc/self/smaps must show the same
 * VmFlags for it.
 * A MAP_GROWSDOWN mapping must still grow when touched below its start; after a fork,
 * MADV_WIPEONFORK memory reads as zeros in the child and MADV_DONTFORK memory is not there.
 * Advice the kernel does not offer here (no KSM, no THP) is left out, and said so. */
#include "wl.h"
#include <sys/mman.h>
#include <sys/syscall.h>

static long pg;

struct advised {
	const char *flag; /* the VmFlags mnemonic it must show */
	unsigned char *addr;
	long pages;
};

static struct advised areas[16];
static int nareas;

static unsigned char *map_anon(long pages, int extra)
{
	unsigned char *p = mmap(NULL, (size_t)(pages * pg), PROT_READ | PROT_WRITE,
				MAP_PRIVATE | MAP_ANONYMOUS | extra, -1, 0);
	if (p == MAP_FAILED)
		wl_fail("mmap errno %d", errno);
	memset(p, 0x77, (size_t)(pages * pg));
	return p;
}

/* A mapping with `advice` (or none: -1), expected to show `flag`; 0 if the kernel refuses
 * the advice (not offered here). */
static int add(const char *flag, int advice, int map_flags)
{
	unsigned char *p = map_anon(4, map_flags);
	if (advice >= 0 && madvise(p, (size_t)(4 * pg), advice) != 0) {
		if (errno == EINVAL) {
			printf("note: %s not offered by this kernel\n", flag);
			return 0;
		}
		wl_fail("madvise %s errno %d", flag, errno);
	}
	areas[nareas++] = (struct advised){ flag, p, 4 };
	return 1;
}

/* The VmFlags line of the mapping that starts at `addr`, or "" if none starts there. */
static void vmflags_of(const void *addr, char *out, size_t size)
{
	FILE *f = fopen("/proc/self/smaps", "r");
	char line[1024];
	int here = 0;
	out[0] = 0;
	while (fgets(line, sizeof line, f)) {
		unsigned long s, e;
		char perms[8];
		/* a mapping's header: "start-end perms ..." (keys are "Name: value") */
		if (sscanf(line, "%lx-%lx %7s", &s, &e, perms) == 3) {
			here = s == (unsigned long)addr;
			continue;
		}
		if (here && !strncmp(line, "VmFlags:", 8)) {
			snprintf(out, size, "%s", line + 8);
			break;
		}
	}
	fclose(f);
}

static int has_flag(const char *flags, const char *flag)
{
	char want[8];
	snprintf(want, sizeof want, " %s ", flag);
	char padded[1100];
	snprintf(padded, sizeof padded, " %s", flags);
	padded[strcspn(padded, "\n")] = ' ';
	return strstr(padded, want) != NULL;
}

/* Start of the mapping that contains `addr`, or 0. */
static unsigned long mapping_start(const void *addr)
{
	FILE *f = fopen("/proc/self/maps", "r");
	char line[1024];
	unsigned long found = 0;
	while (fgets(line, sizeof line, f)) {
		unsigned long s, e;
		if (sscanf(line, "%lx-%lx", &s, &e) == 2 && s <= (unsigned long)addr &&
		    (unsigned long)addr < e)
			found = s;
	}
	fclose(f);
	return found;
}

int main(int argc, char **argv)
{
	wl_init(argc, argv, 0, "CTL");
	wl_close_inherited();
	pg = sysconf(_SC_PAGESIZE);
	add("sr", MADV_SEQUENTIAL, 0);
	add("rr", MADV_RANDOM, 0);
	add("dc", MADV_DONTFORK, 0);
	unsigned char *dontfork = areas[nareas - 1].addr;
	add("wf", MADV_WIPEONFORK, 0);
	unsigned char *wipe = areas[nareas - 1].addr;
	add("dd", MADV_DONTDUMP, 0);
	add("hg", MADV_HUGEPAGE, 0);
	add("nh", MADV_NOHUGEPAGE, 0);
	add("mg", MADV_MERGEABLE, 0);
	add("nr", -1, MAP_NORESERVE);
	add("lo", -1, 0);
	if (mlock(areas[nareas - 1].addr, (size_t)(4 * pg)) != 0)
		wl_fail("mlock errno %d", errno);
	add("lf", -1, 0);
	if (mlock2(areas[nareas - 1].addr, (size_t)(4 * pg), MLOCK_ONFAULT) != 0)
		wl_fail("mlock2 errno %d", errno);
	add("sl", -1, 0);
	if (syscall(462 /* mseal */, areas[nareas - 1].addr, (size_t)(4 * pg), 0UL) != 0) {
		if (errno != ENOSYS)
			wl_fail("mseal errno %d", errno);
		printf("note: mseal not offered by this kernel\n");
		nareas--;
	}
	/* a stack that grows down, with room below it */
	unsigned char *room = mmap(NULL, (size_t)(1024 * pg), PROT_NONE,
				   MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	munmap(room, (size_t)(1020 * pg));
	unsigned char *down = mmap(room + 1016 * pg, (size_t)(4 * pg), PROT_READ | PROT_WRITE,
				   MAP_PRIVATE | MAP_ANONYMOUS | MAP_GROWSDOWN | MAP_FIXED, -1, 0);
	if (down == MAP_FAILED)
		wl_fail("mmap MAP_GROWSDOWN errno %d", errno);
	down[pg] = 1;
	areas[nareas++] = (struct advised){ "gd", down, 4 };
	char before[16][1024];
	for (int i = 0; i < nareas; i++) {
		vmflags_of(areas[i].addr, before[i], sizeof before[i]);
		if (!has_flag(before[i], areas[i].flag))
			wl_fail("%s: not set before the checkpoint: %s", areas[i].flag, before[i]);
	}
	wl_ready("areas=%d", nareas);
	while (!wl_go())
		wl_sleep_ms(20);
	for (int i = 0; i < nareas; i++) {
		char after[1024];
		vmflags_of(areas[i].addr, after, sizeof after);
		if (strcmp(before[i], after) != 0) {
			before[i][strcspn(before[i], "\n")] = 0;
			after[strcspn(after, "\n")] = 0;
			wl_fail("%s mapping VmFlags were '%s', now '%s'", areas[i].flag, before[i],
				after);
		}
	}
	/* the stack grows: a touch below it extends the mapping */
	down[-1] = 2;
	unsigned long start = mapping_start(down - 1);
	if (start == 0 || start >= (unsigned long)down || mapping_start(down) != start)
		wl_fail("MAP_GROWSDOWN mapping did not grow (start %#lx)", start);
	/* fork: wiped memory reads zero, DONTFORK memory is absent in the child */
	pid_t child = fork();
	if (child == 0) {
		if (wipe[0] != 0 || wipe[4 * pg - 1] != 0)
			_exit(10);
		if (mapping_start(dontfork) != 0)
			_exit(11);
		_exit(0);
	}
	int st;
	waitpid(child, &st, 0);
	if (!WIFEXITED(st) || WEXITSTATUS(st) != 0)
		wl_fail("fork after restart: child status %#x (10: not wiped, 11: DONTFORK copied)",
			st);
	if (wipe[0] != 0x77)
		wl_fail("WIPEONFORK memory lost its data in the parent");
	wl_pass("areas=%d advice, locks and growth kept", nareas);
	return 0;
}
