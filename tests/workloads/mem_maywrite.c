/* Whether a shared mapping may become writable comes back too: a file mapped shared
 * read-only from a read-write descriptor can still be made writable with mprotect, and
 * one mapped from a read-only descriptor (a file, then deleted) still cannot. The
 * descriptors are closed before the checkpoint: only the mappings hold the files. */
#include "wl.h"
#include <sys/mman.h>

static long pg;

static unsigned char *map_shared_ro(const char *name, int oflags, int unlink_it)
{
	char path[4096];
	wl_path(path, sizeof path, name);
	int fd = open(path, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	if (fd < 0 || ftruncate(fd, pg) != 0 || pwrite(fd, "x", 1, 0) != 1)
		wl_fail("%s errno %d", name, errno);
	close(fd);
	fd = open(path, oflags | O_CLOEXEC);
	unsigned char *p = mmap(NULL, (size_t)pg, PROT_READ, MAP_SHARED, fd, 0);
	if (fd < 0 || p == MAP_FAILED)
		wl_fail("mmap %s errno %d", name, errno);
	close(fd);
	if (unlink_it)
		unlink(path);
	return p;
}

int main(int argc, char **argv)
{
	wl_init(argc, argv, 0, "CTL");
	wl_close_inherited();
	pg = sysconf(_SC_PAGESIZE);
	unsigned char *rw = map_shared_ro("rw.dat", O_RDWR, 0);
	unsigned char *ro = map_shared_ro("ro.dat", O_RDONLY, 1);
	int ro_before = mprotect(ro, (size_t)pg, PROT_READ | PROT_WRITE) == 0 ? 0 : errno;
	if (ro_before != EACCES)
		wl_fail("read-only share: mprotect gave %d before the checkpoint", ro_before);
	wl_ready("rw=%p ro=%p", (void *)rw, (void *)ro);
	while (!wl_go())
		wl_sleep_ms(20);
	if (mprotect(rw, (size_t)pg, PROT_READ | PROT_WRITE) != 0)
		wl_fail("file opened read-write: mprotect(PROT_WRITE) now fails, errno %d", errno);
	rw[1] = 'y';
	if (mprotect(ro, (size_t)pg, PROT_READ | PROT_WRITE) == 0)
		wl_fail("file opened read-only: mprotect(PROT_WRITE) now succeeds");
	if (rw[0] != 'x' || ro[0] != 'x')
		wl_fail("contents %c %c", rw[0], ro[0]);
	wl_pass("may-write kept");
	return 0;
}
