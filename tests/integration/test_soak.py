"""A bounded soak: links churn on all five ids (AT+CIPMUX=1, protocol.md §2)
with data both ways, and the daemon ends with exactly the descriptors and
about the memory it had after a warm-up.

One cycle opens a link on each of the ids 0-4 -- TCP or UDP, active or
passive receive (AT+CIPRECVTYPE=<id>,<mode>, §2.28) -- sends a block up on
each with AT+CIPSEND (§2.9), lets every peer send a block down (+IPD frames,
§3.2, or notices and AT+CIPRECVDATA, §2.29) and checks every byte; then
closes them all, the way chosen for the cycle: AT+CIPCLOSE=<id> by the MCU,
the peer closing its end (TCP), or AT+CIPCLOSE=5 (§2.13).

After WARMUP cycles the daemon's open descriptors (/proc/PID/fd) and
resident memory (VmRSS) are the baseline; after the last cycle, with every
link closed, the descriptor count must equal it exactly and VmRSS may exceed
it by at most RSS_MARGIN_KIB (not checked under a sanitizer, whose shadow
memory and quarantine grow on their own, nor under ESPATD_WRAPPER).

Duration: ESPATD_SOAK_SECONDS (default 60 s; 20 s for a sanitized build or
under ESPATD_WRAPPER); ESPATD_SOAK_SEED picks another random sequence.
The figures (cycles, links, bytes, descriptors, memory) are printed; run with
-s to see them. Every wait scales with espat.SCALE: the test runs beside
others under pytest-xdist on small machines.

test_active_udp_burst_is_not_dropped is a loss the soak found, made
deterministic; until it is fixed the soak keeps the datagrams that wait
together for an active UDP link within one +IPD's worth."""

import os
import random
import re
import time

import pytest

import espat
from netpeer import Demux, TcpServer, UdpPeer, recv_exact

OK = b"\r\nOK\r\n"
PROMPT = b"\r\nOK\r\n\r\n>"
LINKS = 5
WARMUP = 3
RSS_MARGIN_KIB = 512
#: the largest length AT+CIPRECVDATA takes (§2.29)
RECV_MAX = 0x7fffffff
#: the passive receive window (§2.28): what one link may hold unread
WINDOW = 5760

#: espatd runs under ESPATD_WRAPPER (valgrind...): slower, and its memory is
#: the wrapper's too
WRAPPED = bool(getattr(espat, "WRAPPER", ""))
SOAK_SECONDS = float(os.environ.get("ESPATD_SOAK_SECONDS") or
                     (20 if espat.SANITIZED or WRAPPED else 60))

RECV_RE = re.compile(rb"\+CIPRECVDATA:(\d+),|\r\nERROR\r\n")
NOTICES_RE = re.compile(rb"(\r\n\+IPD,\d,\d+\r\n)*")
CLOSED_RE = re.compile(rb"(\d),CLOSED\r\n")


def fd_count(pid):
    return len(os.listdir("/proc/%d/fd" % pid))


def rss_kib(pid):
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise AssertionError("no VmRSS for pid %d" % pid)


class Link:
    def __init__(self, lid, proto, passive):
        self.id = lid
        self.proto = proto          # "TCP" or "UDP"
        self.passive = passive
        self.sock = None            # the accepted TCP socket
        self.udp_addr = None        # where the daemon's UDP link sends from


