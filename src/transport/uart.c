/* The uart transport: a real serial port (USB adapter or on-board UART).
 *
 * Line settings go through termios2 with BOTHER so that any integer baud rate
 * AT+UART_CUR accepts (80..5000000) reaches the driver, not only the B* table.
 * <asm/termbits.h> defines its own struct termios and clashes with glibc's
 * <termios.h>, so this file includes only the kernel header and uses the
 * ioctls directly. */
#include "core/clock.h"
#include "core/log.h"
#include "core/loop.h"
#include "transport/fdutil.h"
#include "transport/transport.h"
#include "transport/uart_termios.h"

#include <asm/termbits.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <unistd.h>

#define UART_REOPEN_MS 1000
/* Characters a UART may still hold after the kernel queue is empty (hardware
 * FIFO, adapter buffer) when the driver cannot tell us (TIOCSERGETLSR). */
#define UART_FIFO_CHARS 64
#define UART_GRACE_MAX_MS 500
#define UART_DRAIN_SLACK_MS 2000

struct uart {
	struct transport t;
	char *dev;
	struct line_cfg cur;  /* in force; applied again on every reopen */
	struct line_cfg next; /* waiting for the output to drain */
	bool has_next;
	bool in_grace;        /* kernel queue empty, waiting out the FIFO */
	uint64_t drain_deadline;
	int fd;
	struct loop_io io;
	struct loop_timer reopen; /* retries while the device is gone */
	struct loop_timer drain;  /* polls the output queue for set_line */
	struct loop_timer notify; /* events decided inside write() */
	bool rd_on, wr_on, started, lost, reported_lost;
	uint8_t buf[FDU_READ_BUF];
};

static const struct transport_ops uart_ops;

/* ---- line settings (pure) ---------------------------------------------- */

static int uart_check_cfg(const struct line_cfg *c)
{
	if (c->baud < 80 || c->baud > 5000000 || c->databits < 5 || c->databits > 8 ||
	    c->stopbits < 1 || c->stopbits > 3 || c->parity > 2 || c->flow > 3)
		return -EINVAL;
	return 0;
}

static unsigned uart_char_bits(const struct line_cfg *c)
{
	return 1u + c->databits + (c->parity ? 1u : 0u) + (c->stopbits == 1 ? 1u : 2u);
}

/* Milliseconds to send `chars` characters at the settings `c`, rounded up. */
static uint64_t uart_ms_for(const struct line_cfg *c, uint64_t chars)
{
	return (chars * uart_char_bits(c) * 1000u + c->baud - 1) / c->baud;
}

/* The classic Bnnn code of a standard rate, or BOTHER. Standard rates keep
 * their code so that tools reading the line with plain termios (stty,
 * pyserial) see the real speed; BOTHER carries any other integer rate. */
static tcflag_t baud_code(uint32_t baud)
{
	static const struct { uint32_t baud; tcflag_t code; } std[] = {
		{ 50, B50 }, { 75, B75 }, { 110, B110 }, { 134, B134 }, { 150, B150 },
		{ 200, B200 }, { 300, B300 }, { 600, B600 }, { 1200, B1200 }, { 1800, B1800 },
		{ 2400, B2400 }, { 4800, B4800 }, { 9600, B9600 }, { 19200, B19200 },
		{ 38400, B38400 }, { 57600, B57600 }, { 115200, B115200 }, { 230400, B230400 },
		{ 460800, B460800 }, { 500000, B500000 }, { 576000, B576000 },
		{ 921600, B921600 }, { 1000000, B1000000 }, { 1152000, B1152000 },
		{ 1500000, B1500000 }, { 2000000, B2000000 }, { 2500000, B2500000 },
		{ 3000000, B3000000 }, { 3500000, B3500000 }, { 4000000, B4000000 },
	};
	for (size_t i = 0; i < sizeof(std) / sizeof(std[0]); i++)
		if (std[i].baud == baud)
			return std[i].code;
	return BOTHER;
}

