/* mem_cow CTL: pages a parent and its forked children share copy-on-write stay shared.
 * The parent fills 64 MiB of private anonymous memory with a pattern and forks 3
 * children; child i writes its own pattern into 8 pages of its own and leaves the rest
 * untouched; child 1 then forks a grandchild that writes 8 pages of its own. Before
 * READY and after GO the parent checks, through /proc/PID/pagemap (page frame numbers,
 * shown to root), that every page a descendant did not write is the parent's very page
 * (and that the grandchild shares child 1's pages with it), each child checks its
 * bytes (on SIGUSR1) and the parent the grandchild's (/proc/PID/mem). PASS, or FAIL
 * naming the process and the count of pages not shared. The same for a private
 * mapping of a 1 MiB file whose pages the parent wrote, all but the last 16, before
 * forking: every written page is shared, the others are still the file's. */
#include "wl.h"
#include <sys/mman.h>

#define MIB 64
#define N 4
#define OWN 8
#define PAGE 4096UL

static uint64_t word(uint64_t i, int who)
{
	uint64_t x = (i + 1) * 0x2545f4914f6cdd1dULL + (uint64_t)who;
	x ^= x >> 31;
	x *= 0x9e3779b97f4a7c15ULL;
	return x ^ (x >> 29);
}

static uint64_t *mem;
static volatile pid_t *grandchild; /* in a shared page: child 1 writes it */
#define FPAGES 256
#define FWRITTEN (FPAGES - 16)
static uint64_t *fmem; /* the private file mapping */

/* The file mapping holds the parent's pattern in its written pages, else zeros. */
static int file_ok(const uint64_t *f)
{
	for (size_t i = 0; i < FPAGES * PAGE / 8; i++)
		if (f[i] != (i * 8 / PAGE < FWRITTEN ? word(i, 7) : 0))
			return 0;
	return 1;
}
static const size_t words = (MIB << 20) / 8;

/* Child `who`'s own pages: OWN pages at `who` MiB. */
static int own_page(size_t page, int who)
{
	size_t first = (size_t)who * ((1UL << 20) / PAGE);
	return who > 0 && page >= first && page < first + OWN;
}

static int bytes_ok(int who)
{
	for (size_t i = 0; i < words; i++) {
		size_t page = i * 8 / PAGE;
		if (mem[i] != word(i, own_page(page, who) ? who : 0))
			return 0;
	}
	return 1;
}

static void child(int who, int w, void *arg)
{
	(void)arg;
	for (size_t i = 0; i < words; i++)
		if (own_page(i * 8 / PAGE, who))
			mem[i] = word(i, who);
	if (who == 1) {
		pid_t g = fork();
		if (g < 0)
			_exit(3);
		if (g == 0) {
			for (size_t i = 0; i < words; i++)
				if (own_page(i * 8 / PAGE, N))
					mem[i] = word(i, N);
			*grandchild = getpid();
			for (;;)
				pause();
		}
	}
	for (;;) {
		wl_wait_usr1(50);
		struct wl_answer a = { who, (int)getpid(), bytes_ok(who) && file_ok(fmem) };
		if (write(w, &a, sizeof a) != sizeof a)
			_exit(3);
	}
}

static uint64_t frame_at(int fd, const void *base, size_t page)
{
	uint64_t e = 0;
	off_t at = (off_t)(((uintptr_t)base / PAGE + page) * 8);
	if (pread(fd, &e, 8, at) != 8)
		wl_fail("pagemap read: %s", strerror(errno));
	return e & (1ULL << 63) ? e & ((1ULL << 55) - 1) : 0;
}

static uint64_t frame(int fd, size_t page)
{
	return frame_at(fd, mem, page);
}

/* The page frame of page `page` of process `pid`, 0 if none. */
static uint64_t frame_of(pid_t pid, size_t page)
{
	char p[64];
	snprintf(p, sizeof p, "/proc/%d/pagemap", (int)pid);
	int fd = open(p, O_RDONLY);
	if (fd < 0)
		wl_fail("%s: %s", p, strerror(errno));
	uint64_t f = frame(fd, page);
	close(fd);
	return f;
}

/* The grandchild: its bytes (read through /proc/PID/mem, which does not unshare), its
 * pages shared with the parent and with child 1. */
