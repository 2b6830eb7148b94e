/* ev_ptimer CTL: POSIX timers: a deleted one (so IDs are not simply 0, 1), a disarmed one, and a
 * periodic one (first in 400 ms, then every 200 ms) signalling SIGUSR2 with value 1234.
 * Once CTL/GO exists (made after restart) a timer signal must come with the
 * right value and timer ID, the timer IDs must still be valid, the disarmed one still
 * disarmed and the interval kept. Prints PASS or FAIL. */
#include "wl.h"

int main(int argc, char **argv) {
    wl_close_inherited();
    wl_init(argc, argv, 1, "CTL");
    sigset_t m = wl_block(SIGUSR2);
    timer_t gone, idle, tick;
    struct sigevent se = {0};
    se.sigev_notify = SIGEV_SIGNAL;
    se.sigev_signo = SIGUSR2;
    se.sigev_value.sival_int = 1234;
    if (timer_create(CLOCK_MONOTONIC, NULL, &gone) || timer_create(CLOCK_REALTIME, NULL, &idle) ||
        timer_create(CLOCK_MONOTONIC, &se, &tick) || timer_delete(gone)) {
        printf("FAIL setup\n");
        return 1;
    }
    struct itimerspec its = {{0, 200000000}, {0, 400000000}};
    timer_settime(tick, 0, &its, NULL);
    wl_ready("ids %ld %ld", (long)(intptr_t)idle, (long)(intptr_t)tick);
    unsigned fired = 0;
    for (;;) {
        siginfo_t si;
        if (sigwaitinfo(&m, &si) != SIGUSR2) continue;
        fired++;
        if (si.si_value.sival_int != 1234 || si.si_code != SI_TIMER) {
            printf("FAIL siginfo value %d code %d\n", si.si_value.sival_int, si.si_code);
            return 1;
        }
        if (!wl_go()) continue;
        struct itimerspec cur, none;
        if (timer_gettime(tick, &cur) || timer_gettime(idle, &none)) {
            printf("FAIL timer IDs lost\n");
            return 1;
        }
        if (si.si_timerid != (int)(intptr_t)tick) {
            printf("FAIL timer id %d want %ld\n", si.si_timerid, (long)(intptr_t)tick);
            return 1;
        }
        if (cur.it_interval.tv_sec != 0 || cur.it_interval.tv_nsec != 200000000) {
            printf("FAIL interval %ld.%09ld\n", (long)cur.it_interval.tv_sec,
                   cur.it_interval.tv_nsec);
            return 1;
        }
        if (none.it_value.tv_sec || none.it_value.tv_nsec) {
            printf("FAIL idle timer armed\n");
            return 1;
        }
        printf("PASS fired %u\n", fired);
        return 0;
    }
}
