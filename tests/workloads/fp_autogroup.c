/* fp_autogroup CTL: the launcher forks C, which starts a session (and so an autogroup of
 * its own) and sets that autogroup's nice value to 7; the launcher prints "READY <pid>
 * c=C" and exits. After CTL/GO, C reads /proc/self/autogroup and prints PASS if the nice
 * value is still 7. */
#include "wl.h"

static int autogroup_nice(void)
{
	char buf[64] = "";
	FILE *f = fopen("/proc/self/autogroup", "r");
	if (!f || !fgets(buf, sizeof buf, f))
		wl_fail("/proc/self/autogroup: %s", strerror(errno));
	fclose(f);
	const char *nice = strstr(buf, " nice ");
	if (!nice)
		wl_fail("/proc/self/autogroup: '%s'", buf);
	return atoi(nice + 6);
}

int main(int argc, char **argv)
{
	wl_init(argc, argv, 0, "CTL");
	int p[2];
	if (pipe(p) != 0)
		wl_fail("pipe");
	pid_t c = fork();
	if (c == 0) {
		close(p[0]);
		setsid();
		FILE *f = fopen("/proc/self/autogroup", "w");
		if (!f || fprintf(f, "7") < 0 || fclose(f) != 0)
			wl_fail("set autogroup nice: %s", strerror(errno));
		int nice = autogroup_nice();
		if (write(p[1], &nice, sizeof nice) != sizeof nice)
			_exit(1);
		close(p[1]);
		while (!wl_go())
			wl_sleep_ms(20);
		int now = autogroup_nice();
		if (now != nice)
			wl_fail("autogroup nice %d, was %d", now, nice);
		wl_pass("autogroup nice %d", now);
		return 0;
	}
	close(p[1]);
	int nice;
	if (read(p[0], &nice, sizeof nice) != sizeof nice)
		wl_fail("read");
	wl_ready("c=%d nice=%d", (int)c, nice);
	return 0;
}
