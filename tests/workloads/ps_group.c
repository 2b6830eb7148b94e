/* ps_group CTL: a session and group leader forks two members and exits: its group lives
 * on without it. Prints "READY <pid> m1=.. m2=.." (the leader, before it exits). Each
 * member ticks; on CTL/GO checks its group and session are still the leader's PID and
 * prints "PASS <pid> pgid=.. sid=..", or FAIL. */
#include "wl.h"

static void member(pid_t leader)
{
	while (!wl_go())
		wl_sleep_ms(20);
	if (getpgrp() != leader || getsid(0) != leader)
		wl_fail("%d: pgid %d sid %d, wanted %d", (int)getpid(), (int)getpgrp(),
			(int)getsid(0), (int)leader);
	wl_pass("%d pgid=%d sid=%d", (int)getpid(), (int)getpgrp(), (int)getsid(0));
}

int main(int argc, char **argv)
{
	wl_init(argc, argv, 1, "CTL");
	if (setsid() < 0)
		wl_fail("setsid: %s", strerror(errno));
	pid_t leader = getpid();
	pid_t m[2];
	for (int i = 0; i < 2; i++) {
		m[i] = fork();
		if (m[i] == 0)
			member(leader);
	}
	wl_ready("m1=%d m2=%d", (int)m[0], (int)m[1]);
	return 0;
}