class Soak:
    def __init__(self, d, rng):
        self.d = d
        self.c = d.client
        self.rng = rng
        self.srv = TcpServer()
        self.udp = [UdpPeer() for _ in range(LINKS)]
        self.cycles = 0
        self.links_opened = 0
        self.up_bytes = 0
        self.down_bytes = 0
        self.closes = {"mcu": 0, "peer": 0, "all": 0}

    def close(self):
        self.srv.close()
        for u in self.udp:
            u.close()

    def payload(self, n):
        return self.rng.randbytes(n)

    # ---- one cycle -------------------------------------------------------
    def open(self, lk):
        c = self.c
        c.transact(b"AT+CIPRECVTYPE=%d,%d\r\n" % (lk.id, lk.passive), OK)
        if lk.proto == "TCP":
            c.transact(b'AT+CIPSTART=%d,"TCP","127.0.0.1",%d\r\n' % (lk.id, self.srv.port),
                       b"%d,CONNECT\r\n" % lk.id + OK)
            lk.sock = self.srv.accept()
        else:
            c.transact(b'AT+CIPSTART=%d,"UDP","127.0.0.1",%d\r\n' % (lk.id, self.udp[lk.id].port),
                       b"%d,CONNECT\r\n" % lk.id + OK)
        self.links_opened += 1

    def up(self, lk, n):
        c = self.c
        data = self.payload(n)
        c.transact(b"AT+CIPSEND=%d,%d\r\n" % (lk.id, n), PROMPT)
        c.write(data)
        c.expect(b"\r\nRecv %d bytes\r\n\r\nSEND OK\r\n" % n)
        if lk.proto == "TCP":
            got = recv_exact(lk.sock, n)
        else:
            got, lk.udp_addr = self.udp[lk.id].recv()
        assert got == data, "link %d (%s): up data differs (%d of %d bytes)" % (
            lk.id, lk.proto, len(got), n)
        self.up_bytes += n

    def send_down(self, lk, big):
        """The peer sends; returns the bytes the MCU must receive."""
        if lk.proto == "TCP":
            data = self.payload(self.rng.randint(1, 8192 if big else 3000))
            lk.sock.sendall(data)
            return data
        # datagrams: one +IPD each (active), or one AT+CIPRECVDATA each
        # (passive), all within the passive window; an active link takes
        # bursts past one +IPD's worth (test_active_udp_burst_is_not_dropped)
        dgrams = [self.payload(self.rng.randint(1, 1400 if big else 600))
                  for _ in range(self.rng.randint(1, 3))]
        for g in dgrams:
            self.udp[lk.id].sock.sendto(g, lk.udp_addr)
        return b"".join(dgrams)

    def read_passive(self, lk, n):
        """AT+CIPRECVDATA until n bytes came; notices in between are fine,
        an ERROR means nothing has arrived yet."""
        c = self.c
        got = bytearray()
        deadline = time.monotonic() + espat.TIMEOUT * 4
        while len(got) < n:
            assert time.monotonic() < deadline, "link %d: %d of %d passive bytes" % (
                lk.id, len(got), n)
            c.write(b"AT+CIPRECVDATA=%d,%d\r\n" % (lk.id, RECV_MAX))
            head = c.read_until(RECV_RE)
            m = RECV_RE.search(head)
            assert NOTICES_RE.fullmatch(head[:m.start()]), head
            if m.group(1) is None:
                time.sleep(0.01)
                continue
            k = int(m.group(1))
            limit = time.monotonic() + espat.TIMEOUT
            while len(c.pending) < k + len(OK):
                assert time.monotonic() < limit, "link %d: short +CIPRECVDATA" % lk.id
                c._fill(limit)
            got += c.pending[:k]
            assert c.pending[k:k + len(OK)] == OK, c.pending[k:k + 40]
            c.pending = c.pending[k + len(OK):]
        return bytes(got)

    def down(self, links, big):
        """Every peer sends at once; active data comes as +IPD frames
        (interleaved with passive notices), then the passive links are
        read with AT+CIPRECVDATA."""
        c = self.c
        want = {lk.id: self.send_down(lk, big) for lk in links}
        dm = Demux(c)
        for lk in links:
            if not lk.passive:
                got = dm.wait_data(lk.id, len(want[lk.id]))
                assert got == want[lk.id], "link %d (%s): down data differs" % (lk.id, lk.proto)
        assert dm.text == b"", "besides +IPD: %r" % dm.text[:200]
        assert all(dict((lk.id, lk.passive) for lk in links)[i] for i, _ in dm.notices), \
            dm.notices
        # the notices already parsed are done with; what is left goes back
        c.pending = dm.buf + c.pending
        for lk in links:
            if lk.passive:
                got = self.read_passive(lk, len(want[lk.id]))
                assert got == want[lk.id], "link %d (%s): passive data differs" % (
                    lk.id, lk.proto)
        # a passive notice for data that has all been read may still be on
        # its way; nothing else
        out = c.drain(espat.QUIET)
        assert NOTICES_RE.fullmatch(out), out[:200]
        self.down_bytes += sum(len(v) for v in want.values())

    def close_links(self, links, plan):
        c = self.c
        open_ids = sorted(lk.id for lk in links)
        if plan == "all":
            c.transact(b"AT+CIPCLOSE=5\r\n",
                       b"".join(b"%d,CLOSED\r\n" % i for i in open_ids) + OK)
            self.closes["all"] += 1
            by_mcu = list(links)
        else:
            by_peer = [lk for lk in links if lk.proto == "TCP" and
                       (plan == "peer" or (plan == "mixed" and self.rng.random() < 0.5))]
            for lk in by_peer:
                lk.sock.close()
                lk.sock = None
            if by_peer:
                seen = set()
                buf = b""
                deadline = time.monotonic() + espat.TIMEOUT
                want = set(lk.id for lk in by_peer)
                while seen != want:
                    assert time.monotonic() < deadline, "CLOSED for %r, got %r" % (want, buf)
                    buf += c.read_for(0.02)
                    seen = set(int(m.group(1)) for m in CLOSED_RE.finditer(buf))
                assert buf == b"".join(b"%d,CLOSED\r\n" % i for i in
                                       [int(m.group(1)) for m in CLOSED_RE.finditer(buf)]), buf
                assert len(CLOSED_RE.findall(buf)) == len(want), buf
                self.closes["peer"] += len(by_peer)
            by_mcu = [lk for lk in links if lk not in by_peer]
            self.rng.shuffle(by_mcu)
            for lk in by_mcu:
                c.transact(b"AT+CIPCLOSE=%d\r\n" % lk.id, b"%d,CLOSED\r\n" % lk.id + OK)
                self.closes["mcu"] += 1
        # the peers of links the MCU closed see the end of the stream, and
        # nothing more (no byte was sent twice)
        for lk in by_mcu:
            if lk.sock is not None:
                lk.sock.settimeout(espat.TIMEOUT)
                assert lk.sock.recv(65536) == b"", "link %d: bytes after the close" % lk.id
                lk.sock.close()
                lk.sock = None
        c.assert_quiet()

    def cycle(self, big=False):
        plans = ("mcu", "peer", "all", "mixed")
        links = []
        for lid in range(LINKS):
            proto = "UDP" if self.rng.random() < 0.3 else "TCP"
            links.append(Link(lid, proto, self.rng.random() < 0.4))
        # open in a random order: ids are not taken lowest first
        for lk in self.rng.sample(links, len(links)):
            self.open(lk)
        for lk in links:
            self.up(lk, 2048 if big else self.rng.randint(1, 1024))
        self.down(links, big)
        self.close_links(links, plans[self.cycles % len(plans)])
        self.cycles += 1


