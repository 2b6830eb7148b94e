/* sigaltstack CTL: installs a SIGUSR1 handler with SA_ONSTACK|SA_RESTART|SA_SIGINFO and
 * SIGUSR2 in its mask, on a 64 KiB alternate stack; SIGHUP ignored. After CTL/GO it checks
 * that sigaltstack() and sigaction() report the same, raises SIGUSR1 and checks the
 * handler ran on the alternate stack, with SIGUSR2 blocked and SS_ONSTACK reported. */
#include "wl.h"

#define ALT_SIZE (64 * 1024)
static char *alt;
static volatile sig_atomic_t ran, on_alt, usr2_blocked, ss_onstack;

static void handler(int sig, siginfo_t *si, void *uc)
{
	(void)sig;
	(void)si;
	(void)uc;
	volatile char local;
	uintptr_t a = (uintptr_t)&local;
	on_alt = a >= (uintptr_t)alt && a < (uintptr_t)alt + ALT_SIZE;
	sigset_t cur;
	sigprocmask(SIG_BLOCK, NULL, &cur);
	usr2_blocked = sigismember(&cur, SIGUSR2);
	stack_t now;
	sigaltstack(NULL, &now);
	ss_onstack = (now.ss_flags & SS_ONSTACK) != 0;
	ran++;
}

int main(int argc, char **argv)
{
	wl_init(argc, argv, 1, "CTL");
	alt = malloc(ALT_SIZE);
	stack_t ss = { .ss_sp = alt, .ss_size = ALT_SIZE, .ss_flags = 0 };
	if (sigaltstack(&ss, NULL))
		wl_fail("sigaltstack: %s", strerror(errno));
	struct sigaction sa = { .sa_sigaction = handler,
				.sa_flags = SA_ONSTACK | SA_RESTART | SA_SIGINFO };
	sigemptyset(&sa.sa_mask);
	sigaddset(&sa.sa_mask, SIGUSR2);
	if (sigaction(SIGUSR1, &sa, NULL))
		wl_fail("sigaction: %s", strerror(errno));
	signal(SIGHUP, SIG_IGN);
	wl_ready("altstack=%p", (void *)alt);

	while (!wl_go())
		wl_sleep_ms(20);

	stack_t now;
	if (sigaltstack(NULL, &now))
		wl_fail("sigaltstack: %s", strerror(errno));
	if (now.ss_sp != alt || now.ss_size != ALT_SIZE || now.ss_flags != 0)
		wl_fail("altstack is sp=%p size=%zu flags=%d, was sp=%p size=%d flags=0", now.ss_sp,
			now.ss_size, now.ss_flags, (void *)alt, ALT_SIZE);
	struct sigaction cur;
	sigaction(SIGUSR1, NULL, &cur);
	int want = SA_ONSTACK | SA_RESTART | SA_SIGINFO;
	if ((cur.sa_flags & want) != want)
		wl_fail("SIGUSR1 flags %#x lack %#x", cur.sa_flags, want);
	if (cur.sa_sigaction != handler)
		wl_fail("SIGUSR1 handler %p, was %p", (void *)cur.sa_sigaction, (void *)handler);
	if (!sigismember(&cur.sa_mask, SIGUSR2) || sigismember(&cur.sa_mask, SIGTERM))
		wl_fail("SIGUSR1 sa_mask changed");
	sigaction(SIGHUP, NULL, &cur);
	if (cur.sa_handler != SIG_IGN)
		wl_fail("SIGHUP no longer ignored");

	raise(SIGUSR1);
	if (ran != 1)
		wl_fail("handler ran %d times", (int)ran);
	if (!on_alt)
		wl_fail("handler did not run on the alternate stack");
	if (!ss_onstack)
		wl_fail("sigaltstack did not report SS_ONSTACK in the handler");
	if (!usr2_blocked)
		wl_fail("SIGUSR2 not blocked in the handler");
	wl_pass("onstack=1 flags=%#x", want);
}
