/* bench_tiny CTL: the smallest useful process for the fixed cost of cpr -c / cpr -r: no
 * heap to speak of, idles in a sleep loop. On each SIGUSR1 it checks that its PID is the
 * one it started with and that a static value survived, and prints "PASS check=K pid=P";
 * it never exits by itself. */
#include "wl.h"

static volatile sig_atomic_t usr1;
static volatile uint64_t cookie;

static void on_usr1(int sig)
{
	(void)sig;
	usr1 = 1;
}

int main(int argc, char **argv)
{
	wl_init(argc, argv, 1, "CTL");
	pid_t me = getpid();
	cookie = 0x5eed0000ULL ^ (uint64_t)me;
	struct sigaction sa = { .sa_handler = on_usr1 };
	sigaction(SIGUSR1, &sa, NULL);
	wl_ready(NULL);
	unsigned checks = 0;
	for (;;) {
		wl_sleep_ms(10);
		if (!usr1)
			continue;
		usr1 = 0;
		checks++;
		if (getpid() != me || cookie != (0x5eed0000ULL ^ (uint64_t)me))
			wl_fail("check=%u pid=%d state differs", checks, (int)getpid());
		printf("PASS check=%u pid=%d\n", checks, (int)getpid());
	}
}
