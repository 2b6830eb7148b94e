/* A thread in seccomp strict mode, blocked in read on a pipe: cpr cannot make calls in
 * it, so the checkpoint must be refused before it injects anything; the program carries
 * on (the thread reads a byte and exits, as strict mode allows). */
#include "wl.h"
#include <linux/seccomp.h>
#include <pthread.h>
#include <sys/prctl.h>
#include <sys/syscall.h>

static int fds[2];
static pthread_barrier_t set_up;
static long strict_tid;

static void *strict_thread(void *arg)
{
	(void)arg;
	char c;
	strict_tid = syscall(SYS_gettid);
	pthread_barrier_wait(&set_up);
	if (prctl(PR_SET_SECCOMP, SECCOMP_MODE_STRICT, 0, 0, 0) != 0)
		syscall(SYS_exit, 1);
	syscall(SYS_read, fds[0], &c, 1);
	syscall(SYS_exit, 0);
	return NULL;
}

int main(int argc, char **argv)
{
	wl_init(argc, argv, 0, "CTL");
	if (pipe(fds) != 0)
		wl_fail("pipe");
	pthread_barrier_init(&set_up, NULL, 2);
	pthread_t t;
	pthread_create(&t, NULL, strict_thread, NULL);
	pthread_barrier_wait(&set_up);
	/* wait until the thread is in strict mode */
	char path[64], line[256];
	int strict = 0;
	while (!strict) {
		snprintf(path, sizeof path, "/proc/self/task/%ld/status", strict_tid);
		FILE *f = fopen(path, "r");
		while (f && fgets(line, sizeof line, f))
			if (strcmp(line, "Seccomp:\t1\n") == 0)
				strict = 1;
		if (f)
			fclose(f);
		if (!strict)
			wl_sleep_ms(10);
	}
	wl_ready(NULL);
	while (!wl_go())
		wl_sleep_ms(20);
	if (write(fds[1], "x", 1) != 1)
		wl_fail("write");
	pthread_join(t, NULL);
	wl_pass("strict thread ended");
	return 0;
}
