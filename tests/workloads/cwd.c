/* cwd CTL DIR: chdir(DIR), then idles; after CTL/GO prints "CWD <getcwd()>" and PASS. */
#include "wl.h"

int main(int argc, char **argv)
{
	wl_init(argc, argv, 2, "CTL DIR");
	if (chdir(argv[2]))
		wl_fail("chdir %s: %s", argv[2], strerror(errno));
	wl_ready("cwd=%s", argv[2]);
	while (!wl_go())
		wl_sleep_ms(20);
	char buf[4096];
	if (!getcwd(buf, sizeof buf))
		wl_fail("getcwd: %s", strerror(errno));
	printf("CWD %s\n", buf);
	wl_pass("cwd=%s", buf);
}
