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

#endif
