"""Passthrough ("transparent transmission", protocol.md §2.7-§2.9, §2.19,
§2.27, §4, §7): AT+CIPMODE, AT+CIPSEND (execute), the guarded "+++",
the UART->network packing, reconnects, AT+SAVETRANSLINK boot passthrough and
the server form, byte for byte against real loopback peers.

Timing: the "+++" guard and the packing idle time are 20 ms in the daemon.
Where silence is required the tests keep generous pauses (GUARD, scaled for
sanitizer builds); where silence must be absent the bytes go out in ONE write
so no scheduling delay can split them."""

import hashlib
import os
import re
import select
import socket
import struct
import threading
import time

import pytest

import espat
from netpeer import TcpServer, UdpPeer, free_port, recv_exact

OK = b"\r\nOK\r\n"
ERROR = b"\r\nERROR\r\n"
PROMPT = b"\r\nOK\r\n\r\n>"
QUITT = b"\r\n+QUITT\r\n"
#: silence kept before and after "+++" (the guard is 20 ms)
GUARD = 0.1 * espat.SCALE
ALL_BYTES = bytes(range(256))


@pytest.fixture
def srv():
    s = TcpServer()
    yield s
    s.close()


@pytest.fixture
def udp():
    u = UdpPeer()
    yield u
    u.close()


def joined(d, mux=False):
    c = d.client
    c.echo_off()
    c.must_ok(b'AT+CWJAP="lab","pw"\r\n')
    if mux:
        c.transact(b"AT+CIPMUX=1\r\n", OK)
    return c


def tcp_link(c, srv):
    c.transact(b'AT+CIPSTART="TCP","127.0.0.1",%d\r\n' % srv.port, b"CONNECT\r\n" + OK)
    return srv.accept()


def enter(c):
    c.transact(b"AT+CIPSEND\r\n", PROMPT)


def plus_exit(c, out=b"", mode="whole"):
    """Leave passthrough: silence, "+++", silence. `out` is what the serial
    side must show (nothing, or +QUITT with SYSMSG bit 0)."""
    time.sleep(GUARD)
    c.assert_nothing_pending(b"+++")
    c.write(b"+++", mode)
    c.expect(out, quiet=GUARD)


def still_passthrough(c, peer, tag=b"still-data"):
    """AT typed now is data for the peer, not a command."""
    c.write(b"AT\r\n" + tag)
    assert recv_exact(peer, 4 + len(tag)) == b"AT\r\n" + tag
    c.assert_quiet()


def peer_quiet(peer, seconds=0.05):
    """The TCP peer gets nothing more (for now)."""
    peer.settimeout(seconds * espat.SCALE)
    try:
        got = peer.recv(65536)
    except socket.timeout:
        return
    raise AssertionError("unexpected bytes at the peer: %r" % got)


def udp_quiet(u, seconds=0.1):
    u.sock.settimeout(seconds * espat.SCALE)
    try:
        got = u.sock.recvfrom(65536)
    except socket.timeout:
        return
    finally:
        u.sock.settimeout(espat.TIMEOUT)
    raise AssertionError("unexpected datagram: %r" % (got,))


def wait_log(d, text, count=1, timeout=None):
    """Wait until the daemon's log holds `text` `count` times."""
    deadline = time.monotonic() + (timeout or espat.TIMEOUT)
    while d.log().count(text) < count:
        assert time.monotonic() < deadline, "no %r (x%d) in the log:\n%s" % (text, count, d.log())
        time.sleep(0.005)


def restart(d, extra=None):
    """d.restart(), tolerating the power-up output on the new client: the
    daemon writes "ready" (and the boot prompt) before anybody can open the
    pty, and normally drops it, but under heavy load the write can land just
    after the client opened (Daemon.start waits for the "module ready" log
    line, which is logged when the bytes are queued, not when written).
    A slow daemon (valgrind) may even be seen between the two: the client
    opened after "ready" went out, before the boot prompt did."""
    c = d.restart(extra=extra)
    got = c.read_for(0.05 * espat.SCALE)   # read_for includes c.pending
    for boot in (b"\r\nready\r\n\r\n>", b"\r\nready\r\n", b"\r\n>"):
        if got.startswith(boot):
            got = got[len(boot):]
            break
    c.pending = got
    return c


def close_single(c):
    c.transact(b"AT+CIPCLOSE\r\n", b"CLOSED\r\n" + OK)


# ---- 1. entering, and the AT+CIPMODE rules (§2.9, §2.16, §2.19, §4.1) ------------

@pytest.mark.parametrize("mode", espat.MODES)
def test_enter_single_tcp(espatd, srv, mode):
    d = espatd(mode=mode)
    c = joined(d)
    c.transact(b"AT+CIPMODE?\r\n", b"+CIPMODE:0\r\n" + OK)
    # execute form without CIPMODE=1, and with no link
    c.transact(b"AT+CIPSEND\r\n", ERROR)
    c.transact(b"AT+CIPMODE=1\r\n", OK)
    c.transact(b"AT+CIPMODE?\r\n", b"+CIPMODE:1\r\n" + OK)
    c.transact(b"AT+CIPSEND\r\n", ERROR)           # no link yet
    c.transact(b"AT+CIPMODE=0\r\n", OK)
    peer = tcp_link(c, srv)
    c.transact(b"AT+CIPSEND\r\n", ERROR)           # link, but CIPMODE=0
    c.transact(b"AT+CIPMODE=1\r\n", OK)
    c.transact(b"AT+CIPSEND=5\r\n", ERROR)         # set form needs CIPMODE=0
    c.transact(b"AT+CIPMUX=1\r\n", ERROR)          # "IPMODE != 0"
    for bad in (b"AT+CIPMODE=2\r\n", b"AT+CIPMODE=-1\r\n", b"AT+CIPMODE=\r\n",
                b"AT+CIPMODE=1,0\r\n", b"AT+CIPMODE\r\n"):
        c.transact(bad, ERROR)
    c.transact(b"AT+CIPMODE?\r\n", b"+CIPMODE:1\r\n" + OK)
    enter(c)
    # everything typed is data now, command lines included, every byte value
    payload = b"AT\r\nAT+CIPMODE=0\r\n" + ALL_BYTES
    c.write(payload)
    assert recv_exact(peer, len(payload)) == payload
    peer.sendall(ALL_BYTES + b"\r\n+IPD,3:abc\r\n")
    c.expect(ALL_BYTES + b"\r\n+IPD,3:abc\r\n")     # raw, no +IPD framing (§4.3)
    plus_exit(c)
    c.transact(b"AT\r\n", OK)
    peer_quiet(peer)
    close_single(c)
    assert peer.recv(10) == b""


