/*
 * lib_aware MODE: a checkpoint-aware program for tests/libcpr.rs.
 *
 * Registers handlers according to MODE, prints "ready", then reads commands on
 * standard input ("quit" ends it). Handlers report with write(2) on stdout.
 *
 *   fifo         three atcheckpoint and three atrestart functions
 *   cs           enters a critical section; the line "leave" leaves it,
 *                "status" prints whether a checkpoint waits for it
 *   refuse-temp  refuses the first checkpoint for now, accepts the next
 *   refuse-perm  refuses every checkpoint
 *   stuck        its atcheckpoint function never returns
 *   plain        uses the library, but no handler: never gets SIGCKPT
 */
#include <ckpt.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static void say(const char *s)
{
	ssize_t rc = write(1, s, strlen(s));
	(void)rc;
}

static void ckpt1(void) { say("ckpt 1\n"); }
static void ckpt2(void) { say("ckpt 2\n"); }
static void ckpt3(void) { say("ckpt 3\n"); }
static void restart1(void) { say("restart 1\n"); }
static void restart2(void) { say("restart 2\n"); }
static void restart3(void) { say("restart 3\n"); }

static int asked;

static void refuse_temp_once(void)
{
	if (asked++ == 0) {
		say("refusing for now\n");
		ckpt_refuse(CKPT_ETEMPFAIL);
	} else {
		say("accepting\n");
	}
}

static void refuse_perm(void)
{
	asked++;
	say("refusing for good\n");
	ckpt_refuse(CKPT_EPERMFAIL);
}

static void stuck(void)
{
	say("stuck\n");
	for (;;)
		sleep(3600);
}

static int line(char *buf, size_t size)
{
	size_t n = 0;
	while (n + 1 < size) {
		char c;
		ssize_t rc = read(0, &c, 1);
		if (rc < 0 && errno == EINTR)
			continue;
		if (rc <= 0)
			return n > 0 ? 0 : -1;
		if (c == '\n')
			break;
		buf[n++] = c;
	}
	buf[n] = 0;
	return 0;
}

static void must(int rc, const char *what)
{
	if (rc != 0) {
		fprintf(stderr, "%s: %s\n", what, ckpt_errmsg());
		exit(2);
	}
}

int main(int argc, char *argv[])
{
	const char *mode = argc > 1 ? argv[1] : "plain";
	char buf[256];

	if (strcmp(mode, "fifo") == 0) {
		must(atcheckpoint(ckpt1), "atcheckpoint");
		must(atcheckpoint(ckpt2), "atcheckpoint");
		must(atcheckpoint(ckpt3), "atcheckpoint");
		must(atrestart(restart1), "atrestart");
		must(atrestart(restart2), "atrestart");
		must(atrestart(restart3), "atrestart");
	} else if (strcmp(mode, "cs") == 0) {
		must(atcheckpoint(ckpt1), "atcheckpoint");
		must(ckpt_enter_cs(), "ckpt_enter_cs");
		must(ckpt_enter_cs(), "ckpt_enter_cs"); /* they nest */
		say("in-cs\n");
	} else if (strcmp(mode, "refuse-temp") == 0) {
		must(atcheckpoint(refuse_temp_once), "atcheckpoint");
		must(atcheckpoint(ckpt1), "atcheckpoint");
	} else if (strcmp(mode, "refuse-perm") == 0) {
		must(atcheckpoint(refuse_perm), "atcheckpoint");
		must(atcheckpoint(ckpt1), "atcheckpoint");
	} else if (strcmp(mode, "stuck") == 0) {
		must(atcheckpoint(stuck), "atcheckpoint");
	} else if (strcmp(mode, "plain") == 0) {
		must(ckpt_setup(NULL, 0), "ckpt_setup");
	} else {
		fprintf(stderr, "lib_aware: unknown mode %s\n", mode);
		return 2;
	}
	say("ready\n");
	while (line(buf, sizeof buf) == 0) {
		if (strcmp(buf, "quit") == 0)
			break;
		if (strcmp(buf, "leave") == 0) {
			say("leaving-cs\n");
			must(ckpt_leave_cs(), "ckpt_leave_cs");
			must(ckpt_leave_cs(), "ckpt_leave_cs");
			say("left-cs\n");
		} else if (strcmp(buf, "status") == 0) {
			say(ckpt_status() == CKPT_STATE_PENDING ? "status pending\n"
								 : "status idle\n");
		} else if (strcmp(buf, "asked") == 0) {
			snprintf(buf, sizeof buf, "asked %d\n", asked);
			say(buf);
		}
	}
	return 0;
}
