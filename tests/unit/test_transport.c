/* Transports against the real loop and real kernel objects: a pty, a pty
 * pair standing in for a UART, loopback TCP, and pipes/files for stdio.
 * No <termios.h> here: the uart checks read termios2 from <asm/termbits.h>. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "core/loop.h"
#include "transport/stdio_crlf.h"
#include "transport/transport.h"
#include "transport/uart_termios.h"

#include <arpa/inet.h>
#include <asm/termbits.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

/* ---- recording the events ------------------------------------------------ */

#define REC_KEEP 65536

struct rec {
	uint8_t in[REC_KEEP]; /* first bytes of input */
	size_t n;             /* all input bytes */
	int chunks;
	size_t max_chunk;
	int writable, attached, detached, eof;
};

static void on_input(void *arg, const uint8_t *p, size_t n)
{
	struct rec *r = arg;
	for (size_t i = 0; i < n && r->n + i < REC_KEEP; i++)
		r->in[r->n + i] = p[i];
	r->n += n;
	r->chunks++;
	if (n > r->max_chunk)
		r->max_chunk = n;
}

static void on_writable(void *arg)
{
	((struct rec *)arg)->writable++;
}

static void on_peer(void *arg, bool attached)
{
	struct rec *r = arg;
	if (attached)
		r->attached++;
	else
		r->detached++;
}

static void on_eof(void *arg)
{
	((struct rec *)arg)->eof++;
}

static const struct transport_events rec_events = { on_input, on_writable, on_peer, on_eof };

static uint64_t now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

/* Turn the loop until cond() holds or timeout_ms passes. */
#define SPIN(l, cond, timeout_ms)                                                         \
	do {                                                                              \
		uint64_t end_ = now_ms() + (timeout_ms);                                  \
		while (!(cond) && now_ms() < end_)                                        \
			assert_int_equal(loop_turn((l), 10), 0);                          \
		assert_true(cond);                                                        \
	} while (0)

/* Read exactly n bytes from a non-blocking fd, turning the loop meanwhile. */
static void read_exact(struct loop *l, int fd, void *buf, size_t n)
{
	size_t got = 0;
	uint64_t end = now_ms() + 3000;
	while (got < n && now_ms() < end) {
		ssize_t r = read(fd, (char *)buf + got, n - got);
		if (r > 0)
			got += (size_t)r;
		else
			assert_int_equal(loop_turn(l, 10), 0);
	}
	assert_int_equal(got, n);
}

static void expect_nothing(struct loop *l, int fd)
{
	for (int i = 0; i < 5; i++)
		assert_int_equal(loop_turn(l, 10), 0);
	char c;
	assert_true(read(fd, &c, 1) < 0 && errno == EAGAIN);
}

static void make_tmpdir(char *dir, size_t cap)
{
	snprintf(dir, cap, "/tmp/espatd-tr-XXXXXX");
	assert_non_null(mkdtemp(dir));
}

/* ---- pty ----------------------------------------------------------------- */

static int open_client(const char *path)
{
	int fd = open(path, O_RDWR | O_NOCTTY | O_NONBLOCK);
	assert_true(fd >= 0);
	return fd;
}

static void test_pty_roundtrip_and_reopen(void **state)
{
	char dir[64], link[96];
	make_tmpdir(dir, sizeof(dir));
	snprintf(link, sizeof(link), "%s/tty", dir);
	struct loop *l;
	assert_int_equal(loop_new(&l), 0);
	struct rec *r = calloc(1, sizeof(*r));
	struct transport *t;
	assert_int_equal(transport_pty_new(&t, l, link), 0);
	transport_bind(t, &rec_events, r);
	assert_int_equal(t->ops->start(t), 0);
	struct stat st;
	assert_int_equal(lstat(link, &st), 0);
	assert_true(S_ISLNK(st.st_mode));
	assert_non_null(strstr(t->desc, " -> /dev/pts/"));

	int c = open_client(link);
	SPIN(l, r->attached == 1, 2000);
	/* Raw: CR stays CR (no ICRNL), so the bytes arrive exactly. */
	assert_int_equal(write(c, "AT\r\n", 4), 4);
	SPIN(l, r->n == 4, 2000);
	assert_memory_equal(r->in, "AT\r\n", 4);
	/* Raw output: no "\r\r\n" from ONLCR. */
	assert_int_equal(t->ops->write(t, "OK\r\n", 4), 4);
	char buf[16];
	read_exact(l, c, buf, 4);
	assert_memory_equal(buf, "OK\r\n", 4);
	expect_nothing(l, c);

	/* Client leaves: detach reported; output with nobody there is dropped
	 * (never -EAGAIN), and none of it reaches the next client. */
	close(c);
	SPIN(l, r->detached == 1, 2000);
	static uint8_t big[65536];
	memset(big, 'x', sizeof(big));
	for (int i = 0; i < 4; i++)
		assert_int_equal(t->ops->write(t, big, sizeof(big)), (ssize_t)sizeof(big));

	c = open_client(link);
	SPIN(l, r->attached == 2, 2000);
	expect_nothing(l, c);
	assert_int_equal(write(c, "AT+GMR\r\n", 8), 8);
	SPIN(l, r->n == 12, 2000);
	assert_memory_equal(r->in + 4, "AT+GMR\r\n", 8);
	assert_int_equal(t->ops->write(t, "OK\r\n", 4), 4);
	read_exact(l, c, buf, 4);
	assert_memory_equal(buf, "OK\r\n", 4);
	close(c);

	t->ops->destroy(t);
	assert_int_equal(lstat(link, &st), -1);
	assert_int_equal(errno, ENOENT);
	rmdir(dir);
	loop_free(l);
	free(r);
}

