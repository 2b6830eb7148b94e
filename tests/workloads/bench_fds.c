/* bench_fds CTL [N]: raises RLIMIT_NOFILE and opens N descriptors (N defaults to 10000):
 * three of every four are separate opens of one of 8 files in CTL, read-only, each at its
 * own offset; the fourth is a dup of the one before (one open file description). On each
 * SIGUSR1 it checks every descriptor: its file (device and inode), its offset, and for a
 * dup that moving it moves its original (then puts both back); then prints
 * "PASS check=K pid=P fds=N" (or FAIL and exits). Never exits by itself. */
#include "wl.h"
#include <sys/resource.h>

#define FILES 8

int main(int argc, char **argv)
{
	wl_init(argc, argv, 1, "CTL [N]");
	size_t n = argc > 2 ? strtoul(argv[2], NULL, 10) : 10000;
	struct rlimit rl;
	if (getrlimit(RLIMIT_NOFILE, &rl) != 0)
		wl_fail("getrlimit: %s", strerror(errno));
	if (rl.rlim_cur < n + 64) {
		rl.rlim_cur = n + 64;
		if (rl.rlim_max < rl.rlim_cur)
			rl.rlim_max = rl.rlim_cur;
		if (setrlimit(RLIMIT_NOFILE, &rl) != 0)
			wl_fail("setrlimit %zu: %s", n + 64, strerror(errno));
	}
	struct stat st[FILES];
	char path[FILES][4096];
	for (int f = 0; f < FILES; f++) {
		char name[32];
		snprintf(name, sizeof name, "file%d", f);
		wl_path(path[f], sizeof path[f], name);
		int fd = open(path[f], O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
		if (fd < 0 || ftruncate(fd, 8192) != 0 || fstat(fd, &st[f]) != 0)
			wl_fail("%s: %s", path[f], strerror(errno));
		close(fd);
	}
	int *fds = calloc(n, sizeof *fds);
	off_t *pos = calloc(n, sizeof *pos);
	if (!fds || !pos)
		wl_fail("calloc");
	for (size_t i = 0; i < n; i++) {
		if (i % 4 == 3) {
			fds[i] = dup(fds[i - 1]);
			pos[i] = pos[i - 1];
		} else {
			fds[i] = open(path[i % FILES], O_RDONLY);
			pos[i] = (off_t)(i % 4096);
			if (fds[i] >= 0 && lseek(fds[i], pos[i], SEEK_SET) != pos[i])
				wl_fail("lseek %zu: %s", i, strerror(errno));
		}
		if (fds[i] < 0)
			wl_fail("descriptor %zu: %s", i, strerror(errno));
	}
	wl_catch_usr1();
	wl_ready("fds=%zu", n);

	unsigned checks = 0;
	for (;;) {
		wl_wait_usr1(20);
		checks++;
		for (size_t i = 0; i < n; i++) {
			struct stat s;
			const struct stat *want = &st[(i % 4 == 3 ? i - 1 : i) % FILES];
			if (fstat(fds[i], &s) != 0 || s.st_dev != want->st_dev ||
			    s.st_ino != want->st_ino)
				wl_fail("check=%u pid=%d fd %d (descriptor %zu): wrong file", checks,
					(int)getpid(), fds[i], i);
			off_t at = lseek(fds[i], 0, SEEK_CUR);
			if (at != pos[i])
				wl_fail("check=%u pid=%d fd %d offset %lld, want %lld", checks,
					(int)getpid(), fds[i], (long long)at, (long long)pos[i]);
			if (i % 4 == 3) {
				lseek(fds[i], 1, SEEK_CUR);
				off_t o = lseek(fds[i - 1], 0, SEEK_CUR);
				lseek(fds[i], pos[i], SEEK_SET);
				if (o != pos[i] + 1)
					wl_fail("check=%u pid=%d fd %d is not a dup of fd %d", checks,
						(int)getpid(), fds[i], fds[i - 1]);
			}
		}
		printf("PASS check=%u pid=%d fds=%zu\n", checks, (int)getpid(), n);
	}
}
