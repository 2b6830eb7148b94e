/* survivor CTL MIB: a process that must outlive a cpr killed in the middle of its
 * checkpoint. It fills MIB MiB with a pattern; its main thread then counts in a tight loop
 * (two counters kept in registers, which must always agree: a register the checkpoint
 * left changed shows at once); a second thread sleeps 1 ms at a time and counts its wake
 * ups (its sleeps are interrupted and re-issued); a third waits in ppoll with a
 * temporary mask and checks, after each call, that its own mask is back. On each SIGUSR1
 * the main thread checks the pattern, that both counters still agree and advance, that
 * the sleeper still wakes, that the poller kept its mask and that its own signal mask is
 * as it set it (only SIGUSR2 blocked), then prints "PASS check=K" and goes on (it never
 * exits by itself: the test kills it). */
#include "wl.h"
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>

#define SEED 0x9e3779b97f4a7c15ULL

static _Atomic unsigned long wakeups;

static void *sleeper(void *arg)
{
	(void)arg;
	for (;;) {
		struct timespec ts = { 0, 1000000 };
		while (nanosleep(&ts, &ts) != 0)
			if (errno != EINTR)
				wl_fail("nanosleep: %s", strerror(errno));
		wakeups++;
	}
	return NULL;
}

/* Waits in ppoll with an empty temporary mask, 1 ms at a time; the kernel puts the
 * thread's own mask (SIGUSR2 blocked, inherited) back after each call. Counts the calls
 * after which it was not. */
static _Atomic unsigned long polls, mask_lost;

static void *poller(void *arg)
{
	(void)arg;
	sigset_t none;
	sigemptyset(&none);
	for (;;) {
		struct timespec ts = { 0, 1000000 };
		if (ppoll(NULL, 0, &ts, &none) < 0 && errno != EINTR)
			wl_fail("ppoll: %s", strerror(errno));
		sigset_t now;
		sigprocmask(SIG_BLOCK, NULL, &now);
		if (!sigismember(&now, SIGUSR2))
			mask_lost++;
		polls++;
	}
	return NULL;
}

static void check_mask(unsigned checks)
{
	sigset_t now;
	sigprocmask(SIG_BLOCK, NULL, &now);
	for (int sig = 1; sig < 65; sig++) {
		int want = sig == SIGUSR2;
		if (sig == 32 || sig == 33)
			continue; /* glibc's own */
		if (sigismember(&now, sig) != want)
			wl_fail("check=%u signal %d %s in the mask", checks, sig,
				want ? "missing" : "left");
	}
}

int main(int argc, char **argv)
{
	wl_init(argc, argv, 2, "CTL MIB");
	wl_close_inherited();
	size_t words = (strtoul(argv[2], NULL, 10) << 20) / 8;
	uint64_t *heap = malloc(words * 8 + 8);
	if (!heap)
		wl_fail("malloc");
	uint64_t x = SEED;
	for (size_t i = 0; i < words; i++)
		heap[i] = wl_xorshift(&x);
	wl_block(SIGUSR2);
	wl_catch_usr1();
	pthread_t t;
	if (pthread_create(&t, NULL, sleeper, NULL) != 0 ||
	    pthread_create(&t, NULL, poller, NULL) != 0)
		wl_fail("pthread_create");
	wl_ready("mib=%s", argv[2]);

	unsigned checks = 0;
	unsigned long a = 0, b = 0, last = 0, last_wakeups = 0;
	for (;;) {
		/* a and b live in registers, kept equal by the loop */
		for (int i = 0; i < 100000 && !wl_usr1; i++) {
			a += 3;
			b += 3;
			/* opaque to the compiler: both stay in registers, compared for real */
			__asm__ volatile("" : "+r"(a), "+r"(b));
			if (a != b)
				wl_fail("counters differ: %lu %lu", a, b);
		}
		if (!wl_usr1)
			continue;
		wl_usr1 = 0;
		checks++;
		if (a <= last)
			wl_fail("check=%u counter stuck at %lu", checks, a);
		last = a;
		x = SEED;
		for (size_t i = 0; i < words; i++)
			if (heap[i] != wl_xorshift(&x))
				wl_fail("check=%u heap word %zu differs", checks, i);
		check_mask(checks);
		/* the sleeper wakes every ms: within 10 s it must have */
		for (int i = 0; i < 10000 && wakeups == last_wakeups; i++)
			wl_sleep_ms(1);
		if (wakeups == last_wakeups)
			wl_fail("check=%u the sleeping thread no longer wakes", checks);
		if (mask_lost)
			wl_fail("check=%u the polling thread lost its own signal mask (%lu of %lu calls)",
				checks, (unsigned long)mask_lost, (unsigned long)polls);
		last_wakeups = wakeups;
		printf("PASS check=%u a=%lu wakeups=%lu\n", checks, a, (unsigned long)wakeups);
		fflush(stdout);
	}
}
