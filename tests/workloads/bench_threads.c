/* bench_threads CTL [N]: one process with N threads (N defaults to 64, counting main),
 * each idling in a sleep loop with its TID and index in thread-local variables. On each
 * SIGUSR1 main bumps a generation; every other thread sees it, checks gettid() and its
 * TLS against what it saved, and counts itself in. When all N-1 have answered (within
 * 30 s) main prints "PASS check=K pid=P threads=N" (or FAIL). Never exits by itself. */
#include "wl.h"
#include <pthread.h>
#include <stdatomic.h>

static _Atomic unsigned generation;
static _Atomic int answered, bad;
static _Atomic int started;

static __thread pid_t my_tid;
static __thread int my_index;
static __thread void *my_tls;

static void *worker(void *arg)
{
	my_index = (int)(intptr_t)arg;
	my_tid = gettid();
	my_tls = &my_tid;
	unsigned seen = 0;
	atomic_fetch_add(&started, 1);
	for (;;) {
		wl_sleep_ms(20);
		unsigned g = atomic_load(&generation);
		if (g == seen)
			continue;
		seen = g;
		if (gettid() != my_tid || my_tls != (void *)&my_tid ||
		    my_index != (int)(intptr_t)arg)
			atomic_fetch_add(&bad, 1);
		atomic_fetch_add(&answered, 1);
	}
	return NULL;
}

int main(int argc, char **argv)
{
	wl_init(argc, argv, 1, "CTL [N]");
	int n = argc > 2 ? atoi(argv[2]) : 64;
	if (n < 1 || n > 4096)
		wl_fail("bad N %d", n);
	wl_catch_usr1();
	for (int i = 1; i < n; i++) {
		pthread_t t;
		pthread_attr_t a;
		pthread_attr_init(&a);
		pthread_attr_setstacksize(&a, 64 << 10);
		if (pthread_create(&t, &a, worker, (void *)(intptr_t)i) != 0)
			wl_fail("pthread_create %d", i);
	}
	while (atomic_load(&started) < n - 1)
		wl_sleep_ms(1);
	wl_ready("threads=%d", n);

	unsigned checks = 0;
	for (;;) {
		wl_wait_usr1(20);
		checks++;
		atomic_store(&answered, 0);
		atomic_fetch_add(&generation, 1);
		double t0 = wl_now();
		while (atomic_load(&answered) < n - 1) {
			if (wl_now() - t0 > 30)
				wl_fail("check=%u pid=%d only %d of %d threads answered", checks,
					(int)getpid(), atomic_load(&answered), n - 1);
			wl_sleep_ms(5);
		}
		if (atomic_load(&bad))
			wl_fail("check=%u pid=%d %d threads lost their TID or TLS", checks,
				(int)getpid(), atomic_load(&bad));
		printf("PASS check=%u pid=%d threads=%d\n", checks, (int)getpid(), n);
	}
}