void uart_build_termios(struct termios2 *tio, const struct line_cfg *c)
{
	tcflag_t code = baud_code(c->baud);
	static const tcflag_t sizes[] = { CS5, CS6, CS7, CS8 };
	/* Raw: bytes pass untouched both ways, as the MCU sent them. Parity
	 * errors are not checked (no INPCK): a garbled byte is passed on, the
	 * AT parser rejects the line as a module would. */
	tio->c_iflag &= ~(tcflag_t)(IGNBRK | BRKINT | PARMRK | ISTRIP | INLCR | IGNCR | ICRNL |
				    IXON | IXOFF | IXANY | INPCK);
	tio->c_oflag &= ~(tcflag_t)OPOST;
	tio->c_lflag &= ~(tcflag_t)(ECHO | ECHONL | ICANON | ISIG | IEXTEN);
	tio->c_cflag &= ~(tcflag_t)(CBAUD | CIBAUD | CSIZE | CSTOPB | PARENB | PARODD |
				    CMSPAR | CRTSCTS | HUPCL);
	tio->c_cflag |= CREAD | CLOCAL | code | (code << IBSHIFT);
	tio->c_cflag |= sizes[c->databits - 5];
	if (c->stopbits != 1)
		tio->c_cflag |= CSTOPB;
	if (c->parity)
		tio->c_cflag |= PARENB | (c->parity == 1 ? PARODD : 0);
	if (c->flow & 3)
		tio->c_cflag |= CRTSCTS;
	tio->c_cc[VMIN] = 1;
	tio->c_cc[VTIME] = 0;
	tio->c_ispeed = c->baud;
	tio->c_ospeed = c->baud;
}

static void uart_log_cfg(const struct uart *u, const struct line_cfg *c)
{
	static const char par[] = { 'N', 'O', 'E' };
	static const char *const flow[] = { "none", "RTS/CTS (RTS asked)",
					    "RTS/CTS (CTS asked)", "RTS/CTS" };
	log_info("uart %s: %u baud %u%c%c, flow control %s", u->dev, c->baud, c->databits,
		 par[c->parity], c->stopbits == 1 ? '1' : '2', flow[c->flow]);
	if (c->stopbits == 2)
		log_info("uart %s: 1.5 stop bits asked, Linux has none; using 2", u->dev);
	if (c->flow == 1 || c->flow == 2)
		log_info("uart %s: Linux switches RTS and CTS together (CRTSCTS); "
			 "enabling both",
			 u->dev);
}

static int uart_apply(struct uart *u, const struct line_cfg *c)
{
	struct termios2 tio;
	int rc = ioctl(u->fd, TCGETS2, &tio);
	if (rc == 0) {
		uart_build_termios(&tio, c);
		rc = ioctl(u->fd, TCSETS2, &tio);
	}
	if (rc < 0) {
		int e = errno;
		log_error("uart %s: cannot set %u baud %u data bits: %s%s", u->dev, c->baud,
			  c->databits, strerror(e),
			  e == ENOTTY ? " (this is not a serial port)" : "");
		return -e;
	}
	/* The driver may round to what its clock divider can do. */
	if (ioctl(u->fd, TCGETS2, &tio) == 0 && tio.c_ospeed != c->baud)
		log_info("uart %s: asked for %u baud, the driver reports %u (nearest it can do)",
			 u->dev, c->baud, tio.c_ospeed);
	uart_log_cfg(u, c);
	return 0;
}

/* ---- open, loss, reopen ------------------------------------------------ */

static unsigned uart_mask(const struct uart *u)
{
	return (u->rd_on ? LOOP_READ : 0u) | (u->wr_on ? LOOP_WRITE : 0u);
}

static void uart_on_io(void *arg, unsigned events);

static int uart_open(struct uart *u, bool quiet)
{
	int fd = open(u->dev, O_RDWR | O_NOCTTY | O_NONBLOCK | O_CLOEXEC);
	if (fd < 0) {
		int e = errno;
		if (!quiet)
			log_error("cannot open %s: %s%s", u->dev, strerror(e), fdu_open_hint(e));
		return -e;
	}
	u->fd = fd;
	/* Exclusive: keeps probing programs (ModemManager, a stray terminal)
	 * from writing "AT" into the MCU's receive line. */
	ioctl(fd, TIOCEXCL);
	int rc = uart_apply(u, &u->cur);
	if (rc == 0) {
		ioctl(fd, TCFLSH, TCIOFLUSH); /* drop noise from before we owned it */
		rc = loop_io_add(u->t.loop, &u->io, fd, uart_mask(u), uart_on_io, u);
	}
	if (rc < 0) {
		close(fd);
		u->fd = -1;
	}
	return rc;
}

static void uart_close_fd(struct uart *u)
{
	loop_io_del(u->t.loop, &u->io);
	if (u->fd >= 0)
		close(u->fd);
	u->fd = -1;
}

