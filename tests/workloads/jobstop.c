/* jobstop CTL: a parent and a child that job control stopped. The parent makes its own
 * process group, forks the child, stops it with SIGTSTP and sees the stop with
 * waitpid(WUNTRACED), then prints "READY <parent> child=<child>" and waits for GO.
 * The child fills a page pattern and counts, until it is continued (SIGCONT handler).
 * After GO (the test restarted both) the parent must see its child stopped again through
 * waitpid(WUNTRACED), continues it with SIGCONT and waits for its exit: the child, once
 * continued, checks its pattern and counter and exits 0 ("PASS child"). The parent then
 * prints "PASS" with what it saw. */
#include "wl.h"

#define WORDS 4096
#define SEED 0x243f6a8885a308d3ULL

static volatile sig_atomic_t continued;

static void on_cont(int sig)
{
	(void)sig;
	continued = 1;
}

static void child(void)
{
	static uint64_t pattern[WORDS];
	uint64_t x = SEED;
	for (int i = 0; i < WORDS; i++)
		pattern[i] = wl_xorshift(&x);
	struct sigaction sa = { .sa_handler = on_cont };
	sigaction(SIGCONT, &sa, NULL);
	unsigned long count = 0;
	while (!continued) {
		count++;
		wl_sleep_ms(1);
	}
	x = SEED;
	for (int i = 0; i < WORDS; i++)
		if (pattern[i] != wl_xorshift(&x))
			wl_fail("child: pattern word %d differs", i);
	if (count == 0)
		wl_fail("child: never counted");
	printf("PASS child count=%lu\n", count);
	exit(0);
}

/* Waits (polling, at most 30 s) for a stop report of `pid`; returns its signal. */
static int wait_stopped(pid_t pid, const char *when)
{
	for (int i = 0; i < 30000; i++) {
		int st;
		pid_t r = waitpid(pid, &st, WUNTRACED | WNOHANG);
		if (r < 0)
			wl_fail("waitpid %s: %s", when, strerror(errno));
		if (r == pid && WIFSTOPPED(st))
			return WSTOPSIG(st);
		if (r == pid)
			wl_fail("child %s: status %#x, not stopped", when, st);
		wl_sleep_ms(1);
	}
	wl_fail("child %s: no stop reported by waitpid(WUNTRACED)", when);
	return 0;
}

/* The state letter of /proc/PID/stat. */
static char state_of(pid_t pid)
{
	char path[64], buf[512];
	snprintf(path, sizeof path, "/proc/%d/stat", (int)pid);
	FILE *f = fopen(path, "r");
	if (!f || !fgets(buf, sizeof buf, f))
		wl_fail("read %s", path);
	fclose(f);
	char *p = strrchr(buf, ')');
	return p && p[1] == ' ' ? p[2] : '?';
}

int main(int argc, char **argv)
{
	wl_init(argc, argv, 1, "CTL");
	wl_close_inherited();
	if (setpgid(0, 0) != 0)
		wl_fail("setpgid: %s", strerror(errno));
	pid_t kid = fork();
	if (kid < 0)
		wl_fail("fork: %s", strerror(errno));
	if (kid == 0)
		child();
	wl_sleep_ms(20);
	kill(kid, SIGTSTP);
	int before = wait_stopped(kid, "before");
	if (before != SIGTSTP)
		wl_fail("child stopped by %d, not SIGTSTP", before);
	wl_ready("child=%d", (int)kid);
	while (!wl_go())
		wl_sleep_ms(10);
	int after = wait_stopped(kid, "after restart");
	char state = state_of(kid);
	if (state != 'T')
		wl_fail("child in state %c after restart, not stopped", state);
	kill(kid, SIGCONT);
	int st;
	if (waitpid(kid, &st, 0) != kid || !WIFEXITED(st) || WEXITSTATUS(st) != 0)
		wl_fail("child ended with status %#x", st);
	wl_pass("stopped_by=%d after_restart=%d", before, after);
}
