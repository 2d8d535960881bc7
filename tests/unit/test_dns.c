/* The c-ares resolver on the real loop against a real DNS server: dnsmasq
 * run as a child on a free port of 127.0.0.1, serving only made-up names
 * under .test. No traffic leaves the loopback: every resolver gets its
 * servers set before its first lookup. A bound UDP socket that never replies
 * stands in for a dead server. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "core/log.h"
#include "core/loop.h"
#include "net/dns.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <pwd.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define DNSMASQ "/usr/sbin/dnsmasq"

static pid_t dnsmasq_pid = -1;
static uint16_t dnsmasq_port;
static char dnsmasq_addr[32];  /* "127.0.0.1:<port>" */
static int silent_fd = -1;     /* bound UDP socket nobody reads */
static char silent_addr[32];
static char refused_addr[32];  /* a UDP port nothing is bound to */

static uint64_t now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

/* ---- fixtures -------------------------------------------------------------- */

static int bind_lo(int type, uint16_t port, uint16_t *out)
{
	int fd = socket(AF_INET, type | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -1;
	struct sockaddr_in a = { .sin_family = AF_INET, .sin_port = htons(port) };
	a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	socklen_t al = sizeof(a);
	if (bind(fd, (struct sockaddr *)&a, sizeof(a)) < 0 ||
	    getsockname(fd, (struct sockaddr *)&a, &al) < 0) {
		close(fd);
		return -1;
	}
	if (out)
		*out = ntohs(a.sin_port);
	return fd;
}

/* A port free for both UDP and TCP on 127.0.0.1 (dnsmasq binds both). */
static uint16_t free_port(void)
{
	for (int i = 0; i < 50; i++) {
		uint16_t p;
		int u = bind_lo(SOCK_DGRAM, 0, &p);
		if (u < 0)
			continue;
		int t = bind_lo(SOCK_STREAM, p, NULL);
		close(u);
		if (t >= 0) {
			close(t);
			return p;
		}
	}
	return 0;
}

/* One A query for v4.test; true when any answer comes back. */
static bool dnsmasq_answers(uint16_t port)
{
	static const uint8_t qry[] = { 0x12, 0x34, 0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, 0,
				       2, 'v', '4', 4, 't', 'e', 's', 't', 0, 0, 1, 0, 1 };
	int fd = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return false;
	struct sockaddr_in a = { .sin_family = AF_INET, .sin_port = htons(port) };
	a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	bool ok = false;
	if (sendto(fd, qry, sizeof(qry), 0, (struct sockaddr *)&a, sizeof(a)) ==
	    (ssize_t)sizeof(qry)) {
		struct pollfd p = { .fd = fd, .events = POLLIN };
		uint8_t buf[512];
		ok = poll(&p, 1, 100) == 1 && recv(fd, buf, sizeof(buf), 0) >= 12 &&
		     buf[0] == 0x12 && buf[1] == 0x34;
	}
	close(fd);
	return ok;
}

static pid_t start_dnsmasq(uint16_t port)
{
	char portarg[32], userarg[64];
	snprintf(portarg, sizeof(portarg), "--port=%u", (unsigned)port);
	/* As root dnsmasq would switch to "nobody"; stay who we are. */
	struct passwd *pw = getpwuid(getuid());
	snprintf(userarg, sizeof(userarg), "--user=%s", pw ? pw->pw_name : "root");
	char *argv[] = { DNSMASQ, "--no-daemon", portarg, "--listen-address=127.0.0.1",
			 "--bind-interfaces", "--no-resolv", "--no-hosts", "--conf-file=/dev/null",
			 "--pid-file=", userarg, "--address=/v4.test/10.1.2.3",
			 "--address=/v6.test/fd00::5", "--host-record=both.test,10.9.8.7,fd00::7",
			 /* NXDOMAIN for other .test names instead of REFUSED */
			 "--local=/test/", "--log-facility=-", NULL };
	pid_t pid = fork();
	if (pid != 0)
		return pid;
	prctl(PR_SET_PDEATHSIG, SIGKILL);
	int null = open("/dev/null", O_RDWR);
	if (null >= 0 && !getenv("DNS_TEST_VERBOSE")) {
		dup2(null, 1);
		dup2(null, 2);
	}
	execv(DNSMASQ, argv);
	_exit(127);
}

static void stop_dnsmasq(void)
{
	if (dnsmasq_pid > 0) {
		kill(dnsmasq_pid, SIGTERM);
		waitpid(dnsmasq_pid, NULL, 0);
		dnsmasq_pid = -1;
	}
}

static int group_setup(void **state)
{
	if (getenv("DNS_TEST_VERBOSE")) /* also shows dnsmasq's log */
		log_set_level(LOGL_DEBUG);
	if (access(DNSMASQ, X_OK) != 0) {
		fprintf(stderr, "test_dns: %s missing (Debian dnsmasq-base)\n", DNSMASQ);
		return -1;
	}
	for (int attempt = 0; attempt < 5 && dnsmasq_pid < 0; attempt++) {
		uint16_t port = free_port();
		if (!port)
			continue;
		pid_t pid = start_dnsmasq(port);
		if (pid < 0)
			return -1;
		uint64_t end = now_ms() + 5000;
		bool up = false;
		while (!up && now_ms() < end) {
			if (waitpid(pid, NULL, WNOHANG) == pid) { /* lost a port race? */
				pid = -1;
				break;
			}
			up = dnsmasq_answers(port);
		}
		if (up) {
			dnsmasq_pid = pid;
			dnsmasq_port = port;
		} else if (pid > 0) {
			kill(pid, SIGKILL);
			waitpid(pid, NULL, 0);
		}
	}
	if (dnsmasq_pid < 0) {
		fprintf(stderr, "test_dns: dnsmasq did not come up\n");
		return -1;
	}
	snprintf(dnsmasq_addr, sizeof(dnsmasq_addr), "127.0.0.1:%u", (unsigned)dnsmasq_port);

	uint16_t p;
	silent_fd = bind_lo(SOCK_DGRAM, 0, &p);
	if (silent_fd < 0)
		return -1;
	snprintf(silent_addr, sizeof(silent_addr), "127.0.0.1:%u", (unsigned)p);
	int fd = bind_lo(SOCK_DGRAM, 0, &p);
	if (fd < 0)
		return -1;
	close(fd);
	snprintf(refused_addr, sizeof(refused_addr), "127.0.0.1:%u", (unsigned)p);
	return 0;
}

static int group_teardown(void **state)
{
	stop_dnsmasq();
	if (silent_fd >= 0)
		close(silent_fd);
	return 0;
}

struct fx {
	struct loop *l;
	struct dns *d;
};

static int fx_setup(void **state)
{
	struct fx *f = calloc(1, sizeof(*f));
	assert_non_null(f);
	assert_int_equal(loop_new(&f->l), 0);
	assert_int_equal(dns_new(&f->d, f->l), 0);
	const char *srv[] = { dnsmasq_addr };
	assert_int_equal(dns_set_servers(f->d, srv, 1), 0);
	*state = f;
	return 0;
}

static int fx_teardown(void **state)
{
	struct fx *f = *state;
	dns_free(f->d); /* may be NULL: a test freed it */
	loop_free(f->l);
	free(f);
	return 0;
}

static void use_server(struct fx *f, const char *addr)
{
	const char *srv[] = { addr };
	assert_int_equal(dns_set_servers(f->d, srv, 1), 0);
}

/* ---- results ---------------------------------------------------------------- */

static bool in_resolve; /* set around dns_resolve() calls */

struct res {
	int calls;
	int status;
	bool inside; /* a callback ran inside dns_resolve() */
	uint64_t at; /* now_ms() of the callback */
	struct dns_result r;
	/* optional action from inside the callback */
	struct dns **free_dns;
	struct dns *set_servers_on;
	struct dns_query **cancel; /* dns_cancel() on this from the callback */
	struct fx *chain;          /* start a lookup of "v6.test" into next */
	struct res *next;
};

struct fx;
static struct dns_query *start(struct fx *f, const char *name, enum dns_family fam,
			       uint32_t timeout_ms, struct res *x);

static void on_result(void *arg, int status, const struct dns_result *r)
{
	struct res *x = arg;
	x->calls++;
	x->status = status;
	x->inside |= in_resolve;
	x->at = now_ms();
	if (status == 0) {
		assert_non_null(r);
		x->r = *r;
	}
	if (x->free_dns) {
		dns_free(*x->free_dns);
		*x->free_dns = NULL;
	}
	if (x->set_servers_on) {
		const char *srv[] = { dnsmasq_addr };
		assert_int_equal(dns_set_servers(x->set_servers_on, srv, 1), 0);
	}
	if (x->cancel)
		dns_cancel(*x->cancel);
	if (x->chain)
		start(x->chain, "v6.test", DNS_PREFER_V4, 0, x->next);
}

static struct dns_query *start(struct fx *f, const char *name, enum dns_family fam,
			       uint32_t timeout_ms, struct res *x)
{
	in_resolve = true;
	struct dns_query *q = dns_resolve(f->d, name, fam, timeout_ms, on_result, x);
	in_resolve = false;
	assert_non_null(q);
	return q;
}

/* Turn the loop until x has its callback (at most max_ms). */
static void wait_for(struct fx *f, struct res *x, uint64_t max_ms)
{
	uint64_t end = now_ms() + max_ms;
	while (x->calls == 0 && now_ms() < end)
		assert_int_equal(loop_turn(f->l, 50), 0);
	assert_int_equal(x->calls, 1);
	assert_false(x->inside);
}

static void spin(struct fx *f, uint64_t ms)
{
	uint64_t end = now_ms() + ms;
	while (now_ms() < end)
		assert_int_equal(loop_turn(f->l, 50), 0);
}

static int resolve(struct fx *f, const char *name, enum dns_family fam, struct res *x)
{
	memset(x, 0, sizeof(*x));
	start(f, name, fam, 5000, x);
	wait_for(f, x, 6000);
	return x->status;
}

static void assert_addr(const struct sockaddr_storage *ss, const char *want)
{
	char buf[INET6_ADDRSTRLEN];
	if (ss->ss_family == AF_INET) {
		const struct sockaddr_in *a = (const struct sockaddr_in *)ss;
		assert_int_equal(a->sin_port, 0);
		inet_ntop(AF_INET, &a->sin_addr, buf, sizeof(buf));
	} else {
		assert_int_equal(ss->ss_family, AF_INET6);
		const struct sockaddr_in6 *a = (const struct sockaddr_in6 *)ss;
		assert_int_equal(a->sin6_port, 0);
		inet_ntop(AF_INET6, &a->sin6_addr, buf, sizeof(buf));
	}
	assert_string_equal(buf, want);
}

/* ---- tests ------------------------------------------------------------------ */

static void test_v4_name(void **state)
{
	struct fx *f = *state;
	struct res x;
	assert_int_equal(resolve(f, "v4.test", DNS_PREFER_V4, &x), 0);
	assert_int_equal(x.r.n, 1);
	assert_addr(&x.r.addr[0], "10.1.2.3");

	assert_int_equal(resolve(f, "v4.test", DNS_V4_ONLY, &x), 0);
	assert_int_equal(x.r.n, 1);
	assert_addr(&x.r.addr[0], "10.1.2.3");

	/* prefer v6 falls back to A */
	assert_int_equal(resolve(f, "v4.test", DNS_PREFER_V6, &x), 0);
	assert_int_equal(x.r.n, 1);
	assert_addr(&x.r.addr[0], "10.1.2.3");

	assert_int_equal(resolve(f, "v4.test", DNS_V6_ONLY, &x), -ENOENT);
}

static void test_v6_name(void **state)
{
	struct fx *f = *state;
	struct res x;
	assert_int_equal(resolve(f, "v6.test", DNS_PREFER_V4, &x), 0);
	assert_int_equal(x.r.n, 1);
	assert_addr(&x.r.addr[0], "fd00::5");

	assert_int_equal(resolve(f, "v6.test", DNS_V6_ONLY, &x), 0);
	assert_addr(&x.r.addr[0], "fd00::5");

	assert_int_equal(resolve(f, "v6.test", DNS_V4_ONLY, &x), -ENOENT);
}

static void test_both_families(void **state)
{
	struct fx *f = *state;
	struct res x;
	assert_int_equal(resolve(f, "both.test", DNS_PREFER_V4, &x), 0);
	assert_true(x.r.n >= 1);
	assert_addr(&x.r.addr[0], "10.9.8.7");

	assert_int_equal(resolve(f, "both.test", DNS_PREFER_V6, &x), 0);
	assert_true(x.r.n >= 1);
	assert_addr(&x.r.addr[0], "fd00::7");

	assert_int_equal(resolve(f, "both.test", DNS_V6_ONLY, &x), 0);
	assert_addr(&x.r.addr[0], "fd00::7");
}

static void test_no_such_name(void **state)
{
	struct fx *f = *state;
	struct res x;
	assert_int_equal(resolve(f, "nosuch.test", DNS_PREFER_V4, &x), -ENOENT);
	assert_int_equal(resolve(f, "nosuch.test", DNS_V4_ONLY, &x), -ENOENT);
	assert_int_equal(resolve(f, "nosuch.test", DNS_PREFER_V6, &x), -ENOENT);
}

static void test_numeric(void **state)
{
	struct fx *f = *state;
	use_server(f, silent_addr); /* a query would time out */
	struct res x;
	uint64_t t0 = now_ms();
	assert_int_equal(resolve(f, "1.2.3.4", DNS_PREFER_V4, &x), 0);
	assert_int_equal(x.r.n, 1);
	assert_addr(&x.r.addr[0], "1.2.3.4");
	assert_int_equal(resolve(f, "::1", DNS_PREFER_V4, &x), 0);
	assert_int_equal(x.r.n, 1);
	assert_addr(&x.r.addr[0], "::1");
	assert_int_equal(resolve(f, "fd00::1:2", DNS_V6_ONLY, &x), 0);
	assert_addr(&x.r.addr[0], "fd00::1:2");
	/* an address of the excluded family */
	assert_int_equal(resolve(f, "::1", DNS_V4_ONLY, &x), -ENOENT);
	assert_int_equal(resolve(f, "1.2.3.4", DNS_V6_ONLY, &x), -ENOENT);
	assert_true(now_ms() - t0 < 1000);

	/* delivered by the loop, not by dns_resolve() */
	memset(&x, 0, sizeof(x));
	start(f, "10.0.0.1", DNS_PREFER_V4, 0, &x);
	assert_int_equal(x.calls, 0);
	assert_int_equal(loop_turn(f->l, 50), 0);
	assert_int_equal(x.calls, 1);
	assert_false(x.inside);
}

static void test_bad_names(void **state)
{
	struct fx *f = *state;
	struct res x;
	char name[300];
	memset(name, 'a', sizeof(name));
	for (int i = 63; i < 254; i += 64)
		name[i] = '.';
	name[254] = '\0'; /* 254 bytes */
	assert_int_equal(resolve(f, name, DNS_PREFER_V4, &x), -EINVAL);
	name[299] = '\0';
	assert_int_equal(resolve(f, name, DNS_PREFER_V4, &x), -EINVAL);
	assert_int_equal(resolve(f, "", DNS_PREFER_V4, &x), -EINVAL);
	assert_int_equal(resolve(f, NULL, DNS_PREFER_V4, &x), -EINVAL);
	assert_int_equal(resolve(f, "v4.test", (enum dns_family)0, &x), -EINVAL);
	assert_int_equal(resolve(f, "v4.test", (enum dns_family)5, &x), -EINVAL);
	/* 253 bytes are allowed (and unknown) */
	memcpy(name + 248, ".test", 6);
	assert_int_equal(strlen(name), 253);
	assert_int_equal(resolve(f, name, DNS_V4_ONLY, &x), -ENOENT);
	/* a server that refuses the query (dnsmasq outside its local domain) */
	int st = resolve(f, "refused.example", DNS_V4_ONLY, &x);
	assert_int_equal(st, -ECONNREFUSED); /* c-ares: ARES_ECONNREFUSED */
}

static void test_callback_never_inside(void **state)
{
	struct fx *f = *state;
	struct res x[4];
	memset(x, 0, sizeof(x));
	start(f, "localhost", DNS_PREFER_V4, 0, &x[0]); /* /etc/hosts: synchronous in c-ares */
	start(f, "1.2.3.4", DNS_PREFER_V4, 0, &x[1]);
	start(f, "", DNS_PREFER_V4, 0, &x[2]);
	start(f, "v4.test", DNS_PREFER_V4, 0, &x[3]);
	for (int i = 0; i < 4; i++)
		assert_int_equal(x[i].calls, 0);
	for (int i = 0; i < 4; i++)
		wait_for(f, &x[i], 3000);
	assert_int_equal(x[0].status, 0);
	assert_int_equal(x[1].status, 0);
	assert_int_equal(x[2].status, -EINVAL);
	assert_int_equal(x[3].status, 0);
}

static void test_etc_hosts_first(void **state)
{
	struct fx *f = *state;
	struct res x;
	assert_int_equal(resolve(f, "localhost", DNS_PREFER_V4, &x), 0);
	assert_addr(&x.r.addr[0], "127.0.0.1");
	assert_int_equal(resolve(f, "localhost", DNS_V4_ONLY, &x), 0);
	assert_addr(&x.r.addr[0], "127.0.0.1");

	/* without asking the (dead) server */
	use_server(f, silent_addr);
	uint64_t t0 = now_ms();
	assert_int_equal(resolve(f, "localhost", DNS_V4_ONLY, &x), 0);
	assert_addr(&x.r.addr[0], "127.0.0.1");
	assert_true(now_ms() - t0 < 1000);
}

static void test_cancel(void **state)
{
	struct fx *f = *state;
	struct res x[4];
	memset(x, 0, sizeof(x));
	dns_cancel(start(f, "v4.test", DNS_PREFER_V4, 0, &x[0]));
	dns_cancel(start(f, "1.2.3.4", DNS_PREFER_V4, 0, &x[1]));
	dns_cancel(start(f, "", DNS_PREFER_V4, 0, &x[2]));
	dns_cancel(start(f, "localhost", DNS_PREFER_V4, 300, &x[3]));
	dns_cancel(NULL);
	/* one that completes, to know the server had time to answer */
	struct res y;
	assert_int_equal(resolve(f, "both.test", DNS_PREFER_V4, &y), 0);
	spin(f, 400); /* past the 300 ms deadline */
	for (int i = 0; i < 4; i++)
		assert_int_equal(x[i].calls, 0);

	/* cancelled while c-ares is stuck on a dead server; freed by dns_free() */
	use_server(f, silent_addr);
	memset(x, 0, sizeof(x));
	struct dns_query *q = start(f, "v4.test", DNS_PREFER_V4, 200, &x[0]);
	spin(f, 100);
	dns_cancel(q);
	spin(f, 300);
	assert_int_equal(x[0].calls, 0);
}

static void test_timeout(void **state)
{
	struct fx *f = *state;
	use_server(f, silent_addr);
	struct res x;
	memset(&x, 0, sizeof(x));
	uint64_t t0 = now_ms();
	start(f, "v4.test", DNS_PREFER_V4, 300, &x);
	wait_for(f, &x, 3000);
	uint64_t took = x.at - t0;
	assert_int_equal(x.status, -ETIMEDOUT);
	assert_true(took >= 290 && took < 800);

	/* two in parallel with different deadlines */
	struct res a, b;
	memset(&a, 0, sizeof(a));
	memset(&b, 0, sizeof(b));
	t0 = now_ms();
	start(f, "v6.test", DNS_PREFER_V6, 400, &a);
	start(f, "both.test", DNS_V4_ONLY, 200, &b);
	wait_for(f, &b, 3000);
	wait_for(f, &a, 3000);
	assert_int_equal(a.status, -ETIMEDOUT);
	assert_int_equal(b.status, -ETIMEDOUT);
	assert_true(b.at - t0 >= 190 && b.at - t0 < 600);
	assert_true(a.at - t0 >= 390 && a.at - t0 < 900);
	assert_int_equal(a.calls, 1);
	assert_int_equal(b.calls, 1);
	/* c-ares keeps retrying; dns_free() in the teardown ends it quietly */
}

static void test_refused(void **state)
{
	struct fx *f = *state;
	use_server(f, refused_addr);
	struct res x;
	memset(&x, 0, sizeof(x));
	start(f, "v4.test", DNS_V4_ONLY, 3000, &x);
	wait_for(f, &x, 4000);
	/* ICMP port unreachable on loopback; a stack without it times out */
	assert_true(x.status == -ECONNREFUSED || x.status == -ETIMEDOUT);
}

static void test_set_servers_while_pending(void **state)
{
	struct fx *f = *state;
	use_server(f, silent_addr);
	struct res old, old2, cur;
	memset(&old, 0, sizeof(old));
	memset(&old2, 0, sizeof(old2));
	start(f, "v4.test", DNS_PREFER_V4, 600, &old);
	struct dns_query *q2 = start(f, "v6.test", DNS_PREFER_V4, 0, &old2);
	spin(f, 100);
	use_server(f, dnsmasq_addr);
	assert_int_equal(resolve(f, "v4.test", DNS_V4_ONLY, &cur), 0);
	assert_addr(&cur.r.addr[0], "10.1.2.3");
	/* the old lookup stays on the old server */
	wait_for(f, &old, 2000);
	assert_int_equal(old.status, -ETIMEDOUT);
	/* and again, several times, with lookups on each */
	for (int i = 0; i < 3; i++) {
		use_server(f, silent_addr);
		struct res y;
		memset(&y, 0, sizeof(y));
		start(f, "both.test", DNS_PREFER_V6, 100, &y);
		use_server(f, dnsmasq_addr);
		assert_int_equal(resolve(f, "both.test", DNS_PREFER_V6, &cur), 0);
		assert_addr(&cur.r.addr[0], "fd00::7");
		wait_for(f, &y, 2000);
		assert_int_equal(y.status, -ETIMEDOUT);
	}
	/* system servers: accepted (no lookup made with them here) */
	assert_int_equal(dns_set_servers(f->d, NULL, 0), 0);
	use_server(f, dnsmasq_addr);
	dns_cancel(q2);
	assert_int_equal(old2.calls, 0);
}

static void test_server_syntax(void **state)
{
	struct fx *f = *state;
	static const char *const good[] = { "127.0.0.1", "127.0.0.1:5353", "::1", "[::1]",
					    "[::1]:5353", "fd00::1:2", "[fd00::1]:53" };
	for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++)
		assert_int_equal(dns_set_servers(f->d, &good[i], 1), 0);
	assert_int_equal(dns_set_servers(f->d, good, 3), 0);
	static const char *const bad[] = { "",           "foo",        "example.com",  "1.2.3.4:",
					   "1.2.3.4:0",  "1.2.3.4:70000", "1.2.3.4:53x", "[::1",
					   "[::1]x",     "[1.2.3.4]:53", "::1:53:",     "1.2.3.4.5",
					   "[::1]:",     "1.2.3.4:-1" };
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		const char *one[] = { bad[i] };
		assert_int_equal(dns_set_servers(f->d, one, 1), -EINVAL);
	}
	static const char *const four[] = { "127.0.0.1", "127.0.0.2", "127.0.0.3", "127.0.0.4" };
	assert_int_equal(dns_set_servers(f->d, four, 4), -EINVAL);
	const char *withnull[] = { "127.0.0.1", NULL };
	assert_int_equal(dns_set_servers(f->d, withnull, 2), -EINVAL);
	assert_int_equal(dns_set_servers(f->d, NULL, 1), -EINVAL);
	/* a failed call keeps the previous servers */
	use_server(f, dnsmasq_addr);
	const char *one[] = { "nonsense" };
	assert_int_equal(dns_set_servers(f->d, one, 1), -EINVAL);
	struct res x;
	assert_int_equal(resolve(f, "v4.test", DNS_V4_ONLY, &x), 0);
	/* two servers */
	const char *two[] = { dnsmasq_addr, silent_addr };
	assert_int_equal(dns_set_servers(f->d, two, 2), 0);
	assert_int_equal(resolve(f, "v6.test", DNS_V6_ONLY, &x), 0);
	assert_addr(&x.r.addr[0], "fd00::5");
}

