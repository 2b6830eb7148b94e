/* fd_opath CTL: O_PATH descriptors: on a file (CTL/p), on a symlink itself (CTL/l -> p,
 * O_NOFOLLOW) and on a directory (CTL). After CTL/GO each is still O_PATH on the same
 * inode, the symlink one still the link (readlinkat gives "p"). Prints PASS or FAIL. */
#include "wl.h"

static void same(int fd, const char *name, int follow)
{
	char p[4096];
	struct stat a, b;
	wl_path(p, sizeof p, name);
	if (fstat(fd, &a) || (follow ? stat(p, &b) : lstat(p, &b)) || a.st_ino != b.st_ino ||
	    a.st_dev != b.st_dev)
		wl_fail("fd %d is not %s", fd, p);
	if (!(fcntl(fd, F_GETFL) & O_PATH))
		wl_fail("fd %d lost O_PATH (flags %o)", fd, fcntl(fd, F_GETFL));
}

int main(int argc, char **argv)
{
	wl_close_inherited();
	wl_init(argc, argv, 1, "CTL");
	char p[4096], l[4096];
	wl_path(p, sizeof p, "p");
	wl_path(l, sizeof l, "l");
	int f = open(p, O_CREAT | O_WRONLY, 0600);
	if (f < 0 || close(f) || symlink("p", l))
		wl_fail("setup: %s", strerror(errno));
	int fp = open(p, O_PATH), fl = open(l, O_PATH | O_NOFOLLOW), fd = open(wl_ctl, O_PATH);
	if (fp < 0 || fl < 0 || fd < 0)
		wl_fail("O_PATH: %s", strerror(errno));
	wl_ready("fds=%d,%d,%d", fp, fl, fd);
	while (!wl_go())
		wl_sleep_ms(10);
	same(fp, "p", 1);
	same(fl, "l", 0);
	char buf[16] = "";
	if (readlinkat(fl, "", buf, sizeof buf - 1) != 1 || buf[0] != 'p')
		wl_fail("the symlink descriptor reads '%s'", buf);
	struct stat a, b;
	if (fstat(fd, &a) || stat(wl_ctl, &b) || a.st_ino != b.st_ino || !(fcntl(fd, F_GETFL) & O_PATH))
		wl_fail("directory descriptor");
	wl_pass("O_PATH on a file, a symlink, a directory");
}
