/* ps_zombie CTL: forks a child that exits with status 7 at once and is not reaped.
 * Prints "READY <pid> zombie=<child>" once the child is a zombie; on CTL/GO reaps it
 * (waitpid of that PID, WNOHANG: it must be a zombie already) and checks status 7. */
#include "wl.h"
#include <sys/wait.h>

static char state(pid_t pid)
{
	char p[64], buf[512];
	snprintf(p, sizeof p, "/proc/%d/stat", (int)pid);
	FILE *f = fopen(p, "r");
	if (!f)
		return '?';
	char s = '?';
	if (fgets(buf, sizeof buf, f)) {
		char *r = strrchr(buf, ')');
		if (r && r[1])
			s = r[2];
	}
	fclose(f);
	return s;
}

int main(int argc, char **argv)
{
	wl_init(argc, argv, 1, "CTL");
	pid_t c = fork();
	if (c == 0)
		_exit(7);
	while (state(c) != 'Z')
		wl_sleep_ms(10);
	wl_ready("zombie=%d", (int)c);
	while (!wl_go())
		wl_sleep_ms(20);
	if (state(c) != 'Z')
		wl_fail("child %d is in state %c, not a zombie", (int)c, state(c));
	int st;
	pid_t r = waitpid(c, &st, WNOHANG);
	if (r != c)
		wl_fail("waitpid %d gave %d (%s)", (int)c, (int)r, strerror(errno));
	if (!WIFEXITED(st) || WEXITSTATUS(st) != 7)
		wl_fail("status %#x, wanted exit 7", st);
	wl_pass("zombie=%d status=7", (int)c);
}
