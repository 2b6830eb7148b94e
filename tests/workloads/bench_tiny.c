/* bench_tiny CTL: the smallest useful process for the fixed cost of cpr -c / cpr -r: no
 * heap to speak of, idles in a sleep loop. On each SIGUSR1 it checks that its PID is the
 * one it started with and that a static value survived, and prints "PASS check=K pid=P";
 * it never exits by itself. */
#include "wl.h"

static volatile uint64_t cookie;

int main(int argc, char **argv)
{
	wl_init(argc, argv, 1, "CTL");
	pid_t me = getpid();
	cookie = 0x5eed0000ULL ^ (uint64_t)me;
	wl_catch_usr1();
	wl_ready(NULL);
	unsigned checks = 0;
	for (;;) {
		wl_wait_usr1(10);
		checks++;
		if (getpid() != me || cookie != (0x5eed0000ULL ^ (uint64_t)me))
			wl_fail("check=%u pid=%d state differs", checks, (int)getpid());
		printf("PASS check=%u pid=%d\n", checks, (int)getpid());
	}
}
