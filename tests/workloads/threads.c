/* threads CTL: 8 threads, each counting in a thread-local counter (one step per ms) and
 * remembering its TID in a thread-local variable and in a shared table. main prints
 * "progress max=M" every 100 ms. The test writes a target T into CTL/GO (T above every
 * count); each thread stops at exactly T, checks gettid() against its saved TID, that its
 * TLS is where it was, and that sched_getcpu() works; main joins all and prints PASS. */
#include "wl.h"
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>

#define NT 8

struct result {
	unsigned long count;
	pid_t tid_before, tid_after;
	int cpu;
	int tls_moved;
	int self_differs;
};

static _Atomic unsigned long counts[NT];
static pid_t tids[NT];
static pthread_t selves[NT];
static _Atomic int started;
static _Atomic long target = -1;
static struct result results[NT];

static __thread unsigned long my_count;
static __thread pid_t my_tid;
static __thread int my_index = -1;
static __thread void *my_tls_addr;

static void *worker(void *arg)
{
	my_index = (int)(intptr_t)arg;
	my_tid = gettid();
	my_tls_addr = &my_count;
	tids[my_index] = my_tid;
	atomic_fetch_add(&started, 1);
	for (;;) {
		long t = atomic_load(&target);
		if (t >= 0 && my_count >= (unsigned long)t)
			break;
		my_count++;
		atomic_store(&counts[my_index], my_count);
		wl_sleep_ms(1);
	}
	struct result *r = &results[my_index];
	r->count = my_count;
	r->tid_before = my_tid;
	r->tid_after = gettid();
	r->cpu = sched_getcpu();
	r->tls_moved = my_tls_addr != (void *)&my_count;
	r->self_differs = !pthread_equal(selves[my_index], pthread_self());
	return r;
}

int main(int argc, char **argv)
{
	wl_init(argc, argv, 1, "CTL");
	for (int i = 0; i < NT; i++) {
		int e = pthread_create(&selves[i], NULL, worker, (void *)(intptr_t)i);
		if (e)
			wl_fail("pthread_create: %s", strerror(e));
	}
	while (atomic_load(&started) < NT)
		wl_sleep_ms(1);
	char tidlist[256] = "";
	for (int i = 0; i < NT; i++)
		snprintf(tidlist + strlen(tidlist), sizeof tidlist - strlen(tidlist), "%s%d",
			 i ? "," : "", (int)tids[i]);
	wl_ready("tids=%s", tidlist);

	long t;
	for (;;) {
		wl_sleep_ms(100);
		unsigned long max = 0;
		for (int i = 0; i < NT; i++)
			if (atomic_load(&counts[i]) > max)
				max = atomic_load(&counts[i]);
		printf("progress max=%lu\n", max);
		if ((t = wl_go_number()) >= 0) {
			if ((unsigned long)t <= max)
				wl_fail("target %ld is not above the counts (max %lu)", t, max);
			atomic_store(&target, t);
			break;
		}
	}
	for (int i = 0; i < NT; i++) {
		void *ret;
		int e = pthread_join(selves[i], &ret);
		if (e)
			wl_fail("join thread %d: %s", i, strerror(e));
		struct result *r = ret;
		if (r != &results[i])
			wl_fail("thread %d returned %p", i, ret);
		if (r->count != (unsigned long)t)
			wl_fail("thread %d stopped at %lu, target %ld", i, r->count, t);
		if (r->tid_before != r->tid_after || r->tid_before != tids[i])
			wl_fail("thread %d tid was %d, gettid() now %d", i, (int)r->tid_before,
				(int)r->tid_after);
		if (r->cpu < 0)
			wl_fail("thread %d sched_getcpu failed", i);
		if (r->tls_moved)
			wl_fail("thread %d TLS moved", i);
		if (r->self_differs)
			wl_fail("thread %d pthread_self changed", i);
	}
	wl_pass("threads=%d target=%ld tids=%s", NT, t, tidlist);
}