def test_soak_links_churn(espatd):
    d = espatd(state=False)
    c = d.client
    c.echo_off()
    c.must_ok(b'AT+CWJAP="lab","pw"\r\n')
    c.transact(b"AT+CIPMUX=1\r\n", OK)
    seed = int(os.environ.get("ESPATD_SOAK_SEED") or "0", 0) or 0x50a4
    soak = Soak(d, random.Random(seed))
    pid = d.proc.pid
    try:
        # warm-up with the largest blocks: buffers reach their working size
        for _ in range(WARMUP):
            soak.cycle(big=True)
        c.transact(b"AT+CIPSTATE?\r\n", OK)   # no link left
        fd0, rss0 = fd_count(pid), rss_kib(pid)
        start = time.monotonic()
        while time.monotonic() - start < SOAK_SECONDS:
            soak.cycle(big=soak.cycles % 7 == 0)
        elapsed = time.monotonic() - start
        c.transact(b"AT+CIPSTATE?\r\n", OK)
        c.transact(b"AT+CIPRECVLEN?\r\n", b"+CIPRECVLEN:-1,-1,-1,-1,-1\r\n" + OK)
        time.sleep(0.05 * espat.SCALE)   # let the loop settle
        fd1, rss1 = fd_count(pid), rss_kib(pid)
    finally:
        soak.close()
    print("\nsoak (seed %#x): %d cycles (%d after warm-up) in %.1f s, %d links opened, "
          "%d bytes up, %d bytes down; closes: %d by AT+CIPCLOSE=<id>, %d by the peer, "
          "%d AT+CIPCLOSE=5; fds %d -> %d, VmRSS %d -> %d KiB (%+d)%s" % (
              seed, soak.cycles, soak.cycles - WARMUP, elapsed, soak.links_opened, soak.up_bytes,
              soak.down_bytes, soak.closes["mcu"], soak.closes["peer"], soak.closes["all"],
              fd0, fd1, rss0, rss1, rss1 - rss0, " (sanitized or wrapped: RSS not checked)"
              if espat.SANITIZED or WRAPPED else ""))
    # a cycle takes well under a second even on a busy two-core machine;
    # fewer than this means the daemon stalled somewhere
    floor = max(2, int(SOAK_SECONDS / (3.0 * espat.SCALE)))
    assert soak.cycles - WARMUP >= floor, "only %d cycles in %.0f s" % (
        soak.cycles - WARMUP, SOAK_SECONDS)
    assert fd1 == fd0, "descriptors: %d after the warm-up, %d at the end:\n%s" % (
        fd0, fd1, "\n".join(sorted(os.readlink("/proc/%d/fd/%s" % (pid, f))
                                   for f in os.listdir("/proc/%d/fd" % pid))))
    if not espat.SANITIZED and not WRAPPED:
        assert rss1 <= rss0 + RSS_MARGIN_KIB, "VmRSS grew from %d to %d KiB" % (rss0, rss1)


