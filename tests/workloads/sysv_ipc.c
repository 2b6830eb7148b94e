/* System V semaphore sets and message queues across checkpoint and restart.
 *
 * usage: sysv_ipc CTL ROLE KEY
 *   ROLE sem-a:   creates a set of 3 semaphores (KEY, mode 0640) with values 3 5 0 and
 *                 takes 1 from semaphore 0 (no SEM_UNDO); prints READY semid=N. After
 *                 CTL/GO: gives 1 to semaphore 2 (waking sem-b), waits until sem-b has
 *                 given back semaphore 1 (takes 5 and gives 5), PASS.
 *   ROLE sem-b:   started after sem-a's READY: takes 2 from semaphore 1 of KEY's set,
 *                 prints READY semid=N, then waits (blocked in semop, also across the
 *                 checkpoint) to take 1 from semaphore 2; then checks semaphore 1 is 3,
 *                 gives it 2 back and prints PASS.
 *   ROLE sem-undo: creates a set of 1 (KEY) with value 1, takes it with SEM_UNDO and
 *                 starts a second thread (which shares the undo list); READY; after
 *                 CTL/GO, PASS.
 *   ROLE undo-a:  creates a set of 2 (KEY, mode 0640) with values 2 5, takes 1 from
 *                 semaphore 0 and gives 3 to semaphore 1, both with SEM_UNDO (its
 *                 adjustments: +1 and -3); READY semid=N. After CTL/GO (undo-b has
 *                 taken its part): checks the values are 0 6, PASS, and exits, which
 *                 releases what it holds.
 *   ROLE undo-b:  started after undo-a's READY: takes 1 from semaphore 0 and 2 from
 *                 semaphore 1 with SEM_UNDO (+1, +2); READY semid=N. After CTL/GO:
 *                 waits until semaphore 0 rises (undo-a's exit gives its 1 back), gives
 *                 it back, checks semaphore 1 is 3 (undo-a's exit took its 3), PASS,
 *                 exits (the set ends at 2 5).
 *   ROLE give-undo: creates a set of 1 (KEY) with value 0 and gives it 1 with SEM_UNDO
 *                 (adjustment -1); READY semid=N; after CTL/GO, PASS.
 *   ROLE take:    joins KEY's set, READY semid=N, takes 1 from semaphore 0 (waiting
 *                 for it), PASS.
 *   ROLE msg:     creates a queue (KEY, mode 0640, msg_qbytes 4000) and sends, in order,
 *                 (1 "one") (2 "two") (1 "three") (3 "") (2 100 bytes 'x'); READY
 *                 msqid=N. After CTL/GO: checks the msqid, limit, mode and count, then
 *                 receives by type (2, 2, 1, 1, 3) and checks each body: PASS.
 * Every check failing prints "FAIL why".
 */
#include "wl.h"

#include <pthread.h>
#include <sys/ipc.h>
#include <sys/msg.h>
#include <sys/sem.h>

union semun {
    int val;
    struct semid_ds *buf;
    unsigned short *array;
};

static void nap(void) {
    wl_sleep_ms(10);
}

static void wait_go(void) {
    while (!wl_go())
        nap();
}

/* semop on one semaphore, again after EINTR (a checkpoint interrupts it) */
static void op(int id, int num, int delta, int flags) {
    struct sembuf sb = {(unsigned short)num, (short)delta, (short)flags};
    while (semop(id, &sb, 1) < 0)
        if (errno != EINTR)
            wl_fail("semop %d %+d (errno %d)", num, delta, errno);
}

static int sem_a(key_t key) {
    int id = semget(key, 3, IPC_CREAT | IPC_EXCL | 0640);
    if (id < 0)
        wl_fail("semget (errno %d)", errno);
    unsigned short init[3] = {3, 5, 0};
    union semun arg = {.array = init};
    if (semctl(id, 0, SETALL, arg) < 0)
        wl_fail("SETALL");
    op(id, 0, -1, 0);
    wl_ready("semid=%d", id);
    wait_go();
    if (semget(key, 0, 0) != id)
        wl_fail("semget(key) gives another semid");
    op(id, 2, 1, 0);
    op(id, 1, -5, 0); /* only once sem-b has given its 2 back */
    op(id, 1, 5, 0);
    if (semctl(id, 0, GETVAL) != 2)
        wl_fail("semaphore 0 is %d, not 2", semctl(id, 0, GETVAL));
    wl_pass("sem-a");
    return 0;
}

static int sem_b(key_t key) {
    int id = semget(key, 0, 0);
    if (id < 0)
        wl_fail("semget join (errno %d)", errno);
    op(id, 1, -2, 0);
    wl_ready("semid=%d", id);
    op(id, 2, -1, 0); /* blocks until sem-a gives, after restart */
    if (!wl_go())
        wl_fail("woken before GO");
    if (semctl(id, 1, GETVAL) != 3)
        wl_fail("semaphore 1 is %d, not 3", semctl(id, 1, GETVAL));
    op(id, 1, 2, 0);
    wl_pass("sem-b");
    return 0;
}

static void *idle(void *arg) {
    for (;;)
        pause();
    return arg;
}

static int sem_undo(key_t key) {
    int id = semget(key, 1, IPC_CREAT | IPC_EXCL | 0600);
    if (id < 0)
        wl_fail("semget (errno %d)", errno);
    union semun arg = {.val = 1};
    if (semctl(id, 0, SETVAL, arg) < 0)
        wl_fail("SETVAL");
    op(id, 0, -1, SEM_UNDO);
    pthread_t t;
    if (pthread_create(&t, NULL, idle, NULL) != 0)
        wl_fail("pthread_create");
    wl_ready("semid=%d", id);
    wait_go();
    wl_pass("sem-undo");
    return 0;
}

