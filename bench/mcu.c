/* The MCU and the network peer of one bulk transfer in `make bench`.
 *
 * bench.py sets a transfer up (starts espatd or socat, joins, opens the link,
 * accepts the peer's socket), then hands both descriptors to this program,
 * which moves the bytes and times them. It is C so that the harness costs
 * little and the same for every program under test: the Python driver it
 * replaces spent about as much CPU per byte as espatd, on the same CPU, and
 * more on AT framing (+IPD, prompts) than on socat's raw stream.
 *
 * One thread, poll() over the pty and the peer socket, as an MCU's driver
 * loop and a server would run. Every byte that arrives at either end is
 * compared with the payload: a pseudo-random MiB without '+' (so no
 * passthrough exit can form), repeated.
 *
 * Usage: mcu MODE PTY_FD PEER_FD BYTES [BLOCK]
 *   up        raw bytes into the pty, read at the peer (socat, passthrough)
 *   down      raw bytes from the peer, read from the pty
 *   cipsend   AT+CIPSEND=0,BLOCK, '>', BLOCK bytes, SEND OK, again
 *   cipsendl  one AT+CIPSENDL=0,BYTES, the data streamed after '>'
 *   ipd       the peer sends; +IPD,0,<n>:<data> frames split by length
 *   recvdata  passive mode: at every +IPD,0,<n> notice AT+CIPRECVDATA=0,BLOCK
 * Prints one JSON object (seconds from the first byte written to the last
 * byte received, counts); exits 1 with a reason on stderr if the transfer
 * stalls for 30 s, is corrupted or meets ERROR / SEND FAIL / busy p.... */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define MIB (1u << 20)
#define WRITE_MAX (256u << 10)
#define IN_CAP (512u << 10)
#define STALL_NS (30ull * 1000000000ull)

enum mode { UP, DOWN, CIPSEND, CIPSENDL, IPD, RECVDATA };

/* the payload twice over, so that any window of up to a MiB is contiguous */
static unsigned char pat[2 * MIB];

static struct {
	enum mode mode;
	int pty, peer;
	size_t total, block;

	char cmd[64];           /* a command line on its way to the pty */
	size_t cmd_len, cmd_off;
	size_t pay_off, pay_end; /* payload bytes on their way to the pty */

	size_t peer_out, peer_out_end; /* payload the peer sends */
	size_t peer_in;                /* payload the peer received */
	size_t mcu_in;                 /* payload the MCU received */

	unsigned char in[IN_CAP]; /* what the pty said, not parsed yet */
	size_t in_len;

	int prompted, send_ok, inflight, want;
	unsigned long oks, frames, reads, reports;
} x;

static void die(const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	fputs("mcu: ", stderr);
	vfprintf(stderr, fmt, ap);
	fputc('\n', stderr);
	va_end(ap);
	exit(1);
}

static uint64_t now_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static void make_payload(uint64_t seed)
{
	uint64_t s = seed | 1;
	for (size_t i = 0; i < MIB; i++) {
		s ^= s << 13;
		s ^= s >> 7;
		s ^= s << 17;
		unsigned char c = (unsigned char)(s >> 24);
		pat[i] = c == '+' ? '-' : c;
	}
	memcpy(pat + MIB, pat, MIB);
}

/* bytes at payload offset `off` must be the payload's */
static void check(const char *where, size_t off, const unsigned char *p, size_t n)
{
	if (off + n > x.total)
		die("%s: %zu bytes past the end of the payload", where, off + n - x.total);
	while (n) {
		size_t k = n < MIB ? n : MIB;
		if (memcmp(p, pat + off % MIB, k))
			die("%s: data corrupted near offset %zu", where, off);
		off += k;
		p += k;
		n -= k;
	}
}

static void queue_cmd(const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	int n = vsnprintf(x.cmd, sizeof(x.cmd), fmt, ap);
	va_end(ap);
	if (x.cmd_off < x.cmd_len)
		die("a command while another is still being written");
	x.cmd_len = (size_t)n;
	x.cmd_off = 0;
}

static int pty_has_out(void)
{
	return x.cmd_off < x.cmd_len || x.pay_off < x.pay_end;
}

/* write what the pty takes now: a reply to a prompt leaves at once */
static void flush_pty(void)
{
	while (x.cmd_off < x.cmd_len) {
		ssize_t k = write(x.pty, x.cmd + x.cmd_off, x.cmd_len - x.cmd_off);
		if (k < 0) {
			if (errno == EAGAIN || errno == EINTR)
				return;
			die("write to the pty: %s", strerror(errno));
		}
		x.cmd_off += (size_t)k;
	}
	while (x.pay_off < x.pay_end) {
		size_t n = x.pay_end - x.pay_off;
		if (n > WRITE_MAX)
			n = WRITE_MAX;
		ssize_t k = write(x.pty, pat + x.pay_off % MIB, n);
		if (k < 0) {
			if (errno == EAGAIN || errno == EINTR)
				return;
			die("write to the pty: %s", strerror(errno));
		}
		x.pay_off += (size_t)k;
	}
}

