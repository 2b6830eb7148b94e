/* Credentials per thread, as raw system calls set them (each call changes the calling
 * thread only). The main thread drops CAP_SYS_BOOT and CAP_MKNOD from its bounding set,
 * keeps capabilities across its change to uid 1000 (SECBIT_KEEP_CAPS, then cleared),
 * keeps CAP_CHOWN and CAP_NET_BIND_SERVICE permitted, CAP_CHOWN effective,
 * CAP_NET_BIND_SERVICE inheritable and ambient, sets SECBIT_NOROOT and no_new_privs. A
 * second thread becomes uid 2000 with no capabilities. After restart each checks its own
 * with getresuid, capget, PR_CAPBSET_READ, PR_CAP_AMBIENT_IS_SET, PR_GET_SECUREBITS and
 * PR_GET_NO_NEW_PRIVS. Must start as root. */
#include "wl.h"
#include <linux/capability.h>
#include <linux/securebits.h>
#include <pthread.h>
#include <sys/prctl.h>
#include <sys/syscall.h>

#define BIT(c) (1u << (c))

struct state {
	uid_t uid[3];
	uint32_t eff, prm, inh;
	int bnd_boot, bnd_mknod, bnd_chown, amb_nbs, securebits, nnp;
};

static void read_state(struct state *s)
{
	syscall(SYS_getresuid, &s->uid[0], &s->uid[1], &s->uid[2]);
	struct __user_cap_header_struct h = { _LINUX_CAPABILITY_VERSION_3, 0 };
	struct __user_cap_data_struct d[2];
	syscall(SYS_capget, &h, d);
	s->eff = d[0].effective;
	s->prm = d[0].permitted;
	s->inh = d[0].inheritable;
	s->bnd_boot = prctl(PR_CAPBSET_READ, CAP_SYS_BOOT, 0, 0, 0);
	s->bnd_mknod = prctl(PR_CAPBSET_READ, CAP_MKNOD, 0, 0, 0);
	s->bnd_chown = prctl(PR_CAPBSET_READ, CAP_CHOWN, 0, 0, 0);
	s->amb_nbs = prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_IS_SET, CAP_NET_BIND_SERVICE, 0, 0);
	s->securebits = prctl(PR_GET_SECUREBITS, 0, 0, 0, 0);
	s->nnp = prctl(PR_GET_NO_NEW_PRIVS, 0, 0, 0, 0);
}

static void describe(const char *who, const struct state *s, char *out, size_t size)
{
	snprintf(out, size,
		 "%s uid %d/%d/%d caps %x/%x/%x bnd boot %d mknod %d chown %d ambient %d "
		 "securebits %x nnp %d",
		 who, (int)s->uid[0], (int)s->uid[1], (int)s->uid[2], s->eff, s->prm, s->inh,
		 s->bnd_boot, s->bnd_mknod, s->bnd_chown, s->amb_nbs, s->securebits, s->nnp);
}

static void must(long r, const char *what)
{
	if (r != 0)
		wl_fail("%s: %s", what, strerror(errno));
}

static pthread_barrier_t set_up;
static struct state thread_saved, thread_now;

static void *other_thread(void *arg)
{
	(void)arg;
	must(syscall(SYS_setresuid, 2000, 2000, 2000), "thread setresuid");
	read_state(&thread_saved);
	pthread_barrier_wait(&set_up);
	while (!wl_go())
		wl_sleep_ms(20);
	read_state(&thread_now);
	return NULL;
}

int main(int argc, char **argv)
{
	wl_init(argc, argv, 0, "CTL");
	pthread_barrier_init(&set_up, NULL, 2);
	pthread_t t;
	pthread_create(&t, NULL, other_thread, NULL);
	must(prctl(PR_CAPBSET_DROP, CAP_SYS_BOOT, 0, 0, 0), "drop CAP_SYS_BOOT");
	must(prctl(PR_CAPBSET_DROP, CAP_MKNOD, 0, 0, 0), "drop CAP_MKNOD");
	must(prctl(PR_SET_SECUREBITS, SECBIT_KEEP_CAPS | SECBIT_NOROOT, 0, 0, 0), "securebits");
	must(syscall(SYS_setresuid, 1000, 1000, 1000), "setresuid");
	struct __user_cap_header_struct h = { _LINUX_CAPABILITY_VERSION_3, 0 };
	struct __user_cap_data_struct d[2] = { { 0 } };
	d[0].permitted = BIT(CAP_CHOWN) | BIT(CAP_NET_BIND_SERVICE);
	d[0].effective = BIT(CAP_CHOWN);
	d[0].inheritable = BIT(CAP_NET_BIND_SERVICE);
	must(syscall(SYS_capset, &h, d), "capset");
	must(prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_RAISE, CAP_NET_BIND_SERVICE, 0, 0), "ambient");
	must(prctl(PR_SET_KEEPCAPS, 0, 0, 0, 0), "keepcaps off");
	must(prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0), "no_new_privs");
	struct state saved, now;
	read_state(&saved);
	pthread_barrier_wait(&set_up);
	wl_ready("securebits=%x", saved.securebits);
	while (!wl_go())
		wl_sleep_ms(20);
	read_state(&now);
	pthread_join(t, NULL);
	char a[512], b[512];
	describe("main", &saved, a, sizeof a);
	describe("main", &now, b, sizeof b);
	if (strcmp(a, b) != 0)
		wl_fail("was %s; now %s", a, b);
	char c[512], e[512];
	describe("thread", &thread_saved, c, sizeof c);
	describe("thread", &thread_now, e, sizeof e);
	if (strcmp(c, e) != 0)
		wl_fail("was %s; now %s", c, e);
	wl_pass("%s; %s", b, e);
	return 0;
}
