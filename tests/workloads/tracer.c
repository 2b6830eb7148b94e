/* tracer CTL PID: a second tracer. Seizes process PID with ptrace (without stopping it),
 * prints "READY <pid>" and sleeps until killed; its end lets PID go. */
#include "wl.h"
#include <sys/ptrace.h>

int main(int argc, char **argv)
{
	wl_init(argc, argv, 2, "CTL PID");
	wl_close_inherited();
	pid_t pid = (pid_t)strtol(argv[2], NULL, 10);
	if (ptrace(PTRACE_SEIZE, pid, NULL, NULL) != 0)
		wl_fail("PTRACE_SEIZE %d: %s", (int)pid, strerror(errno));
	wl_ready(NULL);
	for (;;)
		pause();
}
