/* A parent and a child made with clone(CLONE_VM) (not a thread): they share one address
 * space, which cpr refuses to split. Both keep counting in shared memory; after the
 * refused checkpoint the test creates GO and the parent checks that both still count. */
#include "wl.h"
#include <sched.h>
#include <sys/wait.h>

static volatile long parent_count, child_count;
static char stack[256 * 1024];

static int child(void *arg)
{
	(void)arg;
	for (;;) {
		child_count++;
		usleep(1000);
	}
	return 0;
}

int main(int argc, char **argv)
{
	wl_init(argc, argv, 0, "CTL");
	pid_t c = clone(child, stack + sizeof stack, CLONE_VM | SIGCHLD, NULL);
	if (c < 0) {
		printf("FAIL clone errno %d\n", errno);
		return 1;
	}
	printf("READY %d child=%d\n", getpid(), c);
	char go[4096];
	snprintf(go, sizeof go, "%s/GO", wl_ctl);
	while (access(go, F_OK) != 0) {
		parent_count++;
		usleep(1000);
	}
	long p0 = parent_count, c0 = child_count;
	usleep(100000);
	int ok = child_count > c0 && parent_count == p0;
	kill(c, SIGKILL);
	waitpid(c, NULL, __WALL);
	printf("%s child counted %ld -> %ld\n", ok ? "PASS" : "FAIL", c0, child_count);
	return ok ? 0 : 1;
}
