/* fd_descriptions CTL FILE: open file descriptions and their flags. Sets up, in one
 * process and a forked child:
 *   a pipe, with a second open of its read end (through /proc) that alone is O_NONBLOCK;
 *   FILE opened twice (fa at offset 5, fb at 9, O_APPEND), and fa2 a dup of fa; a third
 *   open fc, O_NOATIME, and O_DIRECT where the filesystem takes it;
 *   a second pipe whose write end is O_ASYNC, owned by this process, signal SIGRTMIN+1;
 *   an eventfd holding 3, shared with the child (which waits for a word on a pipe).
 * After CTL/GO: the descriptors that shared a description still do (kcmp), the separate
 * ones do not; flags, offsets, owner and signal are as set; the child reads the eventfd
 * and the parent then finds it empty (one counter, not two). Prints PASS or FAIL. */
#include "wl.h"

#include <sys/eventfd.h>
#include <sys/syscall.h>
#include <linux/kcmp.h>

static int same(pid_t a, int fa, pid_t b, int fb)
{
	return syscall(SYS_kcmp, a, b, KCMP_FILE, fa, fb) == 0;
}

/* Waits for the parent's word on `go` (it checks the sharing first), then takes the
 * eventfd's count. */
static void child(int efd, int go)
{
	char c;
	if (read(go, &c, 1) != 1)
		_exit(2);
	eventfd_t v = 0;
	if (eventfd_read(efd, &v) != 0 || v != 3)
		_exit(1);
	_exit(0);
}

int main(int argc, char **argv)
{
	wl_close_inherited();
	wl_init(argc, argv, 2, "CTL FILE");
	int p[2], q[2], c[2];
	char path[64];
	if (pipe(p) || pipe(q) || pipe(c))
		wl_fail("pipe: %s", strerror(errno));
	snprintf(path, sizeof path, "/proc/self/fd/%d", p[0]);
	int r2 = open(path, O_RDONLY | O_NONBLOCK);
	int fa = open(argv[2], O_RDWR);
	int fb = open(argv[2], O_RDWR | O_APPEND);
	int fa2 = dup(fa);
	int fc = open(argv[2], O_RDONLY | O_NOATIME);
	int direct = fc >= 0 && fcntl(fc, F_SETFL, O_NOATIME | O_DIRECT) == 0;
	if (r2 < 0 || fa < 0 || fb < 0 || fa2 < 0 || fc < 0)
		wl_fail("open: %s", strerror(errno));
	lseek(fa, 5, SEEK_SET);
	lseek(fb, 9, SEEK_SET);
	struct f_owner_ex own = { F_OWNER_PID, getpid() };
	if (fcntl(q[1], F_SETOWN_EX, &own) || fcntl(q[1], F_SETSIG, SIGRTMIN + 1) ||
	    fcntl(q[1], F_SETFL, O_ASYNC))
		wl_fail("owner: %s", strerror(errno));
	signal(SIGRTMIN + 1, SIG_IGN);
	int efd = eventfd(3, EFD_NONBLOCK);
	pid_t kid = fork();
	if (kid == 0)
		child(efd, c[0]);
	/* every status flag exactly, O_LARGEFILE included (an open through /proc adds it) */
	int pipe_flags = fcntl(p[0], F_GETFL);
	wl_ready("child=%d", (int)kid);
	while (!wl_go())
		wl_sleep_ms(10);
	pid_t me = getpid();
	if (!same(me, fa, me, fa2) || same(me, fa, me, fb))
		wl_fail("file descriptions: fa~fa2 %d fa~fb %d", same(me, fa, me, fa2),
			same(me, fa, me, fb));
	if (same(me, p[0], me, r2))
		wl_fail("the two opens of the pipe's read end are one description");
	if (!same(me, efd, kid, efd) || !same(me, p[0], kid, p[0]) || !same(me, fa, kid, fa))
		wl_fail("descriptions no longer shared with the child: eventfd %d pipe %d file %d",
			same(me, efd, kid, efd), same(me, p[0], kid, p[0]), same(me, fa, kid, fa));
	if (fcntl(r2, F_GETFL) & O_NONBLOCK ? 0 : 1)
		wl_fail("second pipe open lost O_NONBLOCK");
	if (fcntl(p[0], F_GETFL) != pipe_flags)
		wl_fail("first pipe open: flags %o, were %o", fcntl(p[0], F_GETFL), pipe_flags);
	if (!(fcntl(fb, F_GETFL) & O_APPEND) || (fcntl(fa, F_GETFL) & O_APPEND))
		wl_fail("O_APPEND: fa %o fb %o", fcntl(fa, F_GETFL), fcntl(fb, F_GETFL));
	if (lseek(fa, 0, SEEK_CUR) != 5 || lseek(fb, 0, SEEK_CUR) != 9)
		wl_fail("offsets %ld %ld", (long)lseek(fa, 0, SEEK_CUR), (long)lseek(fb, 0, SEEK_CUR));
	int want = O_NOATIME | (direct ? O_DIRECT : 0);
	if ((fcntl(fc, F_GETFL) & (O_NOATIME | O_DIRECT)) != want)
		wl_fail("fc flags %o, want %o", fcntl(fc, F_GETFL), want);
	lseek(fa, 7, SEEK_SET);
	if (lseek(fa2, 0, SEEK_CUR) != 7)
		wl_fail("dup offset not shared");
	struct f_owner_ex got = { 0, 0 };
	fcntl(q[1], F_GETOWN_EX, &got);
	if (got.type != F_OWNER_PID || got.pid != me || fcntl(q[1], F_GETSIG) != SIGRTMIN + 1 ||
	    !(fcntl(q[1], F_GETFL) & O_ASYNC))
		wl_fail("owner %d/%d sig %d flags %o", got.type, got.pid, fcntl(q[1], F_GETSIG),
			fcntl(q[1], F_GETFL));
	int st;
	if (write(c[1], "g", 1) != 1)
		wl_fail("write to child: %s", strerror(errno));
	if (waitpid(kid, &st, 0) != kid || !WIFEXITED(st) || WEXITSTATUS(st) != 0)
		wl_fail("child did not read 3 from the shared eventfd (status %x)", st);
	eventfd_t v;
	if (eventfd_read(efd, &v) == 0)
		wl_fail("eventfd still holds %llu after the child read it", (unsigned long long)v);
	wl_pass("descriptions, flags, offsets, owner");
}
