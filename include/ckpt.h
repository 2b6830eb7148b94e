/*
 * ckpt.h - the checkpoint and restart programming interface of libcpr
 * (IRIX CPR compatible; see ckpt_create(3) and atcheckpoint(3)).
 *
 * Link with -lcpr.
 */
#ifndef _CKPT_H
#define _CKPT_H

#include <stddef.h>
#include <stdint.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <time.h>

#ifdef __cplusplus
extern "C" {
#endif

/*
 * The two signals of checkpoint-aware programs. Both are Linux real-time
 * signals (glibc keeps 32 and 33 for itself); their default action would end
 * the process, so cpr sends them only to processes that catch them, which
 * atcheckpoint() and atrestart() arrange. Do not catch them directly.
 */
#define SIGCKPT    62 /* SIGRTMAX - 2: a checkpoint is about to be taken */
#define SIGRESTART 63 /* SIGRTMAX - 1: the process has just been restarted */

/* The ID of a process set, read according to its type. */
typedef int64_t ckpt_id_t;

/* ID types (the cpr -p designator types). */
#define CKPT_PROCESS   1 /* a process: PID */
#define CKPT_PGROUP    2 /* a process group: GID */
#define CKPT_SESSION   3 /* a session: SID */
#define CKPT_ARSESSION 4 /* an IRIX array session: ASH (refused on Linux) */
#define CKPT_HIERARCHY 5 /* the process tree rooted at the process: HID */
#define CKPT_SGROUP    6 /* processes sharing an address space: SGP */
#define CKPT_JOB       7 /* an IRIX job: JID (refused on Linux) */

/* The bits of a type that name the ID type; the others are reserved. */
#define CKPT_TYPE_MASK    0xffUL
#define CKPT_REAL_TYPE(t) ((unsigned long)(t) & CKPT_TYPE_MASK)

/* "PID", "GID", "SID", "ASH", "HID", "SGP", "JID", or "unknown". */
const char *ckpt_type_str(unsigned long type);

/* Options of the next ckpt_create() or ckpt_restart(), ORed together. */
extern unsigned long cpr_flags;
#define CKPT_CHECKPOINT_CONT     0x01UL /* targets run on (WILL: CONT) */
#define CKPT_CHECKPOINT_KILL     0x02UL /* targets are killed (WILL: KILL) */
#define CKPT_CHECKPOINT_UPGRADE  0x04UL /* also save executables, libraries */
#define CKPT_OPENFILE_DISTRIBUTE 0x08UL /* open files saved as NAME.ckpt.pidPID */
#define CKPT_RESTART_INTERACTIVE 0x10UL /* restart as a job-controlled job */

/* Optional arguments of ckpt_create() and ckpt_restart(). */
struct ckpt_args {
	unsigned long ckpt_type; /* CKPT_ARG_... */
	const void *ckpt_data;   /* what it points to depends on ckpt_type */
};
/* ckpt_data: const struct timespec *, how long SIGCKPT handlers may take
 * (default 60 s); a handler still running then fails the checkpoint. */
#define CKPT_ARG_TIMEOUT  1
/* ckpt_data: const char *, the attribute file to use instead of $HOME/.cpr */
#define CKPT_ARG_ATTRFILE 2

/* Returned by ckpt_create() and ckpt_poll() in a process that has just been
 * restarted from the checkpoint it asked for; 0 means "running on". */
#define CKPT_RESTARTED 1

/*
 * Errors, in errno. Besides the system's values (EACCES, EBUSY, EEXIST,
 * EINVAL, ELOOP, ENOENT, ENOTDIR, ENAMETOOLONG, ENOSPC, EPERM, EROFS, ESRCH,
 * EAGAIN, EDEADLK, ENOMEM, ENOSYS): ECKPT, "Checkpoint error", an object that
 * cannot be checkpointed or restarted, or a checkpoint refused for good.
 */
#define ECKPT 200
/* errno's text, "Checkpoint error" for ECKPT. */
const char *ckpt_strerror(int err);
/* The whole message of this thread's last failure (statefile, process, why). */
const char *ckpt_errmsg(void);

/* ckpt_stat(): one entry per process saved in a statefile. */
#define CKPT_PSARGSZ    80
#define CKPT_MAXPATHLEN 4096
typedef struct ckpt_stat {
	struct ckpt_stat *cs_next;   /* the next process, or NULL */
	long cs_revision;            /* statefile format revision */
	pid_t cs_pid, cs_ppid;       /* as at checkpoint time */
	pid_t cs_pgrp, cs_sid;
	uid_t cs_uid;                /* real user and group */
	gid_t cs_gid;
	int cs_nfiles;               /* open files */
	int cs_nthreads;
	time_t cs_time;              /* when the checkpoint was taken */
	struct stat cs_stat;         /* of the statefile; st_mtime = cs_time */
	char cs_comm[16];            /* command name */
	char cs_psargs[CKPT_PSARGSZ];/* command line, as ps shows it */
	char cs_cdir[CKPT_MAXPATHLEN]; /* working directory */
} ckpt_stat_t;

int ckpt_create(const char *path, ckpt_id_t id, unsigned long type,
		struct ckpt_args *args[], size_t nargs);
int ckpt_restart(const char *path, struct ckpt_args *args[], size_t nargs);
int ckpt_stat(const char *path, ckpt_stat_t **list);
int ckpt_remove(const char *path);
int ckpt_setup(struct ckpt_args *args[], size_t nargs);

/* A checkpoint in the background: request it, then wait for it. */
typedef long ckpt_handle_t;
int ckpt_request(const char *path, ckpt_id_t id, unsigned long type,
		 struct ckpt_args *args[], size_t nargs, ckpt_handle_t *handle);
/* timeout NULL: wait until done. -1/ETIMEDOUT: not done yet, poll again. */
int ckpt_poll(ckpt_handle_t *handle, const struct timespec *timeout);

/* Checkpoint and restart event handlers, called first-in-first-out. */
int atcheckpoint(void (*fn)(void));
int atrestart(void (*fn)(void));

/* From an atcheckpoint() function: refuse this checkpoint (CKPT_ETEMPFAIL),
 * or this and every later one (CKPT_EPERMFAIL, also allowed elsewhere). */
#define CKPT_ETEMPFAIL 1
#define CKPT_EPERMFAIL 2
int ckpt_refuse(int how);

/* Critical sections: a checkpoint requested inside one waits until the
 * program has left them all. They nest. */
int ckpt_enter_cs(void);
int ckpt_leave_cs(void);

/* CKPT_STATE_PENDING while a checkpoint waits for the critical sections. */
#define CKPT_STATE_IDLE    0
#define CKPT_STATE_PENDING 1
int ckpt_status(void);

#ifdef __cplusplus
}
#endif

#endif /* _CKPT_H */
