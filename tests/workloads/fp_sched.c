/* Scheduling per thread: the main thread runs SCHED_BATCH (with SCHED_RESET_ON_FORK) at
 * nice 5 on the last CPU, a second thread SCHED_FIFO priority 7 on CPU 0, a third
 * SCHED_IDLE at nice 12 on every CPU. After restart each thread checks its own policy, priority, nice and affinity
 * with sched_getscheduler, sched_getparam, getpriority and sched_getaffinity, and its
 * name (each has its own, one with a backslash, one with spaces). */
#include "wl.h"
#include <pthread.h>
#include <sched.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/syscall.h>

struct want {
	const char *name, *comm;
	int policy, priority, nice;
	cpu_set_t cpus;
	int ok;
	char why[256];
};

static int apply(struct want *w)
{
	pid_t tid = (pid_t)syscall(SYS_gettid);
	struct sched_param p = { .sched_priority = w->priority };
	if (prctl(PR_SET_NAME, w->comm) != 0)
		return -1;
	if (sched_setaffinity(0, sizeof w->cpus, &w->cpus) != 0)
		return -1;
	if (setpriority(PRIO_PROCESS, (id_t)tid, w->nice) != 0)
		return -1;
	return sched_setscheduler(0, w->policy, &p);
}

static void check(struct want *w)
{
	pid_t tid = (pid_t)syscall(SYS_gettid);
	struct sched_param p;
	cpu_set_t now;
	int policy = sched_getscheduler(0);
	sched_getparam(0, &p);
	errno = 0;
	int nice = getpriority(PRIO_PROCESS, (id_t)tid);
	sched_getaffinity(0, sizeof now, &now);
	char comm[17] = "";
	prctl(PR_GET_NAME, comm);
	w->ok = policy == w->policy && p.sched_priority == w->priority && nice == w->nice &&
		CPU_EQUAL(&now, &w->cpus) && strcmp(comm, w->comm) == 0;
	snprintf(w->why, sizeof w->why,
		 "%s: policy %d/%d priority %d/%d nice %d/%d cpus %d/%d name '%s'/'%s'", w->name,
		 policy, w->policy, p.sched_priority, w->priority, nice, w->nice, CPU_COUNT(&now),
		 CPU_COUNT(&w->cpus), comm, w->comm);
}

static pthread_barrier_t set_up;

static void *thread(void *arg)
{
	struct want *w = arg;
	if (apply(w) != 0)
		wl_fail("%s: %s", w->name, strerror(errno));
	pthread_barrier_wait(&set_up);
	while (!wl_go())
		wl_sleep_ms(20);
	check(w);
	return NULL;
}

int main(int argc, char **argv)
{
	wl_init(argc, argv, 0, "CTL");
	long ncpu = sysconf(_SC_NPROCESSORS_ONLN);
	struct want w[3] = {
		{ "main", "fp sched main", SCHED_BATCH | SCHED_RESET_ON_FORK, 0, 5, { { 0 } }, 0, "" },
		{ "fifo", "fifo\\7", SCHED_FIFO, 7, -3, { { 0 } }, 0, "" },
		{ "idle", "idle  at 12", SCHED_IDLE, 0, 12, { { 0 } }, 0, "" },
	};
	CPU_SET((int)(ncpu - 1), &w[0].cpus);
	CPU_SET(0, &w[1].cpus);
	for (int c = 0; c < ncpu; c++)
		CPU_SET(c, &w[2].cpus);
	pthread_barrier_init(&set_up, NULL, 3);
	pthread_t t[2];
	for (int i = 0; i < 2; i++)
		pthread_create(&t[i], NULL, thread, &w[i + 1]);
	pthread_barrier_wait(&set_up);
	if (apply(&w[0]) != 0)
		wl_fail("main: %s", strerror(errno));
	wl_ready("cpus=%ld", ncpu);
	while (!wl_go())
		wl_sleep_ms(20);
	check(&w[0]);
	for (int i = 0; i < 2; i++)
		pthread_join(t[i], NULL);
	for (int i = 0; i < 3; i++)
		if (!w[i].ok)
			wl_fail("%s", w[i].why);
	wl_pass("%s; %s; %s", w[0].why, w[1].why, w[2].why);
	return 0;
}