static int getval(int id, int num) {
    return semctl(id, num, GETVAL);
}

static int undo_a(key_t key) {
    int id = semget(key, 2, IPC_CREAT | IPC_EXCL | 0640);
    if (id < 0)
        wl_fail("semget (errno %d)", errno);
    unsigned short init[2] = {2, 5};
    union semun arg = {.array = init};
    if (semctl(id, 0, SETALL, arg) < 0)
        wl_fail("SETALL");
    op(id, 0, -1, SEM_UNDO);
    op(id, 1, 3, SEM_UNDO);
    wl_ready("semid=%d", id);
    wait_go();
    if (getval(id, 0) != 0 || getval(id, 1) != 6)
        wl_fail("values %d %d, not 0 6", getval(id, 0), getval(id, 1));
    wl_pass("undo-a");
    return 0;
}

static int undo_b(key_t key) {
    int id = semget(key, 0, 0);
    if (id < 0)
        wl_fail("semget join (errno %d)", errno);
    op(id, 0, -1, SEM_UNDO);
    op(id, 1, -2, SEM_UNDO);
    wl_ready("semid=%d", id);
    wait_go();
    op(id, 0, -1, 0); /* only once undo-a's exit has given its 1 back */
    op(id, 0, 1, 0);
    if (getval(id, 1) != 3)
        wl_fail("semaphore 1 is %d after undo-a's exit, not 3", getval(id, 1));
    wl_pass("undo-b");
    return 0;
}

struct message {
    long mtype;
    char text[200];
};

static const struct {
    long type;
    const char *text;
} sent[] = {{1, "one"}, {2, "two"}, {1, "three"}, {3, ""}, {2, NULL}};

static size_t body(int i, char *out) {
    if (sent[i].text) {
        strcpy(out, sent[i].text);
        return strlen(out);
    }
    memset(out, 'x', 100);
    return 100;
}

static int msg(key_t key) {
    int id = msgget(key, IPC_CREAT | IPC_EXCL | 0640);
    if (id < 0)
        wl_fail("msgget (errno %d)", errno);
    struct msqid_ds ds;
    if (msgctl(id, IPC_STAT, &ds) < 0)
        wl_fail("IPC_STAT");
    ds.msg_qbytes = 4000;
    if (msgctl(id, IPC_SET, &ds) < 0)
        wl_fail("IPC_SET");
    struct message m;
    for (int i = 0; i < 5; i++) {
        m.mtype = sent[i].type;
        size_t n = body(i, m.text);
        if (msgsnd(id, &m, n, IPC_NOWAIT) < 0)
            wl_fail("msgsnd %d (errno %d)", i, errno);
    }
    wl_ready("msqid=%d", id);
    wait_go();
    if (msgget(key, 0) != id)
        wl_fail("msgget(key) gives another msqid");
    if (msgctl(id, IPC_STAT, &ds) < 0)
        wl_fail("IPC_STAT after restart (errno %d)", errno);
    if (ds.msg_qbytes != 4000)
        wl_fail("msg_qbytes %lu", (unsigned long)ds.msg_qbytes);
    if ((ds.msg_perm.mode & 0777) != 0640)
        wl_fail("mode %o", ds.msg_perm.mode);
    if (ds.msg_qnum != 5)
        wl_fail("%lu messages, not 5", (unsigned long)ds.msg_qnum);
    /* by type: the order within a type is the order sent */
    static const int order[] = {1, 4, 0, 2, 3};
    for (int k = 0; k < 5; k++) {
        int i = order[k];
        char want[200];
        size_t n = body(i, want);
        ssize_t got = msgrcv(id, &m, sizeof m.text, sent[i].type, IPC_NOWAIT);
        if (got < 0)
            wl_fail("msgrcv type %ld (errno %d)", sent[i].type, errno);
        if ((size_t)got != n || memcmp(m.text, want, n) != 0 || m.mtype != sent[i].type)
            wl_fail("message %d differs", i);
    }
    if (msgrcv(id, &m, sizeof m.text, 0, IPC_NOWAIT) >= 0 || errno != ENOMSG)
        wl_fail("a message too many");
    wl_pass("msg");
    return 0;
}

int main(int argc, char **argv) {
    wl_init(argc, argv, 3, "CTL ROLE KEY");
    wl_close_inherited();
    const char *role = argv[2];
    key_t key = (key_t)strtoul(argv[3], NULL, 16);
    if (strcmp(role, "sem-a") == 0)
        return sem_a(key);
    if (strcmp(role, "sem-b") == 0)
        return sem_b(key);
    if (strcmp(role, "sem-undo") == 0)
        return sem_undo(key);
    if (strcmp(role, "undo-a") == 0)
        return undo_a(key);
    if (strcmp(role, "undo-b") == 0)
        return undo_b(key);
    if (strcmp(role, "give-undo") == 0) {
        int id = semget(key, 1, IPC_CREAT | IPC_EXCL | 0600);
        if (id < 0)
            wl_fail("semget (errno %d)", errno);
        op(id, 0, 1, SEM_UNDO);
        wl_ready("semid=%d", id);
        wait_go();
        wl_pass("give-undo");
        return 0;
    }
    if (strcmp(role, "take") == 0) {
        int id = semget(key, 0, 0);
        if (id < 0)
            wl_fail("semget join (errno %d)", errno);
        wl_ready("semid=%d", id);
        op(id, 0, -1, 0);
        wl_pass("take");
        return 0;
    }
    if (strcmp(role, "msg") == 0)
        return msg(key);
    wl_fail("unknown role %s", role);
    return 1;
}