static void on_line(const unsigned char *p, size_t n)
{
#define IS(s) (n == sizeof(s) - 1 && !memcmp(p, s, n))
	if (IS("ERROR") || IS("SEND FAIL") || IS("busy p..."))
		die("the module answered %.*s", (int)n, (const char *)p);
	if (IS("SEND OK")) {
		if (x.mode == CIPSEND) {
			x.oks++;
			if (x.pay_end < x.total)
				queue_cmd("AT+CIPSEND=0,%zu\r\n", x.block);
		} else {
			x.send_ok = 1;
		}
	} else if (IS("OK")) {
		x.inflight = 0;
	} else if (n > 10 && !memcmp(p, "+CIPSENDL:", 10)) {
		x.reports++;
	}
#undef IS
}

static void on_prompt(void)
{
	if (x.mode == CIPSEND) {
		size_t n = x.total - x.pay_end < x.block ? x.total - x.pay_end : x.block;
		x.pay_end += n;
	} else if (x.mode == CIPSENDL && !x.prompted) {
		x.pay_end = x.total;
	}
	x.prompted = 1;
}

static size_t num(const unsigned char *p, const unsigned char *end, const unsigned char **stop)
{
	size_t v = 0;
	while (p < end && *p >= '0' && *p <= '9')
		v = v * 10 + (size_t)(*p++ - '0');
	*stop = p;
	return v;
}

static int starts(const unsigned char *p, const unsigned char *end, const char *s)
{
	size_t n = strlen(s);
	return (size_t)(end - p) >= n && !memcmp(p, s, n);
}

/* The `len` data bytes at d, if all are in: checked and counted; returns
 * where the next message starts, or NULL to wait for more. */
static const unsigned char *take(const char *what, const unsigned char *d,
				 const unsigned char *end, size_t len, unsigned long *count)
{
	if ((size_t)(end - d) < len)
		return NULL;
	check(what, x.mcu_in, d, len);
	x.mcu_in += len;
	(*count)++;
	return d + len;
}

/* Split what the module said: +IPD frames and +CIPRECVDATA data by their
 * length (never scanned), notices, the prompt, text lines. */
static void parse(void)
{
	const unsigned char *p = x.in, *end = x.in + x.in_len;
	while (p < end) {
		if (*p == '\r' || *p == '\n') {
			p++;
		} else if (*p == '>') {
			on_prompt();
			p++;
		} else if (starts(p, end, "+IPD,")) {
			/* +IPD,<link>,<len>:<data> or, passive, +IPD,<link>,<len>\r\n */
			const unsigned char *q, *q2;
			num(p + 5, end, &q);
			if (q == end || *q != ',')
				goto need_more_or_bad;
			size_t len = num(q + 1, end, &q2);
			if (q2 == end)
				goto need_more_or_bad;
			if (*q2 == ':') {
				const unsigned char *next = take("+IPD", q2 + 1, end, len, &x.frames);
				if (!next)
					break;
				p = next;
			} else if (*q2 == '\r') {
				x.want = 1;
				p = q2;
			} else {
				die("bad +IPD: %.24s", (const char *)p);
			}
		} else if (starts(p, end, "+CIPRECVDATA:")) {
			const unsigned char *q;
			size_t len = num(p + 13, end, &q);
			if (q == end)
				goto need_more_or_bad;
			if (*q != ',')
				die("bad +CIPRECVDATA: %.24s", (const char *)p);
			const unsigned char *next = take("+CIPRECVDATA", q + 1, end, len, &x.reads);
			if (!next)
				break;
			p = next;
		} else {
			const unsigned char *e = memmem(p, (size_t)(end - p), "\r\n", 2);
			if (!e)
				goto need_more_or_bad;
			on_line(p, (size_t)(e - p));
			p = e + 2;
		}
		continue;
need_more_or_bad:
		if (end - p > 64)
			die("cannot parse %.24s", (const char *)p);
		break;
	}
	x.in_len = (size_t)(end - p);
	memmove(x.in, p, x.in_len);
}

static void read_pty(void)
{
	if (x.mode == DOWN) {
		ssize_t k = read(x.pty, x.in, sizeof(x.in));
		if (k < 0 && (errno == EAGAIN || errno == EINTR))
			return;
		if (k <= 0)
			die("the pty closed");
		check("pty", x.mcu_in, x.in, (size_t)k);
		x.mcu_in += (size_t)k;
		return;
	}
	if (x.in_len == sizeof(x.in))
		die("no frame fits in %zu bytes", sizeof(x.in));
	ssize_t k = read(x.pty, x.in + x.in_len, sizeof(x.in) - x.in_len);
	if (k < 0 && (errno == EAGAIN || errno == EINTR))
		return;
	if (k <= 0)
		die("the pty closed");
	x.in_len += (size_t)k;
	parse();
	if (x.mode == RECVDATA && x.want && !x.inflight) {
		queue_cmd("AT+CIPRECVDATA=0,%zu\r\n", x.block);
		x.want = 0;
		x.inflight = 1;
	}
}