def test_cipmode_refused_in_multi_mode(espatd, srv):
    d = espatd()
    c = joined(d, mux=True)
    # CIPMUX=1 and no server
    c.transact(b"AT+CIPMODE=1\r\n", ERROR)
    c.transact(b'AT+CIPSTART=0,"TCP","127.0.0.1",%d\r\n' % srv.port, b"0,CONNECT\r\n" + OK)
    p0 = srv.accept()
    c.transact(b'AT+CIPSTART=1,"TCP","127.0.0.1",%d\r\n' % srv.port, b"1,CONNECT\r\n" + OK)
    p1 = srv.accept()
    c.transact(b"AT+CIPMODE=1\r\n", ERROR)          # two links
    c.transact(b"AT+CIPMODE?\r\n", b"+CIPMODE:0\r\n" + OK)
    c.transact(b"AT+CIPSEND\r\n", ERROR)
    c.transact(b"AT+CIPCLOSE=5\r\n", b"0,CLOSED\r\n1,CLOSED\r\n" + OK)
    p0.close()
    p1.close()
    # a server that may take 5 clients
    port = free_port()
    c.transact(b"AT+CIPSERVER=1,%d\r\n" % port, OK)
    c.transact(b"AT+CIPMODE=1\r\n", ERROR)
    c.transact(b"AT+CIPSERVER=0\r\n", OK)
    # a server for one client plus a client link of our own
    c.transact(b"AT+CIPSERVERMAXCONN=1\r\n", OK)
    c.transact(b"AT+CIPSERVER=1,%d\r\n" % port, OK)
    c.transact(b'AT+CIPSTART=1,"TCP","127.0.0.1",%d\r\n' % srv.port, b"1,CONNECT\r\n" + OK)
    p1 = srv.accept()
    c.transact(b"AT+CIPMODE=1\r\n", ERROR)
    c.transact(b"AT+CIPCLOSE=1\r\n", b"1,CLOSED\r\n" + OK)
    p1.close()
    # the server alone (one client at most) is fine
    c.transact(b"AT+CIPMODE=1\r\n", OK)
    c.transact(b"AT+CIPSEND\r\n", ERROR)            # but nobody is connected yet
    c.transact(b'AT+CIPSTART=1,"TCP","127.0.0.1",%d\r\n' % srv.port, ERROR)
    # with CIPMODE=1 a server for more than one client cannot start
    c.transact(b"AT+CIPSERVER=0\r\n", OK)
    c.transact(b"AT+CIPSERVERMAXCONN=2\r\n", OK)
    c.transact(b"AT+CIPSERVER=1,%d\r\n" % port, ERROR)
    c.transact(b"AT+CIPMODE=0\r\n", OK)


def test_udp_remote_must_be_fixed(espatd, udp):
    d = espatd()
    c = joined(d)
    lport = free_port(kind=socket.SOCK_DGRAM)
    # a UDP link whose remote may change (mode 2) cannot carry passthrough
    c.transact(b'AT+CIPSTART="UDP","127.0.0.1",%d,%d,2\r\n' % (udp.port, lport),
               b"CONNECT\r\n" + OK)
    c.transact(b"AT+CIPMODE=1\r\n", ERROR)
    c.transact(b"AT+CIPMODE?\r\n", b"+CIPMODE:0\r\n" + OK)
    close_single(c)
    c.transact(b"AT+CIPMODE=1\r\n", OK)
    c.transact(b'AT+CIPSTART="UDP","127.0.0.1",%d,%d,2\r\n' % (udp.port, lport),
               b"CONNECT\r\n" + OK)
    c.transact(b"AT+CIPSEND\r\n", ERROR)
    close_single(c)
    # mode 0 (fixed remote) is fine
    c.transact(b'AT+CIPSTART="UDP","127.0.0.1",%d,%d,0\r\n' % (udp.port, lport),
               b"CONNECT\r\n" + OK)
    enter(c)
    c.write(b"dgram")
    data, addr = udp.recv()
    assert (data, addr) == (b"dgram", ("127.0.0.1", lport))
    udp.sock.sendto(b"back", addr)
    c.expect(b"back")
    plus_exit(c)
    udp_quiet(udp)
    close_single(c)


# ---- 2. megabytes both ways at once ------------------------------------------------

def test_bulk_both_ways(espatd, srv):
    d = espatd()
    c = joined(d)
    peer = tcp_link(c, srv)
    c.transact(b"AT+CIPMODE=1\r\n", OK)
    enter(c)
    n = 4 << 20
    up = os.urandom(n)            # serial -> network
    down = os.urandom(n)          # network -> serial
    got_up = bytearray()
    got_down = bytearray()
    errors = []
    deadline = time.monotonic() + 60 * espat.SCALE

    def peer_send():
        try:
            peer.settimeout(30 * espat.SCALE)
            peer.sendall(down)
        except Exception as e:  # noqa: BLE001 - reported below
            errors.append("peer send: %r" % e)

    def peer_recv():
        try:
            peer.settimeout(30 * espat.SCALE)
            while len(got_up) < n:
                chunk = peer.recv(1 << 20)
                if not chunk:
                    errors.append("peer: EOF after %d bytes" % len(got_up))
                    return
                got_up.extend(chunk)
        except Exception as e:  # noqa: BLE001
            errors.append("peer recv: %r" % e)

    def serial_recv():
        fd = c.ser.fileno()
        while len(got_down) < n and time.monotonic() < deadline:
            r, _, _ = select.select([fd], [], [], 0.1)
            if r:
                got_down.extend(os.read(fd, 1 << 16))

    threads = [threading.Thread(target=f, daemon=True)
               for f in (peer_send, peer_recv, serial_recv)]
    for t in threads:
        t.start()
    step = 1 << 16
    for i in range(0, n, step):
        c.ser.write(up[i:i + step])
    for t in threads:
        t.join(max(0.0, deadline - time.monotonic()))
    assert not errors, errors
    assert len(got_up) == n, "serial -> network: %d of %d bytes" % (len(got_up), n)
    assert len(got_down) >= n, "network -> serial: %d of %d bytes" % (len(got_down), n)
    assert hashlib.sha256(got_up).digest() == hashlib.sha256(up).digest()
    assert len(got_down) == n, "extra bytes on the serial side: %r" % bytes(got_down[n:n + 64])
    assert hashlib.sha256(got_down).digest() == hashlib.sha256(down).digest()
    plus_exit(c)
    c.transact(b"AT\r\n", OK)
    peer_quiet(peer)
    close_single(c)


