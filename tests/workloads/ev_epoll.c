/* ev_epoll CTL: an epoll loop over an eventfd and a timerfd (50 ms interval).
 * Before the checkpoint it puts 5 in the eventfd (unread) and prints READY after 3 ticks.
 * Once CTL/GO exists (the test makes it after restart) it adds 37 to the
 * eventfd itself: epoll must report it with the eventfd's own data, the value read must
 * be 42, and the timer must go on firing. Prints PASS or FAIL. */
#include "wl.h"

#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/timerfd.h>

#define ECOOKIE 0xdeadbeefcafef00dULL
#define TCOOKIE 0x0123456789abcdefULL

int main(int argc, char **argv) {
    wl_close_inherited();
    wl_init(argc, argv, 1, "CTL");
    int efd = eventfd(0, EFD_NONBLOCK);
    int tfd = timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK | TFD_CLOEXEC);
    int ep = epoll_create1(EPOLL_CLOEXEC);
    struct itimerspec its = {{0, 50000000}, {0, 50000000}};
    if (efd < 0 || tfd < 0 || ep < 0 || timerfd_settime(tfd, 0, &its, NULL)) {
        printf("FAIL setup\n");
        return 1;
    }
    struct epoll_event ev = {.events = EPOLLIN | EPOLLET, .data.u64 = ECOOKIE};
    epoll_ctl(ep, EPOLL_CTL_ADD, efd, &ev);
    ev.events = EPOLLIN;
    ev.data.u64 = TCOOKIE;
    epoll_ctl(ep, EPOLL_CTL_ADD, tfd, &ev);
    eventfd_write(efd, 5);
    uint64_t total = 0, after = 0;
    int ready = 0, restarted = 0, got = 0;
    for (;;) {
        struct epoll_event evs[4];
        int n = epoll_wait(ep, evs, 4, -1);
        if (n < 0 && errno == EINTR) continue;
        if (n < 0) {
            printf("FAIL epoll_wait %d\n", errno);
            return 1;
        }
        for (int i = 0; i < n; i++) {
            if (evs[i].data.u64 == TCOOKIE) {
                uint64_t t;
                if (read(tfd, &t, 8) == 8) {
                    total += t;
                    if (restarted) after += t;
                }
            } else if (evs[i].data.u64 == ECOOKIE) {
                if (!restarted) continue; /* the 5 waits unread */
                eventfd_t v;
                if (eventfd_read(efd, &v) == 0) {
                    if (v != 42) {
                        printf("FAIL eventfd value %llu, want 42\n", (unsigned long long)v);
                        return 1;
                    }
                    got = 1;
                }
            } else {
                printf("FAIL unknown epoll data %llx\n", (unsigned long long)evs[i].data.u64);
                return 1;
            }
        }
        if (!ready && total >= 3) {
            ready = 1;
            wl_ready(NULL);
        }
        if (ready && !restarted && wl_go()) {
            restarted = 1;
            eventfd_write(efd, 37);
        }
        if (got && after >= 5) {
            printf("PASS ticks %llu after %llu\n", (unsigned long long)total,
                   (unsigned long long)after);
            return 0;
        }
    }
}
