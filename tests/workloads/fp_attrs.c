/* Process attributes set with prctl and /proc: child subreaper, oom_score_adj 500, THP
 * disabled, audit login uid 4242 (where the kernel has one and it can be set); a child
 * whose main thread has parent-death signal SIGUSR2 and a second thread SIGHUP. After
 * restart each is read back with prctl and /proc/self (the child's answer is its exit
 * status). */
#include "wl.h"
#include <pthread.h>
#include <sys/prctl.h>

static int read_int(const char *path)
{
	char buf[32] = "";
	int fd = open(path, O_RDONLY);
	if (fd < 0)
		return -1;
	ssize_t n = read(fd, buf, sizeof buf - 1);
	close(fd);
	return n > 0 ? (int)strtoul(buf, NULL, 10) : -1;
}

static int write_str(const char *path, const char *s)
{
	int fd = open(path, O_WRONLY);
	if (fd < 0)
		return -1;
	ssize_t n = write(fd, s, strlen(s));
	close(fd);
	return n == (ssize_t)strlen(s) ? 0 : -1;
}

static int thread_pdeathsig = -1;

static void *other_thread(void *arg)
{
	(void)arg;
	prctl(PR_SET_PDEATHSIG, SIGHUP, 0, 0, 0);
	while (!wl_go())
		wl_sleep_ms(20);
	prctl(PR_GET_PDEATHSIG, &thread_pdeathsig, 0, 0, 0);
	return NULL;
}

/* The child: 0 if both parent-death signals came back, 1 if not. */
static void child(void)
{
	if (prctl(PR_SET_PDEATHSIG, SIGUSR2, 0, 0, 0) != 0)
		_exit(2);
	pthread_t t;
	pthread_create(&t, NULL, other_thread, NULL);
	while (!wl_go())
		wl_sleep_ms(20);
	pthread_join(t, NULL);
	int pdeathsig = -1;
	prctl(PR_GET_PDEATHSIG, &pdeathsig, 0, 0, 0);
	_exit(pdeathsig == SIGUSR2 && thread_pdeathsig == SIGHUP ? 0 : 1);
}

int main(int argc, char **argv)
{
	wl_init(argc, argv, 0, "CTL");
	pid_t kid = fork();
	if (kid == 0)
		child();
	if (prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) != 0 ||
	    prctl(PR_SET_THP_DISABLE, 1, 0, 0, 0) != 0 ||
	    write_str("/proc/self/oom_score_adj", "500") != 0)
		wl_fail("set up: %s", strerror(errno));
	int loginuid = write_str("/proc/self/loginuid", "4242") == 0 ? 4242 : -2;
	wl_sleep_ms(100); /* the child sets its signals (checked after restart anyway) */
	wl_ready("loginuid=%d", loginuid);
	while (!wl_go())
		wl_sleep_ms(20);
	int status = -1, subreaper = -1;
	waitpid(kid, &status, 0);
	int kid_ok = WIFEXITED(status) && WEXITSTATUS(status) == 0;
	prctl(PR_GET_CHILD_SUBREAPER, &subreaper, 0, 0, 0);
	int thp = prctl(PR_GET_THP_DISABLE, 0, 0, 0, 0);
	int oom = read_int("/proc/self/oom_score_adj");
	int now_loginuid = loginuid == 4242 ? read_int("/proc/self/loginuid") : -2;
	if (!kid_ok || subreaper != 1 || thp != 1 || oom != 500 || now_loginuid != loginuid)
		wl_fail("child status %#x subreaper %d thp_disable %d oom_score_adj %d "
			"loginuid %d (was %d)",
			status, subreaper, thp, oom, now_loginuid, loginuid);
	wl_pass("child's pdeathsig kept, subreaper %d thp_disable %d oom_score_adj %d loginuid %d",
		subreaper, thp, oom, now_loginuid);
	return 0;
}