# ---- 3. "+++" leaves passthrough (§2.7, §4.4) --------------------------------------

@pytest.mark.parametrize("sysmsg,mode", [(0, "whole"), (1, "whole"), (0, "bytes"),
                                         (1, "random")])
def test_plus_exit(espatd, srv, sysmsg, mode):
    d = espatd(mode=mode)
    c = joined(d)
    if sysmsg:
        c.transact(b"AT+SYSMSG=%d\r\n" % sysmsg, OK)
    peer = tcp_link(c, srv)
    c.transact(b"AT+CIPMODE=1\r\n", OK)
    enter(c)
    c.write(b"first part")
    assert recv_exact(peer, 10) == b"first part"
    # three '+' (split per the write mode, all within 20 ms), silence around
    plus_exit(c, QUITT if sysmsg & 1 else b"", mode=mode)
    c.transact(b"AT\r\n", OK)
    c.transact(b"AT+CIPMODE?\r\n", b"+CIPMODE:1\r\n" + OK)
    peer_quiet(peer)                       # "+++" was not sent
    # CIPMODE is still 1: peer data arrives raw in command mode (§4.4)
    peer.sendall(b"raw in command mode")
    c.expect(b"raw in command mode")
    c.transact(b"AT\r\n", OK)
    # the link stayed open: AT+CIPSEND enters again
    enter(c)
    still_passthrough(c, peer)
    c.write(b"second part")
    assert recv_exact(peer, 11) == b"second part"
    peer.sendall(b"down")
    c.expect(b"down")
    plus_exit(c, QUITT if sysmsg & 1 else b"", mode=mode)
    # back to normal mode: +IPD framing again
    c.transact(b"AT+CIPMODE=0\r\n", OK)
    peer.sendall(b"framed")
    c.expect(b"\r\n+IPD,6:framed\r\n")
    c.transact(b"AT+CIPSEND\r\n", ERROR)
    c.transact(b"AT+CIPSEND=3\r\n", PROMPT)
    c.transact(b"abc", b"\r\nRecv 3 bytes\r\n\r\nSEND OK\r\n")
    assert recv_exact(peer, 3) == b"abc"
    peer.close()
    c.expect(b"CLOSED\r\n")


def test_peer_close_after_exit_shows_closed(espatd, srv):
    """After "+++" (CIPMODE still 1) the link is an ordinary one for status."""
    d = espatd()
    c = joined(d)
    peer = tcp_link(c, srv)
    c.transact(b"AT+CIPMODE=1\r\n", OK)
    enter(c)
    plus_exit(c)
    peer.sendall(b"last words")
    peer.close()
    c.expect(b"last wordsCLOSED\r\n")
    c.transact(b"AT+CIPSEND\r\n", ERROR)


# ---- 4. "+++" that is data ----------------------------------------------------------

def test_plus_as_data(espatd, srv):
    d = espatd()
    c = joined(d)
    peer = tcp_link(c, srv)
    c.transact(b"AT+CIPMODE=1\r\n", OK)
    enter(c)
    cases = [
        # (what, writes): each write is ONE write call; GUARD silence before
        ("+++ followed by data in one write", [b"+++abc"]),
        ("no silence before: x+++", [b"x+++"]),
        ("no silence before, +++ then more", [b"data+++more"]),
        ("four +", [b"++++"]),
        ("two + then silence", [b"++"]),
        ("one + then silence", [b"+"]),
        ("+++ within 5 ms after other data", [b"data", b"+++"]),
        ("+++ then data before the guard after", [b"+++", b"tail"]),
        ("+++ then a fourth +", [b"+++", b"+"]),
        ("+++ CR LF", [b"+++\r\n"]),
    ]
    for what, writes in cases:
        time.sleep(GUARD)
        for w in writes:
            c.write(w, "whole")
        want = b"".join(writes)
        got = recv_exact(peer, len(want))
        assert got == want, "%s: the peer got %r" % (what, got)
        time.sleep(GUARD)
        c.assert_quiet()
        peer_quiet(peer, 0.01)
    # the three '+' spread over more than 20 ms (30 ms apart): data
    time.sleep(GUARD)
    for _ in range(3):
        c.write(b"+")
        time.sleep(0.03)
    assert recv_exact(peer, 3) == b"+++"
    time.sleep(GUARD)
    c.assert_quiet()
    # still in passthrough after all of them
    still_passthrough(c, peer)
    plus_exit(c)
    c.transact(b"AT\r\n", OK)
    peer_quiet(peer)
    close_single(c)


# ---- 5. UART -> network packing, seen as UDP datagram sizes (§4.2) ---------------

def udp_passthrough(espatd, udp, profile=None):
    d = espatd(profile=profile)
    c = joined(d)
    c.transact(b'AT+CIPSTART="UDP","127.0.0.1",%d\r\n' % udp.port, b"CONNECT\r\n" + OK)
    c.transact(b"AT+CIPMODE=1\r\n", OK)
    enter(c)
    return c


def datagrams(udp, total):
    sizes, data = [], b""
    while len(data) < total:
        got, _ = udp.recv()
        sizes.append(len(got))
        data += got
    return sizes, data