static void peer_io(short rev)
{
	static unsigned char buf[WRITE_MAX];
	if ((rev & POLLOUT) && x.peer_out < x.peer_out_end) {
		size_t n = x.peer_out_end - x.peer_out;
		if (n > WRITE_MAX)
			n = WRITE_MAX;
		ssize_t k = send(x.peer, pat + x.peer_out % MIB, n, MSG_NOSIGNAL);
		if (k < 0 && errno != EAGAIN && errno != EINTR)
			die("peer send: %s", strerror(errno));
		if (k > 0)
			x.peer_out += (size_t)k;
	}
	if (rev & (POLLIN | POLLHUP | POLLERR)) {
		ssize_t k = recv(x.peer, buf, sizeof(buf), 0);
		if (k < 0 && (errno == EAGAIN || errno == EINTR))
			return;
		if (k < 0)
			die("peer recv: %s", strerror(errno));
		if (k == 0) {
			if (x.peer_in < x.total && (x.mode == UP || x.mode == CIPSEND || x.mode == CIPSENDL))
				die("the link closed after %zu of %zu bytes", x.peer_in, x.total);
			x.peer = -1;
			return;
		}
		check("peer", x.peer_in, buf, (size_t)k);
		x.peer_in += (size_t)k;
	}
}

static int done(void)
{
	switch (x.mode) {
	case UP:
		return x.peer_in == x.total;
	case CIPSEND:
		return x.peer_in == x.total && x.oks * x.block >= x.total;
	case CIPSENDL:
		return x.peer_in == x.total && x.send_ok;
	default:
		return x.mcu_in == x.total;
	}
}

static size_t progress(void)
{
	return x.peer_in + x.mcu_in;
}

int main(int argc, char **argv)
{
	static const char *const names[] = {"up", "down", "cipsend", "cipsendl", "ipd", "recvdata"};
	if (argc < 5 || argc > 6)
		die("usage: mcu up|down|cipsend|cipsendl|ipd|recvdata PTY_FD PEER_FD BYTES [BLOCK]");
	size_t m = 0;
	while (m < sizeof(names) / sizeof(names[0]) && strcmp(argv[1], names[m]))
		m++;
	if (m == sizeof(names) / sizeof(names[0]))
		die("unknown mode %s", argv[1]);
	x.mode = (enum mode)m;
	x.pty = atoi(argv[2]);
	x.peer = atoi(argv[3]);
	x.total = strtoull(argv[4], NULL, 10);
	x.block = argc == 6 ? strtoull(argv[5], NULL, 10) : 8192;
	if (!x.total || !x.block)
		die("BYTES and BLOCK must be positive");
	for (int fd = 0; fd < 2; fd++) {
		int d = fd ? x.peer : x.pty;
		int fl = fcntl(d, F_GETFL);
		if (fl < 0 || fcntl(d, F_SETFL, fl | O_NONBLOCK) < 0)
			die("descriptor %d: %s", d, strerror(errno));
	}
	make_payload(now_ns());

	uint64_t t0 = now_ns();
	switch (x.mode) {
	case UP:
		x.pay_end = x.total;
		break;
	case CIPSEND:
		queue_cmd("AT+CIPSEND=0,%zu\r\n", x.block);
		break;
	case CIPSENDL:
		queue_cmd("AT+CIPSENDL=0,%zu\r\n", x.total);
		break;
	default: /* the peer sends */
		x.peer_out_end = x.total;
		break;
	}
	flush_pty();

	size_t last = 0;
	uint64_t last_t = t0;
	while (!done()) {
		struct pollfd fds[2] = {
			{x.pty, (short)(POLLIN | (pty_has_out() ? POLLOUT : 0)), 0},
			{x.peer, (short)(POLLIN | (x.peer_out < x.peer_out_end ? POLLOUT : 0)), 0},
		};
		int n = poll(fds, x.peer >= 0 ? 2 : 1, 500);
		if (n < 0 && errno != EINTR)
			die("poll: %s", strerror(errno));
		if (n > 0) {
			if (fds[0].revents & POLLOUT)
				flush_pty();
			if (fds[0].revents & (POLLIN | POLLHUP | POLLERR))
				read_pty();
			if (x.peer >= 0 && fds[1].revents)
				peer_io(fds[1].revents);
			if (pty_has_out())
				flush_pty();
		}
		uint64_t t = now_ns();
		if (progress() != last) {
			last = progress();
			last_t = t;
		} else if (t - last_t > STALL_NS) {
			die("%s stalled: the peer got %zu, the MCU %zu of %zu bytes", names[m],
			    x.peer_in, x.mcu_in, x.total);
		}
	}
	double secs = (double)(now_ns() - t0) / 1e9;
	printf("{\"seconds\": %.9f, \"bytes\": %zu, \"frames\": %lu, \"reads\": %lu, "
	       "\"reports\": %lu}\n", secs, x.total, x.frames, x.reads, x.reports);
	return 0;
}