/* Settings waiting for a drain apply at once when the port is gone: there is
 * nothing left to drain, and the next open uses them. */
static void uart_settle_pending(struct uart *u)
{
	if (!u->has_next)
		return;
	loop_timer_stop(u->t.loop, &u->drain);
	u->cur = u->next;
	u->has_next = false;
	u->in_grace = false;
}

static void uart_lost(struct uart *u, int err)
{
	if (u->lost)
		return;
	log_error("uart %s: %s; output is dropped until it is back, retrying every %d s",
		  u->dev, err ? strerror(err) : "device hung up (unplugged?)",
		  UART_REOPEN_MS / 1000);
	uart_close_fd(u);
	uart_settle_pending(u);
	u->lost = true;
	loop_timer_start(u->t.loop, &u->reopen, UART_REOPEN_MS);
	loop_timer_start(u->t.loop, &u->notify, 0);
}

static void uart_on_reopen(void *arg)
{
	struct uart *u = arg;
	if (uart_open(u, true) < 0) {
		loop_timer_start(u->t.loop, &u->reopen, UART_REOPEN_MS);
		return;
	}
	u->lost = false;
	log_info("uart %s: device is back", u->dev);
	loop_timer_start(u->t.loop, &u->notify, 0);
}

/* Loss and return are reported as a detached/attached peer, and a writer
 * waiting for room is released: while the port is gone, writes drop. */
static void uart_on_notify(void *arg)
{
	struct uart *u = arg;
	if (u->lost != u->reported_lost) {
		u->reported_lost = u->lost;
		tr_emit_peer(&u->t, !u->lost);
	}
	if (u->lost && u->wr_on)
		tr_emit_writable(&u->t);
}

static bool uart_gone_errno(int e)
{
	return e == EIO || e == ENXIO || e == ENODEV || e == EBADF;
}

/* ---- reading -------------------------------------------------------------- */

static void uart_sink(void *arg, const uint8_t *b, size_t n)
{
	struct uart *u = arg;
	tr_emit_input(&u->t, b, n);
}

static void uart_on_io(void *arg, unsigned events)
{
	struct uart *u = arg;
	if (events & LOOP_WRITE)
		tr_emit_writable(&u->t);
	if (!(events & (LOOP_READ | LOOP_ERR)) || !u->io.added)
		return;
	if (!u->rd_on) {
		/* Paused: a hangup still wakes us; do not spin on it. */
		if (events & LOOP_ERR)
			uart_lost(u, 0);
		return;
	}
	int err = 0;
	enum fdu_rd r = fdu_read_burst(u->fd, u->buf, sizeof(u->buf), uart_sink, u, &u->rd_on,
				       FDU_TTY_READ_MAX, &err);
	/* A raw tty with VMIN=1 returns 0 only after a hangup. */
	if (r == FDU_RD_EOF)
		uart_lost(u, 0);
	else if (r == FDU_RD_ERROR && uart_gone_errno(err))
		uart_lost(u, err);
	else if (r == FDU_RD_ERROR)
		log_warn("uart %s: read failed: %s", u->dev, strerror(err));
}

/* ---- set_line: wait for the output to leave the wire ------------------- */

static void uart_apply_next(struct uart *u)
{
	u->has_next = false;
	u->in_grace = false;
	if (uart_apply(u, &u->next) == 0)
		u->cur = u->next;
}

/* One step of the drain wait: kernel queue (TIOCOUTQ), then the transmitter
 * itself (TIOCSERGETLSR) or, if the driver cannot say, the time a FIFO takes
 * to empty. TCSETSW2 would do this by sleeping inside the ioctl and stall the
 * loop, so we poll from a timer instead. */
static void uart_on_drain(void *arg)
{
	struct uart *u = arg;
	if (!u->has_next || u->fd < 0)
		return;
	if (u->in_grace || clock_now_ms() >= u->drain_deadline) {
		if (!u->in_grace)
			log_warn("uart %s: output did not drain in time (is CTS held off?); "
				 "changing line settings anyway",
				 u->dev);
		uart_apply_next(u);
		return;
	}
	int outq = 0;
	if (ioctl(u->fd, TIOCOUTQ, &outq) < 0)
		outq = 0;
	if (outq > 0) {
		uint64_t ms = uart_ms_for(&u->cur, (uint64_t)outq);
		loop_timer_start(u->t.loop, &u->drain, ms < 1 ? 1 : (ms > 50 ? 50 : ms));
		return;
	}
	unsigned lsr = 0;
	if (ioctl(u->fd, TIOCSERGETLSR, &lsr) == 0) {
		if (lsr & TIOCSER_TEMT)
			uart_apply_next(u);
		else
			loop_timer_start(u->t.loop, &u->drain, 1);
		return;
	}
	uint64_t grace = uart_ms_for(&u->cur, UART_FIFO_CHARS);
	u->in_grace = true;
	loop_timer_start(u->t.loop, &u->drain, grace > UART_GRACE_MAX_MS ? UART_GRACE_MAX_MS : grace);
}