def test_active_udp_burst_is_not_dropped(espatd):
    """Found by the soak: datagrams that wait together for an active UDP link
    and add up to more than one +IPD's worth (2920 bytes) all arrive, one
    +IPD each (§2.28: only a full passive window drops UDP). They wait
    together here because a data phase is open on another link: nothing may
    go out between '>' and the end of the data (§1.11)."""
    d = espatd(state=False)
    c = d.client
    c.echo_off()
    c.must_ok(b'AT+CWJAP="lab","pw"\r\n')
    c.transact(b"AT+CIPMUX=1\r\n", OK)
    srv = TcpServer()
    udp = UdpPeer()
    try:
        c.transact(b'AT+CIPSTART=0,"UDP","127.0.0.1",%d\r\n' % udp.port, b"0,CONNECT\r\n" + OK)
        c.transact(b'AT+CIPSTART=1,"TCP","127.0.0.1",%d\r\n' % srv.port, b"1,CONNECT\r\n" + OK)
        peer = srv.accept()
        c.transact(b"AT+CIPSEND=0,2\r\n", PROMPT)
        c.transact(b"hi", b"\r\nRecv 2 bytes\r\n\r\nSEND OK\r\n")
        _, addr = udp.recv()
        dgrams = [bytes([0x41 + i]) * 1400 for i in range(3)]
        c.transact(b"AT+CIPSEND=1,4\r\n", PROMPT)
        c.write(b"ab")
        for g in dgrams:
            udp.sock.sendto(g, addr)
        time.sleep(0.2 * espat.SCALE)
        c.write(b"cd")
        dm = Demux(c)
        dm.wait_text(b"\r\nRecv 4 bytes\r\n\r\nSEND OK\r\n")
        assert recv_exact(peer, 4) == b"abcd"
        try:
            dm.wait_data(0, 3 * 1400, timeout=1.0 * espat.SCALE)
        finally:
            assert "dropped" not in d.log(), d.log()
        assert bytes(dm.data[0]) == b"".join(dgrams)
        assert [f[1] for f in dm.frames] == [1400, 1400, 1400]
        c.transact(b"AT+CIPCLOSE=5\r\n", b"0,CLOSED\r\n1,CLOSED\r\n" + OK)
        peer.close()
    finally:
        udp.close()
        srv.close()
