/* fp_sigtrap CTL: a SIGTRAP handler (zdtm sigtrap01). cpr's injected calls end in int3,
 * which forces SIGTRAP on the thread; the kernel resets the handler of a forced signal
 * that is blocked, so the program's handler was lost. After CTL/GO the handler must
 * still be installed and must run on raise(SIGTRAP). */
#include "wl.h"

static volatile sig_atomic_t ran;

static void handler(int sig)
{
	(void)sig;
	ran++;
}

int main(int argc, char **argv)
{
	wl_init(argc, argv, 1, "CTL");
	struct sigaction sa = { .sa_handler = handler, .sa_flags = SA_RESTART };
	sigemptyset(&sa.sa_mask);
	if (sigaction(SIGTRAP, &sa, NULL))
		wl_fail("sigaction: %s", strerror(errno));
	wl_ready("sigtrap");
	while (!wl_go())
		wl_sleep_ms(20);
	struct sigaction now;
	if (sigaction(SIGTRAP, NULL, &now))
		wl_fail("sigaction: %s", strerror(errno));
	if (now.sa_handler != handler)
		wl_fail("the SIGTRAP handler is %p, not the program's", (void *)now.sa_handler);
	raise(SIGTRAP);
	if (ran != 1)
		wl_fail("the SIGTRAP handler ran %d times", (int)ran);
	wl_pass("handled=%d", (int)ran);
}
