/* ev_signalfd CTL: blocks SIGUSR1, reads it through a signalfd (blocking read, so the
 * checkpoint catches the process inside read). The test makes CTL/GO after restart, then sends
 * SIGUSR1 with sigqueue value 77. Prints PASS or FAIL. */
#include "wl.h"

#include <sys/signalfd.h>

int main(int argc, char **argv) {
    wl_close_inherited();
    wl_init(argc, argv, 1, "CTL");
    sigset_t m = wl_block(SIGUSR1);
    int sfd = signalfd(-1, &m, SFD_CLOEXEC);
    if (sfd < 0) {
        printf("FAIL signalfd\n");
        return 1;
    }
    wl_ready(NULL);
    struct signalfd_siginfo si;
    for (;;) {
        ssize_t n = read(sfd, &si, sizeof si);
        if (n != sizeof si) continue;
        if (si.ssi_signo != SIGUSR1) {
            printf("FAIL signal %u\n", si.ssi_signo);
            return 1;
        }
        if (!wl_go()) {
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
