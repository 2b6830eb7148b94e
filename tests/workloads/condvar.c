/* Futex-based waits in progress at checkpoint: a producer and a consumer thread pass a
 * counter through a mutex and a condition variable, most of the time blocked in
 * pthread_cond_wait; a third thread waits in pthread_mutex_lock on a mutex main holds.
 * After restart (GO) every handoff must still arrive in order. */
#include "wl.h"
#include <pthread.h>

static pthread_mutex_t m = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t c = PTHREAD_COND_INITIALIZER;
static pthread_mutex_t held = PTHREAD_MUTEX_INITIALIZER;
static long slot = -1, received = 0, bad = 0;
static volatile int locker_got = 0;

static void *consumer(void *a)
{
	(void)a;
	for (long want = 0;; want++) {
		pthread_mutex_lock(&m);
		while (slot < 0)
			pthread_cond_wait(&c, &m);
		if (slot != want)
			bad++;
		slot = -1;
		received++;
		pthread_cond_broadcast(&c);
		pthread_mutex_unlock(&m);
	}
	return NULL;
}

static void *locker(void *a)
{
	(void)a;
	pthread_mutex_lock(&held); /* blocks until main lets go, after restart */
	locker_got = 1;
	pthread_mutex_unlock(&held);
	return NULL;
}

int main(int argc, char **argv)
{
	wl_init(argc, argv, 0, "CTL");
	pthread_t t1, t2;
	pthread_mutex_lock(&held);
	pthread_create(&t1, NULL, consumer, NULL);
	pthread_create(&t2, NULL, locker, NULL);
	int ready = 0;
	long target = -1;
	for (long n = 0;; n++) {
		pthread_mutex_lock(&m);
		while (slot >= 0)
			pthread_cond_wait(&c, &m);
		if (n == target) {
			/* every handoff up to here arrived, in order */
			long got = received;
			pthread_mutex_unlock(&m);
			pthread_mutex_unlock(&held);
			pthread_join(t2, NULL);
			if (bad || !locker_got || got != n)
				wl_fail("bad=%ld locker=%d received=%ld of %ld", bad, locker_got, got, n);
			wl_pass("received=%ld in order, the blocked locker got its mutex", got);
		}
		slot = n;
		pthread_cond_broadcast(&c);
		pthread_mutex_unlock(&m);
		wl_sleep_ms(2);
		if (!ready && n == 50) {
			wl_ready("");
			ready = 1;
		}
		if (ready && target < 0 && wl_go())
			target = n + 100;
	}
}
