/* files CTL DATA: run with stdin, stdout and stderr on /dev/null; reports go to CTL/out.log
 * (O_APPEND). Opens, in DATA (the test creates r.txt, a.txt, rw.txt first):
 *   r.txt  O_RDONLY|O_CLOEXEC, reads 3 bytes           -> offset 3
 *   w.txt  O_WRONLY|O_CREAT|O_TRUNC, writes "hello\n"  -> offset 6
 *   a.txt  O_WRONLY|O_APPEND, writes "line2\n"          -> offset 12 (after "line1\n")
 *   rw.txt O_RDWR, reads 5 bytes, plus a dup() of it   -> offset 5
 * and in CTL a file it deletes while open, and /dev/zero. After CTL/GO it prints one
 * "FD name off=.. acc=.. append=.. cloexec=.. content=.. disk=.." line per DATA file (content
 * as seen through the fd, disk as seen through the path; the test judges the FILE policy)
 * and checks by itself: the deleted file's data and offset, /dev/zero, the close-on-exec
 * flags, fds 0-2 on /dev/null, and that rw.txt's dup still shares its offset. */
#include "wl.h"

static FILE *rep;

static void die(const char *what)
{
	fprintf(rep, "FAIL %s: %s\n", what, strerror(errno));
	fflush(rep);
	exit(1);
}

static void fail(const char *fmt, const char *arg)
{
	fprintf(rep, "FAIL ");
	fprintf(rep, fmt, arg);
	fprintf(rep, "\n");
	fflush(rep);
	exit(1);
}

static void esc(const char *s, ssize_t n)
{
	for (ssize_t i = 0; i < n; i++) {
		unsigned char c = s[i];
		if (c == '\n')
			fputs("\\n", rep);
		else if (c <= ' ' || c >= 127 || c == '\\')
			fprintf(rep, "\\x%02x", c);
		else
			fputc(c, rep);
	}
}

static ssize_t slurp(const char *path, char *buf, size_t size)
{
	int fd = open(path, O_RDONLY);
	if (fd < 0)
		return -1;
	ssize_t n = read(fd, buf, size);
	close(fd);
	return n;
}

static void report(const char *name, int fd, const char *data)
{
	char p[4096], buf[4096];
	off_t off = lseek(fd, 0, SEEK_CUR);
	int fl = fcntl(fd, F_GETFL), fdfl = fcntl(fd, F_GETFD);
	int acc = fl & O_ACCMODE;
	fprintf(rep, "FD %s off=%lld acc=%s append=%d cloexec=%d content=", name, (long long)off,
		acc == O_RDONLY ? "r" : acc == O_WRONLY ? "w" : "rw", !!(fl & O_APPEND),
		!!(fdfl & FD_CLOEXEC));
	snprintf(p, sizeof p, "/proc/self/fd/%d", fd);
	ssize_t n = slurp(p, buf, sizeof buf);
	if (n >= 0)
		esc(buf, n);
	else
		fputs("<unreadable>", rep);
	fputs(" disk=", rep);
	snprintf(p, sizeof p, "%s/%s", data, name);
	n = slurp(p, buf, sizeof buf);
	if (n >= 0)
		esc(buf, n);
	else
		fputs("<missing>", rep);
	fputc('\n', rep);
}

static int open_in(const char *dir, const char *name, int flags)
{
	char p[4096];
	snprintf(p, sizeof p, "%s/%s", dir, name);
	int fd = open(p, flags, 0644);
	if (fd < 0)
		die(p);
	return fd;
}

static void is_devnull(int fd)
{
	char p[64], target[256];
	snprintf(p, sizeof p, "/proc/self/fd/%d", fd);
	ssize_t n = readlink(p, target, sizeof target - 1);
	if (n < 0)
		die(p);
	target[n] = 0;
	if (strcmp(target, "/dev/null"))
		fail("a standard fd is on %s, not /dev/null", target);
}

int main(int argc, char **argv)
{
	char p[4096], buf[256];
	if (argc < 3)
		return 2;
	wl_ctl = argv[1];
	const char *data = argv[2];
	wl_path(p, sizeof p, "out.log");
	int repfd = open(p, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
	if (repfd < 0 || !(rep = fdopen(repfd, "a")))
		return 3;
	setvbuf(rep, NULL, _IOLBF, 0);
	for (int fd = 0; fd < 3; fd++)
		is_devnull(fd);

	int r = open_in(data, "r.txt", O_RDONLY | O_CLOEXEC);
	int w = open_in(data, "w.txt", O_WRONLY | O_CREAT | O_TRUNC);
	int a = open_in(data, "a.txt", O_WRONLY | O_APPEND);
	int rw = open_in(data, "rw.txt", O_RDWR);
	int rwdup = dup(rw);
	int del = open_in(wl_ctl, "del.txt", O_RDWR | O_CREAT | O_TRUNC);
	int zero = open("/dev/zero", O_RDONLY);
	if (read(r, buf, 3) != 3 || write(w, "hello\n", 6) != 6 || write(a, "line2\n", 6) != 6 ||
	    read(rw, buf, 5) != 5 || write(del, "deleted but open\n", 17) != 17 || zero < 0)
		die("setting up the files");
	wl_path(p, sizeof p, "del.txt");
	if (unlink(p))
		die("unlink");

	fprintf(rep, "READY %d r=%d w=%d a=%d rw=%d rwdup=%d del=%d zero=%d\n", (int)getpid(), r,
		w, a, rw, rwdup, del, zero);
	while (!wl_go())
		wl_sleep_ms(20);

	report("r.txt", r, data);
	report("w.txt", w, data);
	report("a.txt", a, data);
	report("rw.txt", rw, data);

	for (int fd = 0; fd < 3; fd++)
		is_devnull(fd);
	struct stat st;
	if (fstat(del, &st))
		die("fstat deleted file");
	if (st.st_nlink != 0)
		fail("the deleted file has links again%s", "");
	if (lseek(del, 0, SEEK_CUR) != 17)
		fail("the deleted file's offset changed%s", "");
	ssize_t n = pread(del, buf, sizeof buf, 0);
	if (n != 17 || memcmp(buf, "deleted but open\n", 17))
		fail("the deleted file's content is lost%s", "");
	memset(buf, 1, 64);
	if (read(zero, buf, 64) != 64)
		die("read /dev/zero");
	for (int i = 0; i < 64; i++)
		if (buf[i])
			fail("/dev/zero gave a non-zero byte%s", "");
	if (!(fcntl(r, F_GETFD) & FD_CLOEXEC))
		fail("r.txt lost FD_CLOEXEC%s", "");
	if (fcntl(w, F_GETFD) & FD_CLOEXEC || fcntl(rw, F_GETFD) & FD_CLOEXEC ||
	    fcntl(del, F_GETFD) & FD_CLOEXEC || fcntl(zero, F_GETFD) & FD_CLOEXEC)
		fail("an fd gained FD_CLOEXEC%s", "");
	if (lseek(rw, 0, SEEK_CUR) != lseek(rwdup, 0, SEEK_CUR))
		fail("rw.txt and its dup have different offsets%s", "");
	lseek(rw, 7, SEEK_SET);
	if (lseek(rwdup, 0, SEEK_CUR) != 7)
		fail("rw.txt and its dup no longer share one open file%s", "");
	fprintf(rep, "PASS deleted=ok zero=ok cloexec=ok stdio=devnull dup=shared\n");
	return 0;
}
