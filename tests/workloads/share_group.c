/* share_group: a fixture for resolving designators (tests/target.rs), not a workload that
 * is checkpointed, so it takes no control directory. Two threads, a CLONE_VM child (its
 * own process, the parent's address space) and a fork() child, all idling. It prints
 * "thread TID" twice, then "vm PID", then "fork PID", one a line, and never exits: the
 * test kills its process group. */
#define _GNU_SOURCE
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <sys/syscall.h>
#include <unistd.h>

static pthread_barrier_t ready;
static long tids[2];
static char vm_stack[256 * 1024] __attribute__((aligned(16)));

static void *thread_main(void *arg)
{
	tids[(long)arg] = syscall(SYS_gettid);
	pthread_barrier_wait(&ready);
	for (;;)
		syscall(SYS_pause);
	return NULL;
}

static int vm_child(void *arg)
{
	(void)arg;
	for (;;)
		syscall(SYS_pause);
	return 0;
}

int main(void)
{
	pthread_t t[2];
	pthread_barrier_init(&ready, NULL, 3);
	for (long i = 0; i < 2; i++)
		pthread_create(&t[i], NULL, thread_main, (void *)i);
	pthread_barrier_wait(&ready);
	printf("thread %ld\nthread %ld\n", tids[0], tids[1]);
	int vm = clone(vm_child, vm_stack + sizeof vm_stack, CLONE_VM | SIGCHLD, NULL);
	if (vm < 0) {
		perror("clone");
		return 1;
	}
	printf("vm %d\n", vm);
	fflush(stdout);
	pid_t f = fork();
	if (f < 0) {
		perror("fork");
		return 1;
	}
	if (f == 0) {
		for (;;)
			pause();
	}
	printf("fork %d\n", f);
	fflush(stdout);
	for (;;)
		pause();
}