static void check_grandchild(pid_t g, pid_t child1, const char *when)
{
	char p[64];
	snprintf(p, sizeof p, "/proc/%d/mem", (int)g);
	int fd = open(p, O_RDONLY);
	uint64_t *copy = malloc(MIB << 20);
	if (fd < 0 || !copy || pread(fd, copy, MIB << 20, (off_t)(uintptr_t)mem) != MIB << 20)
		wl_fail("%s: grandchild memory: %s", when, strerror(errno));
	close(fd);
	for (size_t i = 0; i < words; i++) {
		size_t page = i * 8 / PAGE;
		int who = own_page(page, N) ? N : own_page(page, 1) ? 1 : 0;
		if (copy[i] != word(i, who))
			wl_fail("%s: grandchild (%d) has wrong bytes at word %zu", when, (int)g, i);
	}
	free(copy);
	for (size_t i = 0; i < (MIB << 20) / PAGE; i++) {
		pid_t with = own_page(i, 1) ? child1 : own_page(i, N) ? 0 : getpid();
		if (with && frame_of(g, i) != frame_of(with, i))
			wl_fail("%s: grandchild (%d): page %zu not shared with %d", when, (int)g, i,
				(int)with);
	}
}

/* Fails unless every page child `who` did not write is the parent's page. */
static void check_shared(pid_t kid, int who, const char *when)
{
	char p[64];
	snprintf(p, sizeof p, "/proc/%d/pagemap", (int)kid);
	int kfd = open(p, O_RDONLY), mfd = open("/proc/self/pagemap", O_RDONLY);
	if (kfd < 0 || mfd < 0)
		wl_fail("pagemap: %s", strerror(errno));
	size_t pages = (MIB << 20) / PAGE, unshared = 0;
	for (size_t i = 0; i < pages; i++) {
		uint64_t mine = frame(mfd, i), theirs = frame(kfd, i);
		if (!own_page(i, who) && (mine == 0 || mine != theirs))
			unshared++;
	}
	for (size_t i = 0; i < FWRITTEN; i++) {
		uint64_t mine = frame_at(mfd, fmem, i), theirs = frame_at(kfd, fmem, i);
		if (mine == 0 || mine != theirs)
			unshared++;
	}
	close(kfd);
	close(mfd);
	if (unshared)
		wl_fail("%s: child %d (%d): %zu of %zu pages not shared with the parent", when, who,
			(int)kid, unshared, pages - OWN + FWRITTEN);
}

int main(int argc, char **argv)
{
	wl_init(argc, argv, 1, "CTL");
	wl_close_inherited();
	mem = mmap(NULL, MIB << 20, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (mem == MAP_FAILED)
		wl_fail("mmap: %s", strerror(errno));
	/* khugepaged would collapse shared pages into a private huge page of the parent */
	if (madvise(mem, MIB << 20, MADV_NOHUGEPAGE) != 0)
		wl_fail("madvise: %s", strerror(errno));
	for (size_t i = 0; i < words; i++)
		mem[i] = word(i, 0);
	char path[4096];
	wl_path(path, sizeof path, "cowfile");
	int ffd = open(path, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	if (ffd < 0 || ftruncate(ffd, FPAGES * PAGE) != 0)
		wl_fail("%s: %s", path, strerror(errno));
	fmem = mmap(NULL, FPAGES * PAGE, PROT_READ | PROT_WRITE, MAP_PRIVATE, ffd, 0);
	if (fmem == MAP_FAILED)
		wl_fail("mmap %s: %s", path, strerror(errno));
	close(ffd);
	for (size_t i = 0; i < FWRITTEN * PAGE / 8; i++)
		fmem[i] = word(i, 7);
	grandchild = mmap(NULL, PAGE, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	if (grandchild == MAP_FAILED)
		wl_fail("mmap: %s", strerror(errno));
	wl_catch_usr1();
	int answers;
	pid_t *kids = wl_fork_children(N, &answers, child, NULL);
	/* the children have written their pages once they answer */
	wl_signal_children(kids, N, 0);
	wl_read_answers(answers, kids, N, 0, "has wrong bytes");
	while (*grandchild == 0)
		wl_sleep_ms(10);
	for (int k = 1; k < N; k++)
		check_shared(kids[k], k, "before");
	check_grandchild(*grandchild, kids[1], "before");
	wl_ready("mib=%d procs=%d", MIB, N);
	while (!wl_go())
		wl_sleep_ms(20);
	wl_signal_children(kids, N, 1);
	wl_read_answers(answers, kids, N, 1, "has wrong bytes");
	if (!bytes_ok(0) || !file_ok(fmem))
		wl_fail("parent has wrong bytes");
	for (int k = 1; k < N; k++)
		check_shared(kids[k], k, "after");
	check_grandchild(*grandchild, kids[1], "after");
	kill(*grandchild, SIGKILL);
	for (int k = 1; k < N; k++) {
		kill(kids[k], SIGKILL);
		waitpid(kids[k], NULL, 0);
	}
	wl_pass("mib=%d procs=%d shared", MIB, N);
}
