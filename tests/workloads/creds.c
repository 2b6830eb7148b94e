/* Runs as another user: after restart its real, effective and saved IDs, its groups and
 * its (empty) capabilities must be what they were, not cpr's root. */
#include "wl.h"
#include <grp.h>
#include <sys/syscall.h>
#include <linux/capability.h>

int main(int argc, char **argv)
{
	wl_init(argc, argv, 0, "CTL");
	uid_t r0, e0, s0;
	gid_t gr0, ge0, gs0;
	getresuid(&r0, &e0, &s0);
	getresgid(&gr0, &ge0, &gs0);
	int ng0 = getgroups(0, NULL);
	wl_ready("uid=%d", (int)r0);
	while (!wl_go())
		wl_sleep_ms(20);
	uid_t r, e, s;
	gid_t gr, ge, gs;
	getresuid(&r, &e, &s);
	getresgid(&gr, &ge, &gs);
	struct __user_cap_header_struct h = { _LINUX_CAPABILITY_VERSION_3, 0 };
	struct __user_cap_data_struct d[2];
	syscall(SYS_capget, &h, d);
	if (r != r0 || e != e0 || s != s0 || gr != gr0 || ge != ge0 || gs != gs0)
		wl_fail("ids %d/%d/%d %d/%d/%d", (int)r, (int)e, (int)s, (int)gr, (int)ge, (int)gs);
	if (getgroups(0, NULL) != ng0)
		wl_fail("groups %d, were %d", getgroups(0, NULL), ng0);
	if (d[0].effective || d[0].permitted || d[1].effective || d[1].permitted)
		wl_fail("capabilities %x/%x", d[0].effective, d[0].permitted);
	wl_pass("uid %d gid %d, no capabilities", (int)r, (int)gr);
	return 0;
}
