/* fd_devnode CTL: a device node made with mknod (CTL/z, /dev/zero's number 1:5), opened
 * and removed. After CTL/GO the descriptor still reads zeros from device 1:5. Prints
 * PASS or FAIL. */
#include "wl.h"

#include <sys/sysmacros.h>

int main(int argc, char **argv)
{
	wl_close_inherited();
	wl_init(argc, argv, 1, "CTL");
	char p[4096];
	wl_path(p, sizeof p, "z");
	if (mknod(p, S_IFCHR | 0600, makedev(1, 5)))
		wl_fail("mknod: %s", strerror(errno));
	int fd = open(p, O_RDONLY);
	if (fd < 0 || unlink(p))
		wl_fail("open: %s", strerror(errno));
	wl_ready("fd=%d", fd);
	while (!wl_go())
		wl_sleep_ms(10);
	struct stat st;
	char buf[4] = "abc";
	if (fstat(fd, &st) || !S_ISCHR(st.st_mode) || st.st_rdev != makedev(1, 5))
		wl_fail("not device 1:5");
	if (read(fd, buf, 4) != 4 || memcmp(buf, "\0\0\0\0", 4) != 0)
		wl_fail("does not read zeros");
	wl_pass("removed device node");
}
