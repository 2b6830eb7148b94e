/* Forks short-lived children all the time (each exits with a code the parent checks), so
 * that a checkpoint of the tree catches processes being born and dying, and zombies. After
 * restart (GO) every child forked must still be reaped with its own exit code. */
#include "wl.h"
#include <sys/wait.h>

int main(int argc, char **argv)
{
	wl_init(argc, argv, 0, "CTL");
	long forked = 0, reaped = 0, bad = 0;
	int go_seen = 0;
	long target = -1;
	for (;;) {
		pid_t c = fork();
		if (c == 0)
			_exit((int)(getpid() % 200));
		if (c > 0)
			forked++;
		int st;
		pid_t r;
		while ((r = waitpid(-1, &st, forked - reaped > 3 ? 0 : WNOHANG)) > 0) {
			reaped++;
			if (!WIFEXITED(st) || WEXITSTATUS(st) != r % 200)
				bad++;
		}
		if (forked == 200)
			wl_ready("");
		if (!go_seen && forked > 200 && wl_go()) {
			go_seen = 1;
			target = forked + 200;
		}
		if (target > 0 && forked >= target) {
			while ((r = waitpid(-1, &st, 0)) > 0) {
				reaped++;
				if (!WIFEXITED(st) || WEXITSTATUS(st) != r % 200)
					bad++;
			}
			if (bad || reaped != forked)
				wl_fail("forked %ld reaped %ld bad %ld", forked, reaped, bad);
			wl_pass("forked %ld, all reaped with their codes", forked);
		}
		wl_sleep_ms(1);
	}
}
