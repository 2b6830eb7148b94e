/* Shared helpers for the workloads that cpr's end-to-end tests checkpoint.
 *
 * Protocol: every workload takes a control directory CTL as its first argument, prints
 * "READY <pid> ..." (flushed) once its state is built and it is in its main loop, and after
 * the test restarts it, learns it may check itself when the file CTL/GO appears (or on a
 * signal, where the workload says so). It then prints "PASS <details>" and exits 0, or
 * "FAIL <details>" and exits 1. Paths of its own (files to lock, directories to watch)
 * are in CTL too, so that tests/common's Scratch finds and ends everything a test started.
 *
 * The libcpr workloads (lib_*.c) are the exception: they exercise the library's calls,
 * and the test drives them with one command a line on stdin; they answer on stdout. */
#ifndef WL_H
#define WL_H

#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <signal.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define WL_UNUSED __attribute__((unused))

static const char *wl_ctl = ".";

static WL_UNUSED void wl_init(int argc, char **argv, int min_args, const char *usage)
{
	if (argc < min_args + 1) {
		fprintf(stderr, "usage: %s %s\n", argv[0], usage);
		exit(2);
	}
	wl_ctl = argv[1];
	setvbuf(stdout, NULL, _IOLBF, 0);
	setvbuf(stderr, NULL, _IONBF, 0);
}

static WL_UNUSED void wl_path(char *buf, size_t size, const char *name)
{
	snprintf(buf, size, "%s/%s", wl_ctl, name);
}

/* Does CTL/GO exist? */
static WL_UNUSED int wl_go(void)
{
	char p[4096];
	wl_path(p, sizeof p, "GO");
	return access(p, F_OK) == 0;
}

/* Reads CTL/GO as a number (the test writes it atomically); -1 if absent. */
static WL_UNUSED long wl_go_number(void)
{
	char p[4096], buf[64];
	wl_path(p, sizeof p, "GO");
	int fd = open(p, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -1;
	ssize_t n = read(fd, buf, sizeof buf - 1);
	close(fd);
	if (n <= 0)
		return -1;
	buf[n] = 0;
	return strtol(buf, NULL, 10);
}

static WL_UNUSED void wl_sleep_ms(long ms)
{
	struct timespec ts = { ms / 1000, (ms % 1000) * 1000000L };
	while (nanosleep(&ts, &ts) != 0 && errno == EINTR)
		;
}

/* Wall-clock time in seconds (CLOCK_REALTIME: it counts the time a process spent
 * checkpointed, which CLOCK_MONOTONIC of a restarted process need not). */
static WL_UNUSED double wl_now(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	return ts.tv_sec + ts.tv_nsec / 1e9;
}

static WL_UNUSED void wl_ready(const char *fmt, ...)
{
	char extra[512] = "";
	if (fmt) {
		va_list ap;
		va_start(ap, fmt);
		vsnprintf(extra, sizeof extra, fmt, ap);
		va_end(ap);
	}
	printf("READY %d%s%s\n", (int)getpid(), extra[0] ? " " : "", extra);
	fflush(stdout);
}

static WL_UNUSED void wl_pass(const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	printf("PASS ");
	vprintf(fmt, ap);
	printf("\n");
	va_end(ap);
	fflush(stdout);
	exit(0);
}

static WL_UNUSED void wl_fail(const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	printf("FAIL ");
	vprintf(fmt, ap);
	printf("\n");
	va_end(ap);
	fflush(stdout);
	exit(1);
}

/* Closes the descriptors inherited from the test harness (pipes to it): they are not the
 * workload's, and a pipe to outside would make it uncheckpointable. */
static WL_UNUSED void wl_close_inherited(void)
{
	close_range(3, ~0U, 0);
}

/* Blocks `sig` (to be taken some other way: a signalfd, sigwaitinfo) and returns the set
 * that holds it. */
static WL_UNUSED sigset_t wl_block(int sig)
{
	sigset_t m;
	sigemptyset(&m);
	sigaddset(&m, sig);
	sigprocmask(SIG_BLOCK, &m, NULL);
	return m;
}

/* One step of the xorshift64 generator behind the workloads' memory patterns. */
static WL_UNUSED uint64_t wl_xorshift(uint64_t *x)
{
	*x ^= *x << 13;
	*x ^= *x >> 7;
	*x ^= *x << 17;
	return *x;
}

/* SIGUSR1 as a request to check: wl_catch_usr1() installs the handler, wl_wait_usr1(ms)
 * sleeps in steps of `ms` until a request came and takes it. (A forked child has its own
 * flag, so parent and children wait for their own requests.) */
static volatile sig_atomic_t wl_usr1 WL_UNUSED;

static WL_UNUSED void wl_on_usr1(int sig)
{
	(void)sig;
	wl_usr1 = 1;
}

static WL_UNUSED void wl_catch_usr1(void)
{
	struct sigaction sa = { .sa_handler = wl_on_usr1 };
	sigaction(SIGUSR1, &sa, NULL);
}

static WL_UNUSED void wl_wait_usr1(long ms)
{
	while (!wl_usr1)
		wl_sleep_ms(ms);
	wl_usr1 = 0;
}

/* A parent and its children 1..n-1 (kids[i]) that answer its checks, one record each on a
 * pipe they share (the bench_* trees). */
struct wl_answer {
	int index;
	int pid;
	int ok;
};

/* Forks children 1..n-1; child i runs child(i, wfd, arg), which never returns, with the
 * write end of the pipe they all share. Returns kids[] (kids[i]: child i's PID) and the
 * read end in *rfd. */
static WL_UNUSED pid_t *wl_fork_children(int n, int *rfd, void (*child)(int, int, void *),
					 void *arg)
{
	int p[2];
	if (pipe(p) != 0)
		wl_fail("pipe: %s", strerror(errno));
	pid_t *kids = calloc((size_t)n, sizeof *kids);
	for (int i = 1; i < n; i++) {
		pid_t pid = fork();
		if (pid < 0)
			wl_fail("fork: %s", strerror(errno));
		if (pid == 0) {
			close(p[0]);
			child(i, p[1], arg);
			_exit(3);
		}
		kids[i] = pid;
	}
	close(p[1]);
	*rfd = p[0];
	return kids;
}

/* Check `checks`: every child must still be the parent's (not exited); each is sent
 * SIGUSR1. */
static WL_UNUSED void wl_signal_children(const pid_t *kids, int n, unsigned checks)
{
	for (int i = 1; i < n; i++) {
		int st;
		if (waitpid(kids[i], &st, WNOHANG) != 0)
			wl_fail("check=%u pid=%d child %d (%d) is gone", checks, (int)getpid(), i,
				(int)kids[i]);
		kill(kids[i], SIGUSR1);
	}
}

/* Reads one answer from each child on `rfd`: every one must come from the child it names
 * and be ok, else FAIL "... child I (PID) <wrong>". */
static WL_UNUSED void wl_read_answers(int rfd, const pid_t *kids, int n, unsigned checks,
				      const char *wrong)
{
	for (int got = 1; got < n; got++) {
		struct wl_answer a;
		ssize_t r = read(rfd, &a, sizeof a);
		if (r != sizeof a)
			wl_fail("check=%u pid=%d pipe read %zd", checks, (int)getpid(), r);
		if (a.index < 1 || a.index >= n || a.pid != kids[a.index] || !a.ok)
			wl_fail("check=%u pid=%d child %d (%d) %s", checks, (int)getpid(), a.index,
				a.pid, wrong);
	}
}

#endif
