/* Blocks SIGUSR1, reads it through a signalfd (blocking read, so the checkpoint catches
 * the process inside read). The test makes the file argv[1] after restart, then sends
 * SIGUSR1 with sigqueue value 77. Prints PASS or FAIL. */
#define _GNU_SOURCE
#include <signal.h>
#include <stdio.h>
#include <sys/signalfd.h>
#include <unistd.h>

/* descriptors inherited from the test harness (pipes to it) are not ours */
static void close_inherited(void) { close_range(3, ~0U, 0); }

int main(int argc, char **argv) {
    close_inherited();
    if (argc < 2) return 2;
    sigset_t m;
    sigemptyset(&m);
    sigaddset(&m, SIGUSR1);
    sigprocmask(SIG_BLOCK, &m, NULL);
    int sfd = signalfd(-1, &m, SFD_CLOEXEC);
    if (sfd < 0) {
        printf("FAIL signalfd\n");
        return 1;
    }
    printf("READY\n");
    fflush(stdout);
    struct signalfd_siginfo si;
    for (;;) {
        ssize_t n = read(sfd, &si, sizeof si);
        if (n != sizeof si) continue;
        if (si.ssi_signo != SIGUSR1) {
            printf("FAIL signal %u\n", si.ssi_signo);
            return 1;
        }
        if (access(argv[1], F_OK) != 0) {
            printf("FAIL signal before restart\n");
            return 1;
        }
        if (si.ssi_int != 77) {
            printf("FAIL value %d\n", si.ssi_int);
            return 1;
        }
        printf("PASS\n");
        return 0;
    }
}
