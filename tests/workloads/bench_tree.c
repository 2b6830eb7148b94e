/* bench_tree CTL [N]: a process tree for `cpr -c -p PID:HID`. The parent makes itself a
 * process group leader and forks N-1 children (N defaults to 100) that idle in a sleep
 * loop, each keeping its index, its PID and a value derived from the index. On each
 * SIGUSR1 the parent checks that every child is still its child (waitpid WNOHANG), sends
 * each a SIGUSR1 and reads one record per child from a pipe they all share: each child
 * answers with its index, its PID and whether its state is intact. Then the parent prints
 * "PASS check=K pid=P procs=N" (or FAIL). It never exits by itself. */
#include "wl.h"


static uint64_t mix(uint64_t x)
{
	x ^= x >> 33;
	x *= 0xff51afd7ed558ccdULL;
	x ^= x >> 33;
	return x;
}

static void child(int index, int w, void *arg)
{
	pid_t parent = *(const pid_t *)arg;
	pid_t me = getpid();
	volatile uint64_t value = mix((uint64_t)index);
	for (;;) {
		wl_wait_usr1(50);
		struct wl_answer a = { index, (int)getpid(),
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
	wl_catch_usr1();
	pid_t me = getpid();
	int answers;
	pid_t *kids = wl_fork_children(n, &answers, child, &me);
	wl_ready("procs=%d", n);

	unsigned checks = 0;
	for (;;) {
		wl_wait_usr1(20);
		checks++;
		wl_signal_children(kids, n, checks);
		wl_read_answers(answers, kids, n, checks, "answered wrongly");
		printf("PASS check=%u pid=%d procs=%d\n", checks, (int)getpid(), n);
	}
}
