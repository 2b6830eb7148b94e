/* fp_shared_table CTL files|fs: forks a child with clone(CLONE_FILES) or clone(CLONE_FS)
 * (no CLONE_VM): parent and child share one descriptor table or one filesystem context,
 * which cpr does not restore, so a checkpoint of both must be refused. READY with
 * child=PID; both run on; on GO the parent reaps the child and passes. */
#include "wl.h"
#include <sched.h>
#include <sys/syscall.h>

int main(int argc, char **argv)
{
	wl_init(argc, argv, 1, "CTL files|fs");
	long flags = strcmp(argv[2], "fs") == 0 ? CLONE_FS : CLONE_FILES;
	long kid = syscall(SYS_clone, flags | SIGCHLD, 0, NULL, NULL, 0);
	if (kid < 0)
		wl_fail("clone: %s", strerror(errno));
	if (kid == 0) {
		while (!wl_go())
			wl_sleep_ms(20);
		_exit(0);
	}
	wl_ready("child=%ld", kid);
	while (!wl_go())
		wl_sleep_ms(20);
	int status;
	waitpid((pid_t)kid, &status, 0);
	wl_pass("%s shared, child status %d", argv[2], status);
	return 0;
}
