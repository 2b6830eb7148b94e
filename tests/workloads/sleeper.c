/* sleeper CTL MODE SECONDS: MODE is "sleep" (sleep(SECONDS)), "alarm" (alarm(SECONDS) and
 * wait in pause() for SIGALRM) or "itimer" (setitimer(ITIMER_REAL) one-shot, wait in
 * pause()). Prints "START <realtime>" just before, then "END <realtime> ..." when the
 * sleep returns or the signal arrives, then PASS (the test judges the times: a restarted
 * sleep must go on for the time it had left, not start again and not end at once). */
#include "wl.h"
#include <sys/time.h>

static volatile sig_atomic_t fired;
static volatile double fired_at;

static void on_alarm(int sig)
{
	(void)sig;
	fired_at = wl_now();
	fired++;
}

int main(int argc, char **argv)
{
	wl_init(argc, argv, 3, "CTL sleep|alarm|itimer SECONDS");
	const char *mode = argv[2];
	unsigned secs = strtoul(argv[3], NULL, 10);
	struct sigaction sa = { .sa_handler = on_alarm };
	sigaction(SIGALRM, &sa, NULL);

	wl_ready("mode=%s seconds=%u", mode, secs);
	double start = wl_now();
	printf("START %.6f\n", start);
	fflush(stdout);

	if (!strcmp(mode, "sleep")) {
		unsigned left = sleep(secs);
		double end = wl_now();
		printf("END %.6f left=%u\n", end, left);
		if (left != 0)
			wl_fail("sleep returned early with %u s left", left);
	} else if (!strcmp(mode, "alarm") || !strcmp(mode, "itimer")) {
		if (!strcmp(mode, "alarm")) {
			alarm(secs);
		} else {
			struct itimerval it = { .it_value = { secs, 0 } };
			if (setitimer(ITIMER_REAL, &it, NULL))
				wl_fail("setitimer: %s", strerror(errno));
		}
		while (!fired)
			pause();
		printf("END %.6f fired=%d\n", fired_at, (int)fired);
		struct itimerval left;
		getitimer(ITIMER_REAL, &left);
		if (left.it_value.tv_sec || left.it_value.tv_usec)
			wl_fail("timer still armed after it fired");
	} else {
		wl_fail("unknown mode %s", mode);
	}
	wl_pass("mode=%s", mode);
}
