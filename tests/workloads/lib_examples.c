/*
 * lib_examples: the examples of chapter 3 of the IRIX CPR guide, made runnable.
 *
 *   lib_examples handlers FILE   3-1 to 3-4: event handlers. FILE stands in for
 *                                the CD-ROM file and a socketpair for the socket.
 *                                Prints "ready"; each input line reads and prints
 *                                the next 4 bytes of FILE; "quit" ends it.
 *   lib_examples create PATH ID TYPE [cont|kill]   3-5 ckpt_create
 *   lib_examples restart PATH    3-6 ckpt_restart
 *   lib_examples stat PATH       3-7 ckpt_stat
 *   lib_examples remove PATH     3-8 ckpt_remove
 *   lib_examples setup           3-9 ckpt_setup
 *
 * Exit status 0 on success; on failure 1, with errno and ckpt_errmsg() on stderr.
 */
#include <ckpt.h>
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

static void say(const char *s)
{
	ssize_t rc = write(1, s, strlen(s));
	(void)rc;
}

/* ---- Examples 3-1 to 3-4 ---- */

static char *cdFile;
static FILE *fpCD;
static long cdOffset;
static int sock = -1, peer = -1;

/* Example 3-2: remember the offset, close the file (no umount, no exit here:
 * the program runs on after a CONT checkpoint). */
static void catchCKPT(void)
{
	char buf[64];
	cdOffset = ftell(fpCD);
	fclose(fpCD);
	fpCD = NULL;
	snprintf(buf, sizeof buf, "checkpoint: closed at offset %ld\n", cdOffset);
	say(buf);
}

/* Example 3-3: a time-out around closing the socket. */
static void ckptSocket(void)
{
	alarm(60);
	close(sock);
	close(peer);
	sock = peer = -1;
	alarm(0);
	say("checkpoint: socket closed\n");
}

/* Example 3-4: reopen and seek back. */
static void catchRESTART(void)
{
	char buf[64];
	if (access(cdFile, R_OK) == -1)
		perror("please insert CDROM"), exit(1);
	if ((fpCD = fopen(cdFile, "r")) == NULL)
		perror("cannot open cdFile"), exit(1);
	if (fseek(fpCD, cdOffset, SEEK_SET))
		perror("cannot seek to cdOffset"), exit(1);
	snprintf(buf, sizeof buf, "restart: reopened at offset %ld\n", cdOffset);
	say(buf);
}

static void restartSocket(void)
{
	int sv[2];
	if (socketpair(AF_UNIX, SOCK_STREAM, 0, sv) == 0) {
		sock = sv[0];
		peer = sv[1];
	}
	say("restart: socket reconnected\n");
}

/* Example 3-1 */
static int handlers(char *file)
{
	int sv[2];
	char line[64], data[5];

	cdFile = file;
	if ((fpCD = fopen(cdFile, "r")) == NULL)
		return perror(cdFile), 1;
	if (socketpair(AF_UNIX, SOCK_STREAM, 0, sv) == 0) {
		sock = sv[0];
		peer = sv[1];
	}
	if ((atcheckpoint(catchCKPT) == -1) ||
	    (atcheckpoint(ckptSocket) == -1) ||
	    (atrestart(catchRESTART) == -1) ||
	    (atrestart(restartSocket) == -1))
		perror("Cannot setup checkpoint and restart handling");
	say("ready\n");
	for (;;) {
		ssize_t n = read(0, line, sizeof line - 1);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0 || strncmp(line, "quit", 4) == 0)
			break;
		if (fpCD == NULL) {
			say("file: closed\n");
			continue;
		}
		size_t got = fread(data, 1, 4, fpCD);
		data[got] = 0;
		snprintf(line, sizeof line, "data: %s\n", data);
		say(line);
	}
	return 0;
}

