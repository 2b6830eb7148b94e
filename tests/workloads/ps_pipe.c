/* Stages of a pipeline whose data is in flight at the checkpoint.
 *
 * ps_pipe prod CTL
 *     writes "N\n" for N = 1, 2, ... to stdout as fast as the pipe takes them.
 * ps_pipe cons CTL LOG
 *     reads lines from stdin, slowly (the pipes upstream stay full), checks each is the
 *     previous plus one (no gap, no duplicate); prints "READY <pid> n=N" to LOG after 2000
 *     lines; once CTL/GO exists it reads 20000 more and prints "PASS n=N" (or "FAIL ...")
 *     to LOG and exits. */
#include "wl.h"

static FILE *out;

static void say(const char *fmt, unsigned long n)
{
	fprintf(out, fmt, (int)getpid(), n);
	fflush(out);
}

int main(int argc, char **argv)
{
	wl_init(argc, argv, 2, "prod|cons CTL [LOG]");
	wl_ctl = argv[2];
	if (strcmp(argv[1], "prod") == 0) {
		char buf[32];
		for (unsigned long n = 1;; n++) {
			int len = snprintf(buf, sizeof buf, "%lu\n", n);
			if (write(1, buf, len) != len)
				return 1;
		}
	}
	if (argc < 4)
		return 2;
	out = fopen(argv[3], "a");
	if (!out)
		return 2;
	FILE *in = stdin;
	char line[64];
	unsigned long want = 1, stop = 0;
	while (fgets(line, sizeof line, in)) {
		unsigned long n = strtoul(line, NULL, 10);
		if (n != want) {
			fprintf(out, "FAIL got %lu where %lu was due\n", n, want);
			return 1;
		}
		want++;
		if (n == 2000)
			say("READY %d n=%lu\n", n);
		if (n % 64 == 0)
			wl_sleep_ms(1);
		if (n > 2000 && n % 256 == 0 && stop == 0 && wl_go())
			stop = n + 20000;
		if (stop && n == stop) {
			say("PASS pid=%d n=%lu\n", n);
			return 0;
		}
	}
	fprintf(out, "FAIL end of input after %lu\n", want - 1);
	return 1;
}