def test_packing_esp32(espatd, udp):
    c = udp_passthrough(espatd, udp)
    # one write, then idle: one datagram
    payload = bytes(range(100))
    c.write(payload)
    assert udp.recv()[0] == payload
    udp_quiet(udp)
    # writes 2 ms apart stay within the 20 ms idle time: one datagram
    parts = [b"%02d%s" % (i, b"x" * 8) for i in range(5)]
    for p in parts:
        c.write(p)
        time.sleep(0.002)
    assert udp.recv()[0] == b"".join(parts)
    udp_quiet(udp)
    # a big write goes out in 2920-byte packets, the rest after the idle time
    big = os.urandom(6000)
    c.write(big)
    sizes, data = datagrams(udp, len(big))
    assert sizes == [2920, 2920, 160] and data == big, sizes
    udp_quiet(udp)
    # the idle time follows AT+TRANSINTVL
    plus_exit(c)
    c.transact(b"AT+TRANSINTVL?\r\n", b"+TRANSINTVL:20\r\n" + OK)
    window = int(100 * espat.SCALE)
    c.transact(b"AT+TRANSINTVL=%d\r\n" % window, OK)
    enter(c)
    c.write(b"first,")
    time.sleep(0.05)
    c.write(b"second")
    assert udp.recv()[0] == b"first,second"
    udp_quiet(udp)
    # 0: every read is sent at once
    plus_exit(c)
    c.transact(b"AT+TRANSINTVL=0\r\n", OK)
    enter(c)
    c.write(b"one")
    assert udp.recv()[0] == b"one"
    time.sleep(0.05)
    c.write(b"two")
    assert udp.recv()[0] == b"two"
    plus_exit(c)
    udp_quiet(udp)
    close_single(c)


def test_packing_esp8266(espatd, udp):
    c = udp_passthrough(espatd, udp, profile="esp8266")
    big = os.urandom(6000)
    c.write(big)
    sizes, data = datagrams(udp, len(big))
    assert sizes == [1460, 1460, 1460, 1460, 160] and data == big, sizes
    c.write(b"small")
    assert udp.recv()[0] == b"small"
    plus_exit(c)
    udp_quiet(udp)
    close_single(c)


# ---- 6. reconnect after the link breaks (§2.27, §4.5) ------------------------------

@pytest.mark.parametrize("sysmsg", [0, 4, 6])
def test_reconnect(espatd, srv, sysmsg):
    d = espatd()
    c = joined(d)
    c.transact(b"AT+CIPRECONNINTV?\r\n", b"+CIPRECONNINTV:1\r\n" + OK)
    for bad in (b"0", b"36001", b"-1", b'"2"'):
        c.transact(b"AT+CIPRECONNINTV=%s\r\n" % bad, ERROR)
    c.transact(b"AT+CIPRECONNINTV=2\r\n", OK)
    c.transact(b"AT+CIPRECONNINTV?\r\n", b"+CIPRECONNINTV:2\r\n" + OK)
    if sysmsg:
        c.transact(b"AT+SYSMSG=%d\r\n" % sysmsg, OK)
    c.write(b'AT+CIPSTART="TCP","127.0.0.1",%d\r\n' % srv.port)
    peer = srv.accept()
    lport = peer.getpeername()[1]
    if sysmsg & 2:
        c.expect(b'+LINK_CONN:0,0,"TCP",0,"127.0.0.1",%d,%d\r\n' % (srv.port, lport) + OK)
    else:
        c.expect(b"CONNECT\r\n" + OK)
    c.transact(b"AT+CIPMODE=1\r\n", OK)
    enter(c)
    c.write(b"before")
    assert recv_exact(peer, 6) == b"before"

    def reconnected(peer_port):
        if sysmsg & 2:
            return b'+LINK_CONN:0,0,"TCP",0,"127.0.0.1",%d,%d\r\n' % (srv.port, peer_port)
        return b"CONNECT\r\n"

    for round_ in range(2):
        peer.sendall(b"bye")
        peer.close()
        t0 = time.monotonic()
        c.expect(b"bye" + (b"CLOSED\r\n" if sysmsg & 4 else b""), quiet=0)
        peer = srv.accept()
        took = time.monotonic() - t0
        assert took >= 0.15, "reconnected after %.3f s (AT+CIPRECONNINTV=2: 200 ms)" % took
        wait_log(d, "link 0 connected again", round_ + 1)
        if sysmsg & 4:
            c.expect(reconnected(peer.getpeername()[1]))
        else:
            c.assert_quiet(0.05)
        # data flows again, both ways, and it is still passthrough
        still_passthrough(c, peer, b"after %d" % round_)
        peer.sendall(b"welcome back")
        c.expect(b"welcome back")
    plus_exit(c)
    c.transact(b"AT\r\n", OK)
    close_single(c)


def test_reconnect_waits_for_the_peer(espatd):
    """The peer's port is closed for a while: espatd keeps retrying every
    CIPRECONNINTV and gets through once the peer listens again."""
    d = espatd()
    c = joined(d)
    c.transact(b"AT+CIPRECONNINTV=2\r\n", OK)
    srv = TcpServer()
    port = srv.port
    peer = tcp_link(c, srv)
    c.transact(b"AT+CIPMODE=1\r\n", OK)
    enter(c)
    srv.close()
    peer.close()
    time.sleep(1.0)                       # a few refused attempts
    c.assert_quiet(0.01)
    s = socket.socket()
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind(("127.0.0.1", port))
    s.listen(1)
    s.settimeout(espat.TIMEOUT)
    try:
        peer, _ = s.accept()
        wait_log(d, "link 0 connected again")
        still_passthrough(c, peer, b"reconnected")
        plus_exit(c)
        close_single(c)
    finally:
        s.close()


# ---- 7. AT+SAVETRANSLINK: passthrough at power-up (§2.8, §4.6) ---------------------

def saved_join(d):
    """echo off, a join saved with SYSSTORE=1 (auto-join at power-up)."""
    c = d.client
    c.echo_off()
    c.transact(b"AT+SYSSTORE?\r\n", b"+SYSSTORE:1\r\n" + OK)
    c.must_ok(b'AT+CWJAP="lab","pw"\r\n')
    return c


def trace_esp_bytes(path):
    """Everything espatd wrote to the serial side, from a --trace file."""
    out = b""
    with open(path, "r", encoding="ascii") as f:
        text = f.read()
    for m in re.finditer(r'^\S+ (mcu>|<esp) +\d+ ("(?:[^"\\]|\\.)*")((?:\n +"(?:[^"\\]|\\.)*")*)',
                         text, re.M):
        if m.group(1) != "<esp":
            continue
        lits = [m.group(2)] + re.findall(r'"(?:[^"\\]|\\.)*"', m.group(3))
        for lit in lits:
            out += _c_unescape(lit)
    return out


