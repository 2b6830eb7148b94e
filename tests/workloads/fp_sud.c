/* A thread with syscall user dispatch on (PR_SET_SYSCALL_USER_DISPATCH, as Wine uses it),
 * its selector at "allow": the checkpoint must be refused; the program runs on and, after
 * CTL/GO, turns it off and prints PASS. */
#include "wl.h"
#include <sys/prctl.h>

#ifndef PR_SET_SYSCALL_USER_DISPATCH
#define PR_SET_SYSCALL_USER_DISPATCH 59
#define PR_SYS_DISPATCH_OFF 0
#define PR_SYS_DISPATCH_ON 1
#endif

static volatile char selector; /* 0: SYSCALL_DISPATCH_FILTER_ALLOW */

int main(int argc, char **argv)
{
	wl_init(argc, argv, 0, "CTL");
	if (prctl(PR_SET_SYSCALL_USER_DISPATCH, PR_SYS_DISPATCH_ON, 0, 0, &selector) != 0)
		wl_fail("PR_SET_SYSCALL_USER_DISPATCH: %s", strerror(errno));
	wl_ready("dispatch on");
	while (!wl_go())
		wl_sleep_ms(20);
	if (prctl(PR_SET_SYSCALL_USER_DISPATCH, PR_SYS_DISPATCH_OFF, 0, 0, 0) != 0)
		wl_fail("PR_SYS_DISPATCH_OFF: %s", strerror(errno));
	wl_pass("ran on");
	return 0;
}
