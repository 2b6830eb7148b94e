/* ps_daemon CTL: a daemon (setsid) with workers. Worker 1 stays in the daemon's group,
 * worker 2 leads a group of its own and has a child (worker 3) in that group. Each worker
 * counts, prints "tick <pid> N" to stdout every 20 ms; on CTL/GO it checks its count went
 * on (at least 10 ticks after GO), that its parent, group and session are what they were,
 * and exits 0 (1 on a failure). The daemon prints "READY <pid> w1=.. w2=.. w3=..", and on
 * GO reaps its workers and prints PASS if all exited 0. */
#include "wl.h"
#include <sys/wait.h>

/* Counts every 20 ms until 10 counts after CTL/GO appeared and returns the count; a
 * worker that ticks (`tick_id` > 0) prints "tick <pid> w<id> N" every 5 counts. */
static unsigned long count_past_go(int tick_id)
{
	unsigned long n = 0, at_go = 0;
	for (;;) {
		n++;
		if (tick_id > 0 && n % 5 == 0)
			printf("tick %d w%d %lu\n", (int)getpid(), tick_id, n);
		if (!at_go && wl_go())
			at_go = n;
		if (at_go && n >= at_go + 10)
			return n;
		wl_sleep_ms(20);
	}
}

static void worker(int id, pid_t parent, pid_t pgid, pid_t sid)
{
	unsigned long n = count_past_go(id);
	if (getppid() != parent || getpgrp() != pgid || getsid(0) != sid) {
		printf("FAIL worker %d: ppid %d pgid %d sid %d, was %d %d %d\n", id, (int)getppid(),
		       (int)getpgrp(), (int)getsid(0), (int)parent, (int)pgid, (int)sid);
		exit(1);
	}
	printf("worker %d done n=%lu\n", id, n);
	exit(0);
}

int main(int argc, char **argv)
{
	wl_init(argc, argv, 1, "CTL");
	if (setsid() < 0)
		wl_fail("setsid: %s", strerror(errno));
	pid_t me = getpid();
	pid_t w1 = fork();
	if (w1 == 0)
		worker(1, me, me, me);
	pid_t w2 = fork();
	pid_t w3 = -1;
	if (w2 == 0) {
		setpgid(0, 0);
		pid_t self = getpid();
		pid_t c = fork();
		if (c == 0)
			worker(3, self, self, me);
		/* worker 2 does not tick; it reaps worker 3 at the end */
		count_past_go(0);
		int st;
		if (waitpid(c, &st, 0) != c || !WIFEXITED(st) || WEXITSTATUS(st) != 0) {
			printf("FAIL worker 3 status %#x\n", st);
			exit(1);
		}
		if (getppid() != me || getpgrp() != self || getsid(0) != me) {
			printf("FAIL worker 2 ids\n");
			exit(1);
		}
		exit(0);
	}
	/* worker 3's PID: worker 2's only child */
	for (int i = 0; i < 500 && w3 < 0; i++) {
		char p[64], buf[256];
		snprintf(p, sizeof p, "/proc/%d/task/%d/children", (int)w2, (int)w2);
		FILE *f = fopen(p, "r");
		if (f) {
			if (fgets(buf, sizeof buf, f))
				w3 = atoi(buf);
			fclose(f);
		}
		if (w3 <= 0) {
			w3 = -1;
			wl_sleep_ms(10);
		}
	}
	wl_ready("w1=%d w2=%d w3=%d", (int)w1, (int)w2, (int)w3);
	while (!wl_go())
		wl_sleep_ms(20);
	int bad = 0;
	for (int i = 0; i < 2; i++) {
		int st;
		pid_t w = wait(&st);
		if (w < 0 || !WIFEXITED(st) || WEXITSTATUS(st) != 0) {
			printf("worker %d ended with %#x\n", (int)w, st);
			bad = 1;
		}
	}
	if (bad)
		wl_fail("a worker failed");
	wl_pass("pid=%d", (int)me);
}
