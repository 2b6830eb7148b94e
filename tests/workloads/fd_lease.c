/* fd_lease CTL: a read lease (F_SETLEASE F_RDLCK) on CTL/l, with SIGUSR2 as its signal.
 * After CTL/GO the descriptor still holds the read lease, with the same signal. Prints
 * PASS or FAIL. */
#include "wl.h"

int main(int argc, char **argv)
{
	wl_close_inherited();
	wl_init(argc, argv, 1, "CTL");
	char p[4096];
	wl_path(p, sizeof p, "l");
	int w = open(p, O_CREAT | O_WRONLY, 0600);
	if (w < 0 || close(w))
		wl_fail("create: %s", strerror(errno));
	int fd = open(p, O_RDONLY);
	if (fd < 0 || fcntl(fd, F_SETSIG, SIGUSR2) || fcntl(fd, F_SETLEASE, F_RDLCK))
		wl_fail("lease: %s", strerror(errno));
	wl_ready("fd=%d", fd);
	while (!wl_go())
		wl_sleep_ms(10);
	int lease = fcntl(fd, F_GETLEASE);
	if (lease != F_RDLCK || fcntl(fd, F_GETSIG) != SIGUSR2)
		wl_fail("lease %d (want %d), signal %d", lease, F_RDLCK, fcntl(fd, F_GETSIG));
	wl_pass("read lease");
}
