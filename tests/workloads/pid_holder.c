/* pid_holder CTL PID: takes PID (clone3 with set_tid, which needs CAP_CHECKPOINT_RESTORE)
 * for a process that waits for CTL/GO, so that a restart finds that PID in use. Prints
 * "READY <pid of the holder>" (which is PID), or FAIL if the PID could not be taken. */
#include "wl.h"
#include <linux/sched.h>
#include <sys/syscall.h>

int main(int argc, char **argv)
{
	wl_init(argc, argv, 1, "CTL PID");
	wl_close_inherited();
	pid_t want = (pid_t)atoi(argv[2]);
	struct clone_args args;
	memset(&args, 0, sizeof args);
	args.exit_signal = SIGCHLD;
	args.set_tid = (uint64_t)(uintptr_t)&want;
	args.set_tid_size = 1;
	long pid = syscall(SYS_clone3, &args, sizeof args);
	if (pid < 0)
		wl_fail("clone3 with PID %d: %s", want, strerror(errno));
	if (pid == 0) {
		wl_ready(NULL);
		while (!wl_go())
			wl_sleep_ms(20);
		_exit(0);
	}
	/* the holder is PID; this one goes */
	return 0;
}