static int uart_set_line(struct transport *t, const struct line_cfg *cfg)
{
	struct uart *u = (struct uart *)t;
	if (uart_check_cfg(cfg) < 0)
		return -EINVAL;
	if (!u->started || u->fd < 0) {
		u->cur = *cfg; /* applied by the next open */
		return 0;
	}
	int outq = 0;
	if (ioctl(u->fd, TIOCOUTQ, &outq) < 0 || outq < 0)
		outq = 0;
	u->next = *cfg;
	u->has_next = true;
	u->in_grace = false;
	u->drain_deadline =
		clock_now_ms() + UART_DRAIN_SLACK_MS + uart_ms_for(&u->cur, (uint64_t)outq);
	uart_on_drain(u);
	return 0;
}

/* ---- ops ------------------------------------------------------------------ */

static int uart_start(struct transport *t)
{
	struct uart *u = (struct uart *)t;
	if (u->started)
		return -EALREADY;
	int rc = uart_open(u, false);
	if (rc < 0)
		return rc;
	u->started = true;
	log_info("serial port ready: %s", t->desc);
	return 0;
}

static ssize_t uart_write(struct transport *t, const void *b, size_t n)
{
	struct uart *u = (struct uart *)t;
	if (!u->started || u->fd < 0)
		return (ssize_t)n; /* nobody on the wire: dropped */
	ssize_t w = fdu_write(u->fd, b, n);
	if (w < 0 && w != -EAGAIN && uart_gone_errno((int)-w)) {
		uart_lost(u, (int)-w);
		return (ssize_t)n;
	}
	return w;
}

static void uart_want_write(struct transport *t, bool on)
{
	struct uart *u = (struct uart *)t;
	u->wr_on = on;
	if (u->io.added)
		loop_io_want(t->loop, &u->io, uart_mask(u));
	else if (on && u->lost)
		loop_timer_start(t->loop, &u->notify, 0);
}

static void uart_want_read(struct transport *t, bool on)
{
	struct uart *u = (struct uart *)t;
	u->rd_on = on;
	if (u->io.added)
		loop_io_want(t->loop, &u->io, uart_mask(u));
}

static void uart_destroy(struct transport *t)
{
	struct uart *u = (struct uart *)t;
	if (!u)
		return;
	loop_timer_stop(t->loop, &u->reopen);
	loop_timer_stop(t->loop, &u->drain);
	loop_timer_stop(t->loop, &u->notify);
	uart_close_fd(u);
	free(u->dev);
	free(u);
}

static const struct transport_ops uart_ops = {
	.kind = "uart",
	.start = uart_start,
	.write = uart_write,
	.want_write = uart_want_write,
	.want_read = uart_want_read,
	.set_line = uart_set_line,
	.destroy = uart_destroy,
};

int transport_uart_new(struct transport **out, struct loop *l, const char *dev,
		       const struct line_cfg *cfg)
{
	if (!dev || !*dev || !cfg)
		return -EINVAL;
	if (uart_check_cfg(cfg) < 0) {
		log_error("uart %s: invalid line settings (baud 80..5000000, data bits 5..8, "
			  "stop bits 1..3, parity 0..2, flow 0..3)",
			  dev);
		return -EINVAL;
	}
	struct uart *u = calloc(1, sizeof(*u));
	if (!u)
		return -ENOMEM;
	u->dev = strdup(dev);
	if (!u->dev) {
		free(u);
		return -ENOMEM;
	}
	u->t.ops = &uart_ops;
	u->t.loop = l;
	u->cur = *cfg;
	u->fd = -1;
	u->rd_on = true;
	loop_timer_init(&u->reopen, uart_on_reopen, u);
	loop_timer_init(&u->drain, uart_on_drain, u);
	loop_timer_init(&u->notify, uart_on_notify, u);
	snprintf(u->t.desc, sizeof(u->t.desc), "uart %s", dev);
	*out = &u->t;
	return 0;
}
