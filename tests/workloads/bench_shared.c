/* bench_shared CTL [MIB [N]]: N processes (default 8) sharing MIB MiB (default 512) of
 * MAP_SHARED|MAP_ANONYMOUS memory. The parent makes itself a process group leader, maps
 * MIB MiB plus one page of answer slots, fills the MIB MiB with a pseudo-random pattern,
 * then forks N-1 children that idle in a sleep loop. On each SIGUSR1 the parent checks
 * every child is still its child, signals each; child i verifies its 1/N slice of the
 * pattern, writes its PID into slot i of the shared page and answers on a shared pipe.
 * The parent verifies slice 0 and that each slot holds that child's PID (the memory is
 * still shared, not a private copy per process), then prints "PASS check=K pid=P ...". */
#include "wl.h"
#include <sys/mman.h>

#define SEED 0x2545f4914f6cdd1dULL


/* Word i of the pattern (a function of i alone, so any slice can be checked). */
static uint64_t word(uint64_t i)
{
	uint64_t x = (i + 1) * SEED;
	x ^= x >> 31;
	x *= 0x9e3779b97f4a7c15ULL;
	x ^= x >> 29;
	return x;
}

static int slice_ok(const uint64_t *m, size_t words, int index, int n)
{
	size_t per = words / (size_t)n, from = per * (size_t)index;
	size_t to = index == n - 1 ? words : from + per;
	for (size_t i = from; i < to; i++)
		if (m[i] != word(i))
			return 0;
	return 1;
}

/* What a child checks and where it answers. */
struct region {
	const uint64_t *m;
	size_t words;
	int n;
	volatile int *slots;
};

/* Child `index`: on each SIGUSR1 checks its slice, writes its PID into its slot and
 * answers on `w`. */
static void child(int index, int w, void *arg)
{
	const struct region *r = arg;
	for (;;) {
		wl_wait_usr1(50);
		struct wl_answer a = { index, (int)getpid(), slice_ok(r->m, r->words, index, r->n) };
		r->slots[index] = (int)getpid();
		if (write(w, &a, sizeof a) != sizeof a)
			_exit(3);
	}
}

int main(int argc, char **argv)
{
	wl_init(argc, argv, 1, "CTL [MIB [N]]");
	unsigned long mib = argc > 2 ? strtoul(argv[2], NULL, 10) : 512;
	int n = argc > 3 ? atoi(argv[3]) : 8;
	if (n < 1 || n > 500)
		wl_fail("bad N %d", n);
	if (setpgid(0, 0) != 0)
		wl_fail("setpgid: %s", strerror(errno));
	size_t bytes = mib << 20, words = bytes / 8;
	uint64_t *m = mmap(NULL, bytes + 4096, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS,
			   -1, 0);
	if (m == MAP_FAILED)
		wl_fail("mmap %lu MiB: %s", mib, strerror(errno));
	for (size_t i = 0; i < words; i++)
		m[i] = word(i);
	volatile int *slots = (volatile int *)((char *)m + bytes);

	wl_catch_usr1();
	struct region region = { m, words, n, slots };
	int answers;
	pid_t *kids = wl_fork_children(n, &answers, child, &region);
	wl_ready("mib=%lu procs=%d", mib, n);

	unsigned checks = 0;
	for (;;) {
		wl_wait_usr1(20);
		checks++;
		for (int i = 1; i < n; i++)
			slots[i] = 0;
		wl_signal_children(kids, n, checks);
		if (!slice_ok(m, words, 0, n))
			wl_fail("check=%u pid=%d slice 0 differs", checks, (int)getpid());
		wl_read_answers(answers, kids, n, checks, "found its slice wrong");
		for (int i = 1; i < n; i++)
			if (slots[i] != kids[i])
				wl_fail("check=%u pid=%d slot %d holds %d, not %d: memory not shared",
					checks, (int)getpid(), i, slots[i], (int)kids[i]);
		printf("PASS check=%u pid=%d mib=%lu procs=%d\n", checks, (int)getpid(), mib, n);
	}
}
