/* A memfd that holds a script stays executable after restart (execveat on the memfd
 * descriptor with AT_EMPTY_PATH, zdtm memfd04/memfd05). memfd_create(2)'s descriptor does
 * not count as a writer of the file (exec refuses files open for writing: ETXTBSY); a
 * descriptor opened again through /proc/self/fd does.
 *   alone:  the memfd, read-write, held only as a descriptor.
 *   mapped: the same, plus a read-only open of it through /proc/self/fd mapped private
 *           and the memfd mapped shared (zdtm memfd05); the mappings keep their bytes.
 *   forked: the memfd shared with a forked child (one description in two processes),
 *           plus a read-only open through /proc; parent and child both exec it.
 * After restart (GO) the memfd's descriptor is executed in a forked child ("#!/bin/true"):
 * it must exit 0. Prints PASS or FAIL. */
#include "wl.h"
#include <sys/mman.h>
#include <sys/syscall.h>

static const char script[] = "#!/bin/true\n";

/* 0 if the script in `fd` ran and exited 0, else the errno execveat failed with (or
 * 1000 + the exit status). */
static int exec_fd(int fd)
{
	pid_t pid = fork();
	if (pid == 0) {
		char *argv[] = { "true", NULL }, *envp[] = { NULL };
		syscall(SYS_execveat, fd, "", argv, envp, AT_EMPTY_PATH);
		_exit(errno);
	}
	int status;
	if (pid < 0 || waitpid(pid, &status, 0) != pid)
		return -1;
	if (!WIFEXITED(status))
		return 2000;
	return WEXITSTATUS(status) ? WEXITSTATUS(status) : 0;
}

static void check_exec(int fd, const char *who)
{
	int err = exec_fd(fd);
	if (err)
		wl_fail("%s: execveat of the memfd: %s (%d)", who, strerror(err), err);
}

static int reopen_readonly(int fd)
{
	char path[64];
	snprintf(path, sizeof path, "/proc/self/fd/%d", fd);
	int ro = open(path, O_RDONLY);
	if (ro < 0)
		wl_fail("open %s: %s", path, strerror(errno));
	return ro;
}

int main(int argc, char **argv)
{
	wl_init(argc, argv, 2, "CTL alone|mapped|forked");
	wl_close_inherited();
	const char *mode = argv[2];
	int fd = memfd_create("cpr-script", 0);
	if (fd < 0 || write(fd, script, sizeof script - 1) != (ssize_t)(sizeof script - 1))
		wl_fail("memfd: %s", strerror(errno));
	char *priv = NULL, *shared = NULL;
	pid_t kid = 0;
	int c[2] = { -1, -1 };
	if (!strcmp(mode, "mapped")) {
		int ro = reopen_readonly(fd);
		priv = mmap(NULL, 4096, PROT_READ | PROT_WRITE, MAP_PRIVATE, ro, 0);
		shared = mmap(NULL, 4096, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
		if (priv == MAP_FAILED || shared == MAP_FAILED)
			wl_fail("mmap: %s", strerror(errno));
		priv[100] = 'p';
	} else if (!strcmp(mode, "forked")) {
		reopen_readonly(fd);
		if (pipe(c))
			wl_fail("pipe");
		kid = fork();
		if (kid == 0) {
			char b;
			if (read(c[0], &b, 1) != 1)
				_exit(3);
			_exit(exec_fd(fd) ? 4 : 0);
		}
	} else if (strcmp(mode, "alone")) {
		wl_fail("unknown mode %s", mode);
	}
	/* it runs before the checkpoint too */
	check_exec(fd, "before");
	if (kid)
		wl_ready("mode=%s child=%d", mode, kid);
	else
		wl_ready("mode=%s", mode);
	while (!wl_go())
		wl_sleep_ms(20);
	check_exec(fd, "after restart");
	if (priv && (priv[100] != 'p' || memcmp(shared, script, sizeof script - 1)))
		wl_fail("mappings changed");
	if (kid) {
		int status;
		if (write(c[1], "g", 1) != 1)
			wl_fail("pipe write");
		if (waitpid(kid, &status, 0) != kid || !WIFEXITED(status) || WEXITSTATUS(status))
			wl_fail("the child could not exec the memfd (status %x)", status);
	}
	wl_pass("memfd %s executable", mode);
}
