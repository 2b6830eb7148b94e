/* counter CTL LOG: every 50 ms appends "count N" to LOG through one fd it keeps open
 * (opened O_TRUNC, not O_APPEND: the offset is the fd's own). On CTL/GO it reads LOG back
 * and checks it is exactly "count 1" .. "count N" with N its own counter, and that the
 * fd's offset is the end of that text: no gap, no duplicate, no lost write. */
#include "wl.h"

int main(int argc, char **argv)
{
	wl_init(argc, argv, 2, "CTL LOG");
	const char *log = argv[2];
	int fd = open(log, O_WRONLY | O_CREAT | O_TRUNC, 0644);
	if (fd < 0)
		wl_fail("open %s: %s", log, strerror(errno));

	unsigned long n = 0;
	for (;;) {
		char line[64];
		n++;
		int len = snprintf(line, sizeof line, "count %lu\n", n);
		if (write(fd, line, len) != len)
			wl_fail("write count %lu: %s", n, strerror(errno));
		if (n == 3)
			wl_ready("log=%s", log);
		if (n > 3 && wl_go())
			break;
		wl_sleep_ms(50);
	}

	off_t off = lseek(fd, 0, SEEK_CUR);
	FILE *f = fopen(log, "r");
	if (!f)
		wl_fail("reopen %s: %s", log, strerror(errno));
	char line[128];
	unsigned long expect = 1;
	long bytes = 0;
	while (fgets(line, sizeof line, f)) {
		unsigned long got;
		bytes += strlen(line);
		if (sscanf(line, "count %lu", &got) != 1)
			wl_fail("line %lu of the log is '%s'", expect, line);
		if (got != expect)
			wl_fail("line %lu of the log says count %lu", expect, got);
		expect++;
	}
	fclose(f);
	if (expect - 1 != n)
		wl_fail("the log has %lu lines, the counter is %lu", expect - 1, n);
	if (off != bytes)
		wl_fail("fd offset %lld, log size %ld", (long long)off, bytes);
	wl_pass("count=%lu offset=%lld pid=%d", n, (long long)off, (int)getpid());
}
