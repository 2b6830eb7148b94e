/* sigpending CTL: blocks SIGUSR2, SIGRTMIN and SIGUSR1, then sends itself SIGUSR2 with
 * kill() (process-wide, SI_USER), SIGRTMIN twice with sigqueue() (values 111 and 222, both
 * queued) and SIGUSR1 with tgkill() (pending on the thread only). After CTL/GO it checks
 * that all are still pending, unblocks them and checks each handler ran once per signal
 * with the right si_code, sender and queued values, in order. */
#include "wl.h"
#include <sys/syscall.h>

#define MAXREC 8
static volatile sig_atomic_t nrec;
static struct {
	int sig, code, value;
	pid_t pid;
} rec[MAXREC];

static void handler(int sig, siginfo_t *si, void *uc)
{
	(void)uc;
	if (nrec < MAXREC) {
		rec[nrec].sig = sig;
		rec[nrec].code = si->si_code;
		rec[nrec].pid = si->si_pid;
		rec[nrec].value = si->si_code == SI_QUEUE ? si->si_value.sival_int : -1;
		nrec++;
	}
}

static int count(int sig)
{
	int n = 0;
	for (int i = 0; i < nrec; i++)
		n += rec[i].sig == sig;
	return n;
}

int main(int argc, char **argv)
{
	wl_init(argc, argv, 1, "CTL");
	pid_t me = getpid();
	int rt = SIGRTMIN;
	struct sigaction sa = { .sa_sigaction = handler, .sa_flags = SA_SIGINFO };
	sigfillset(&sa.sa_mask);
	sigaction(SIGUSR1, &sa, NULL);
	sigaction(SIGUSR2, &sa, NULL);
	sigaction(rt, &sa, NULL);

	sigset_t block;
	sigemptyset(&block);
	sigaddset(&block, SIGUSR1);
	sigaddset(&block, SIGUSR2);
	sigaddset(&block, rt);
	sigprocmask(SIG_BLOCK, &block, NULL);

	if (kill(me, SIGUSR2))
		wl_fail("kill: %s", strerror(errno));
	if (sigqueue(me, rt, (union sigval){ .sival_int = 111 }) ||
	    sigqueue(me, rt, (union sigval){ .sival_int = 222 }))
		wl_fail("sigqueue: %s", strerror(errno));
	if (syscall(SYS_tgkill, me, gettid(), SIGUSR1))
		wl_fail("tgkill: %s", strerror(errno));

	sigset_t pend;
	sigpending(&pend);
	if (!sigismember(&pend, SIGUSR1) || !sigismember(&pend, SIGUSR2) ||
	    !sigismember(&pend, rt))
		wl_fail("signals not pending before checkpoint");
	wl_ready("rt=%d", rt);

	while (!wl_go())
		wl_sleep_ms(20);

	sigpending(&pend);
	if (!sigismember(&pend, SIGUSR1) || !sigismember(&pend, SIGUSR2) ||
	    !sigismember(&pend, rt))
		wl_fail("pending after restart: USR1=%d USR2=%d RTMIN=%d",
			sigismember(&pend, SIGUSR1), sigismember(&pend, SIGUSR2),
			sigismember(&pend, rt));
	sigset_t mask;
	sigprocmask(SIG_SETMASK, NULL, &mask);
	if (!sigismember(&mask, SIGUSR1) || !sigismember(&mask, SIGUSR2) ||
	    !sigismember(&mask, rt))
		wl_fail("signal mask lost");
	if (nrec)
		wl_fail("a handler ran while blocked");

	sigprocmask(SIG_UNBLOCK, &block, NULL);

	if (count(SIGUSR1) != 1 || count(SIGUSR2) != 1 || count(rt) != 2 || nrec != 4)
		wl_fail("handler runs: USR1 %d USR2 %d RTMIN %d", count(SIGUSR1), count(SIGUSR2),
			count(rt));
	int vals[2], nv = 0;
	for (int i = 0; i < nrec; i++) {
		if (rec[i].pid != me)
			wl_fail("signal %d came from pid %d, not %d", rec[i].sig, (int)rec[i].pid,
				(int)me);
		if (rec[i].sig == SIGUSR2 && rec[i].code != SI_USER)
			wl_fail("SIGUSR2 si_code %d", rec[i].code);
		if (rec[i].sig == SIGUSR1 && rec[i].code != SI_TKILL)
			wl_fail("SIGUSR1 si_code %d", rec[i].code);
		if (rec[i].sig == rt) {
			if (rec[i].code != SI_QUEUE)
				wl_fail("SIGRTMIN si_code %d", rec[i].code);
			vals[nv++] = rec[i].value;
		}
	}
	if (vals[0] != 111 || vals[1] != 222)
		wl_fail("queued values %d, %d (want 111, 222)", vals[0], vals[1]);
	wl_pass("usr1=tkill usr2=user rtmin=111,222");
}
