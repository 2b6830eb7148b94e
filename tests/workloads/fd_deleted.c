/* fd_deleted CTL: files deleted while open. Before the checkpoint:
 *   A: "hello" in CTL/a, mode 0640, mtime 1e9 s; opened twice (fa read-write, fb
 *      read-only, separate descriptions), then unlinked; a forked child has fa too and
 *      opens A a third time through /proc;
 *   S: CTL/s, 64 MiB with data ("x") only at 0 and 32 MiB, unlinked (sparse);
 *   T: an O_TMPFILE file in CTL, mode 0604, holding "tmp", never linked.
 * After CTL/GO: A keeps its mode, mtime and content; "WORLD" written through fa is read
 * through fb and, in the child, through its own open; S has its data and its holes
 * (SEEK_HOLE/SEEK_DATA); T keeps its mode and content. Prints PASS or FAIL. */
#include "wl.h"

#define MIB (1024L * 1024L)

static void child(int fa, int go)
{
	char path[64], buf[8] = "";
	snprintf(path, sizeof path, "/proc/self/fd/%d", fa);
	int own = open(path, O_RDONLY);
	if (own < 0)
		_exit(2);
	char c;
	if (read(go, &c, 1) != 1)
		_exit(3);
	if (pread(own, buf, 5, 0) != 5 || memcmp(buf, "WORLD", 5) != 0)
		_exit(1);
	_exit(0);
}

static int make(const char *name, mode_t mode)
{
	char p[4096];
	wl_path(p, sizeof p, name);
	int fd = open(p, O_RDWR | O_CREAT | O_TRUNC, 0600);
	if (fd < 0 || fchmod(fd, mode))
		wl_fail("create %s: %s", p, strerror(errno));
	return fd;
}

static void unlink_name(const char *name)
{
	char p[4096];
	wl_path(p, sizeof p, name);
	if (unlink(p))
		wl_fail("unlink %s: %s", p, strerror(errno));
}

int main(int argc, char **argv)
{
	wl_close_inherited();
	wl_init(argc, argv, 1, "CTL");
	int fa = make("a", 0640);
	if (write(fa, "hello", 5) != 5)
		wl_fail("write a");
	struct timespec times[2] = { { 1000000000, 0 }, { 1000000000, 0 } };
	if (futimens(fa, times))
		wl_fail("futimens: %s", strerror(errno));
	char p[4096];
	wl_path(p, sizeof p, "a");
	int fb = open(p, O_RDONLY);
	unlink_name("a");
	int fs = make("s", 0600);
	if (pwrite(fs, "x", 1, 0) != 1 || pwrite(fs, "x", 1, 32 * MIB) != 1 ||
	    ftruncate(fs, 64 * MIB))
		wl_fail("sparse: %s", strerror(errno));
	unlink_name("s");
	int ft = open(wl_ctl, O_TMPFILE | O_RDWR, 0604);
	if (ft < 0 || write(ft, "tmp", 3) != 3)
		wl_fail("O_TMPFILE: %s", strerror(errno));
	int c[2];
	if (pipe(c))
		wl_fail("pipe");
	pid_t kid = fork();
	if (kid == 0)
		child(fa, c[0]);
	wl_ready("child=%d", (int)kid);
	while (!wl_go())
		wl_sleep_ms(10);
	struct stat st;
	if (fstat(fa, &st) || st.st_nlink != 0 || (st.st_mode & 07777) != 0640 ||
	    st.st_mtim.tv_sec != 1000000000 || st.st_size != 5)
		wl_fail("A: nlink %ld mode %o mtime %ld size %ld", (long)st.st_nlink,
			st.st_mode & 07777, (long)st.st_mtim.tv_sec, (long)st.st_size);
	if (pwrite(fa, "WORLD", 5, 0) != 5)
		wl_fail("write A: %s", strerror(errno));
	char buf[8] = "";
	if (pread(fb, buf, 5, 0) != 5 || memcmp(buf, "WORLD", 5) != 0)
		wl_fail("A through fb reads '%.5s', not WORLD: two copies", buf);
	if (write(c[1], "g", 1) != 1)
		wl_fail("write to child");
	int status;
	if (waitpid(kid, &status, 0) != kid || !WIFEXITED(status) || WEXITSTATUS(status))
		wl_fail("child did not read WORLD through its own open (status %x)", status);
	off_t hole = lseek(fs, 0, SEEK_HOLE), data = lseek(fs, hole, SEEK_DATA);
	if (fstat(fs, &st) || st.st_size != 64 * MIB || hole <= 0 || hole >= 32 * MIB ||
	    data != 32 * MIB)
		wl_fail("S: size %ld hole at %ld data at %ld", (long)st.st_size, (long)hole,
			(long)data);
	if (pread(fs, buf, 1, 32 * MIB) != 1 || buf[0] != 'x' || pread(fs, buf, 1, 0) != 1 ||
	    buf[0] != 'x')
		wl_fail("S lost its data");
	if (fstat(ft, &st) || (st.st_mode & 07777) != 0604 || st.st_nlink != 0 ||
	    pread(ft, buf, 3, 0) != 3 || memcmp(buf, "tmp", 3) != 0 ||
	    (fcntl(ft, F_GETFL) & O_ACCMODE) != O_RDWR)
		wl_fail("T: mode %o nlink %ld", st.st_mode & 07777, (long)st.st_nlink);
	wl_pass("deleted files shared, sparse, O_TMPFILE");
}
