#include "transport/fdutil.h"

#include <errno.h>
#include <fcntl.h>
#include <unistd.h>

int fdu_set_nonblock(int fd, bool on, int *old_flags)
{
	int fl = fcntl(fd, F_GETFL);
	if (fl < 0)
		return -errno;
	if (old_flags)
		*old_flags = fl;
	int nfl = on ? (fl | O_NONBLOCK) : (fl & ~O_NONBLOCK);
	if (nfl != fl && fcntl(fd, F_SETFL, nfl) < 0)
		return -errno;
	return 0;
}

ssize_t fdu_write(int fd, const void *p, size_t n)
{
	if (n == 0)
		return 0;
	for (;;) {
		ssize_t w = write(fd, p, n);
		if (w >= 0)
			return w;
		if (errno == EINTR)
			continue;
		if (errno == EWOULDBLOCK)
			return -EAGAIN;
		return -errno;
	}
}

enum fdu_rd fdu_read_burst(int fd, uint8_t *buf, size_t cap, fdu_sink sink, void *arg,
			   const bool *reading, size_t full, int *err)
{
	for (int i = 0; i < FDU_READ_BUDGET; i++) {
		if (!*reading)
			return FDU_RD_PAUSED;
		ssize_t r = read(fd, buf, cap);
		if (r > 0) {
			sink(arg, buf, (size_t)r);
			if ((size_t)r < full)
				return *reading ? FDU_RD_DRAINED : FDU_RD_PAUSED;
			continue;
		}
		if (r == 0)
			return FDU_RD_EOF;
		if (errno == EINTR)
			continue; /* costs one unit of budget: stays bounded */
		if (errno == EAGAIN || errno == EWOULDBLOCK)
			return FDU_RD_DRAINED;
		*err = errno;
		return FDU_RD_ERROR;
	}
	return *reading ? FDU_RD_BUDGET : FDU_RD_PAUSED;
}

void tr_emit_input(struct transport *t, const uint8_t *p, size_t n)
{
	if (t->ev && t->ev->input)
		t->ev->input(t->ev_arg, p, n);
}

void tr_emit_writable(struct transport *t)
{
	if (t->ev && t->ev->writable)
		t->ev->writable(t->ev_arg);
}

void tr_emit_peer(struct transport *t, bool attached)
{
	if (t->ev && t->ev->peer)
		t->ev->peer(t->ev_arg, attached);
}

void tr_emit_eof(struct transport *t)
{
	if (t->ev && t->ev->eof)
		t->ev->eof(t->ev_arg);
}

const char *fdu_open_hint(int err)
{
	switch (err) {
	case EACCES:
	case EPERM:
		return " (add your user to group dialout: sudo usermod -aG dialout $USER, "
		       "then log in again)";
	case ENOENT:
	case ENODEV:
	case ENXIO:
		return " (is the adapter plugged in? see ls -l /dev/serial/by-id/)";
	case EBUSY:
		return " (another program holds it open exclusively: check with fuser -v; "
		       "ModemManager is a usual suspect)";
	default:
		return "";
	}
}
