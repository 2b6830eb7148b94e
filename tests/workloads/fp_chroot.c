/* chroot into its control directory (which holds a marker file), working directory a
 * subdirectory of it. After restart, "/" must still be that directory (the marker is at
 * /marker, GO at /GO) and getcwd must say /sub. */
#include "wl.h"

int main(int argc, char **argv)
{
	wl_init(argc, argv, 0, "CTL");
	char p[4096];
	wl_path(p, sizeof p, "marker");
	int fd = open(p, O_CREAT | O_WRONLY | O_CLOEXEC, 0644);
	if (fd < 0)
		wl_fail("marker: %s", strerror(errno));
	close(fd);
	wl_path(p, sizeof p, "sub");
	if (mkdir(p, 0755) != 0 || chroot(wl_ctl) != 0 || chdir("/sub") != 0)
		wl_fail("chroot: %s", strerror(errno));
	wl_ctl = "";
	wl_ready(NULL);
	while (!wl_go())
		wl_sleep_ms(20);
	char cwd[256] = "";
	if (!getcwd(cwd, sizeof cwd) || strcmp(cwd, "/sub") != 0)
		wl_fail("cwd '%s'", cwd);
	if (access("/marker", F_OK) != 0)
		wl_fail("no /marker: the root directory is not the one it was");
	wl_pass("root kept, cwd %s", cwd);
	return 0;
}
