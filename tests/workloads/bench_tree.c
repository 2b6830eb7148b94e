/* bench_tree CTL [N]: a process tree for `cpr -c -p PID:HID`. The parent makes itself a
 * process group leader and forks N-1 children (N defaults to 100) that idle in a sleep
 * loop, each keeping its index, its PID and a value derived from the index. On each
 * SIGUSR1 the parent checks that every child is still its child (waitpid WNOHANG), sends
 * each a SIGUSR1 and reads one record per child from a pipe they all share: each child
 * answers with its index, its PID and whether its state is intact. Then the parent prints
 * "PASS check=K pid=P procs=N" (or FAIL). It never exits by itself. */
#include "wl.h"
#include <sys/wait.h>

static volatile sig_atomic_t usr1;

static void on_usr1(int sig)
{
	(void)sig;
	usr1 = 1;
}

struct answer {
	int index;
	int pid;
	int ok;
};

static uint64_t mix(uint64_t x)
{
	x ^= x >> 33;
	x *= 0xff51afd7ed558ccdULL;
	x ^= x >> 33;
	return x;
}

static void child(int index, pid_t parent, int w)
{
	pid_t me = getpid();
	volatile uint64_t value = mix((uint64_t)index);
	for (;;) {
		wl_sleep_ms(50);
		if (!usr1)
			continue;
		usr1 = 0;
		struct answer a = { index, (int)getpid(),
				    getpid() == me && getppid() == parent &&
					    value == mix((uint64_t)index) };
		if (write(w, &a, sizeof a) != sizeof a)
			_exit(3);
	}
}

int main(int argc, char **argv)
{
	wl_init(argc, argv, 1, "CTL [N]");
	int n = argc > 2 ? atoi(argv[2]) : 100;
	if (n < 1 || n > 10000)
		wl_fail("bad N %d", n);
	if (setpgid(0, 0) != 0)
		wl_fail("setpgid: %s", strerror(errno));
	struct sigaction sa = { .sa_handler = on_usr1 };
	sigaction(SIGUSR1, &sa, NULL);
	int p[2];
	if (pipe(p) != 0)
		wl_fail("pipe: %s", strerror(errno));
	pid_t *kids = calloc((size_t)n, sizeof *kids);
	pid_t me = getpid();
	for (int i = 1; i < n; i++) {
		pid_t pid = fork();
		if (pid < 0)
			wl_fail("fork: %s", strerror(errno));
		if (pid == 0) {
			close(p[0]);
			child(i, me, p[1]);
		}
		kids[i] = pid;
	}
	close(p[1]);
	wl_ready("procs=%d", n);

	unsigned checks = 0;
	for (;;) {
		wl_sleep_ms(20);
		if (!usr1)
			continue;
		usr1 = 0;
		checks++;
		for (int i = 1; i < n; i++) {
			int st;
			if (waitpid(kids[i], &st, WNOHANG) != 0)
				wl_fail("check=%u pid=%d child %d (%d) is gone", checks, (int)getpid(),
					i, (int)kids[i]);
			kill(kids[i], SIGUSR1);
		}
		for (int got = 1; got < n; got++) {
			struct answer a;
			ssize_t r = read(p[0], &a, sizeof a);
			if (r != sizeof a)
				wl_fail("check=%u pid=%d pipe read %zd", checks, (int)getpid(), r);
			if (a.index < 1 || a.index >= n || a.pid != kids[a.index] || !a.ok)
				wl_fail("check=%u pid=%d child %d (%d) answered wrongly", checks,
					(int)getpid(), a.index, a.pid);
		}
		printf("PASS check=%u pid=%d procs=%d\n", checks, (int)getpid(), n);
	}
}
