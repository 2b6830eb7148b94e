/* membarrier(2) registrations come back (zdtm membarrier): the process registers for
 * every expedited command the kernel offers; after restart (GO) each registered command
 * runs (EPERM if the registration were lost) and MEMBARRIER_CMD_GET_REGISTRATIONS gives
 * the same mask. Prints "READY <pid> registered=<mask>", then PASS or FAIL. */
#include "wl.h"
#include <linux/membarrier.h>
#include <sys/syscall.h>

/* older headers lack it (Linux 6.3) */
#define CMD_GET_REGISTRATIONS (1 << 9)

static int membarrier(int cmd)
{
	return (int)syscall(SYS_membarrier, cmd, 0, 0);
}

static const int cmds[][2] = {
	{ MEMBARRIER_CMD_REGISTER_GLOBAL_EXPEDITED, MEMBARRIER_CMD_GLOBAL_EXPEDITED },
	{ MEMBARRIER_CMD_REGISTER_PRIVATE_EXPEDITED, MEMBARRIER_CMD_PRIVATE_EXPEDITED },
	{ MEMBARRIER_CMD_REGISTER_PRIVATE_EXPEDITED_SYNC_CORE,
	  MEMBARRIER_CMD_PRIVATE_EXPEDITED_SYNC_CORE },
	{ MEMBARRIER_CMD_REGISTER_PRIVATE_EXPEDITED_RSEQ, MEMBARRIER_CMD_PRIVATE_EXPEDITED_RSEQ },
};

int main(int argc, char **argv)
{
	wl_init(argc, argv, 0, "CTL");
	wl_close_inherited();
	int supported = membarrier(MEMBARRIER_CMD_QUERY), registered = 0;
	if (supported < 0)
		wl_fail("membarrier: %s", strerror(errno));
	for (unsigned i = 0; i < sizeof cmds / sizeof cmds[0]; i++) {
		if (!(supported & cmds[i][0]))
			continue;
		if (membarrier(cmds[i][0]))
			wl_fail("register %#x: %s", cmds[i][0], strerror(errno));
		registered |= cmds[i][0];
	}
	int before = membarrier(CMD_GET_REGISTRATIONS);
	wl_ready("registered=%#x", registered);
	while (!wl_go())
		wl_sleep_ms(20);
	for (unsigned i = 0; i < sizeof cmds / sizeof cmds[0]; i++)
		if ((registered & cmds[i][0]) && membarrier(cmds[i][1]))
			wl_fail("membarrier %#x after restart: %s", cmds[i][1], strerror(errno));
	int after = membarrier(CMD_GET_REGISTRATIONS);
	if (before >= 0 && after != before)
		wl_fail("registrations %#x, before %#x", after, before);
	wl_pass("membarrier registrations %#x kept", registered);
}
