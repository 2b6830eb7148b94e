/* fd_deldir CTL MODE: a directory restart could not open by name. MODE "cwd": the
 * working directory CTL/d, removed; "fd": CTL/e open as a descriptor, removed; "proc":
 * the working directory is /proc/<a child that has exited and been reaped>. Prints
 * READY and sleeps; the test expects the checkpoint to be refused, naming it. */
#include "wl.h"

int main(int argc, char **argv)
{
	wl_close_inherited();
	wl_init(argc, argv, 2, "CTL MODE");
	char p[4096];
	const char *mode = argv[2];
	if (strcmp(mode, "cwd") == 0) {
		wl_path(p, sizeof p, "d");
		if (mkdir(p, 0700) || chdir(p) || rmdir(p))
			wl_fail("cwd: %s", strerror(errno));
	} else if (strcmp(mode, "fd") == 0) {
		wl_path(p, sizeof p, "e");
		if (mkdir(p, 0700) || open(p, O_RDONLY | O_DIRECTORY) < 0 || rmdir(p))
			wl_fail("fd: %s", strerror(errno));
	} else {
		pid_t kid = fork();
		if (kid == 0)
			_exit(0);
		snprintf(p, sizeof p, "/proc/%d", (int)kid);
		if (chdir(p) || waitpid(kid, NULL, 0) != kid)
			wl_fail("proc: %s", strerror(errno));
	}
	wl_ready("mode=%s", mode);
	for (;;)
		wl_sleep_ms(100);
}
