/* Memory cpr cannot give back as it was: a MAP_DROPPABLE mapping (smaps VmFlag "dp"),
 * which the kernel may empty at any time. A checkpoint must refuse it, naming the process
 * and the mapping, and leave the process running. */
#include "wl.h"
#include <sys/mman.h>

#ifndef MAP_DROPPABLE
#define MAP_DROPPABLE 0x08
#endif

int main(int argc, char **argv)
{
	wl_init(argc, argv, 0, "CTL");
	wl_close_inherited();
	unsigned char *p = mmap(NULL, 8192, PROT_READ | PROT_WRITE, MAP_DROPPABLE | MAP_ANONYMOUS,
				-1, 0);
	if (p == MAP_FAILED)
		wl_fail("mmap MAP_DROPPABLE errno %d", errno);
	p[0] = 1;
	wl_ready("addr=%lx", (unsigned long)p);
	while (!wl_go())
		wl_sleep_ms(20);
	wl_pass("still running");
	return 0;
}
