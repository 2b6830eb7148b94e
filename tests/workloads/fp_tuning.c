/* fp_tuning CTL MODE: per-thread and per-process kernel settings that a restored process
 * (a fork of cpr) would otherwise inherit from cpr. MODE "set": the main thread takes I/O
 * priority class idle, timer slack 123456 ns, machine-check kill early and memory policy
 * MPOL_PREFERRED on node 0; a second thread best-effort 2, 234567 ns, kill late and
 * MPOL_BIND on node 0 and rdtsc raising SIGSEGV (PR_SET_TSC); the process
 * coredump_filter 0x7f, not dumpable, and memory-deny-write-execute; the main thread is
 * an I/O flusher (PR_SET_IO_FLUSHER) where it may be. MODE "keep": nothing is set
 * (cpr is then restarted with other values of its own). Either way each thread notes its
 * values, and after CTL/GO checks they are the same, with personality, dumpable and THP disabled. */
#include "wl.h"
#include <pthread.h>
#include <sys/personality.h>
#include <sys/prctl.h>
#include <sys/syscall.h>

#define IOPRIO_WHO_PROCESS 1
#define IOPRIO_VALUE(class, data) (((class) << 13) | (data))
#define MPOL_PREFERRED 1
#define MPOL_BIND 2
#ifndef PR_SET_IO_FLUSHER
#define PR_SET_IO_FLUSHER 57
#define PR_GET_IO_FLUSHER 58
#endif
#ifndef PR_SET_MDWE
#define PR_SET_MDWE 65
#define PR_GET_MDWE 66
#define PR_MDWE_REFUSE_EXEC_GAIN 1
#endif

struct tuning {
	long ioprio, slack, mce, mode, tsc, mdwe, io_flusher;
	unsigned long nodes[16];
};

static void get_tuning(struct tuning *t)
{
	memset(t, 0, sizeof *t);
	int mode = -1;
	t->ioprio = syscall(SYS_ioprio_get, IOPRIO_WHO_PROCESS, 0);
	t->slack = prctl(PR_GET_TIMERSLACK, 0, 0, 0, 0);
	t->mce = prctl(PR_MCE_KILL_GET, 0, 0, 0, 0);
	if (syscall(SYS_get_mempolicy, &mode, t->nodes, 1024, 0, 0) != 0)
		wl_fail("get_mempolicy: %s", strerror(errno));
	t->mode = mode;
	int tsc = 0;
	prctl(PR_GET_TSC, &tsc, 0, 0, 0);
	t->tsc = tsc;
	t->mdwe = prctl(PR_GET_MDWE, 0, 0, 0, 0);
	t->io_flusher = prctl(PR_GET_IO_FLUSHER, 0, 0, 0, 0);
}

static void set_tuning(long ioprio, long slack, long mce, int mode)
{
	unsigned long node0 = 1;
	if (syscall(SYS_ioprio_set, IOPRIO_WHO_PROCESS, 0, ioprio) != 0 ||
	    prctl(PR_SET_TIMERSLACK, slack, 0, 0, 0) != 0 ||
	    prctl(PR_MCE_KILL, PR_MCE_KILL_SET, mce, 0, 0) != 0 ||
	    syscall(SYS_set_mempolicy, mode, &node0, 2) != 0)
		wl_fail("set up: %s", strerror(errno));
}

static void compare(const char *who, const struct tuning *was)
{
	struct tuning now;
	get_tuning(&now);
	if (memcmp(&now, was, sizeof now) != 0)
		wl_fail("%s: ioprio %#lx slack %ld mce %ld mempolicy %ld/%#lx tsc %ld mdwe %ld, "
			"io_flusher %ld, was ioprio %#lx slack %ld mce %ld mempolicy %ld/%#lx tsc %ld "
			"mdwe %ld io_flusher %ld",
			who, now.ioprio, now.slack, now.mce, now.mode, now.nodes[0], now.tsc,
			now.mdwe, now.io_flusher, was->ioprio, was->slack, was->mce, was->mode,
			was->nodes[0], was->tsc, was->mdwe, was->io_flusher);
}

