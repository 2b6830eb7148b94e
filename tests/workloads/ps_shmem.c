/* ps_shmem CTL SEED: a SysV shm segment (one page) and a MAP_SHARED|MAP_ANONYMOUS region
 * of 16 pages, shared by a parent and its child. The anonymous region is filled with a
 * pattern made from SEED (xorshift64, 8 bytes at a time): the test looks for it in the
 * statefile. Before READY both check that a write by one is seen by the other. On CTL/GO:
 * the parent writes a token in the anonymous region, the child waits for it and answers
 * in the SysV segment, the parent waits for the answer; both check the pattern is intact.
 * READY <pid> child=.. shmid=.., then PASS. */
#include "wl.h"
#include <sys/ipc.h>
#include <sys/mman.h>
#include <sys/shm.h>
#include <sys/wait.h>

#define ANON (16 * 4096)
#define PATTERN_END (ANON - 4096)

struct mail {
	volatile uint64_t token;
	volatile uint64_t answer;
};

static uint64_t seed;

static void fill(uint64_t *p)
{
	uint64_t x = seed;
	for (size_t i = 0; i < PATTERN_END / 8; i++)
		p[i] = wl_xorshift(&x);
}

static int intact(const uint64_t *p)
{
	uint64_t x = seed;
	for (size_t i = 0; i < PATTERN_END / 8; i++)
		if (p[i] != wl_xorshift(&x))
			return 0;
	return 1;
}

static void exchange(struct mail *anon, struct mail *sysv, uint64_t token, int parent)
{
	if (parent) {
		anon->token = token;
		while (sysv->answer != token + 1)
			wl_sleep_ms(1);
	} else {
		while (anon->token != token)
			wl_sleep_ms(1);
		sysv->answer = token + 1;
	}
}

int main(int argc, char **argv)
{
	wl_init(argc, argv, 2, "CTL SEED");
	seed = strtoull(argv[2], NULL, 10) | 1;
	int shmid = shmget(IPC_PRIVATE, 4096, IPC_CREAT | 0600);
	if (shmid < 0)
		wl_fail("shmget: %s", strerror(errno));
	struct mail *sysv = shmat(shmid, NULL, 0);
	if (sysv == (void *)-1)
		wl_fail("shmat: %s", strerror(errno));
	shmctl(shmid, IPC_RMID, NULL);
	char *anon = mmap(NULL, ANON, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	if (anon == MAP_FAILED)
		wl_fail("mmap: %s", strerror(errno));
	fill((uint64_t *)anon);
	struct mail *amail = (struct mail *)(anon + PATTERN_END);
	pid_t c = fork();
	if (c == 0) {
		exchange(amail, sysv, 1000, 0);
		while (!wl_go())
			wl_sleep_ms(10);
		exchange(amail, sysv, 2000, 0);
		if (!intact((uint64_t *)anon)) {
			printf("FAIL child: pattern damaged\n");
			_exit(1);
		}
		_exit(0);
	}
	exchange(amail, sysv, 1000, 1);
	wl_ready("child=%d shmid=%d", (int)c, shmid);
	while (!wl_go())
		wl_sleep_ms(10);
	exchange(amail, sysv, 2000, 1);
	if (!intact((uint64_t *)anon))
		wl_fail("parent: pattern damaged");
	int st;
	if (waitpid(c, &st, 0) != c || !WIFEXITED(st) || WEXITSTATUS(st) != 0)
		wl_fail("child status %#x", st);
	wl_pass("child=%d", (int)c);
}
