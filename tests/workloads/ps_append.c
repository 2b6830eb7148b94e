/* ps_append CTL FILE: opens FILE (O_WRONLY|O_CREAT|O_TRUNC, no O_APPEND) and forks; parent
 * and child both write 16-byte records "P nnnnnnnnnnnn\n" / "C ..." through that one
 * description every 5 ms: its shared offset keeps them from overwriting each other. On
 * CTL/GO the child prints "child wrote N" and exits with 0; the parent reaps it, then checks
 * the file: length = 16 * (its records + the child's), every record whole, each writer's
 * numbers 1..N in order. PASS total=.. */
#include "wl.h"
#include <sys/wait.h>

#define REC 16

static unsigned long run(int fd, char who)
{
	unsigned long n = 0;
	for (;;) {
		char rec[REC + 1];
		n++;
		snprintf(rec, sizeof rec, "%c %013lu\n", who, n);
		if (write(fd, rec, REC) != REC) {
			printf("FAIL %c write: %s\n", who, strerror(errno));
			exit(1);
		}
		if (who == 'P' && n == 20)
			wl_ready("");
		if (n > 20 && wl_go())
			return n;
		wl_sleep_ms(5);
	}
}

int main(int argc, char **argv)
{
	wl_init(argc, argv, 2, "CTL FILE");
	int fd = open(argv[2], O_WRONLY | O_CREAT | O_TRUNC, 0644);
	if (fd < 0)
		wl_fail("open: %s", strerror(errno));
	int pfd[2];
	if (pipe(pfd))
		wl_fail("pipe");
	pid_t c = fork();
	if (c == 0) {
		close(pfd[0]);
		unsigned long n = run(fd, 'C');
		printf("child wrote %lu\n", n);
		if (write(pfd[1], &n, sizeof n) != sizeof n)
			_exit(1);
		_exit(0);
	}
	close(pfd[1]);
	unsigned long mine = run(fd, 'P'), theirs = 0;
	if (read(pfd[0], &theirs, sizeof theirs) != sizeof theirs)
		wl_fail("child count");
	int st;
	if (waitpid(c, &st, 0) != c || !WIFEXITED(st) || WEXITSTATUS(st) != 0)
		wl_fail("child status %#x", st);
	struct stat sb;
	fstat(fd, &sb);
	unsigned long want = REC * (mine + theirs);
	if ((unsigned long)sb.st_size != want)
		wl_fail("file has %ld bytes, the writes %lu (P %lu + C %lu records)", (long)sb.st_size,
			want, mine, theirs);
	if (lseek(fd, 0, SEEK_CUR) != (off_t)want)
		wl_fail("offset %ld, wanted %lu", (long)lseek(fd, 0, SEEK_CUR), want);
	FILE *f = fopen(argv[2], "r");
	char line[64];
	unsigned long next[2] = { 1, 1 };
	while (f && fgets(line, sizeof line, f)) {
		char who;
		unsigned long n;
		if (strlen(line) != REC || sscanf(line, "%c %lu", &who, &n) != 2 ||
		    (who != 'P' && who != 'C'))
			wl_fail("broken record '%s'", line);
		int k = who == 'C';
		if (n != next[k])
			wl_fail("%c record %lu where %lu was due", who, n, next[k]);
		next[k]++;
	}
	if (next[0] != mine + 1 || next[1] != theirs + 1)
		wl_fail("records P %lu C %lu, written %lu %lu", next[0] - 1, next[1] - 1, mine, theirs);
	wl_pass("total=%lu p=%lu c=%lu", want, mine, theirs);
}
