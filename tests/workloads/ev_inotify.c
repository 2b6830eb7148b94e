/* ev_inotify CTL DIR FILE: inotify watches on a directory (wd 1) and a file (wd 3; wd 2 was removed, so restart
 * has to skip a number), read through a dup of the inotify descriptor. Once the file
 * CTL/GO exists (made after restart) it creates a file in the directory and writes the
 * watched file: the events must come with wd 1 and wd 3. Prints PASS or FAIL.
 * DIR (argv[2]): the directory to watch; FILE (argv[3]): the file to watch. */
#include "wl.h"

#include <limits.h>
#include <sys/inotify.h>

int main(int argc, char **argv) {
    wl_close_inherited();
    wl_init(argc, argv, 3, "CTL DIR FILE");
    int in = inotify_init1(IN_CLOEXEC);
    int a = inotify_add_watch(in, argv[2], IN_CREATE);
    int b = inotify_add_watch(in, "/", IN_ATTRIB);
    int c = inotify_add_watch(in, argv[3], IN_MODIFY);
    if (in < 0 || a != 1 || b != 2 || c != 3 || inotify_rm_watch(in, b)) {
        printf("FAIL setup %d %d %d\n", a, b, c);
        return 1;
    }
    int dup_in = dup(in);
    char buf[4096];
    /* the IN_IGNORED of the removed watch */
    if (read(dup_in, buf, sizeof buf) <= 0) {
        printf("FAIL reading IN_IGNORED\n");
        return 1;
    }
    wl_ready(NULL);
    while (!wl_go()) usleep(10000);
    char path[PATH_MAX];
    snprintf(path, sizeof path, "%s/new", argv[2]);
    close(open(path, O_CREAT | O_WRONLY, 0600));
    int f = open(argv[3], O_WRONLY);
    if (f < 0 || write(f, "x", 1) != 1) {
        printf("FAIL writing the watched file\n");
        return 1;
    }
    close(f);
    int seen_create = 0, seen_modify = 0;
    while (!(seen_create && seen_modify)) {
        ssize_t n = read(dup_in, buf, sizeof buf);
        if (n <= 0) {
            printf("FAIL read\n");
            return 1;
        }
        for (char *p = buf; p < buf + n;) {
            struct inotify_event *e = (struct inotify_event *)p;
            if (e->mask & IN_CREATE) {
                if (e->wd != 1 || strcmp(e->name, "new") != 0) {
                    printf("FAIL create on wd %d name %s\n", e->wd, e->len ? e->name : "");
                    return 1;
                }
                seen_create = 1;
            } else if (e->mask & IN_MODIFY) {
                if (e->wd != 3) {
                    printf("FAIL modify on wd %d\n", e->wd);
                    return 1;
                }
                seen_modify = 1;
            } else {
                printf("FAIL event %x on wd %d\n", e->mask, e->wd);
                return 1;
            }
            p += sizeof *e + e->len;
        }
    }
    printf("PASS\n");
    return 0;
}
