/* tracer CTL ID: a second tracer. Seizes thread or process ID with ptrace (not stopping it),
 * prints "READY <pid>" and sleeps until killed; its end lets ID go. */
#include "wl.h"
#include <sys/ptrace.h>

int main(int argc, char **argv)
{
	wl_init(argc, argv, 2, "CTL ID");
	wl_close_inherited();
	pid_t pid = (pid_t)strtol(argv[2], NULL, 10);
	if (ptrace(PTRACE_SEIZE, pid, NULL, NULL) != 0)
		wl_fail("PTRACE_SEIZE %d: %s", (int)pid, strerror(errno));
	wl_ready(NULL);
	for (;;)
		pause();
}
