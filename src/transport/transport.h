/* The serial side: a byte pipe to the MCU. A vtable because the variants are
 * real: pty, uart, tcp, stdio (design.md §2). A transport never blocks: it
 * reports input through `ev`, writes what the kernel takes now, and asks for a
 * writable callback when it could not take everything. */
#ifndef ESPATD_TRANSPORT_TRANSPORT_H
#define ESPATD_TRANSPORT_TRANSPORT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

struct loop;
struct transport;

/* Line settings of a UART (AT+UART_CUR). Meaningless on pty/tcp/stdio. */
struct line_cfg {
	uint32_t baud;     /* 80..5000000 */
	uint8_t databits;  /* 5..8 */
	uint8_t stopbits;  /* 1 = 1, 2 = 1.5, 3 = 2 (ESP-AT encoding) */
	uint8_t parity;    /* 0 none, 1 odd, 2 even */
	uint8_t flow;      /* bit0 RTS, bit1 CTS (ESP-AT encoding) */
};

struct transport_events {
	/* Bytes arrived (one kernel read = one chunk; chunking matters for
	 * `busy p...`, protocol.md §1.9). */
	void (*input)(void *arg, const uint8_t *p, size_t n);
	/* The transport can take more output after a short write. */
	void (*writable)(void *arg);
	/* A client attached or detached (tcp; optional for others). */
	void (*peer)(void *arg, bool attached);
	/* No more input will ever come (stdin EOF). */
	void (*eof)(void *arg);
};

struct transport_ops {
	const char *kind; /* "pty", "uart", "tcp", "stdio" */
	int (*start)(struct transport *t);
	/* Returns bytes taken (>= 0), or -EAGAIN, or another -errno. When no
	 * client is attached the bytes are consumed and dropped, as on a wire
	 * with nobody listening. */
	ssize_t (*write)(struct transport *t, const void *p, size_t n);
	void (*want_write)(struct transport *t, bool on);
	/* Pause/resume reading input (back-pressure toward the MCU). */
	void (*want_read)(struct transport *t, bool on);
	/* Apply line settings after pending output drained; -ENOTSUP if the
	 * transport has no line. */
	int (*set_line)(struct transport *t, const struct line_cfg *cfg);
	void (*destroy)(struct transport *t);
};

struct transport {
	const struct transport_ops *ops;
	struct loop *loop;
	const struct transport_events *ev;
	void *ev_arg;
	char desc[160]; /* for logs: "pty /tmp/espatd (-> /dev/pts/3)" */
};

/* Constructors: fill *out; nothing is opened until ops->start(). */
int transport_pty_new(struct transport **out, struct loop *l, const char *link_path);
int transport_uart_new(struct transport **out, struct loop *l, const char *dev,
		       const struct line_cfg *cfg);
/* hostport: "PORT", "HOST:PORT" or "[V6]:PORT"; HOST defaults to 127.0.0.1. */
int transport_tcp_new(struct transport **out, struct loop *l, const char *hostport);
/* The listening port once started (useful with port 0 = ephemeral), the
 * configured one before; -EINVAL if t is not a tcp transport. */
int transport_tcp_port(struct transport *t);
int transport_stdio_new(struct transport **out, struct loop *l);

static inline void transport_bind(struct transport *t, const struct transport_events *ev,
				  void *arg)
{
	t->ev = ev;
	t->ev_arg = arg;
}

#endif