def _c_unescape(lit):
    out, s, i = bytearray(), lit[1:-1], 0
    while i < len(s):
        ch = s[i]
        if ch != "\\":
            out.append(ord(ch))
            i += 1
        elif s[i + 1] == "x":
            out.append(int(s[i + 2:i + 4], 16))
            i += 4
        else:
            out.append({"r": 13, "n": 10, "t": 9, "\\": 92, '"': 34}[s[i + 1]])
            i += 2
    return bytes(out)


def test_savetranslink_tcp_client(espatd, srv, tmp_path):
    d = espatd()
    c = saved_join(d)
    c.transact(b'AT+SAVETRANSLINK=1,"127.0.0.1",%d,"TCP"\r\n' % srv.port, OK)
    # it takes effect at the next power-up only
    c.transact(b"AT+CIPMODE?\r\n", b"+CIPMODE:0\r\n" + OK)
    trace = tmp_path / "boot.trace"
    c = restart(d, extra=d.extra + ["--trace", str(trace)])
    # Power-up output goes out before anybody can open the pty (the daemon
    # drops it, as a wire would), so "ready" and the "\r\n>" prompt are seen
    # in the trace; the AT+RST below shows them live.
    peer = srv.accept()
    wait_log(d, "link 0 connected again")
    esp = trace_esp_bytes(trace)
    assert esp == b"\r\nready\r\n\r\n>", esp   # no WIFI lines: SYSMSG bit 2 is off
    c.assert_quiet(0.05)
    # passthrough, both ways
    still_passthrough(c, peer, b"from the MCU")
    peer.sendall(ALL_BYTES)
    c.expect(ALL_BYTES)
    plus_exit(c)
    c.transact(b"AT\r\n", b"AT\r\n" + OK)               # echo is on after a boot
    c.echo_off()
    c.transact(b"AT+CIPMODE?\r\n", b"+CIPMODE:1\r\n" + OK)
    # AT+RST: ready, then the boot prompt, live this time
    c.transact(b"AT+RST\r\n", OK, quiet=0)
    c.expect(b"\r\nready\r\n\r\n>")
    assert peer.recv(10) == b""                        # the old link went down
    peer = srv.accept()
    wait_log(d, "link 0 connected again", 2)
    c.assert_quiet(0.05)
    still_passthrough(c, peer, b"after AT+RST")
    plus_exit(c)
    c.echo_off()
    # disabled for the next boot
    c.transact(b"AT+SAVETRANSLINK=0\r\n", OK)
    c.transact(b"AT+RST\r\n", OK, quiet=0)
    c.expect(b"\r\nready\r\nWIFI CONNECTED\r\nWIFI GOT IP\r\n", quiet=0.2 * espat.SCALE)
    assert peer.recv(10) == b""
    c.transact(b"AT\r\n", b"AT\r\n" + OK)
    c.transact(b"AT+CIPMODE?\r\n", b"AT+CIPMODE?\r\n+CIPMODE:0\r\n" + OK)
    srv.sock.settimeout(0.3 * espat.SCALE)
    with pytest.raises(socket.timeout):
        srv.sock.accept()
    c = restart(d)
    c.expect(b"WIFI CONNECTED\r\nWIFI GOT IP\r\n", quiet=0.3 * espat.SCALE)
    with pytest.raises(socket.timeout):
        srv.sock.accept()
    c.transact(b"AT\r\n", b"AT\r\n" + OK)


def test_savetranslink_udp(espatd, udp):
    d = espatd()
    c = saved_join(d)
    lport = free_port(kind=socket.SOCK_DGRAM)
    c.transact(b'AT+SAVETRANSLINK=1,"127.0.0.1",%d,"UDP",%d\r\n' % (udp.port, lport), OK)
    c = restart(d)
    wait_log(d, "link 0 connected again")
    c.write(b"up")
    data, addr = udp.recv()
    assert (data, addr) == (b"up", ("127.0.0.1", lport))
    udp.sock.sendto(b"down", addr)
    c.expect(b"down")
    plus_exit(c)
    c.echo_off()
    udp_quiet(udp)
    c.transact(b"AT+SAVETRANSLINK=0\r\n", OK)
    close_single(c)


def test_savetranslink_server(espatd):
    d = espatd()
    c = saved_join(d)
    port = free_port()
    c.transact(b'AT+SAVETRANSLINK=3,%d,"TCP"\r\n' % port, OK)
    c = restart(d)
    wait_log(d, "passthrough server on port %d" % port)   # logged after "ready"
    cl = socket.create_connection(("127.0.0.1", port), timeout=espat.TIMEOUT)
    cl.sendall(b"hello MCU")
    c.expect(b"hello MCU")                         # raw, no 0,CONNECT, no +IPD
    c.write(b"hello client")
    assert recv_exact(cl, 12) == b"hello client"
    plus_exit(c)
    c.echo_off()
    # the server runs on, in normal mode, for one client
    c.transact(b"AT+CIPMUX?\r\n", b"+CIPMUX:1\r\n" + OK)
    c.transact(b"AT+CIPSERVERMAXCONN?\r\n", b"+CIPSERVERMAXCONN:1\r\n" + OK)
    c.transact(b"AT+CIPSERVER?\r\n", b'+CIPSERVER:1,%d,"TCP",0,0\r\n' % port + OK)
    c.transact(b"AT+CIPMODE=0\r\n", OK)
    cl.sendall(b"framed")
    c.expect(b"\r\n+IPD,0,6:framed\r\n")
    c.transact(b"AT+SAVETRANSLINK=0\r\n", OK)
    c.transact(b"AT+CIPCLOSE=0\r\n", b"0,CLOSED\r\n" + OK)
    assert cl.recv(10) == b""
    cl.close()