/* A client that opens the port the moment it appears and types at once gets
 * its reply, even though its open event is not dispatched yet. */
static void test_pty_reply_before_open_event(void **state)
{
	char dir[64], link[96];
	make_tmpdir(dir, sizeof(dir));
	snprintf(link, sizeof(link), "%s/tty", dir);
	struct loop *l;
	assert_int_equal(loop_new(&l), 0);
	struct rec *r = calloc(1, sizeof(*r));
	struct transport *t;
	assert_int_equal(transport_pty_new(&t, l, link), 0);
	transport_bind(t, &rec_events, r);
	assert_int_equal(t->ops->start(t), 0);
	int c = open_client(link);
	assert_int_equal(t->ops->write(t, "ready\r\n", 7), 7);
	char buf[8];
	read_exact(l, c, buf, 7);
	assert_memory_equal(buf, "ready\r\n", 7);
	close(c);
	t->ops->destroy(t);
	rmdir(dir);
	loop_free(l);
	free(r);
}

/* Two clients at once, the second leaving first: inotify may coalesce the
 * two opens, the probe must still see that the first is there. */
static void test_pty_two_clients(void **state)
{
	char dir[64], link[96];
	make_tmpdir(dir, sizeof(dir));
	snprintf(link, sizeof(link), "%s/tty", dir);
	struct loop *l;
	assert_int_equal(loop_new(&l), 0);
	struct rec *r = calloc(1, sizeof(*r));
	struct transport *t;
	assert_int_equal(transport_pty_new(&t, l, link), 0);
	transport_bind(t, &rec_events, r);
	assert_int_equal(t->ops->start(t), 0);
	int a = open_client(link);
	int b = open_client(link);
	close(b);
	for (int i = 0; i < 5; i++)
		loop_turn(l, 10);
	assert_int_equal(r->detached, 0);
	assert_int_equal(t->ops->write(t, "OK\r\n", 4), 4);
	char buf[4];
	read_exact(l, a, buf, 4);
	assert_memory_equal(buf, "OK\r\n", 4);
	/* Both leave with output unread, closes possibly coalesced: detach is
	 * still seen, and the next client starts clean. */
	b = open_client(link);
	assert_int_equal(t->ops->write(t, "stale\r\n", 7), 7);
	close(b);
	close(a);
	SPIN(l, r->detached == 1, 2000);
	int c = open_client(link);
	SPIN(l, r->attached == 2, 2000);
	expect_nothing(l, c);
	close(c);
	t->ops->destroy(t);
	rmdir(dir);
	loop_free(l);
	free(r);
}

/* A client's exclusive mode (TIOCEXCL) lasts while it is attached and ends
 * when it leaves, as on a real port, although espatd keeps the tty open. */
static void test_pty_exclusive_client(void **state)
{
	char dir[64], link[96];
	make_tmpdir(dir, sizeof(dir));
	snprintf(link, sizeof(link), "%s/tty", dir);
	struct loop *l;
	assert_int_equal(loop_new(&l), 0);
	struct rec *r = calloc(1, sizeof(*r));
	struct transport *t;
	assert_int_equal(transport_pty_new(&t, l, link), 0);
	transport_bind(t, &rec_events, r);
	assert_int_equal(t->ops->start(t), 0);
	int a = open_client(link);
	assert_int_equal(ioctl(a, TIOCEXCL), 0);
	SPIN(l, r->attached == 1, 2000);
	int b = open(link, O_RDWR | O_NOCTTY | O_NONBLOCK);
	if (b >= 0) { /* root ignores exclusive mode */
		close(b);
		for (int i = 0; i < 5; i++)
			assert_int_equal(loop_turn(l, 10), 0);
		int excl = 0;
		assert_int_equal(ioctl(a, TIOCGEXCL, &excl), 0);
		assert_int_equal(excl, 1);
	} else {
		assert_int_equal(errno, EBUSY);
	}
	assert_int_equal(t->ops->write(t, "OK\r\n", 4), 4);
	char buf[4];
	read_exact(l, a, buf, 4);
	close(a);
	SPIN(l, r->detached == 1, 2000);
	int c = open_client(link);
	int excl = 1;
	assert_int_equal(ioctl(c, TIOCGEXCL, &excl), 0);
	assert_int_equal(excl, 0);
	SPIN(l, r->attached == 2, 2000);
	assert_int_equal(t->ops->write(t, "OK\r\n", 4), 4);
	read_exact(l, c, buf, 4);
	close(c);
	t->ops->destroy(t);
	rmdir(dir);
	loop_free(l);
	free(r);
}

