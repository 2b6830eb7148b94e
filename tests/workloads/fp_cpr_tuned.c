/* fp_cpr_tuned PROGRAM ARGS...: runs PROGRAM (cpr) with settings other than the defaults,
 * which its forks inherit: I/O priority idle, timer slack 999 ns, machine-check kill
 * early, memory policy MPOL_PREFERRED on node 0, coredump_filter 0x3, personality
 * ADDR_NO_RANDOMIZE and THP disabled. */
#define _GNU_SOURCE
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/personality.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <unistd.h>

int main(int argc, char **argv)
{
	unsigned long node0 = 1;
	FILE *f = fopen("/proc/self/coredump_filter", "w");
	if (argc < 2 || !f || fprintf(f, "0x3") < 0 || fclose(f) != 0 ||
	    syscall(SYS_ioprio_set, 1, 0, 3 << 13) != 0 ||
	    prctl(PR_SET_TIMERSLACK, 999, 0, 0, 0) != 0 ||
	    prctl(PR_MCE_KILL, PR_MCE_KILL_SET, PR_MCE_KILL_EARLY, 0, 0) != 0 ||
	    syscall(SYS_set_mempolicy, 1, &node0, 2) != 0 ||
	    personality(ADDR_NO_RANDOMIZE) < 0 || prctl(PR_SET_THP_DISABLE, 1, 0, 0, 0) != 0) {
		fprintf(stderr, "fp_cpr_tuned: set up: %s\n", strerror(errno));
		return 2;
	}
	execvp(argv[1], argv + 1);
	fprintf(stderr, "fp_cpr_tuned: %s: %s\n", argv[1], strerror(errno));
	return 2;
}