static void test_free_with_pending(void **state)
{
	struct fx *f = *state;
	struct res x[3];
	memset(x, 0, sizeof(x));
	start(f, "v4.test", DNS_PREFER_V4, 0, &x[0]);
	start(f, "1.2.3.4", DNS_PREFER_V4, 0, &x[1]);
	use_server(f, silent_addr);
	start(f, "v4.test", DNS_PREFER_V4, 100, &x[2]);
	dns_free(f->d);
	f->d = NULL;
	spin(f, 300);
	for (int i = 0; i < 3; i++)
		assert_int_equal(x[i].calls, 0);
}

static void test_free_from_callback(void **state)
{
	struct fx *f = *state;
	use_server(f, silent_addr);
	struct res x, other;
	memset(&x, 0, sizeof(x));
	memset(&other, 0, sizeof(other));
	x.free_dns = &f->d; /* c-ares still holds this query when it times out */
	start(f, "v4.test", DNS_PREFER_V4, 100, &x);
	start(f, "v6.test", DNS_PREFER_V4, 0, &other);
	wait_for(f, &x, 2000);
	assert_int_equal(x.status, -ETIMEDOUT);
	assert_null(f->d);
	spin(f, 200);
	assert_int_equal(other.calls, 0);
}

static void test_calls_from_callback(void **state)
{
	struct fx *f = *state;
	struct res x;
	memset(&x, 0, sizeof(x));
	x.set_servers_on = f->d;
	start(f, "v4.test", DNS_PREFER_V4, 0, &x);
	wait_for(f, &x, 3000);
	assert_int_equal(x.status, 0);
	struct res y;
	assert_int_equal(resolve(f, "v6.test", DNS_PREFER_V6, &y), 0);

	/* a callback cancelling its own query (no effect) */
	struct dns_query *q;
	memset(&x, 0, sizeof(x));
	x.cancel = &q;
	q = start(f, "both.test", DNS_PREFER_V6, 0, &x);
	wait_for(f, &x, 3000);
	assert_int_equal(x.status, 0);
	memset(&x, 0, sizeof(x));
	x.cancel = &q;
	q = start(f, "4.3.2.1", DNS_PREFER_V6, 0, &x);
	wait_for(f, &x, 3000);

	/* a callback starting the next lookup */
	memset(&x, 0, sizeof(x));
	memset(&y, 0, sizeof(y));
	x.chain = f;
	x.next = &y;
	start(f, "v4.test", DNS_PREFER_V4, 0, &x);
	wait_for(f, &x, 3000);
	wait_for(f, &y, 3000);
	assert_int_equal(y.status, 0);
	assert_addr(&y.r.addr[0], "fd00::5");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_v4_name, fx_setup, fx_teardown),
		cmocka_unit_test_setup_teardown(test_v6_name, fx_setup, fx_teardown),
		cmocka_unit_test_setup_teardown(test_both_families, fx_setup, fx_teardown),
		cmocka_unit_test_setup_teardown(test_no_such_name, fx_setup, fx_teardown),
		cmocka_unit_test_setup_teardown(test_numeric, fx_setup, fx_teardown),
		cmocka_unit_test_setup_teardown(test_bad_names, fx_setup, fx_teardown),
		cmocka_unit_test_setup_teardown(test_callback_never_inside, fx_setup, fx_teardown),
		cmocka_unit_test_setup_teardown(test_etc_hosts_first, fx_setup, fx_teardown),
		cmocka_unit_test_setup_teardown(test_cancel, fx_setup, fx_teardown),
		cmocka_unit_test_setup_teardown(test_timeout, fx_setup, fx_teardown),
		cmocka_unit_test_setup_teardown(test_refused, fx_setup, fx_teardown),
		cmocka_unit_test_setup_teardown(test_set_servers_while_pending, fx_setup,
						fx_teardown),
		cmocka_unit_test_setup_teardown(test_server_syntax, fx_setup, fx_teardown),
		cmocka_unit_test_setup_teardown(test_free_with_pending, fx_setup, fx_teardown),
		cmocka_unit_test_setup_teardown(test_free_from_callback, fx_setup, fx_teardown),
		cmocka_unit_test_setup_teardown(test_calls_from_callback, fx_setup, fx_teardown),
	};
	return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