/* An attached client that does not read: the queue fills, -EAGAIN, and a
 * writable callback once it reads. */
static void test_pty_backpressure(void **state)
{
	char dir[64], link[96];
	make_tmpdir(dir, sizeof(dir));
	snprintf(link, sizeof(link), "%s/tty", dir);
	struct loop *l;
	assert_int_equal(loop_new(&l), 0);
	struct rec *r = calloc(1, sizeof(*r));
	struct transport *t;
	assert_int_equal(transport_pty_new(&t, l, link), 0);
	transport_bind(t, &rec_events, r);
	assert_int_equal(t->ops->start(t), 0);
	int c = open_client(link);
	SPIN(l, r->attached == 1, 2000);
	static uint8_t big[4096];
	memset(big, 'z', sizeof(big));
	size_t queued = 0;
	ssize_t w = 0;
	for (int i = 0; i < 1000 && w >= 0; i++) {
		w = t->ops->write(t, big, sizeof(big));
		if (w > 0)
			queued += (size_t)w;
	}
	assert_int_equal(w, -EAGAIN);
	assert_int_equal(r->detached, 0);
	/* No "not yet writable" check: the kernel moves queued bytes into the
	 * slave's line discipline asynchronously, so some room may appear
	 * right after -EAGAIN. */
	t->ops->want_write(t, true);
	static uint8_t sink[1 << 16];
	size_t got = 0;
	uint64_t end = now_ms() + 3000;
	while (got < queued && now_ms() < end) {
		ssize_t n = read(c, sink, sizeof(sink));
		if (n > 0)
			got += (size_t)n;
		assert_int_equal(loop_turn(l, 1), 0);
	}
	assert_int_equal(got, queued);
	SPIN(l, r->writable > 0, 2000);
	t->ops->want_write(t, false);
	close(c);
	t->ops->destroy(t);
	rmdir(dir);
	loop_free(l);
	free(r);
}

static void test_pty_link_rules(void **state)
{
	char dir[64], path[96];
	make_tmpdir(dir, sizeof(dir));
	snprintf(path, sizeof(path), "%s/tty", dir);
	struct loop *l;
	assert_int_equal(loop_new(&l), 0);
	struct transport *t;

	/* A regular file is somebody's data: refuse. */
	int fd = open(path, O_CREAT | O_WRONLY, 0600);
	assert_true(fd >= 0);
	close(fd);
	assert_int_equal(transport_pty_new(&t, l, path), 0);
	assert_int_equal(t->ops->start(t), -EEXIST);
	t->ops->destroy(t);
	struct stat st;
	assert_int_equal(lstat(path, &st), 0);
	assert_true(S_ISREG(st.st_mode));
	unlink(path);

	/* So is a directory. */
	assert_int_equal(mkdir(path, 0700), 0);
	assert_int_equal(transport_pty_new(&t, l, path), 0);
	assert_int_equal(t->ops->start(t), -EEXIST);
	t->ops->destroy(t);
	rmdir(path);

	/* A stale symlink from a crashed run is replaced. */
	assert_int_equal(symlink("/dev/pts/does-not-exist", path), 0);
	assert_int_equal(transport_pty_new(&t, l, path), 0);
	assert_int_equal(t->ops->start(t), 0);
	char target[64];
	ssize_t n = readlink(path, target, sizeof(target) - 1);
	assert_true(n > 0);
	target[n] = '\0';
	assert_non_null(strstr(target, "/dev/pts/"));
	assert_null(strstr(target, "does-not-exist"));
	t->ops->destroy(t);
	assert_int_equal(lstat(path, &st), -1);

	rmdir(dir);
	loop_free(l);
}

/* ---- uart (on a pty pair) ------------------------------------------------- */

