/* Holds an io_uring (or, where io_uring is disabled, a perf_event) descriptor: cpr must
 * refuse it. Prints READY and the object's kind, then sleeps. */
#define _GNU_SOURCE
#include <linux/perf_event.h>
#include <stdio.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>

/* descriptors inherited from the test harness (pipes to it) are not ours */
static void close_inherited(void) { close_range(3, ~0U, 0); }

int main(void) {
    close_inherited();
    unsigned char params[120];
    memset(params, 0, sizeof params);
    long fd = syscall(SYS_io_uring_setup, 4, params);
    const char *kind = "io_uring";
    if (fd < 0) {
        struct perf_event_attr a;
        memset(&a, 0, sizeof a);
        a.size = sizeof a;
        a.type = PERF_TYPE_SOFTWARE;
        a.config = PERF_COUNT_SW_TASK_CLOCK;
        a.disabled = 1;
        fd = syscall(SYS_perf_event_open, &a, 0, -1, -1, 0);
        kind = "perf_event";
    }
    if (fd < 0) {
        printf("FAIL no io_uring nor perf_event\n");
        return 1;
    }
    printf("READY %s\n", kind);
    fflush(stdout);
    for (;;) pause();
}
