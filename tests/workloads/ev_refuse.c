/* ev_refuse CTL: holds an io_uring (or, where io_uring is disabled, a perf_event)
 * descriptor: cpr must refuse it. Prints "READY <pid> kind=<kind>", then sleeps. */
#include "wl.h"

#include <linux/perf_event.h>
#include <sys/syscall.h>

int main(int argc, char **argv) {
    wl_close_inherited();
    wl_init(argc, argv, 1, "CTL");
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
    wl_ready("kind=%s", kind);
    for (;;) pause();
}
