/* POSIX message queues across checkpoint and restart.
 *
 * usage: posix_mq CTL ROLE NAME
 *   ROLE queue:   creates queue NAME (mode 0640, 6 messages of 64 bytes) with a
 *                 non-blocking read-write descriptor and sends, in order, (1 "one")
 *                 (5 "five") (1 "one-b") (0 "") (5 "five-b") (3 64 bytes 'y'); opens it
 *                 again read-only (blocking); registers for notification by SIGUSR1
 *                 with the value 4242; READY. After CTL/GO: checks the limits, flags,
 *                 mode and count, receives the six messages in priority order and
 *                 checks each, sends one to the empty queue and waits for its
 *                 notification (SIGUSR1, SI_MESGQ, value 4242): PASS.
 *   ROLE fork:    creates NAME (blocking), sends (2 "a"), forks a child that shares the
 *                 descriptor; READY. After CTL/GO the parent sends (7 "parent"); the
 *                 child, once the queue holds two messages, receives "parent" then "a"
 *                 through the inherited descriptor and exits 0; the parent checks
 *                 that: PASS.
 *   ROLE thread:  creates NAME and registers for notification with SIGEV_THREAD; READY.
 *   ROLE ignored: creates NAME, sends (1 "x"), ignores SIGUSR2 and registers for
 *                 notification by it; READY. After CTL/GO: checks it is still registered
 *                 and the message is there: PASS.
 *   ROLE removed: creates NAME (non-blocking), sends (1 "too") (4 "kept"), removes its
 *                 name; READY. After CTL/GO: checks the name is still gone, receives
 *                 "kept" then "too", and the queue is empty: PASS.
 * Every check failing prints "FAIL why".
 */
#include "wl.h"

#include <mqueue.h>
#include <signal.h>
#include <sys/wait.h>

struct sent {
    unsigned prio;
    const char *text;
};

static const struct sent sent[] = {{1, "one"}, {5, "five"}, {1, "one-b"},
                                   {0, ""},    {5, "five-b"}, {3, NULL}};
/* the order a receiver gets them: by priority, then as sent */
static const int order[] = {1, 4, 5, 0, 2, 3};

static volatile sig_atomic_t got_code, got_value, got;

static void on_usr1(int sig, siginfo_t *info, void *ctx) {
    (void)sig;
    (void)ctx;
    got_code = info->si_code;
    got_value = info->si_value.sival_int;
    got = 1;
}

static size_t body(int i, char *out) {
    if (sent[i].text) {
        strcpy(out, sent[i].text);
        return strlen(out);
    }
    memset(out, 'y', 64);
    return 64;
}

static mqd_t make(const char *name, int flags) {
    struct mq_attr attr = {.mq_maxmsg = 6, .mq_msgsize = 64};
    mqd_t q = mq_open(name, O_RDWR | O_CREAT | O_EXCL | flags, 0640, &attr);
    if (q < 0)
        wl_fail("mq_open %s (errno %d)", name, errno);
    return q;
}

/* (opening and closing the queue again would remove the registration: a close by the
 * registered process does) */
static void check_after(mqd_t q, mqd_t ro) {
    struct mq_attr a;
    if (mq_getattr(q, &a) < 0)
        wl_fail("mq_getattr (errno %d)", errno);
    if (a.mq_maxmsg != 6 || a.mq_msgsize != 64 || a.mq_curmsgs != 6 || !(a.mq_flags & O_NONBLOCK))
        wl_fail("attributes %ld %ld %ld %lx", a.mq_maxmsg, a.mq_msgsize, a.mq_curmsgs, a.mq_flags);
    if (mq_getattr(ro, &a) < 0 || (a.mq_flags & O_NONBLOCK))
        wl_fail("the read-only descriptor is non-blocking");
    if ((fcntl(ro, F_GETFL) & O_ACCMODE) != O_RDONLY)
        wl_fail("the second descriptor is not read-only");
    struct stat st;
    if (fstat(q, &st) < 0 || (st.st_mode & 0777) != 0640)
        wl_fail("mode %o", st.st_mode & 0777);
    for (int k = 0; k < 6; k++) {
        int i = order[k];
        char want[64], buf[64];
        unsigned prio;
        size_t n = body(i, want);
        ssize_t r = mq_receive(k % 2 ? ro : q, buf, sizeof buf, &prio);
        if (r < 0)
            wl_fail("mq_receive %d (errno %d)", k, errno);
        if ((size_t)r != n || memcmp(buf, want, n) != 0 || prio != sent[i].prio)
            wl_fail("message %d: %zd bytes, priority %u", k, r, prio);
    }
}

