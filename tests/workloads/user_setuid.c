/* user_setuid CTL [drop]: installed setuid root by the test and run by an ordinary user.
 * Without "drop" it runs on with effective uid 0; with "drop" it gives the privilege
 * back at once (every uid the user's again), which leaves it undumpable: it changed
 * credentials. Prints READY with its uids and dumpable flag, then waits for GO. cpr run
 * by the user must refuse to checkpoint it either way. */
#include "wl.h"
#include <sys/prctl.h>

int main(int argc, char **argv)
{
	wl_init(argc, argv, 1, "CTL [drop]");
	if (argc > 2 && !strcmp(argv[2], "drop")) {
		uid_t me = getuid();
		if (setresuid(me, me, me))
			wl_fail("setresuid: %s", strerror(errno));
	}
	uid_t r, e, s;
	getresuid(&r, &e, &s);
	wl_ready("ruid=%d euid=%d suid=%d dumpable=%d", (int)r, (int)e, (int)s,
		 prctl(PR_GET_DUMPABLE));
	while (!wl_go())
		wl_sleep_ms(20);
	wl_pass("uids %d/%d/%d", (int)r, (int)e, (int)s);
}
