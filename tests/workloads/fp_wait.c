/* Waits for GO, then checks that SIGPIPE, which it never touched, is still at SIG_DFL
 * (cpr, a Rust program, ignores it for itself): for tests about the restart itself (one
 * that must be refused, where the program must never run again) and that one. */
#include "wl.h"

int main(int argc, char **argv)
{
	wl_init(argc, argv, 0, "CTL");
	wl_ready(NULL);
	while (!wl_go())
		wl_sleep_ms(20);
	struct sigaction sa;
	sigaction(SIGPIPE, NULL, &sa);
	if (sa.sa_handler != SIG_DFL)
		wl_fail("SIGPIPE is %s", sa.sa_handler == SIG_IGN ? "ignored" : "caught");
	wl_pass("released, SIGPIPE at SIG_DFL");
	return 0;
}
