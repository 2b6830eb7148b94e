/* File locks across a checkpoint.
 *
 * lk_locks CTL run
 *     flock(LOCK_EX) on CTL/a, a POSIX write lock on bytes 100-199 of CTL/b, an OFD read
 *     lock on all of CTL/c; checks from a child that others see them; prints READY; waits
 *     until CTL/GO exists; checks again; prints PASS or "FAIL: why".
 * lk_locks CTL run mmap
 *     the same, with CTL/b also mapped (a restart must not lose the POSIX lock when it
 *     closes the descriptor it used to map the file).
 * lk_locks CTL hold flock|posix|ofd
 *     takes a lock that conflicts with the one `run` holds of that kind, prints
 *     "HELD <pid>" and sleeps until killed.
 */
#include "wl.h"

#include <sys/file.h>
#include <sys/mman.h>
#include <sys/wait.h>

static const char *at(const char *name) {
    static char buf[3][4200];
    static int next;
    char *b = buf[next++ % 3];
    wl_path(b, sizeof buf[0], name);
    return b;
}

static int open_or_die(const char *name) {
    int fd = open(at(name), O_RDWR | O_CREAT, 0644);
    if (fd < 0) {
        printf("FAIL: open %s: %s\n", name, strerror(errno));
        exit(1);
    }
    return fd;
}

static void nap(void) {
    struct timespec ts = {0, 10 * 1000 * 1000};
    nanosleep(&ts, NULL);
}

static struct flock range(short type, off_t start, off_t len) {
    struct flock fl;
    memset(&fl, 0, sizeof fl);
    fl.l_type = type;
    fl.l_whence = SEEK_SET;
    fl.l_start = start;
    fl.l_len = len;
    return fl;
}

#define CHECK(cond, ...)                \
    do {                                \
        if (!(cond)) {                  \
            printf("FAIL: " __VA_ARGS__); \
            printf("\n");               \
            return 1;                   \
        }                               \
    } while (0)

/* In a child: another process, with descriptions of its own. */
static int others_see_the_locks(pid_t holder) {
    int a = open(at("a"), O_RDONLY);
    int b = open(at("b"), O_RDWR);
    int c = open(at("c"), O_RDWR);
    CHECK(a >= 0 && b >= 0 && c >= 0, "open: %s", strerror(errno));

    int r = flock(a, LOCK_SH | LOCK_NB);
    CHECK(r < 0 && errno == EWOULDBLOCK, "flock on a is not held (%s)",
          r == 0 ? "LOCK_SH taken" : strerror(errno));

    struct flock fl = range(F_RDLCK, 150, 1);
    CHECK(fcntl(b, F_GETLK, &fl) == 0, "F_GETLK: %s", strerror(errno));
    CHECK(fl.l_type == F_WRLCK && fl.l_start == 100 && fl.l_len == 100 && fl.l_pid == holder,
          "POSIX lock on b: type %d %lld+%lld pid %d, want write 100+100 pid %d", fl.l_type,
          (long long)fl.l_start, (long long)fl.l_len, fl.l_pid, holder);
    fl = range(F_WRLCK, 0, 100);
    CHECK(fcntl(b, F_GETLK, &fl) == 0 && fl.l_type == F_UNLCK, "b is locked below 100");
    fl = range(F_WRLCK, 200, 0);
    CHECK(fcntl(b, F_GETLK, &fl) == 0 && fl.l_type == F_UNLCK, "b is locked from 200");

    fl = range(F_WRLCK, 0, 0);
    CHECK(fcntl(c, F_OFD_GETLK, &fl) == 0, "F_OFD_GETLK: %s", strerror(errno));
    CHECK(fl.l_type == F_RDLCK && fl.l_start == 0 && fl.l_len == 0 && fl.l_pid == -1,
          "OFD lock on c: type %d %lld+%lld pid %d, want read 0+0 pid -1", fl.l_type,
          (long long)fl.l_start, (long long)fl.l_len, fl.l_pid);
    fl = range(F_RDLCK, 0, 0);
    CHECK(fcntl(c, F_OFD_GETLK, &fl) == 0 && fl.l_type == F_UNLCK,
          "the OFD lock on c is not a read lock");
    return 0;
}

static int check(void) {
    fflush(stdout);
    pid_t me = getpid();
    pid_t child = fork();
    if (child < 0) {
        printf("FAIL: fork: %s\n", strerror(errno));
        return 0;
    }
    if (child == 0) {
        int r = others_see_the_locks(me);
        fflush(stdout);
        _exit(r);
    }
    int status;
    if (waitpid(child, &status, 0) != child) {
        printf("FAIL: waitpid: %s\n", strerror(errno));
        return 0;
    }
    if (WIFEXITED(status) && WEXITSTATUS(status) == 0)
        return 1;
    if (!WIFEXITED(status))
        printf("FAIL: the checking child ended by signal %d\n", WTERMSIG(status));
    return 0;
}

static int run(int map) {
    int a = open_or_die("a"), b = open_or_die("b"), c = open_or_die("c");
    if (map) {
        if (ftruncate(b, 4096) < 0 ||
            mmap(NULL, 4096, PROT_READ, MAP_SHARED, b, 0) == MAP_FAILED) {
            printf("FAIL: mapping b: %s\n", strerror(errno));
            return 1;
        }
    }
    if (flock(a, LOCK_EX | LOCK_NB) < 0) {
        printf("FAIL: flock: %s\n", strerror(errno));
        return 1;
    }
    struct flock fl = range(F_WRLCK, 100, 100);
    if (fcntl(b, F_SETLK, &fl) < 0) {
        printf("FAIL: F_SETLK: %s\n", strerror(errno));
        return 1;
    }
    fl = range(F_RDLCK, 0, 0);
    if (fcntl(c, F_OFD_SETLK, &fl) < 0) {
        printf("FAIL: F_OFD_SETLK: %s\n", strerror(errno));
        return 1;
    }
    if (!check())
        return 1;
    wl_ready(NULL);
    while (!wl_go())
        nap();
    if (!check())
        return 1;
    printf("PASS\n");
    return 0;
}

static int hold(const char *what) {
    int r = -1;
    if (strcmp(what, "flock") == 0) {
        r = flock(open_or_die("a"), LOCK_SH | LOCK_NB);
    } else if (strcmp(what, "posix") == 0) {
        struct flock fl = range(F_WRLCK, 150, 10);
        r = fcntl(open_or_die("b"), F_SETLK, &fl);
    } else if (strcmp(what, "ofd") == 0) {
        struct flock fl = range(F_WRLCK, 0, 0);
        r = fcntl(open_or_die("c"), F_OFD_SETLK, &fl);
    }
    if (r < 0) {
        printf("FAIL: hold %s: %s\n", what, strerror(errno));
        return 1;
    }
    printf("HELD %d\n", (int)getpid());
    fflush(stdout);
    for (;;)
        pause();
}

int main(int argc, char **argv) {
    wl_init(argc, argv, 2, "CTL run [mmap] | CTL hold flock|posix|ofd");
    wl_close_inherited();
    if (strcmp(argv[2], "run") == 0)
        return run(argc == 4 && strcmp(argv[3], "mmap") == 0);
    if (strcmp(argv[2], "hold") == 0 && argc == 4)
        return hold(argv[3]);
    fprintf(stderr, "lk_locks: bad arguments\n");
    return 2;
}
