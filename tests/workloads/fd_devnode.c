/* fd_devnode CTL: a device node made with mknod (CTL/z, /dev/zero's number 1:5, mode
 * 0710, owner 1:2), opened and removed (zdtm deleted_dev). After CTL/GO the descriptor
 * is still that removed node: device 1:5, its mode and owner, /proc/self/fd shows its
 * name "(deleted)", and it reads zeros. Prints PASS or FAIL. */
#include "wl.h"

#include <sys/sysmacros.h>

int main(int argc, char **argv)
{
	wl_close_inherited();
	wl_init(argc, argv, 1, "CTL");
	char p[4096];
	wl_path(p, sizeof p, "z");
	umask(0);
	if (mknod(p, S_IFCHR | 0710, makedev(1, 5)) || chown(p, 1, 2))
		wl_fail("mknod: %s", strerror(errno));
	int fd = open(p, O_RDONLY);
	if (fd < 0 || unlink(p))
		wl_fail("open: %s", strerror(errno));
	wl_ready("fd=%d", fd);
	while (!wl_go())
		wl_sleep_ms(10);
	struct stat st;
	char buf[4] = "abc", link[4200] = "", want[4200], self[64];
	if (fstat(fd, &st) || st.st_mode != (S_IFCHR | 0710) || st.st_rdev != makedev(1, 5))
		wl_fail("not device 1:5 mode 20710: %d:%d mode %o", major(st.st_rdev),
			minor(st.st_rdev), st.st_mode);
	if (st.st_uid != 1 || st.st_gid != 2)
		wl_fail("owner %d:%d, not 1:2", st.st_uid, st.st_gid);
	snprintf(self, sizeof self, "/proc/self/fd/%d", fd);
	snprintf(want, sizeof want, "%s (deleted)", p);
	if (readlink(self, link, sizeof link - 1) < 0 || strcmp(link, want))
		wl_fail("fd is %s, not %s", link, want);
	if (access(p, F_OK) == 0)
		wl_fail("%s is there again", p);
	if (read(fd, buf, 4) != 4 || memcmp(buf, "\0\0\0\0", 4) != 0)
		wl_fail("does not read zeros");
	wl_pass("removed device node");
}