def test_savetranslink_bad_forms(espatd, srv):
    d = espatd()
    c = saved_join(d)
    p = srv.port
    bad = [
        b'AT+SAVETRANSLINK=2,"127.0.0.1",%d,"TCP"' % p,       # BLE
        b'AT+SAVETRANSLINK=4,"127.0.0.1",%d,"TCP"' % p,
        b'AT+SAVETRANSLINK=-1',
        b'AT+SAVETRANSLINK=1,"127.0.0.1",%d,"SSLX"' % p,
        b'AT+SAVETRANSLINK=1,"127.0.0.1"',                    # no port
        b'AT+SAVETRANSLINK=1,"127.0.0.1",',
        b'AT+SAVETRANSLINK=1,"127.0.0.1",0,"TCP"',
        b'AT+SAVETRANSLINK=1,"127.0.0.1",65536,"TCP"',
        b'AT+SAVETRANSLINK=1,"",%d,"TCP"' % p,
        b'AT+SAVETRANSLINK=1,"127.0.0.1",%d,"TCP",7201' % p,  # keep_alive 0..7200
        b'AT+SAVETRANSLINK=1,"127.0.0.1",%d,"FOO"' % p,
        b'AT+SAVETRANSLINK=1,"%s",%d,"TCP"' % (b"h" * 65, p),  # host <= 64 bytes
        b'AT+SAVETRANSLINK=1,"127.0.0.1",%d,"UDP",65536' % p,
        b'AT+SAVETRANSLINK=3,%d,"TCP",0,4' % p,              # netif 0..3
        b'AT+SAVETRANSLINK=1,127.0.0.1,%d,"TCP"' % p,
        b'AT+SAVETRANSLINK=3,0,"TCP"',
        b'AT+SAVETRANSLINK=3,%d,"TCP",1' % p,                # CA enable is for SSL
        b'AT+SAVETRANSLINK=3,%d,"UDP"' % p,
        b'AT+SAVETRANSLINK=1',
        b'AT+SAVETRANSLINK?',
        b'AT+SAVETRANSLINK',
    ]
    failures = []
    for cmd in bad:
        c.check(cmd + b"\r\n", ERROR, failures)
    assert not failures, "\n".join(failures)
    # nothing was saved: command mode after a restart, no connection
    c = restart(d)
    c.expect(b"WIFI CONNECTED\r\nWIFI GOT IP\r\n", quiet=0.3 * espat.SCALE)
    srv.sock.settimeout(0.1 * espat.SCALE)
    with pytest.raises(socket.timeout):
        srv.sock.accept()
    c.transact(b"AT\r\n", b"AT\r\n" + OK)


# ---- 8. a server's one client in passthrough (§4.1) ---------------------------------

def test_server_passthrough(espatd):
    d = espatd()
    c = joined(d, mux=True)
    port = free_port()
    c.transact(b"AT+CIPSERVERMAXCONN=1\r\n", OK)
    c.transact(b"AT+CIPSERVER=1,%d\r\n" % port, OK)
    c.transact(b"AT+CIPMODE=1\r\n", OK)
    cl = socket.create_connection(("127.0.0.1", port), timeout=espat.TIMEOUT)
    c.expect(b"0,CONNECT\r\n")
    enter(c)
    cl.sendall(b"to the MCU")
    c.expect(b"to the MCU")
    c.write(ALL_BYTES, "random")
    assert recv_exact(cl, 256) == ALL_BYTES
    still_passthrough(c, cl)
    plus_exit(c)
    # after +++ the client's data still comes raw (CIPMODE=1)
    cl.sendall(b"raw")
    c.expect(b"raw")
    c.transact(b"AT+CIPMODE=0\r\n", OK)
    cl.sendall(b"framed")
    c.expect(b"\r\n+IPD,0,6:framed\r\n")
    cl.close()
    c.expect(b"0,CLOSED\r\n")
    c.transact(b"AT+CIPSERVER=0\r\n", OK)


# ---- 9. SYSMSG bit 2: status lines inline in passthrough (§3.1, §7) -----------------

@pytest.mark.parametrize("sysmsg", [0, 4])
def test_status_lines_in_passthrough(espatd, srv, sysmsg):
    d = espatd()
    c = saved_join(d)
    c.transact(b"AT+SYSMSG=%d\r\n" % sysmsg, OK)
    c.transact(b'AT+SAVETRANSLINK=1,"127.0.0.1",%d,"TCP"\r\n' % srv.port, OK)
    c.transact(b"AT+CIPRECONNINTV=2\r\n", OK)
    c.transact(b"AT+RST\r\n", OK, quiet=0)
    c.expect(b"\r\nready\r\n\r\n>", quiet=0)
    peer = srv.accept()
    wait_log(d, "link 0 connected again")
    if sysmsg & 4:
        c.expect(b"WIFI CONNECTED\r\nWIFI GOT IP\r\nCONNECT\r\n")
    else:
        c.assert_quiet(0.05)
    c.write(b"data")
    assert recv_exact(peer, 4) == b"data"
    peer.close()
    peer = srv.accept()
    wait_log(d, "link 0 connected again", 2)
    if sysmsg & 4:
        c.expect(b"CLOSED\r\nCONNECT\r\n")
    else:
        c.assert_quiet(0.05)
    still_passthrough(c, peer)
    plus_exit(c)
    c.echo_off()
    c.transact(b"AT+SAVETRANSLINK=0\r\n", OK)
    close_single(c)


# ---- more edges ----------------------------------------------------------------------

def test_cipmode_before_cipstart(espatd, srv):
    """The usual order: CIPMODE=1 first; peer data is raw even before
    AT+CIPSEND (§2.19)."""
    d = espatd()
    c = joined(d)
    c.transact(b"AT+CIPMODE=1\r\n", OK)
    peer = tcp_link(c, srv)
    peer.sendall(b"early bytes")
    c.expect(b"early bytes")
    c.transact(b"AT\r\n", OK)
    enter(c)
    still_passthrough(c, peer)
    plus_exit(c)
    close_single(c)


def test_exit_while_reconnecting(espatd, srv):
    """"+++" while the link is down stops the reconnect attempts; the link
    is gone in command mode and AT+CIPSTART brings it back."""
    d = espatd()
    c = joined(d)
    # 1 s (x SCALE): longer than plus_exit's guard times, so the link is
    # still down when "+++" is decided
    c.transact(b"AT+CIPRECONNINTV=%d\r\n" % int(10 * espat.SCALE), OK)
    peer = tcp_link(c, srv)
    c.transact(b"AT+CIPMODE=1\r\n", OK)
    enter(c)
    peer.close()
    plus_exit(c)
    c.transact(b"AT+CIPSEND\r\n", ERROR)
    c.transact(b"AT+CIPCLOSE\r\n", ERROR)
    srv.sock.settimeout(1.3 * espat.SCALE)
    with pytest.raises(socket.timeout):
        srv.sock.accept()
    c.assert_quiet()
    peer = tcp_link(c, srv)
    enter(c)
    still_passthrough(c, peer)
    plus_exit(c)
    close_single(c)