/* ---- Example 3-5 ---- */
static int do_checkpoint(ckpt_id_t id, u_long type, char *pathname)
{
	int rc;
	printf("Checkpointing id %lld (type %s) to directory %s\n",
	       (long long)id, ckpt_type_str(CKPT_REAL_TYPE(type)), pathname);
	if ((rc = ckpt_create(pathname, id, type, 0, 0)) < 0) {
		printf("Failed to checkpoint process %lld\n", (long long)id);
		return (rc);
	}
	if (rc == CKPT_RESTARTED)
		printf("Restarted from %s\n", pathname);
	return (0);
}

/* ---- Example 3-6 ---- */
static int do_restart(char *path)
{
	printf("Restarting processes from directory %s\n", path);
	if (ckpt_restart(path, 0, 0) < 0) {
		printf("Restart %s failed\n", path);
		return (-1);
	}
	return (0);
}

/* ---- Example 3-7 ---- */
static const char *rev_to_str(long rev)
{
	static char buf[32];
	snprintf(buf, sizeof buf, "revision %ld", rev);
	return buf;
}

static int ckpt_info(char *path)
{
	ckpt_stat_t *sp, *sp_next;
	int rc;

	if ((rc = ckpt_stat(path, &sp)) != 0) {
		printf("Cannot get information on CPR file %s\n", path);
		return (rc);
	}
	printf("\nInformation About Statefile %s (%s):\n",
	       path, rev_to_str(sp ? sp->cs_revision : 0));
	while (sp) {
		printf(" Process:\t\t%s\n", sp->cs_psargs);
		printf(" PID,PPID:\t\t%d,%d\n", sp->cs_pid, sp->cs_ppid);
		printf(" PGRP,SID:\t\t%d,%d\n", sp->cs_pgrp, sp->cs_sid);
		printf(" Working at dir:\t%s\n", sp->cs_cdir);
		printf(" Num of Openfiles:\t%d\n", sp->cs_nfiles);
		printf(" Checkpointed @\t%s", ctime(&sp->cs_stat.st_mtime));
		sp_next = sp->cs_next;
		free(sp);
		sp = sp_next;
	}
	return (0);
}

/* ---- Example 3-8 ---- */
static int do_remove(char *path)
{
	int rc = 0;
	if ((rc = ckpt_remove(path)) != 0) {
		printf("Remove checkpoint statefile %s failed\n", path);
		return (rc);
	}
	return (0);
}

int main(int argc, char *argv[])
{
	int rc;

	setvbuf(stdout, NULL, _IOLBF, 0);
	signal(SIGPIPE, SIG_IGN);
	if (argc == 3 && strcmp(argv[1], "handlers") == 0)
		return handlers(argv[2]);
	if (argc >= 5 && strcmp(argv[1], "create") == 0) {
		if (argc > 5 && strcmp(argv[5], "cont") == 0)
			cpr_flags |= CKPT_CHECKPOINT_CONT;
		if (argc > 5 && strcmp(argv[5], "kill") == 0)
			cpr_flags |= CKPT_CHECKPOINT_KILL;
		rc = do_checkpoint(atoll(argv[3]), strtoul(argv[4], 0, 0), argv[2]);
	} else if (argc == 3 && strcmp(argv[1], "restart") == 0) {
		rc = do_restart(argv[2]);
	} else if (argc == 3 && strcmp(argv[1], "stat") == 0) {
		rc = ckpt_info(argv[2]);
	} else if (argc == 3 && strcmp(argv[1], "remove") == 0) {
		rc = do_remove(argv[2]);
	} else if (argc == 2 && strcmp(argv[1], "setup") == 0) {
		rc = ckpt_setup(0, 0);
	} else {
		fprintf(stderr, "usage: see the comment at the top of lib_examples.c\n");
		return 2;
	}
	if (rc != 0) {
		int e = errno;
		fprintf(stderr, "errno %d (%s): %s\n", e, ckpt_strerror(e), ckpt_errmsg());
		return 1;
	}
	return 0;
}
