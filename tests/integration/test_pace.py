"""--pace: the pty sends no faster than a UART at the line's rate (a byte is
start + data + parity + stop bits: baud/10 bytes a second at 8N1), the rate
follows AT+UART_CUR, and the serial side's back-pressure still holds while
output is paced (design.md §1)."""

import os
import re
import time

import pytest

import espat
from netpeer import Demux, TcpServer

IPD = re.compile(rb"\r\n\+IPD,(\d+):")


def paced(espatd, baud):
    """A paced daemon, attached to once its power-up "ready" has left the
    line (paced, it is still being sent when the log says ready)."""
    d = espatd("--pace", "--baud", str(baud), connect=False)
    time.sleep(0.1)
    d.connect()
    return d


def joined(d):
    c = d.client
    c.echo_off()
    c.must_ok(b'AT+CWJAP="lab","pw"\r\n')
    return c


@pytest.fixture
def srv():
    s = TcpServer()
    yield s
    s.close()


def connect(c, srv):
    c.transact(b'AT+CIPSTART="TCP","127.0.0.1",%d\r\n' % srv.port, b"CONNECT\r\n\r\nOK\r\n")
    return srv.accept()


def timed_ipd(c, peer, n, timeout=10.0):
    """The peer sends n bytes; read the +IPD frame(s) that carry them.
    Returns (bytes on the line, seconds from the first to the last byte,
    bytes in the first read)."""
    payload = os.urandom(n)
    peer.sendall(payload)
    line = b""
    t_first = t_last = None
    n_first = 0
    deadline = time.monotonic() + timeout * espat.SCALE
    while True:
        got = c._raw_read(0.05)
        now = time.monotonic()
        if got:
            if t_first is None:
                t_first, n_first = now, len(got)
            t_last = now
            line += got
        # parse what is complete: frames must carry exactly the payload
        data, pos = b"", 0
        while True:
            m = IPD.match(line, pos)
            if not m or len(line) < m.end() + int(m.group(1)) + 2:
                break
            end = m.end() + int(m.group(1))
            data += line[m.end():end]
            assert line[end:end + 2] == b"\r\n"
            pos = end + 2
        if len(data) >= n:
            assert data == payload and pos == len(line), "unexpected bytes: %r" % line[pos:]
            return len(line), t_last - t_first, n_first
        assert now < deadline, "only %d of %d bytes in %r" % (len(data), n, line[:80])


def check_rate(c, peer, n, bytes_per_s):
    total, secs, n_first = timed_ipd(c, peer, n)
    expect = (total - n_first) / bytes_per_s
    # never faster than the line; a little slower for the reader's own lag
    assert expect * 0.97 <= secs <= expect * 1.10 + 0.02, (
        "%d bytes took %.3f s, a UART needs %.3f s" % (total, secs, expect))


def test_paced_ipd_takes_line_time_and_follows_uart_cur(espatd, srv):
    d = paced(espatd, 19200)
    c = joined(d)
    peer = connect(c, srv)
    check_rate(c, peer, 2000, 1920.0)           # 19200 8N1: 10 bits a byte
    c.transact(b"AT+UART_CUR=57600,8,1,0,0\r\n", b"\r\nOK\r\n")
    check_rate(c, peer, 2000, 5760.0)
    c.transact(b"AT+UART_CUR=19200,8,3,2,0\r\n", b"\r\nOK\r\n")
    check_rate(c, peer, 1000, 1600.0)           # 8E2: 12 bits a byte
    c.transact(b"AT+UART_CUR?\r\n", b"+UART_CUR:19200,8,3,2,0\r\n\r\nOK\r\n")
    peer.close()
    c.expect(b"CLOSED\r\n")


def test_unpaced_pty_is_not_slowed(espatd, srv):
    d = espatd()
    c = joined(d)
    peer = connect(c, srv)
    total, secs, _ = timed_ipd(c, peer, 2000)
    assert secs < 0.5, "an unpaced 2000-byte +IPD took %.3f s" % secs
    peer.close()
    c.expect(b"CLOSED\r\n")


def test_restart_returns_to_the_power_up_rate(espatd, srv):
    d = paced(espatd, 38400)
    c = joined(d)
    c.transact(b"AT+UART_CUR=9600,8,1,0,0\r\n", b"\r\nOK\r\n")
    c.write(b"AT+RST\r\n")
    c.read_until(b"\r\nready\r\n", timeout=5)
    c.echo_off()
    c.must_ok(b'AT+CWJAP="lab","pw"\r\n')
    peer = connect(c, srv)
    check_rate(c, peer, 2000, 3840.0)
    peer.close()
    c.expect(b"CLOSED\r\n")


def test_paced_line_still_pushes_back(espatd, srv):
    """A slow line holds ~100 ms of output, not everything the peer sends:
    an AT typed during a long download is answered within a fraction of the
    download, and all data still arrives intact."""
    rate = 23040.0  # 230400 baud, 8N1
    d = paced(espatd, 230400)
    c = joined(d)
    peer = connect(c, srv)
    n = 60000
    payload = os.urandom(n)
    peer.sendall(payload)
    dm = Demux(c)
    deadline = time.monotonic() + 5 * espat.SCALE
    while not dm.frames:
        assert time.monotonic() < deadline, "no +IPD"
        dm.poll(0.05)
    time.sleep(0.3)  # the line is busy and the queue as full as it gets
    dm.poll()
    t0 = time.monotonic()
    c.write(b"AT\r\n")
    dm.wait_text(b"\r\nOK\r\n", timeout=10)
    waited = time.monotonic() - t0
    # the queue holds at most its high mark (4 KiB at this rate) plus one
    # +IPD: about 0.3 s of line time; without back-pressure the OK would
    # wait behind everything read from the socket (> 2 s)
    assert waited < 1.2, "AT waited %.2f s behind queued output" % waited
    got = dm.wait_data(-1, n, timeout=(n / rate) * 2 + 5)
    assert got == payload
    peer.close()
    dm.wait_text(b"CLOSED\r\n")
    dm.poll(0.05)
    assert dm.text == b"" and dm.buf == b"", (dm.text, dm.buf)
