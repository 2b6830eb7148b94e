/* ev_watches CTL DIR: one inotify instance with watches 1..20, on the directories DIR/d1
 * .. DIR/d20 it makes (watch i on DIR/di), then watches 2, 11 and 15 removed: /proc shows
 * watch descriptors in hexadecimal ("wd:a" is 10, "wd:10" is 16), and restart has to
 * skip the removed numbers. Once CTL/GO exists (made after restart) it creates DIR/di/ni
 * in every directory: each kept watch i must report exactly one IN_CREATE, named ni and
 * with wd i, and the removed ones none. Prints PASS or FAIL. */
#include "wl.h"

#include <limits.h>
#include <poll.h>
#include <sys/inotify.h>

#define WATCHES 20

static int removed(int i) {
    return i == 2 || i == 11 || i == 15;
}

int main(int argc, char **argv) {
    wl_close_inherited();
    wl_init(argc, argv, 2, "CTL DIR");
    int in = inotify_init1(IN_CLOEXEC);
    if (in < 0)
        wl_fail("inotify_init1: %s", strerror(errno));
    char path[PATH_MAX];
    for (int i = 1; i <= WATCHES; i++) {
        snprintf(path, sizeof path, "%s/d%d", argv[2], i);
        if (mkdir(path, 0700))
            wl_fail("mkdir %s: %s", path, strerror(errno));
        int wd = inotify_add_watch(in, path, IN_CREATE);
        if (wd != i)
            wl_fail("setup: watch on %s got wd %d, want %d", path, wd, i);
    }
    int gone = 0;
    for (int i = 1; i <= WATCHES; i++) {
        if (removed(i)) {
            if (inotify_rm_watch(in, i))
                wl_fail("inotify_rm_watch %d: %s", i, strerror(errno));
            gone++;
        }
    }
    /* the IN_IGNORED events of the removed watches */
    char buf[4096] __attribute__((aligned(__alignof__(struct inotify_event))));
    for (int ignored = 0; ignored < gone;) {
        ssize_t n = read(in, buf, sizeof buf);
        if (n <= 0)
            wl_fail("reading IN_IGNORED: %s", strerror(errno));
        for (char *p = buf; p < buf + n;) {
            struct inotify_event *e = (struct inotify_event *)p;
            if (!(e->mask & IN_IGNORED) || !removed(e->wd))
                wl_fail("setup: event %x on wd %d", e->mask, e->wd);
            ignored++;
            p += sizeof *e + e->len;
        }
    }
    wl_ready("watches=%d", WATCHES - gone);
    while (!wl_go())
        wl_sleep_ms(10);
    for (int i = 1; i <= WATCHES; i++) {
        snprintf(path, sizeof path, "%s/d%d/n%d", argv[2], i, i);
        int f = open(path, O_CREAT | O_WRONLY | O_CLOEXEC, 0600);
        if (f < 0)
            wl_fail("create %s: %s", path, strerror(errno));
        close(f);
    }
    int seen[WATCHES + 1] = {0}, total = 0;
    /* every expected event, then 200 ms more for any that should not come */
    for (;;) {
        struct pollfd pfd = {.fd = in, .events = POLLIN};
        int r = poll(&pfd, 1, total == WATCHES - gone ? 200 : 10000);
        if (r < 0 && errno == EINTR)
            continue;
        if (r < 0)
            wl_fail("poll: %s", strerror(errno));
        if (r == 0)
            break;
        ssize_t n = read(in, buf, sizeof buf);
        if (n <= 0)
            wl_fail("read: %s", strerror(errno));
        for (char *p = buf; p < buf + n;) {
            struct inotify_event *e = (struct inotify_event *)p;
            char want[32];
            snprintf(want, sizeof want, "n%d", e->wd);
            if (!(e->mask & IN_CREATE) || e->wd < 1 || e->wd > WATCHES || removed(e->wd) ||
                !e->len || strcmp(e->name, want) != 0)
                wl_fail("event %x on wd %d name %s", e->mask, e->wd, e->len ? e->name : "");
            if (seen[e->wd]++)
                wl_fail("two events on wd %d", e->wd);
            total++;
            p += sizeof *e + e->len;
        }
    }
    if (total != WATCHES - gone)
        wl_fail("%d events, want %d", total, WATCHES - gone);
    wl_pass("events=%d", total);
}
