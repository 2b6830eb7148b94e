/* A SysV shared memory segment across checkpoint and restart.
 *
 * usage: shm_segment CTL ROLE KEY
 *   ROLE create: creates the segment (KEY, or IPC_PRIVATE when KEY is 0), owner set to
 *                uid/gid 65534, mode 0640, attaches it twice read-write and once
 *                read-only, writes the pattern (page 1 left zero)
 *   ROLE dest:   as create, then marks it for removal (IPC_RMID) while attached
 *   ROLE join:   attaches the existing segment of KEY (made by a "create" process)
 *   ROLE partial: as create, then makes the first page of one attachment read-only
 *                (cpr refuses such a split attachment); after CTL/GO only PASS
 * Prints "READY <pid> shmid=<shmid>", waits for CTL/GO, then checks shmid, key, size, mode,
 * owner, contents through every attachment and that writes through one attachment are
 * seen through the others; create and join also see each other's writes. Prints PASS or
 * "FAIL why".
 */
#include "wl.h"

#include <sys/ipc.h>
#include <sys/mman.h>
#include <sys/shm.h>

#define SIZE (3 * 4096 + 100)
#define FLAG_CREATE (SIZE - 2) /* written by the creator after restart */
#define FLAG_JOIN (SIZE - 1)   /* written by the joiner after restart */

static unsigned char pattern(long i) {
    return (unsigned char)(i * 7 + 3);
}

static int fail(const char *why) {
    printf("FAIL %s (errno %d)\n", why, errno);
    fflush(stdout);
    return 1;
}

static void nap(void) {
    struct timespec ts = {0, 10 * 1000 * 1000};
    nanosleep(&ts, NULL);
}

int main(int argc, char **argv) {
    wl_init(argc, argv, 3, "CTL ROLE KEY");
    wl_close_inherited();
    const char *role = argv[2];
    key_t key = (key_t)strtoul(argv[3], NULL, 16);
    int creator = strcmp(role, "join") != 0;
    int dest = strcmp(role, "dest") == 0;
    int id;
    if (creator) {
        id = shmget(key ? key : IPC_PRIVATE, SIZE, IPC_CREAT | IPC_EXCL | 0640);
        if (id < 0)
            return fail("shmget");
    } else {
        id = shmget(key, 0, 0);
        if (id < 0)
            return fail("shmget join");
    }
    unsigned char *a = shmat(id, NULL, 0);
    unsigned char *b = shmat(id, NULL, 0);
    const unsigned char *r = shmat(id, NULL, SHM_RDONLY);
    if (a == (void *)-1 || b == (void *)-1 || r == (void *)-1 || a == b)
        return fail("shmat");
    if (creator) {
        for (long i = 0; i < SIZE; i++)
            a[i] = (i / 4096 == 1) ? 0 : pattern(i);
        a[FLAG_CREATE] = a[FLAG_JOIN] = 0;
        struct shmid_ds ds;
        if (shmctl(id, IPC_STAT, &ds) < 0)
            return fail("IPC_STAT");
        ds.shm_perm.uid = 65534;
        ds.shm_perm.gid = 65534;
        if (shmctl(id, IPC_SET, &ds) < 0)
            return fail("IPC_SET");
        if (dest && shmctl(id, IPC_RMID, NULL) < 0)
            return fail("IPC_RMID");
    }
    if (strcmp(role, "partial") == 0) {
        /* only part of an attachment keeps its protection: a split cpr refuses */
        if (mprotect(b, 4096, PROT_READ) < 0)
            return fail("mprotect");
        wl_ready("shmid=%d", id);
        while (!wl_go())
            nap();
        printf(b[0] == pattern(0) ? "PASS\n" : "FAIL contents\n");
        fflush(stdout);
        return 0;
    }
    wl_ready("shmid=%d", id);
    while (!wl_go())
        nap();

    /* the same segment, as it was */
    struct shmid_ds ds;
    if (shmctl(id, IPC_STAT, &ds) < 0)
        return fail("IPC_STAT after restart (shmid changed?)");
    if (ds.shm_segsz != SIZE)
        return fail("size");
    if ((ds.shm_perm.mode & 0777) != 0640)
        return fail("mode");
    if (ds.shm_perm.uid != 65534 || ds.shm_perm.gid != 65534)
        return fail("owner");
    if (!!(ds.shm_perm.mode & SHM_DEST) != dest)
        return fail("SHM_DEST");
    if (dest) {
        if (ds.shm_perm.__key != IPC_PRIVATE)
            return fail("key of removed segment");
    } else {
        if (ds.shm_perm.__key != key)
            return fail("key");
        if (key && shmget(key, 0, 0) != id)
            return fail("shmget(key) gives another shmid");
    }
    /* contents through each attachment */
    for (long i = 0; i < SIZE - 2; i++) {
        if (i == 17 || i == 4096 + 5)
            continue; /* written after restart, maybe already by the other process */
        unsigned char want = (i / 4096 == 1) ? 0 : pattern(i);
        if (a[i] != want || b[i] != want || r[i] != want)
            return fail("contents");
    }
    /* one segment behind the attachments */
    a[4096 + 5] = 0x5a;
    if (b[4096 + 5] != 0x5a || r[4096 + 5] != 0x5a)
        return fail("write through a not seen through b");
    b[17] = 0xa5;
    if (a[17] != 0xa5 || r[17] != 0xa5)
        return fail("write through b not seen through a");
    /* and the other process (join) */
    if (!dest) {
        volatile unsigned char *va = a;
        if (creator) {
            va[FLAG_CREATE] = 1;
            if (getenv("SHM_WAIT_JOIN"))
                while (va[FLAG_JOIN] != 1)
                    nap();
        } else {
            va[FLAG_JOIN] = 1;
            while (va[FLAG_CREATE] != 1)
                nap();
        }
    }
    if (shmdt(a) < 0 || shmdt(b) < 0 || shmdt(r) < 0)
        return fail("shmdt");
    printf("PASS\n");
    fflush(stdout);
    return 0;
}
