"""A client that never reads its replies cannot make espatd grow without
bound: past a cap the daemon stops reading the client's input, the
client's writes block, and everything works again once it reads."""

import os
import time

import espat


def rss_kib(pid):
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


def test_client_that_never_reads(espatd):
    d = espatd()
    c = d.client
    c.echo_off()
    base = rss_kib(d.proc.pid)
    fd = os.open(d.tty, os.O_RDWR | os.O_NOCTTY | os.O_NONBLOCK)
    sent = 0
    blocked_since = None
    deadline = time.monotonic() + 30 * espat.SCALE
    # +CMD? answers about 2.7 KB per command: 20 MB of replies if all were kept
    while sent < 8000 and time.monotonic() < deadline:
        try:
            os.write(fd, b"AT+CMD?\r\n")
            sent += 1
            blocked_since = None
            time.sleep(0.0002)
        except BlockingIOError:
            if blocked_since is None:
                blocked_since = time.monotonic()
            elif time.monotonic() - blocked_since > 1.0:
                break  # the daemon stopped reading us: bounded
            time.sleep(0.01)
    assert blocked_since is not None, "sent %d commands and never blocked" % sent
    grown = rss_kib(d.proc.pid) - base
    assert grown < 4096, "espatd grew by %d KiB" % grown
    assert "not reading its replies" in d.log()
    # read it all; the daemon serves again
    os.close(fd)
    got = c.drain(0.5)
    assert got.count(b"\r\nOK\r\n") + got.count(b"\r\nbusy p...\r\n") >= 1
    c.pending = b""
    c.drain(0.3)
    c.transact(b"AT\r\n", b"\r\nOK\r\n")
