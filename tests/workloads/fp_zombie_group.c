/* A zombie that leads a process group with a live member: the parent forks Z (its own
 * group) and M (which joins Z's group), then Z exits and is not reaped. After restart M
 * checks getpgid(0) == Z, the parent checks getpgid(Z) == Z, then reaps Z with its exit
 * status 7 and M. */
#include "wl.h"

int main(int argc, char **argv)
{
	wl_init(argc, argv, 0, "CTL");
	int p[2];
	if (pipe(p) != 0)
		wl_fail("pipe");
	pid_t z = fork();
	if (z == 0) {
		setpgid(0, 0);
		char c;
		close(p[1]);
		if (read(p[0], &c, 1) != 1)
			_exit(1);
		_exit(7);
	}
	setpgid(z, z);
	pid_t m = fork();
	if (m == 0) {
		close(p[0]);
		close(p[1]);
		setpgid(0, z);
		while (!wl_go())
			wl_sleep_ms(20);
		_exit(getpgid(0) == z ? 0 : 1);
	}
	setpgid(m, z);
	close(p[0]);
	if (write(p[1], "x", 1) != 1)
		wl_fail("write");
	close(p[1]);
	siginfo_t si;
	if (waitid(P_PID, (id_t)z, &si, WEXITED | WNOWAIT) != 0)
		wl_fail("waitid");
	wl_ready("z=%d m=%d", (int)z, (int)m);
	while (!wl_go())
		wl_sleep_ms(20);
	pid_t zg = getpgid(z);
	int zs, ms;
	waitpid(z, &zs, 0);
	waitpid(m, &ms, 0);
	if (zg != z || !WIFEXITED(zs) || WEXITSTATUS(zs) != 7 || !WIFEXITED(ms) ||
	    WEXITSTATUS(ms) != 0)
		wl_fail("zombie group %d (was %d), status %#x, member status %#x", (int)zg, (int)z,
			zs, ms);
	wl_pass("zombie %d leads its group, member in it", (int)z);
	return 0;
}
