/* Stacked seccomp filters and threads, as root without no_new_privs: the process's two
 * filters (getitimer -> EPERM; sysinfo -> EACCES, installed with SECCOMP_FILTER_FLAG_LOG)
 * are shared by both threads; the second thread adds a third (uname -> ENOSYS) of its
 * own. After restart each thread must deny what it denied and allow the rest, and the
 * filters must still be shared: a TSYNC from the second thread, which the kernel allows
 * only when the main thread's filters are the ancestors of its own, succeeds. */
#include "wl.h"
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <pthread.h>
#include <stddef.h>
#include <sys/syscall.h>
#include <sys/sysinfo.h>
#include <sys/time.h>
#include <sys/utsname.h>

static void install(int nr, int err, unsigned flags)
{
	struct sock_filter filter[] = {
		BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, nr)),
		BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, nr, 0, 1),
		BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ERRNO | err),
		BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW),
	};
	struct sock_fprog prog = { 4, filter };
	long rc = syscall(SYS_seccomp, SECCOMP_SET_MODE_FILTER, flags, &prog);
	if (rc != 0)
		wl_fail("seccomp nr %d flags %u: %ld %s", nr, flags, rc, strerror(errno));
}

/* "getitimer/sysinfo/uname" errnos, 0 where the call works. */
static void probe(const char *who, char *out, size_t size)
{
	struct itimerval it;
	struct sysinfo si;
	struct utsname u;
	int e[3];
	errno = 0;
	e[0] = syscall(SYS_getitimer, ITIMER_REAL, &it) == 0 ? 0 : errno;
	errno = 0;
	e[1] = syscall(SYS_sysinfo, &si) == 0 ? 0 : errno;
	errno = 0;
	e[2] = syscall(SYS_uname, &u) == 0 ? 0 : errno;
	snprintf(out, size, "%s %d/%d/%d", who, e[0], e[1], e[2]);
}

static pthread_barrier_t set_up, main_probed;
static char thread_saved[64], thread_now[64];
static long tsync_rc;

static void *other_thread(void *arg)
{
	(void)arg;
	install(SYS_uname, ENOSYS, 0);
	probe("thread", thread_saved, sizeof thread_saved);
	pthread_barrier_wait(&set_up);
	/* after restart, once the main thread probed (the TSYNC below changes its filters) */
	pthread_barrier_wait(&main_probed);
	probe("thread", thread_now, sizeof thread_now);
	/* an allow-all filter for both threads */
	struct sock_filter allow[] = { BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW) };
	struct sock_fprog prog = { 1, allow };
	tsync_rc = syscall(SYS_seccomp, SECCOMP_SET_MODE_FILTER, SECCOMP_FILTER_FLAG_TSYNC, &prog);
	return NULL;
}

int main(int argc, char **argv)
{
	wl_init(argc, argv, 0, "CTL");
	install(SYS_getitimer, EPERM, 0);
	install(SYS_sysinfo, EACCES, SECCOMP_FILTER_FLAG_LOG);
	pthread_barrier_init(&set_up, NULL, 2);
	pthread_barrier_init(&main_probed, NULL, 2);
	pthread_t t;
	pthread_create(&t, NULL, other_thread, NULL);
	pthread_barrier_wait(&set_up);
	char saved[64], now[64];
	probe("main", saved, sizeof saved);
	wl_ready(NULL);
	while (!wl_go())
		wl_sleep_ms(20);
	probe("main", now, sizeof now);
	pthread_barrier_wait(&main_probed);
	pthread_join(t, NULL);
	if (strcmp(saved, now) != 0 || strcmp(thread_saved, thread_now) != 0)
		wl_fail("before: %s, %s; after restart: %s, %s", saved, thread_saved, now,
			thread_now);
	if (tsync_rc != 0)
		wl_fail("TSYNC from the thread: %ld (%s)", tsync_rc, strerror(errno));
	wl_pass("%s, %s, tsync ok", now, thread_now);
	return 0;
}
