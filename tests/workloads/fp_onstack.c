/* fp_onstack CTL: SIGUSR1 caught with SA_ONSTACK but no alternate stack set (as CPython
 * and Go programs do), in the main thread and in a second thread. After CTL/GO each thread
 * checks that sigaltstack() still reports none and takes a SIGUSR1; the handler runs on
 * the thread's own stack (it would have no stack at all if an alternate stack came back
 * that is not mapped in the process). */
#include "wl.h"
#include <pthread.h>

static volatile sig_atomic_t ran;

static void handler(int sig)
{
	(void)sig;
	ran++;
}

/* The thread's alternate stack must be none, and a SIGUSR1 sent to it must be handled. */
static void check_thread(const char *who)
{
	stack_t now;
	if (sigaltstack(NULL, &now))
		wl_fail("%s: sigaltstack: %s", who, strerror(errno));
	if (!(now.ss_flags & SS_DISABLE))
		wl_fail("%s: alternate stack sp=%p size=%zu flags=%d, was none", who, now.ss_sp,
			now.ss_size, now.ss_flags);
	int before = ran;
	pthread_kill(pthread_self(), SIGUSR1);
	if (ran != before + 1)
		wl_fail("%s: handler ran %d times", who, (int)(ran - before));
}

static void *worker(void *arg)
{
	(void)arg;
	while (!wl_go())
		wl_sleep_ms(20);
	check_thread("thread");
	return NULL;
}

int main(int argc, char **argv)
{
	wl_init(argc, argv, 1, "CTL");
	struct sigaction sa = { .sa_handler = handler, .sa_flags = SA_ONSTACK | SA_RESTART };
	sigemptyset(&sa.sa_mask);
	if (sigaction(SIGUSR1, &sa, NULL))
		wl_fail("sigaction: %s", strerror(errno));
	pthread_t t;
	if (pthread_create(&t, NULL, worker, NULL))
		wl_fail("pthread_create");
	wl_ready(NULL);

	while (!wl_go())
		wl_sleep_ms(20);
	pthread_join(t, NULL);
	check_thread("main");
	wl_pass("handled=%d", (int)ran);
}