def test_reconnect_after_reset_mid_transfer(espatd, srv):
    """The peer resets the connection while the MCU is sending a lot: what
    was queued for the broken link never reaches the new one, and the new
    link carries data (the send state of the old one does not linger)."""
    d = espatd()
    c = joined(d)
    intv = int(10 * espat.SCALE)                        # 1 s (x SCALE)
    c.transact(b"AT+CIPRECONNINTV=%d\r\n" % intv, OK)
    peer = tcp_link(c, srv)
    c.transact(b"AT+CIPMODE=1\r\n", OK)
    enter(c)
    bulk = b"\x00" * (1 << 20)
    writer_done = []

    def write_bulk():
        c.ser.write(bulk)
        writer_done.append(time.monotonic())

    w = threading.Thread(target=write_bulk, daemon=True)
    w.start()
    assert len(recv_exact(peer, 100000)) == 100000
    peer.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
    peer.close()                                        # RST
    t_lost = time.monotonic()
    w.join(intv * 0.1 * 0.8)
    assert writer_done and writer_done[0] - t_lost < intv * 0.1 * 0.8, \
        "the serial side did not drain while the link was down"
    peer = srv.accept()
    wait_log(d, "link 0 connected again")
    c.assert_quiet(0.05)
    c.write(b"marker")
    assert recv_exact(peer, 6) == b"marker"
    peer_quiet(peer)
    plus_exit(c)
    close_single(c)


def test_udp_passthrough_nobody_listening(espatd):
    """UDP has no connection: datagrams to a port nobody listens on are
    lost, the link stays (no CLOSED, no reconnect), and once a peer binds
    the port the next datagram arrives."""
    d = espatd()
    c = joined(d)
    port = free_port(kind=socket.SOCK_DGRAM)
    c.transact(b'AT+CIPSTART="UDP","127.0.0.1",%d\r\n' % port, b"CONNECT\r\n" + OK)
    c.transact(b"AT+CIPMODE=1\r\n", OK)
    enter(c)
    for _ in range(3):
        c.write(b"lost")
        time.sleep(0.05 * espat.SCALE)
    c.assert_quiet()
    u = UdpPeer(port=port)
    try:
        c.write(b"found")
        data, addr = u.recv()
        assert data == b"found"
        u.sock.sendto(b"reply", addr)
        c.expect(b"reply")
        plus_exit(c)
        c.transact(b"AT\r\n", OK)
        close_single(c)
    finally:
        u.close()


def test_boot_client_waits_for_the_peer(espatd):
    """Boot passthrough to a port nobody listens on yet: espatd keeps trying
    (CIPRECONNINTV) and connects once the peer is up."""
    d = espatd()
    c = saved_join(d)
    port = free_port()
    c.transact(b"AT+CIPRECONNINTV=2\r\n", OK)
    c.transact(b'AT+SAVETRANSLINK=1,"127.0.0.1",%d,"TCP",60\r\n' % port, OK)
    c = restart(d)
    time.sleep(0.6)
    c.assert_quiet()
    s = socket.socket()
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind(("127.0.0.1", port))
    s.listen(1)
    s.settimeout(espat.TIMEOUT)
    try:
        peer, _ = s.accept()
        wait_log(d, "link 0 connected again")
        still_passthrough(c, peer)
        peer.sendall(b"down")
        c.expect(b"down")
        plus_exit(c)
        c.echo_off()
        c.transact(b"AT+SAVETRANSLINK=0\r\n", OK)
        close_single(c)
    finally:
        s.close()


@pytest.mark.parametrize("sysmsg", [0, 4])
def test_boot_server_next_client(espatd, sysmsg):
    """Server passthrough at power-up: one client at a time; when it leaves
    the next one is in passthrough with the MCU."""
    d = espatd()
    c = saved_join(d)
    c.transact(b"AT+SYSMSG=%d\r\n" % sysmsg, OK)
    port = free_port()
    c.transact(b"AT+SAVETRANSLINK=3,%d\r\n" % port, OK)   # type defaults to TCP
    c.transact(b"AT+RST\r\n", OK, quiet=0)
    c.expect(b"\r\nready\r\n\r\n>", quiet=0)
    if sysmsg & 4:
        c.expect(b"WIFI CONNECTED\r\nWIFI GOT IP\r\n")
    cl = socket.create_connection(("127.0.0.1", port), timeout=espat.TIMEOUT)
    if sysmsg & 4:
        c.expect(b"0,CONNECT\r\n")
    cl.sendall(b"one")
    c.expect(b"one")
    # a second client is turned away while the first is served
    try:
        cl2 = socket.create_connection(("127.0.0.1", port), timeout=espat.TIMEOUT)
        try:
            got = cl2.recv(10)
        finally:
            cl2.close()
    except ConnectionResetError:
        got = b""
    assert got == b""
    c.write(b"to one")
    assert recv_exact(cl, 6) == b"to one"
    cl.close()
    if sysmsg & 4:
        c.expect(b"0,CLOSED\r\n")
    cl = socket.create_connection(("127.0.0.1", port), timeout=espat.TIMEOUT)
    if sysmsg & 4:
        c.expect(b"0,CONNECT\r\n")
    cl.sendall(b"two")
    c.expect(b"two")
    c.write(b"to two")
    assert recv_exact(cl, 6) == b"to two"
    c.assert_quiet()
    plus_exit(c)
    c.echo_off()
    c.transact(b"AT+SAVETRANSLINK=0\r\n", OK)
    cl.close()
    c.expect(b"0,CLOSED\r\n")


def test_restore_forgets_translink(espatd, srv):
    d = espatd()
    c = saved_join(d)
    c.transact(b'AT+SAVETRANSLINK=1,"127.0.0.1",%d,"TCP"\r\n' % srv.port, OK)
    c.transact(b"AT+RESTORE\r\n", OK, quiet=0)
    c.expect(b"\r\nready\r\n", quiet=0.3 * espat.SCALE)
    srv.sock.settimeout(0.1 * espat.SCALE)
    with pytest.raises(socket.timeout):
        srv.sock.accept()
    c.transact(b"AT\r\n", b"AT\r\n" + OK)


