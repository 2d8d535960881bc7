/* The pty transport: espatd owns the master, the MCU side (a test, pyserial,
 * picocom) opens the slave through a stable symlink.
 *
 * Why the daemon keeps a slave fd open for its whole life: when the last fd of
 * a pty slave closes, the kernel marks the master "other side closed"; from
 * then on epoll reports EPOLLHUP on the master forever (it cannot be masked)
 * and read() fails with EIO until somebody opens the slave again. A client
 * that closes and reopens the port (every pyserial test does) would make the
 * daemon spin or tear down. Holding one slave fd ourselves means the master
 * never sees that state, and also keeps the raw termios we set in place for
 * the next client.
 *
 * The price: bytes we write are queued for a reader that may not exist. The
 * transport contract says output with nobody attached is dropped, as on a
 * wire, so we track clients: inotify reports opens and closes of the slave
 * node, and whenever that count says "nobody", or a write finds the queue
 * full, we verify with a probe (see pty_probe). */
#include "core/clock.h"
#include "core/log.h"
#include "core/loop.h"
#include "transport/fdutil.h"
#include "transport/transport.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/inotify.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <termios.h>
#include <unistd.h>

/* Back-off when the master read fails with EIO after all (see pty_on_master). */
#define PTY_EIO_RETRY_MS 100

struct pty {
	struct transport t;
	char *link;       /* the symlink path we offer clients */
	char slave[64];   /* /dev/pts/N */
	int mfd;          /* master */
	int sfd;          /* our own slave fd, see the top of this file */
	int ifd;          /* inotify watching the slave node, or -1 */
	struct loop_io mio, iio;
	struct loop_timer retry;  /* re-add the master after EIO */
	struct loop_timer notify; /* report peer changes noticed inside write() */
	int clients;              /* opens of the slave by others; -1 unknown */
	uint64_t last_probe;      /* clock_now_ms() of the last pty_probe() */
	bool reported;            /* last peer state reported */
	bool rd_on, wr_on, started, linked, eio_logged, reopen_warned;
	uint8_t buf[FDU_READ_BUF];
};

static const struct transport_ops pty_ops;

static unsigned pty_mask(const struct pty *p)
{
	return (p->rd_on ? LOOP_READ : 0u) | (p->wr_on ? LOOP_WRITE : 0u);
}

static void pty_update_io(struct pty *p)
{
	if (p->mio.added)
		loop_io_want(p->t.loop, &p->mio, pty_mask(p));
}

/* ---- opening ---------------------------------------------------------- */

static int pty_open_master(struct pty *p)
{
	/* glibc's posix_openpt passes the flags straight to open("/dev/ptmx"). */
	p->mfd = posix_openpt(O_RDWR | O_NOCTTY | O_NONBLOCK | O_CLOEXEC);
	if (p->mfd < 0) {
		int e = errno;
		log_error("cannot open /dev/ptmx: %s (is devpts mounted on /dev/pts?)",
			  strerror(e));
		return -e;
	}
	if (grantpt(p->mfd) < 0 || unlockpt(p->mfd) < 0 ||
	    ptsname_r(p->mfd, p->slave, sizeof(p->slave)) != 0) {
		int e = errno;
		log_error("cannot set up the pty slave: %s", strerror(e));
		return -e;
	}
	return 0;
}

/* Open the slave from the master itself: no path lookup, so it is the very
 * pty we created even if /dev/pts is odd (containers). */
