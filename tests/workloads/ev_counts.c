/* ev_counts CTL: eventfds whose counts need the kernel's hexadecimal fdinfo read as such
 * (/proc/PID/fdinfo shows eventfd-count in hex: 26 is "1a", 16 is "10"). Before the
 * checkpoint it puts 16, 26, 1000 and 2^64-2 (the largest count) in four eventfds, 26
 * in a semaphore eventfd, and leaves one at 0; none is read. Once CTL/GO exists (made
 * after restart) every count must read back exactly: the plain ones in one read, the
 * semaphore one as 26 reads of 1, and the empty ones not at all. Prints PASS or FAIL. */
#include "wl.h"

#include <sys/eventfd.h>

static const uint64_t counts[] = {16, 26, 1000, UINT64_MAX - 1, 0};
#define N (sizeof counts / sizeof counts[0])
#define SEM_COUNT 26

int main(int argc, char **argv) {
    wl_close_inherited();
    wl_init(argc, argv, 1, "CTL");
    int fds[N];
    for (size_t i = 0; i < N; i++) {
        fds[i] = eventfd(0, EFD_NONBLOCK);
        if (fds[i] < 0 || (counts[i] && eventfd_write(fds[i], counts[i])))
            wl_fail("setup eventfd %zu: %s", i, strerror(errno));
    }
    int sem = eventfd(0, EFD_NONBLOCK | EFD_SEMAPHORE);
    if (sem < 0 || eventfd_write(sem, SEM_COUNT))
        wl_fail("setup semaphore eventfd: %s", strerror(errno));
    wl_ready("fds=%d..%d sem=%d", fds[0], fds[N - 1], sem);
    while (!wl_go())
        wl_sleep_ms(10);
    for (size_t i = 0; i < N; i++) {
        eventfd_t v = 0;
        int rc = eventfd_read(fds[i], &v);
        if (counts[i] == 0) {
            if (rc == 0 || errno != EAGAIN)
                wl_fail("empty eventfd %d read %" PRIu64 " (rc %d)", fds[i], v, rc);
        } else if (rc != 0) {
            wl_fail("eventfd %d: %s, want %" PRIu64, fds[i], strerror(errno), counts[i]);
        } else if (v != counts[i]) {
            wl_fail("eventfd %d count %" PRIu64 " (%" PRIx64 "), want %" PRIu64 " (%" PRIx64 ")",
                    fds[i], v, v, counts[i], counts[i]);
        }
    }
    int reads = 0;
    eventfd_t v;
    while (eventfd_read(sem, &v) == 0) {
        if (v != 1)
            wl_fail("semaphore eventfd read %" PRIu64 ", want 1", v);
        reads++;
    }
    if (errno != EAGAIN || reads != SEM_COUNT)
        wl_fail("semaphore eventfd gave %d reads (%s), want %d", reads, strerror(errno),
                SEM_COUNT);
    wl_pass("counts 16 26 1000 2^64-2 0, semaphore %d", reads);
}