def test_exit_during_reconnect_attempt(espatd, srv):
    """"+++" while a reconnect attempt is under way (the peer's accept
    queue is full, so the SYN goes unanswered): the attempt is abandoned.
    Nothing may show up later (no stray CONNECT, or ERROR/CLOSED at the
    connect timeout), and no connection is made behind the MCU's back."""
    d = espatd()
    c = joined(d)
    c.transact(b"AT+CIPRECONNINTV=1\r\n", OK)
    peer = tcp_link(c, srv)
    c.transact(b"AT+CIPMODE=1\r\n", OK)
    enter(c)
    srv.sock.listen(0)                 # one queued connection fills it
    dummy = socket.socket()
    dummy.setblocking(False)
    try:
        dummy.connect(("127.0.0.1", srv.port))
    except BlockingIOError:
        pass
    time.sleep(0.05)
    peer.close()
    wait_log(d, "passthrough: link lost")
    time.sleep(0.3 * espat.SCALE)      # the first attempt's SYN is dropped
    plus_exit(c)
    c.transact(b"AT+CIPSEND\r\n", ERROR)
    # room again: a SYN retransmitted now would get through (after ~1 s)
    srv.sock.listen(16)
    srv.sock.settimeout(0.2)
    peers = []
    deadline = time.monotonic() + 1.5 * espat.SCALE
    while time.monotonic() < deadline:
        try:
            peers.append(srv.sock.accept()[0])
        except socket.timeout:
            pass
    c.assert_quiet()
    others = [p for p in peers if p.getpeername()[1] != dummy.getsockname()[1]]
    assert not others, "espatd connected after +++"
    for p in peers:
        p.close()
    dummy.close()
    c.transact(b"AT+CIPCLOSE\r\n", ERROR)               # no link
    peer = tcp_link(c, srv)
    enter(c)
    still_passthrough(c, peer)
    plus_exit(c)
    close_single(c)


class HeldDns:
    """A DNS server on 127.0.0.1 answering A queries with 127.0.0.1 (TTL 0,
    nothing cached) and others with no data; while `hold` is set it keeps
    the queries unanswered until release()."""

    def __init__(self):
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind(("127.0.0.1", 0))
        self.port = self.sock.getsockname()[1]
        self.hold = False
        self.held = []
        self.lock = threading.Lock()
        self.stopped = False
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    @staticmethod
    def _answer(q):
        qid = q[:2]
        i = 12
        while q[i]:
            i += 1 + q[i]
        question = q[12:i + 5]
        qtype = struct.unpack(">H", q[i + 1:i + 3])[0]
        if qtype == 1:
            rr = b"\xc0\x0c" + struct.pack(">HHIH", 1, 1, 0, 4) + socket.inet_aton("127.0.0.1")
            return qid + struct.pack(">HHHHH", 0x8180, 1, 1, 0, 0) + question + rr
        return qid + struct.pack(">HHHHH", 0x8180, 1, 0, 0, 0) + question

    def _run(self):
        self.sock.settimeout(0.05)
        while not self.stopped:
            try:
                q, addr = self.sock.recvfrom(512)
            except socket.timeout:
                continue
            except OSError:
                return
            with self.lock:
                if self.hold:
                    self.held.append((q, addr))
                    continue
            self.sock.sendto(self._answer(q), addr)

    def release(self):
        with self.lock:
            self.hold = False
            held, self.held = self.held, []
        for q, addr in held:
            self.sock.sendto(self._answer(q), addr)
        return len(held)

    def close(self):
        self.stopped = True
        self.thread.join()
        self.sock.close()


def test_exit_during_reconnect_lookup(espatd, srv):
    """Like test_exit_during_reconnect_attempt, with the reconnect stuck in
    the name lookup: the answer coming after "+++" must not open link 0."""
    dns = HeldDns()
    try:
        d = espatd("--dns-port", str(dns.port))
        c = joined(d)
        c.transact(b'AT+CIPDNS=1,"127.0.0.1"\r\n', OK)
        c.transact(b"AT+CIPRECONNINTV=1\r\n", OK)
        c.transact(b'AT+CIPSTART="TCP","peer.test",%d\r\n' % srv.port, b"CONNECT\r\n" + OK)
        peer = srv.accept()
        c.transact(b"AT+CIPMODE=1\r\n", OK)
        enter(c)
        dns.hold = True
        peer.close()
        deadline = time.monotonic() + espat.TIMEOUT
        while not dns.held:
            assert time.monotonic() < deadline, "no lookup for the reconnect"
            time.sleep(0.01)
        plus_exit(c)
        assert dns.release()
        srv.sock.settimeout(0.5 * espat.SCALE)
        with pytest.raises(socket.timeout):
            srv.sock.accept()
        c.assert_quiet()
        c.transact(b"AT+CIPSEND\r\n", ERROR)
        c.transact(b"AT+CIPCLOSE\r\n", ERROR)
        # a fresh AT+CIPSTART by name works
        c.transact(b'AT+CIPSTART="TCP","peer.test",%d\r\n' % srv.port, b"CONNECT\r\n" + OK)
        peer = srv.accept()
        enter(c)
        still_passthrough(c, peer)
        plus_exit(c)
        close_single(c)
    finally:
        dns.close()


def test_reconnintv_persistence(espatd):
    """AT+CIPRECONNINTV is saved only with SYSSTORE=1 (§2.27, §6.3);
    AT+SAVETRANSLINK (always saved, §6.2) must not save it on the side."""
    d = espatd()
    c = d.client
    c.echo_off()
    c.transact(b"AT+CIPRECONNINTV=3\r\n", OK)
    c.transact(b"AT+SYSSTORE=0\r\n", OK)
    c.transact(b"AT+CIPRECONNINTV=7\r\n", OK)
    c.transact(b'AT+SAVETRANSLINK=1,"127.0.0.1",9,"TCP"\r\n', OK)
    c.transact(b"AT+SAVETRANSLINK=0\r\n", OK)
    c.transact(b"AT+CIPRECONNINTV?\r\n", b"+CIPRECONNINTV:7\r\n" + OK)
    c = restart(d)
    c.echo_off()
    c.transact(b"AT+CIPRECONNINTV?\r\n", b"+CIPRECONNINTV:3\r\n" + OK)
