/*
 * lib_selfloop PREFIX EVERY TOTAL OUT [STOP]: a computation that checkpoints itself.
 *
 * Runs TOTAL iterations of a hash; every EVERY iterations (0: never) it calls
 * ckpt_create on its own PID with CKPT_CHECKPOINT_CONT into PREFIX.K and prints
 * "checkpointed K" when running on, "restarted K" when restarted from it. At
 * the end it writes "result HASH" into the file OUT. An uninterrupted run and a
 * run killed and restarted from any of its statefiles write the same result.
 * With STOP, the run that checkpointed STOP waits there to be killed (a run
 * restarted from it goes on).
 */
#include <ckpt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

int main(int argc, char *argv[])
{
	unsigned long long hash = 1469598103934665603ULL;
	char path[4096];
	long every, total, i;
	FILE *out;

	if (argc != 5 && argc != 6) {
		fprintf(stderr, "usage: lib_selfloop PREFIX EVERY TOTAL OUT [STOP]\n");
		return 2;
	}
	setvbuf(stdout, NULL, _IOLBF, 0);
	signal(SIGPIPE, SIG_IGN);
	every = atol(argv[2]);
	total = atol(argv[3]);
	for (i = 1; i <= total; i++) {
		hash = (hash ^ (unsigned long long)i) * 1099511628211ULL;
		if (every > 0 && i % every == 0) {
			int rc;
			snprintf(path, sizeof path, "%s.%ld", argv[1], i / every);
			cpr_flags = CKPT_CHECKPOINT_CONT;
			rc = ckpt_create(path, getpid(), CKPT_PROCESS, 0, 0);
			if (rc < 0) {
				fprintf(stderr, "ckpt_create %s: %s\n", path, ckpt_errmsg());
				return 1;
			}
			printf("%s %ld\n", rc == CKPT_RESTARTED ? "restarted" : "checkpointed",
			       i / every);
			if (rc == 0 && argc == 6 && i / every == atol(argv[5]))
				for (;;)
					pause();
		}
	}
	if ((out = fopen(argv[4], "w")) == NULL)
		return perror(argv[4]), 1;
	fprintf(out, "result %llx\n", hash);
	fclose(out);
	return 0;
}