static int queue(const char *name) {
    struct sigaction sa = {.sa_sigaction = on_usr1, .sa_flags = SA_SIGINFO};
    sigaction(SIGUSR1, &sa, NULL);
    mqd_t q = make(name, O_NONBLOCK);
    for (int i = 0; i < 6; i++) {
        char buf[64];
        size_t n = body(i, buf);
        if (mq_send(q, buf, n, sent[i].prio) < 0)
            wl_fail("mq_send %d (errno %d)", i, errno);
    }
    mqd_t ro = mq_open(name, O_RDONLY);
    if (ro < 0)
        wl_fail("mq_open read-only (errno %d)", errno);
    struct sigevent ev = {.sigev_notify = SIGEV_SIGNAL, .sigev_signo = SIGUSR1};
    ev.sigev_value.sival_int = 4242;
    if (mq_notify(q, &ev) < 0)
        wl_fail("mq_notify (errno %d)", errno);
    wl_ready("queue");
    while (!wl_go())
        wl_sleep_ms(10);
    if (got)
        wl_fail("notified before the queue was empty");
    check_after(q, ro);
    if (mq_send(q, "ping", 4, 2) < 0)
        wl_fail("mq_send ping (errno %d)", errno);
    while (!got)
        wl_sleep_ms(10);
    if (got_code != SI_MESGQ || got_value != 4242)
        wl_fail("notification code %d value %d", (int)got_code, (int)got_value);
    wl_pass("queue");
    return 0;
}

static int fork_role(const char *name) {
    mqd_t q = make(name, 0);
    if (mq_send(q, "a", 1, 2) < 0)
        wl_fail("mq_send (errno %d)", errno);
    pid_t child = fork();
    if (child < 0)
        wl_fail("fork");
    if (child == 0) {
        char buf[64];
        unsigned prio;
        struct mq_attr a;
        /* until the parent has sent its message after GO */
        while (mq_getattr(q, &a) == 0 && a.mq_curmsgs < 2)
            wl_sleep_ms(10);
        ssize_t n;
        while ((n = mq_receive(q, buf, sizeof buf, &prio)) < 0 && errno == EINTR)
            ;
        if (n != 6 || memcmp(buf, "parent", 6) != 0 || prio != 7)
            _exit(3);
        if (mq_receive(q, buf, sizeof buf, &prio) != 1 || buf[0] != 'a' || prio != 2)
            _exit(4);
        _exit(0);
    }
    wl_ready("fork");
    while (!wl_go())
        wl_sleep_ms(10);
    if (mq_send(q, "parent", 6, 7) < 0)
        wl_fail("mq_send after restart (errno %d)", errno);
    int status;
    while (waitpid(child, &status, 0) < 0)
        if (errno != EINTR)
            wl_fail("waitpid (errno %d)", errno);
    if (!WIFEXITED(status) || WEXITSTATUS(status) != 0)
        wl_fail("the child failed (status %x)", status);
    wl_pass("fork");
    return 0;
}

static int removed(const char *name) {
    mqd_t q = make(name, O_NONBLOCK);
    if (mq_send(q, "too", 3, 1) < 0 || mq_send(q, "kept", 4, 4) < 0)
        wl_fail("mq_send (errno %d)", errno);
    if (mq_unlink(name) < 0)
        wl_fail("mq_unlink (errno %d)", errno);
    wl_ready("removed");
    while (!wl_go())
        wl_sleep_ms(10);
    if (mq_open(name, O_RDONLY) >= 0 || errno != ENOENT)
        wl_fail("the name is back");
    char buf[64];
    unsigned prio;
    if (mq_receive(q, buf, sizeof buf, &prio) != 4 || memcmp(buf, "kept", 4) || prio != 4)
        wl_fail("first message");
    if (mq_receive(q, buf, sizeof buf, &prio) != 3 || memcmp(buf, "too", 3) || prio != 1)
        wl_fail("second message");
    if (mq_receive(q, buf, sizeof buf, &prio) >= 0 || errno != EAGAIN)
        wl_fail("a message too many");
    wl_pass("removed");
    return 0;
}

static int ignored(const char *name) {
    mqd_t q = make(name, O_NONBLOCK);
    if (mq_send(q, "x", 1, 1) < 0)
        wl_fail("mq_send (errno %d)", errno);
    signal(SIGUSR2, SIG_IGN);
    struct sigevent ev = {.sigev_notify = SIGEV_SIGNAL, .sigev_signo = SIGUSR2};
    if (mq_notify(q, &ev) < 0)
        wl_fail("mq_notify (errno %d)", errno);
    wl_ready("ignored");
    while (!wl_go())
        wl_sleep_ms(10);
    if (mq_notify(q, &ev) == 0 || errno != EBUSY)
        wl_fail("no longer registered");
    struct mq_attr a;
    if (mq_getattr(q, &a) < 0 || a.mq_curmsgs != 1)
        wl_fail("the message is gone");
    wl_pass("ignored");
    return 0;
}

static void on_thread(union sigval v) {
    (void)v;
}

int main(int argc, char **argv) {
    wl_init(argc, argv, 3, "CTL ROLE NAME");
    wl_close_inherited();
    const char *role = argv[2], *name = argv[3];
    if (strcmp(role, "queue") == 0)
        return queue(name);
    if (strcmp(role, "fork") == 0)
        return fork_role(name);
    if (strcmp(role, "ignored") == 0)
        return ignored(name);
    if (strcmp(role, "thread") == 0) {
        mqd_t q = make(name, 0);
        struct sigevent ev = {.sigev_notify = SIGEV_THREAD, .sigev_notify_function = on_thread};
        if (mq_notify(q, &ev) < 0)
            wl_fail("mq_notify (errno %d)", errno);
    } else if (strcmp(role, "removed") == 0) {
        return removed(name);
    } else {
        wl_fail("unknown role %s", role);
    }
    wl_ready("%s", role);
    for (;;)
        pause();
}