static int set_mode;
static volatile int thread_noted;

static void *other_thread(void *arg)
{
	(void)arg;
	struct tuning was;
	if (set_mode) {
		set_tuning(IOPRIO_VALUE(2, 2), 234567, PR_MCE_KILL_LATE, MPOL_BIND);
		if (prctl(PR_SET_TSC, PR_TSC_SIGSEGV, 0, 0, 0) != 0)
			wl_fail("PR_SET_TSC: %s", strerror(errno));
	}
	get_tuning(&was);
	thread_noted = 1;
	while (!wl_go())
		wl_sleep_ms(20);
	compare("thread", &was);
	return NULL;
}

static long read_hex(const char *path)
{
	char buf[32] = "";
	FILE *f = fopen(path, "r");
	if (!f || !fgets(buf, sizeof buf, f))
		wl_fail("%s: %s", path, strerror(errno));
	fclose(f);
	return strtol(buf, NULL, 16);
}

int main(int argc, char **argv)
{
	wl_init(argc, argv, 2, "CTL set|keep");
	set_mode = strcmp(argv[2], "set") == 0;
	if (set_mode) {
		set_tuning(IOPRIO_VALUE(3, 0), 123456, PR_MCE_KILL_EARLY, MPOL_PREFERRED);
		FILE *f = fopen("/proc/self/coredump_filter", "w");
		if (!f || fprintf(f, "0x7f") < 0 || fclose(f) != 0)
			wl_fail("coredump_filter: %s", strerror(errno));
		if (prctl(PR_SET_DUMPABLE, 0, 0, 0, 0) != 0)
			wl_fail("PR_SET_DUMPABLE: %s", strerror(errno));
		if (prctl(PR_SET_MDWE, PR_MDWE_REFUSE_EXEC_GAIN, 0, 0, 0) != 0)
			wl_fail("PR_SET_MDWE: %s", strerror(errno));
		/* EPERM without CAP_SYS_RESOURCE (some containers): then left out */
		if (prctl(PR_SET_IO_FLUSHER, 1, 0, 0, 0) != 0 && errno != EPERM)
			wl_fail("PR_SET_IO_FLUSHER: %s", strerror(errno));
	}
	pthread_t t;
	pthread_create(&t, NULL, other_thread, NULL);
	while (!thread_noted)
		wl_sleep_ms(5);
	struct tuning was;
	get_tuning(&was);
	long filter = read_hex("/proc/self/coredump_filter");
	int persona = personality(0xffffffff);
	int thp = prctl(PR_GET_THP_DISABLE, 0, 0, 0, 0);
	int dumpable = prctl(PR_GET_DUMPABLE, 0, 0, 0, 0);
	wl_ready("noted");
	while (!wl_go())
		wl_sleep_ms(20);
	pthread_join(t, NULL);
	compare("main", &was);
	long filter_now = read_hex("/proc/self/coredump_filter");
	int persona_now = personality(0xffffffff);
	int thp_now = prctl(PR_GET_THP_DISABLE, 0, 0, 0, 0);
	int dumpable_now = prctl(PR_GET_DUMPABLE, 0, 0, 0, 0);
	if (filter_now != filter || persona_now != persona || thp_now != thp ||
	    dumpable_now != dumpable)
		wl_fail("coredump_filter %#lx personality %#x thp_disable %d dumpable %d, was "
			"%#lx %#x %d %d",
			filter_now, persona_now, thp_now, dumpable_now, filter, persona, thp,
			dumpable);
	wl_pass("ioprio %#lx slack %ld mce %ld mempolicy %ld mdwe %ld io_flusher %ld "
		"coredump_filter %#lx dumpable %d",
		was.ioprio, was.slack, was.mce, was.mode, was.mdwe, was.io_flusher, filter,
		dumpable);
	return 0;
}