static int pty_open_slave(struct pty *p)
{
	int fd = ioctl(p->mfd, TIOCGPTPEER, O_RDWR | O_NOCTTY | O_CLOEXEC);
	if (fd < 0)
		fd = open(p->slave, O_RDWR | O_NOCTTY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	p->sfd = fd;
	return 0;
}

/* Raw 8N1 without echo on the slave: the termios that matter for a pty are
 * the slave's (its line discipline processes both directions). Clients may
 * change them; we set what a UART with nothing in between would do. */
static int pty_make_raw(int fd)
{
	struct termios tio;
	if (tcgetattr(fd, &tio) < 0)
		return -errno;
	cfmakeraw(&tio);
	tio.c_cflag &= ~(tcflag_t)(CSIZE | PARENB | CSTOPB | CRTSCTS | HUPCL);
	tio.c_cflag |= CS8 | CREAD | CLOCAL;
	tio.c_cc[VMIN] = 1;
	tio.c_cc[VTIME] = 0;
	cfsetspeed(&tio, B115200); /* cosmetic: what `stty` shows */
	if (tcsetattr(fd, TCSANOW, &tio) < 0)
		return -errno;
	return 0;
}

static void pty_watch_clients(struct pty *p)
{
	p->clients = -1;
	p->ifd = inotify_init1(IN_NONBLOCK | IN_CLOEXEC);
	if (p->ifd < 0 || inotify_add_watch(p->ifd, p->slave, IN_OPEN | IN_CLOSE) < 0) {
		/* Usually fs.inotify.max_user_instances. Not fatal: writes then
		 * only learn "nobody listens" when the queue fills. */
		log_info("pty: cannot watch %s for clients (%s); output is dropped only "
			 "once 20 KB are queued with nobody reading",
			 p->slave, strerror(errno));
		if (p->ifd >= 0)
			close(p->ifd);
		p->ifd = -1;
		return;
	}
	p->clients = 0;
}

/* ---- the symlink ------------------------------------------------------ */

static void pty_note_old_link(const char *link)
{
	char old[PATH_MAX];
	ssize_t n = readlink(link, old, sizeof(old) - 1);
	old[n < 0 ? 0 : n] = '\0';
	struct stat st;
	if (stat(link, &st) == 0)
		log_warn("replacing symlink %s -> %s, which still exists: is another espatd "
			 "using this path?",
			 link, old);
	else
		log_info("replacing stale symlink %s -> %s", link, old);
}

static int pty_link(struct pty *p)
{
	struct stat st;
	if (lstat(p->link, &st) == 0) {
		if (!S_ISLNK(st.st_mode)) {
			log_error("%s exists and is not a symlink; refusing to replace it "
				  "(remove it or choose another pty path)",
				  p->link);
			return -EEXIST;
		}
		pty_note_old_link(p->link);
	} else if (errno != ENOENT) {
		int e = errno;
		log_error("cannot check %s: %s", p->link, strerror(e));
		return -e;
	}
	/* Create beside it and rename over: a client polling the path never
	 * sees it missing or half made. */
	char tmp[PATH_MAX];
	if (snprintf(tmp, sizeof(tmp), "%s.%ld.tmp", p->link, (long)getpid()) >=
	    (int)sizeof(tmp))
		return -ENAMETOOLONG;
	unlink(tmp);
	if (symlink(p->slave, tmp) < 0 || rename(tmp, p->link) < 0) {
		int e = errno;
		unlink(tmp);
		log_error("cannot create symlink %s -> %s: %s (is the directory writable?)",
			  p->link, p->slave, strerror(e));
		return -e;
	}
	p->linked = true;
	return 0;
}

/* Remove the link only while it is still ours: a newer espatd may have taken
 * the path over, and deleting its link would strand its clients. */
static void pty_unlink(struct pty *p)
{
	if (!p->linked)
		return;
	char cur[PATH_MAX];
	ssize_t n = readlink(p->link, cur, sizeof(cur) - 1);
	if (n < 0)
		return;
	cur[n] = '\0';
	if (strcmp(cur, p->slave) == 0)
		unlink(p->link);
	else
		log_info("leaving %s alone: it now points to %s", p->link, cur);
	p->linked = false;
}

/* ---- who holds the slave ---------------------------------------------- */

/* A client may have put the slave in exclusive mode (TIOCEXCL). On a real
 * port that ends with the last close; here our fd keeps the tty alive, so the
 * flag would outlive the client and also keep us (not root) from reopening
 * our own fd. Lift it around the probe; pty_probe puts it back only if a
 * client is still there. */
static bool pty_lift_exclusive(struct pty *p)
{
	int excl = 0;
	if (p->sfd < 0 || ioctl(p->sfd, TIOCGEXCL, &excl) < 0 || !excl)
		return false;
	ioctl(p->sfd, TIOCNXCL);
	return true;
}

static void pty_discard_events(struct pty *p)
{
	char evbuf[4096];
	if (p->ifd >= 0)
		while (read(p->ifd, evbuf, sizeof(evbuf)) > 0)
			;
}

/* Close our slave fd for a moment: if nobody else holds the slave, the master
 * reports POLLHUP. Then reopen at once; the termios survive because the
 * master keeps the tty alive. With nobody there, the output still queued for
 * the slave is discarded, as on a wire with nobody listening, so the next
 * client does not read replies meant for the last one. Our own close and
 * reopen show up in inotify, so the events queued meanwhile are discarded:
 * the probe is the fresher truth. Returns true if a client holds the slave. */
static bool pty_probe(struct pty *p)
{
	bool excl = pty_lift_exclusive(p);
	if (p->sfd >= 0)
		close(p->sfd);
	p->sfd = -1;
	struct pollfd pfd = { .fd = p->mfd, .events = POLLIN };
	bool alone = poll(&pfd, 1, 0) == 1 && (pfd.revents & POLLHUP);
	int rc = pty_open_slave(p);
	if (rc < 0 && !p->reopen_warned)
		log_warn("pty: cannot reopen %s: %s; a client closing the port may make "
			 "espatd poll for it every %d ms",
			 p->slave, strerror(-rc), PTY_EIO_RETRY_MS);
	p->reopen_warned = rc < 0;
	if (p->sfd >= 0 && excl && !alone)
		ioctl(p->sfd, TIOCEXCL);
	if (p->sfd >= 0 && alone)
		tcflush(p->sfd, TCIFLUSH);
	pty_discard_events(p);
	/* Without inotify the count stays "unknown": nothing would tell us
	 * when a client comes back. */
	if (p->ifd >= 0)
		p->clients = alone ? 0 : (p->clients > 0 ? p->clients : 1);
	return !alone;
}

/* Apply queued inotify events to the client count; after any close, let a
 * probe say whether somebody is still there. */
static void pty_scan_clients(struct pty *p)
{
	if (p->ifd < 0)
		return;
	bool check = false;
	char evbuf[4096] __attribute__((aligned(__alignof__(struct inotify_event))));
	ssize_t n;
	while ((n = read(p->ifd, evbuf, sizeof(evbuf))) > 0) {
		for (char *q = evbuf; q < evbuf + n;) {
			const struct inotify_event *e = (const void *)q;
			q += sizeof(*e) + e->len;
			if (e->mask & IN_OPEN)
				p->clients++;
			if ((e->mask & IN_CLOSE) && p->clients > 0)
				p->clients--;
			/* Identical unread events are coalesced by inotify, so
			 * the count is a hint; overflow loses it entirely. */
			if (e->mask & (IN_CLOSE | IN_Q_OVERFLOW))
				check = true;
		}
	}
	/* Any close is checked: two closes may have been coalesced into one. */
	if (check)
		pty_probe(p);
}

static void pty_report_peer(struct pty *p)
{
	if (p->clients < 0)
		return;
	bool now = p->clients > 0;
	if (now == p->reported)
		return;
	p->reported = now;
	log_info("pty: client %s %s", now ? "attached to" : "detached from", p->slave);
	tr_emit_peer(&p->t, now);
}

static void pty_on_inotify(void *arg, unsigned events)
{
	struct pty *p = arg;
	pty_scan_clients(p);
	pty_report_peer(p);
}

static void pty_on_notify(void *arg)
{
	pty_report_peer(arg);
}

/* ---- reading ---------------------------------------------------------- */

static void pty_sink(void *arg, const uint8_t *b, size_t n)
{
	struct pty *p = arg;
	/* Somebody typed, so somebody is there, whatever the count says (an
	 * open can be missed in the instant of a probe). A wrong guess is
	 * corrected by the probe after the next close or full queue. */
	if (p->clients == 0) {
		p->clients = 1;
		loop_timer_start(p->t.loop, &p->notify, 0);
	}
	tr_emit_input(&p->t, b, n);
}

/* EIO on the master means no slave is open. Our own slave fd should prevent
 * that; if a kernel does it anyway, stop watching the master (EPOLLHUP would
 * wake us continuously) and look again shortly: "no client" is not an error. */
static void pty_backoff(struct pty *p)
{
	if (!p->eio_logged)
		log_debug("pty: master read says no client on %s; retrying every %d ms",
			  p->slave, PTY_EIO_RETRY_MS);
	p->eio_logged = true;
	loop_io_del(p->t.loop, &p->mio);
	loop_timer_start(p->t.loop, &p->retry, PTY_EIO_RETRY_MS);
}

static void pty_on_master(void *arg, unsigned events);

static void pty_on_retry(void *arg)
{
	struct pty *p = arg;
	if (p->sfd < 0)
		pty_probe(p); /* reopens our fd without counting it as a client */
	int rc = loop_io_add(p->t.loop, &p->mio, p->mfd, pty_mask(p), pty_on_master, p);
	if (rc < 0) {
		log_error("pty: cannot watch %s again: %s", p->slave, strerror(-rc));
		loop_timer_start(p->t.loop, &p->retry, PTY_EIO_RETRY_MS);
	}
}

static void pty_on_master(void *arg, unsigned events)
{
	struct pty *p = arg;
	if (events & LOOP_WRITE)
		tr_emit_writable(&p->t);
	if (!(events & (LOOP_READ | LOOP_ERR)) || !p->mio.added)
		return;
	if (!p->rd_on) {
		/* Paused: only an error wakes us here; do not spin on it. */
		if (events & LOOP_ERR)
			pty_backoff(p);
		return;
	}
	int err = 0;
	enum fdu_rd r = fdu_read_burst(p->mfd, p->buf, sizeof(p->buf), pty_sink, p, &p->rd_on,
				       FDU_TTY_READ_MAX, &err);
	if (r == FDU_RD_EOF || (r == FDU_RD_ERROR && err == EIO))
		pty_backoff(p);
	else if (r == FDU_RD_ERROR)
		log_error("pty: read from %s failed: %s", p->slave, strerror(err));
	else
		p->eio_logged = false;
}

/* ---- ops ---------------------------------------------------------------- */

static int pty_start(struct transport *t)
{
	struct pty *p = (struct pty *)t;
	if (p->started)
		return -EALREADY;
	int rc = pty_open_master(p);
	if (rc == 0 && (rc = pty_open_slave(p)) < 0)
		log_error("cannot open pty slave %s: %s", p->slave, strerror(-rc));
	if (rc == 0 && (rc = pty_make_raw(p->sfd)) < 0)
		log_error("cannot put %s in raw mode: %s", p->slave, strerror(-rc));
	if (rc < 0)
		return rc;
	pty_watch_clients(p);
	rc = loop_io_add(t->loop, &p->mio, p->mfd, pty_mask(p), pty_on_master, p);
	if (rc == 0 && p->ifd >= 0)
		rc = loop_io_add(t->loop, &p->iio, p->ifd, LOOP_READ, pty_on_inotify, p);
	if (rc == 0)
		rc = pty_link(p);
	if (rc < 0)
		return rc;
	p->started = true;
	snprintf(t->desc, sizeof(t->desc), "pty %s -> %s", p->link, p->slave);
	log_info("serial port ready: %s", t->desc);
	return 0;
}

/* Decide "nobody listens" before writing. Pending inotify events are read
 * first: a client that just opened and typed "AT" must get the reply even if
 * its open event has not been dispatched yet. */
static bool pty_nobody(struct pty *p)
{
	if (p->clients != 0)
		return false;
	pty_scan_clients(p);
	if (p->clients > 0)
		loop_timer_start(p->t.loop, &p->notify, 0);
	return p->clients == 0;
}

static ssize_t pty_write(struct transport *t, const void *b, size_t n)
{
	struct pty *p = (struct pty *)t;
	if (!p->started || pty_nobody(p))
		return (ssize_t)n;
	ssize_t w = fdu_write(p->mfd, b, n);
	if (w != -EAGAIN)
		return w == -EIO ? (ssize_t)n : w;
	/* Queue full: a slow reader, or nobody at all (count unknown, or
	 * coalesced events). The probe tells; with nobody it also emptied the
	 * queue, and the bytes are dropped as on an unconnected wire. A client
	 * we know of is just slow: probing on every full queue cost more than
	 * the data itself (docs/performance.md, F1), so at most every 100 ms. */
	uint64_t now = clock_now_ms();
	if (p->clients > 0 && now - p->last_probe < 100)
		return -EAGAIN;
	p->last_probe = now;
	if (pty_probe(p))
		return -EAGAIN;
	loop_timer_start(t->loop, &p->notify, 0);
	return (ssize_t)n;
}

static void pty_want_write(struct transport *t, bool on)
{
	struct pty *p = (struct pty *)t;
	p->wr_on = on;
	pty_update_io(p);
}

static void pty_want_read(struct transport *t, bool on)
{
	struct pty *p = (struct pty *)t;
	p->rd_on = on;
	pty_update_io(p);
}

static int pty_set_line(struct transport *t, const struct line_cfg *cfg)
{
	return -ENOTSUP;
}

static void pty_destroy(struct transport *t)
{
	struct pty *p = (struct pty *)t;
	if (!p)
		return;
	loop_timer_stop(t->loop, &p->retry);
	loop_timer_stop(t->loop, &p->notify);
	loop_io_del(t->loop, &p->mio);
	loop_io_del(t->loop, &p->iio);
	pty_unlink(p);
	if (p->ifd >= 0)
		close(p->ifd);
	if (p->sfd >= 0)
		close(p->sfd);
	if (p->mfd >= 0)
		close(p->mfd);
	free(p->link);
	free(p);
}

static const struct transport_ops pty_ops = {
	.kind = "pty",
	.start = pty_start,
	.write = pty_write,
	.want_write = pty_want_write,
	.want_read = pty_want_read,
	.set_line = pty_set_line,
	.destroy = pty_destroy,
};

int transport_pty_new(struct transport **out, struct loop *l, const char *link_path)
{
	if (!link_path || !*link_path)
		return -EINVAL;
	struct pty *p = calloc(1, sizeof(*p));
	if (!p)
		return -ENOMEM;
	p->link = strdup(link_path);
	if (!p->link) {
		free(p);
		return -ENOMEM;
	}
	p->t.ops = &pty_ops;
	p->t.loop = l;
	p->mfd = p->sfd = p->ifd = -1;
	p->clients = -1;
	p->rd_on = true;
	loop_timer_init(&p->retry, pty_on_retry, p);
	loop_timer_init(&p->notify, pty_on_notify, p);
	snprintf(p->t.desc, sizeof(p->t.desc), "pty %s", link_path);
	*out = &p->t;
	return 0;
}