struct fake_uart {
	int m;          /* master: the "MCU" end */
	int s;          /* a slave fd opened before espatd's TIOCEXCL, to inspect */
	char path[64];
};

static void fake_uart_open(struct fake_uart *f)
{
	f->m = posix_openpt(O_RDWR | O_NOCTTY | O_NONBLOCK | O_CLOEXEC);
	assert_true(f->m >= 0);
	assert_int_equal(grantpt(f->m), 0);
	assert_int_equal(unlockpt(f->m), 0);
	assert_int_equal(ptsname_r(f->m, f->path, sizeof(f->path)), 0);
	f->s = open(f->path, O_RDWR | O_NOCTTY | O_NONBLOCK | O_CLOEXEC);
	assert_true(f->s >= 0);
}

static void fake_uart_close(struct fake_uart *f)
{
	close(f->s);
	close(f->m);
}

static struct termios2 get_tio(int fd)
{
	struct termios2 tio;
	assert_int_equal(ioctl(fd, TCGETS2, &tio), 0);
	return tio;
}

static void test_uart_speeds_and_data(void **state)
{
	struct fake_uart f;
	fake_uart_open(&f);
	struct loop *l;
	assert_int_equal(loop_new(&l), 0);
	struct rec *r = calloc(1, sizeof(*r));
	struct line_cfg cfg = { .baud = 921600, .databits = 8, .stopbits = 1 };
	struct transport *t;
	assert_int_equal(transport_uart_new(&t, l, f.path, &cfg), 0);
	transport_bind(t, &rec_events, r);
	assert_int_equal(t->ops->start(t), 0);

	struct termios2 tio = get_tio(f.s);
	assert_int_equal(tio.c_ospeed, 921600);
	assert_int_equal(tio.c_cflag & CSIZE, CS8);
	assert_int_equal(tio.c_cflag & (PARENB | CSTOPB | CRTSCTS), 0);
	assert_int_equal(tio.c_lflag & (ICANON | ECHO), 0);

	assert_int_equal(write(f.m, "AT\r\n", 4), 4);
	SPIN(l, r->n == 4, 2000);
	assert_memory_equal(r->in, "AT\r\n", 4);
	assert_int_equal(t->ops->write(t, "OK\r\n", 4), 4);
	char buf[8];
	read_exact(l, f.m, buf, 4);
	assert_memory_equal(buf, "OK\r\n", 4);

	/* A baud rate no B* constant has, 7E2 with hardware flow control. */
	struct line_cfg odd = { .baud = 123457, .databits = 7, .stopbits = 3, .parity = 2,
				.flow = 3 };
	assert_int_equal(t->ops->set_line(t, &odd), 0);
	SPIN(l, get_tio(f.s).c_ospeed == 123457, 2000);
	tio = get_tio(f.s);
	assert_int_equal(tio.c_ispeed, 123457);
	/* A pty forces CS8 and no parity; the rest it keeps. */
	assert_int_equal(tio.c_cflag & (CSTOPB | CRTSCTS), CSTOPB | CRTSCTS);

	/* 1.5 stop bits become 2; odd parity; RTS alone turns on both. */
	struct line_cfg c15 = { .baud = 80, .databits = 5, .stopbits = 2, .parity = 1,
				.flow = 1 };
	assert_int_equal(t->ops->set_line(t, &c15), 0);
	SPIN(l, get_tio(f.s).c_ospeed == 80, 3000);
	tio = get_tio(f.s);
	assert_int_equal(tio.c_cflag & (CSTOPB | CRTSCTS), CSTOPB | CRTSCTS);

	struct line_cfg fast = { .baud = 5000000, .databits = 8, .stopbits = 1 };
	assert_int_equal(t->ops->set_line(t, &fast), 0);
	SPIN(l, get_tio(f.s).c_ospeed == 5000000, 3000);

	/* Data still flows after the changes. */
	assert_int_equal(write(f.m, "AT+UART_CUR?\r\n", 14), 14);
	SPIN(l, r->n == 18, 2000);
	assert_memory_equal(r->in + 4, "AT+UART_CUR?\r\n", 14);

	struct line_cfg bad[] = {
		{ .baud = 79, .databits = 8, .stopbits = 1 },
		{ .baud = 5000001, .databits = 8, .stopbits = 1 },
		{ .baud = 115200, .databits = 9, .stopbits = 1 },
		{ .baud = 115200, .databits = 4, .stopbits = 1 },
		{ .baud = 115200, .databits = 8, .stopbits = 0 },
		{ .baud = 115200, .databits = 8, .stopbits = 4 },
		{ .baud = 115200, .databits = 8, .stopbits = 1, .parity = 3 },
		{ .baud = 115200, .databits = 8, .stopbits = 1, .flow = 4 },
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		assert_int_equal(t->ops->set_line(t, &bad[i]), -EINVAL);
	struct transport *t2;
	assert_int_equal(transport_uart_new(&t2, l, f.path, &bad[0]), -EINVAL);

	t->ops->destroy(t);
	fake_uart_close(&f);
	loop_free(l);
	free(r);
}

/* What a real UART driver would get (a pty drops size and parity). */
static struct termios2 built(struct line_cfg c)
{
	struct termios2 tio;
	memset(&tio, 0xff, sizeof(tio)); /* every flag set: all must be decided */
	uart_build_termios(&tio, &c);
	return tio;
}

static void test_uart_termios_mapping(void **state)
{
	struct termios2 t = built((struct line_cfg){ 115200, 8, 1, 0, 0 });
	assert_int_equal(t.c_cflag & CSIZE, CS8);
	assert_int_equal(t.c_cflag & (PARENB | PARODD | CMSPAR | CSTOPB | CRTSCTS | HUPCL), 0);
	assert_int_equal(t.c_cflag & (CREAD | CLOCAL), CREAD | CLOCAL);
	/* A standard rate keeps its classic code (stty and pyserial read it). */
	assert_int_equal(t.c_cflag & CBAUD, B115200);
	assert_int_equal((t.c_cflag >> IBSHIFT) & CBAUD, B115200);
	assert_int_equal(t.c_ospeed, 115200);
	assert_int_equal(t.c_ispeed, 115200);
	assert_int_equal(t.c_lflag & (ICANON | ECHO | ECHONL | ISIG | IEXTEN), 0);
	assert_int_equal(t.c_iflag & (ICRNL | INLCR | IGNCR | IXON | IXOFF | ISTRIP | INPCK), 0);
	assert_int_equal(t.c_oflag & OPOST, 0);
	assert_int_equal(t.c_cc[VMIN], 1);
	assert_int_equal(t.c_cc[VTIME], 0);

	t = built((struct line_cfg){ 123457, 7, 3, 2, 3 });
	assert_int_equal(t.c_cflag & CSIZE, CS7);
	assert_int_equal(t.c_cflag & (PARENB | PARODD | CSTOPB | CRTSCTS),
			 PARENB | CSTOPB | CRTSCTS);
	assert_int_equal(t.c_cflag & CBAUD, BOTHER); /* any other rate: BOTHER */
	assert_int_equal(t.c_ospeed, 123457);

	t = built((struct line_cfg){ 80, 5, 2, 1, 1 }); /* 1.5 stop -> 2; RTS -> both */
	assert_int_equal(t.c_cflag & CSIZE, CS5);
	assert_int_equal(t.c_cflag & (PARENB | PARODD | CSTOPB | CRTSCTS),
			 PARENB | PARODD | CSTOPB | CRTSCTS);

	t = built((struct line_cfg){ 5000000, 6, 1, 0, 2 }); /* CTS alone -> both */
	assert_int_equal(t.c_cflag & CSIZE, CS6);
	assert_int_equal(t.c_cflag & (PARENB | CSTOPB | CRTSCTS), CRTSCTS);
	assert_int_equal(t.c_ospeed, 5000000);
}

static void test_uart_open_error(void **state)
{
	struct loop *l;
	assert_int_equal(loop_new(&l), 0);
	struct line_cfg cfg = { .baud = 115200, .databits = 8, .stopbits = 1 };
	struct transport *t;
	assert_int_equal(transport_uart_new(&t, l, "/dev/espatd-no-such-tty", &cfg), 0);
	assert_int_equal(t->ops->start(t), -ENOENT);
	t->ops->destroy(t);
	/* Not a tty at all. */
	assert_int_equal(transport_uart_new(&t, l, "/dev/null", &cfg), 0);
	assert_int_equal(t->ops->start(t), -ENOTTY);
	t->ops->destroy(t);
	loop_free(l);
}

/* Unplug (the pty master goes away), output is dropped meanwhile, and the
 * port comes back through the same path with the current settings. */
static void test_uart_unplug_replug(void **state)
{
	char dir[64], dev[96], tmp[112];
	make_tmpdir(dir, sizeof(dir));
	snprintf(dev, sizeof(dev), "%s/ttyUSB0", dir);
	snprintf(tmp, sizeof(tmp), "%s.new", dev);
	struct fake_uart f;
	fake_uart_open(&f);
	assert_int_equal(symlink(f.path, dev), 0);

	struct loop *l;
	assert_int_equal(loop_new(&l), 0);
	struct rec *r = calloc(1, sizeof(*r));
	struct line_cfg cfg = { .baud = 115200, .databits = 8, .stopbits = 1 };
	struct transport *t;
	assert_int_equal(transport_uart_new(&t, l, dev, &cfg), 0);
	transport_bind(t, &rec_events, r);
	assert_int_equal(t->ops->start(t), 0);
	struct line_cfg cfg2 = { .baud = 230400, .databits = 8, .stopbits = 1 };
	assert_int_equal(t->ops->set_line(t, &cfg2), 0);
	SPIN(l, get_tio(f.s).c_ospeed == 230400, 2000);

	fake_uart_close(&f);
	SPIN(l, r->detached == 1, 2000);
	assert_int_equal(t->ops->write(t, "lost\r\n", 6), 6);
	t->ops->want_write(t, true);
	SPIN(l, r->writable >= 1, 2000);
	t->ops->want_write(t, false);

	struct fake_uart g;
	fake_uart_open(&g);
	assert_int_equal(symlink(g.path, tmp), 0);
	assert_int_equal(rename(tmp, dev), 0);
	SPIN(l, r->attached == 1, 3000);
	assert_int_equal(get_tio(g.s).c_ospeed, 230400);
	assert_int_equal(write(g.m, "AT\r\n", 4), 4);
	SPIN(l, r->n == 4, 2000);
	assert_int_equal(t->ops->write(t, "OK\r\n", 4), 4);
	char buf[4];
	read_exact(l, g.m, buf, 4);
	assert_memory_equal(buf, "OK\r\n", 4);

	t->ops->destroy(t);
	fake_uart_close(&g);
	unlink(dev);
	rmdir(dir);
	loop_free(l);
	free(r);
}

/* ---- tcp ----------------------------------------------------------------- */

static int tcp_connect(int port)
{
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	assert_true(fd >= 0);
	struct sockaddr_in sa = { .sin_family = AF_INET, .sin_port = htons((uint16_t)port) };
	sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	assert_int_equal(connect(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
	assert_int_equal(fcntl(fd, F_SETFL, O_NONBLOCK), 0);
	return fd;
}

static bool closed_by_peer(int fd)
{
	char c;
	ssize_t n = recv(fd, &c, 1, 0);
	return n == 0 || (n < 0 && errno == ECONNRESET);
}

static void test_tcp_one_client(void **state)
{
	struct loop *l;
	assert_int_equal(loop_new(&l), 0);
	struct rec *r = calloc(1, sizeof(*r));
	struct transport *t;
	assert_int_equal(transport_tcp_new(&t, l, "127.0.0.1:0"), 0);
	transport_bind(t, &rec_events, r);
	assert_int_equal(t->ops->start(t), 0);
	int port = transport_tcp_port(t);
	assert_true(port > 0);
	/* No client yet: taken and dropped. */
	assert_int_equal(t->ops->write(t, "early", 5), 5);

	int c1 = tcp_connect(port);
	SPIN(l, r->attached == 1, 2000);
	assert_int_equal(send(c1, "AT\r\n", 4, 0), 4);
	SPIN(l, r->n == 4, 2000);
	assert_memory_equal(r->in, "AT\r\n", 4);
	assert_int_equal(t->ops->write(t, "OK\r\n", 4), 4);
	char buf[8];
	read_exact(l, c1, buf, 4);
	assert_memory_equal(buf, "OK\r\n", 4);

	/* A second client is accepted and closed; the first stays. */
	int c2 = tcp_connect(port);
	SPIN(l, closed_by_peer(c2), 2000);
	close(c2);
	assert_int_equal(r->attached, 1);
	assert_int_equal(r->detached, 0);

	/* Paused reading holds input back; resuming delivers it. */
	t->ops->want_read(t, false);
	assert_int_equal(send(c1, "X", 1, 0), 1);
	for (int i = 0; i < 5; i++)
		assert_int_equal(loop_turn(l, 10), 0);
	assert_int_equal(r->n, 4);
	t->ops->want_read(t, true);
	SPIN(l, r->n == 5, 2000);

	close(c1);
	SPIN(l, r->detached == 1, 2000);
	assert_int_equal(t->ops->write(t, "gone", 4), 4);

	int c3 = tcp_connect(port);
	SPIN(l, r->attached == 2, 2000);
	assert_int_equal(t->ops->write(t, "hi", 2), 2);
	read_exact(l, c3, buf, 2);
	assert_memory_equal(buf, "hi", 2);
	close(c3);
	SPIN(l, r->detached == 2, 2000);

	t->ops->destroy(t);
	loop_free(l);
	free(r);
}

/* Reads are bounded per wakeup, and a full socket gives -EAGAIN and then a
 * writable callback. */
static void test_tcp_fairness_and_backpressure(void **state)
{
	struct loop *l;
	assert_int_equal(loop_new(&l), 0);
	struct rec *r = calloc(1, sizeof(*r));
	struct transport *t;
	assert_int_equal(transport_tcp_new(&t, l, "0"), 0); /* default host */
	transport_bind(t, &rec_events, r);
	assert_int_equal(t->ops->start(t), 0);
	int c = tcp_connect(transport_tcp_port(t));
	SPIN(l, r->attached == 1, 2000);

	static uint8_t big[1 << 20];
	memset(big, 'y', sizeof(big));
	size_t sent = 0;
	ssize_t w;
	while (sent < sizeof(big) && (w = send(c, big + sent, sizeof(big) - sent, 0)) > 0)
		sent += (size_t)w;
	assert_true(sent > 16 * 16384);
	assert_int_equal(loop_turn(l, 100), 0);
	assert_true(r->chunks >= 1 && r->chunks <= 16);
	assert_true(r->max_chunk >= 4096 && r->max_chunk <= 65536);
	SPIN(l, r->n == sent, 3000);

	/* The client does not read: the socket fills. */
	ssize_t rc = 0;
	for (int i = 0; i < 4096 && rc >= 0; i++)
		rc = t->ops->write(t, big, 65536);
	assert_int_equal(rc, -EAGAIN);
	t->ops->want_write(t, true);
	for (int i = 0; i < 5; i++)
		assert_int_equal(loop_turn(l, 10), 0);
	assert_int_equal(r->writable, 0);
	uint64_t end = now_ms() + 3000;
	while (r->writable == 0 && now_ms() < end) {
		while (recv(c, big, sizeof(big), 0) > 0)
			;
		assert_int_equal(loop_turn(l, 10), 0);
	}
	assert_true(r->writable > 0);
	t->ops->want_write(t, false);

	close(c);
	t->ops->destroy(t);
	loop_free(l);
	free(r);
}

static void test_tcp_parse(void **state)
{
	struct loop *l;
	assert_int_equal(loop_new(&l), 0);
	struct transport *t;
	const char *good[] = { "3333", "127.0.0.1:3333", "localhost:0", "[::1]:3333", ":3333" };
	for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++) {
		assert_int_equal(transport_tcp_new(&t, l, good[i]), 0);
		t->ops->destroy(t);
	}
	assert_int_equal(transport_tcp_new(&t, l, "3333"), 0);
	assert_int_equal(transport_tcp_port(t), 3333);
	assert_string_equal(t->desc, "tcp 127.0.0.1:3333");
	t->ops->destroy(t);
	const char *bad[] = { "", "::1:3333", "[::1]", "[::1:3333", "host:", "host:99999",
			      "host:12a", "abc", "127.0.0.1:-1" };
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		assert_int_equal(transport_tcp_new(&t, l, bad[i]), -EINVAL);
	assert_int_equal(transport_stdio_new(&t, l), 0);
	assert_int_equal(transport_tcp_port(t), -EINVAL);
	t->ops->destroy(t);

	/* IPv6 loopback, where the host has it. */
	assert_int_equal(transport_tcp_new(&t, l, "[::1]:0"), 0);
	if (t->ops->start(t) == 0)
		assert_true(transport_tcp_port(t) > 0);
	t->ops->destroy(t);
	loop_free(l);
}

/* ---- stdio --------------------------------------------------------------- */

static void crlf(const char *in, bool prev_cr, const char *want, bool want_cr)
{
	uint8_t out[64];
	bool cr = prev_cr;
	size_t n = stdio_lf_to_crlf((const uint8_t *)in, strlen(in), out, &cr);
	assert_int_equal(n, strlen(want));
	assert_memory_equal(out, want, n);
	assert_int_equal(cr, want_cr);
}

static void test_stdio_crlf(void **state)
{
	crlf("AT\n", false, "AT\r\n", false);
	crlf("AT\r\n", false, "AT\r\n", false);
	crlf("a\n\n", false, "a\r\n\r\n", false);
	crlf("AT\r", false, "AT\r", true);
	crlf("\n", true, "\n", false);  /* CR LF split across two reads */
	crlf("\n", false, "\r\n", false);
	crlf("", true, "", true);
	crlf("x\r\r\n", false, "x\r\r\n", false);
}

/* The child runs the transport on the given stdin/stdout and echoes every
 * chunk back; it exits 0 after exactly one eof and complete writes. */
struct echo {
	struct transport *t;
	struct loop *l;
	int eofs, bad, writable;
};

static void echo_input(void *arg, const uint8_t *p, size_t n)
{
	struct echo *e = arg;
	if (e->t->ops->write(e->t, p, n) != (ssize_t)n)
		e->bad++;
}

static void echo_eof(void *arg)
{
	struct echo *e = arg;
	e->eofs++;
	e->t->ops->want_write(e->t, true); /* must still come back */
}

static void echo_writable(void *arg)
{
	struct echo *e = arg;
	e->writable++;
	e->t->ops->want_write(e->t, false);
	if (e->eofs)
		loop_stop(e->l, 0);
}

static const struct transport_events echo_events = { echo_input, echo_writable, NULL,
						     echo_eof };

/* `other` is the parent's end of a pipe, closed in the child so that the
 * parent closing it really ends the input (-1 if none). */
static pid_t run_echo_child(int in_fd, int out_fd, int other1, int other2)
{
	pid_t pid = fork();
	assert_true(pid >= 0);
	if (pid > 0)
		return pid;
	dup2(in_fd, 0);
	dup2(out_fd, 1);
	close(in_fd);
	close(out_fd);
	if (other1 >= 0)
		close(other1);
	if (other2 >= 0)
		close(other2);
	alarm(10);
	struct echo e = { 0 };
	if (loop_new(&e.l) < 0 || transport_stdio_new(&e.t, e.l) < 0)
		_exit(2);
	transport_bind(e.t, &echo_events, &e);
	if (e.t->ops->start(e.t) < 0)
		_exit(3);
	loop_run(e.l);
	for (int i = 0; i < 3; i++)
		loop_turn(e.l, 10); /* a second eof would show here */
	e.t->ops->destroy(e.t);
	_exit(e.eofs == 1 && e.bad == 0 && e.writable >= 1 ? 0 : 4);
}

static int wait_child(pid_t pid)
{
	int st;
	assert_int_equal(waitpid(pid, &st, 0), pid);
	assert_true(WIFEXITED(st));
	return WEXITSTATUS(st);
}

static void test_stdio_pipes(void **state)
{
	int in[2], out[2];
	assert_int_equal(pipe(in), 0);
	assert_int_equal(pipe(out), 0);
	pid_t pid = run_echo_child(in[0], out[1], in[1], out[0]);
	close(in[0]);
	close(out[1]);
	/* Not a tty: bytes pass unchanged, LF stays LF. */
	assert_int_equal(write(in[1], "AT\n", 3), 3);
	char buf[8];
	size_t got = 0;
	while (got < 3) {
		ssize_t n = read(out[0], buf + got, sizeof(buf) - got);
		assert_true(n > 0);
		got += (size_t)n;
	}
	assert_memory_equal(buf, "AT\n", 3);
	close(in[1]);
	assert_int_equal(wait_child(pid), 0);
	assert_int_equal(read(out[0], buf, sizeof(buf)), 0);
	close(out[0]);
}

/* Regular files on both sides: epoll refuses them (EPERM), the transport
 * must fall back to reading from a timer and to an immediate writable. */
static void test_stdio_files(void **state)
{
	char in_path[] = "/tmp/espatd-tr-in-XXXXXX";
	char out_path[] = "/tmp/espatd-tr-out-XXXXXX";
	int in = mkstemp(in_path);
	int out = mkstemp(out_path);
	assert_true(in >= 0 && out >= 0);
	static char data[100000];
	for (size_t i = 0; i < sizeof(data); i++)
		data[i] = (char)('a' + i % 26);
	assert_int_equal(write(in, data, sizeof(data)), (ssize_t)sizeof(data));
	lseek(in, 0, SEEK_SET);
	pid_t pid = run_echo_child(in, out, -1, -1);
	assert_int_equal(wait_child(pid), 0);
	static char back[sizeof(data) + 1];
	lseek(out, 0, SEEK_SET);
	assert_int_equal(read(out, back, sizeof(back)), (ssize_t)sizeof(data));
	assert_memory_equal(back, data, sizeof(data));
	close(in);
	close(out);
	unlink(in_path);
	unlink(out_path);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_pty_roundtrip_and_reopen),
		cmocka_unit_test(test_pty_reply_before_open_event),
		cmocka_unit_test(test_pty_two_clients),
		cmocka_unit_test(test_pty_exclusive_client),
		cmocka_unit_test(test_pty_backpressure),
		cmocka_unit_test(test_pty_link_rules),
		cmocka_unit_test(test_uart_speeds_and_data),
		cmocka_unit_test(test_uart_termios_mapping),
		cmocka_unit_test(test_uart_open_error),
		cmocka_unit_test(test_uart_unplug_replug),
		cmocka_unit_test(test_tcp_one_client),
		cmocka_unit_test(test_tcp_fairness_and_backpressure),
		cmocka_unit_test(test_tcp_parse),
		cmocka_unit_test(test_stdio_crlf),
		cmocka_unit_test(test_stdio_pipes),
		cmocka_unit_test(test_stdio_files),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
