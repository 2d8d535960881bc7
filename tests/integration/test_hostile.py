"""Hostile serial input against a daemon that has links open.

What an MCU with a broken driver (or a noisy UART) may throw at the module:
huge lengths, negative and overflowing numbers, odd number spellings, empty
parameters, unterminated strings, NUL bytes, AT commands typed during data
phases, random bytes with embedded CR LF, thousands of commands without
reading the replies. For every one: the exact reply of the module (protocol.md
§1.4, §1.8, §1.9, §2.7, §2.9-§2.12, §4), then AT still answers OK and both
open links still carry data both ways, every byte checked (none lost, none
duplicated).

Plain malformed lines on a daemon without links -- overlong lines, random
binary, NUL and high bytes in command names, bad numbers and unterminated
strings in the Basic/Wi-Fi commands, too many parameters -- are in
test_bad_input.py and are not repeated here. test_client_that_never_reads
(below) proves the output side is bounded when the client stops reading.

The ERR CODE of each rejected line (checked with AT+SYSLOG=1) follows §1.8:
0x0108000N for a parameter that cannot be parsed (non-digit, '+' sign, blank,
quotes around a number, beyond 32 bits, missing, bad quoting), 0x0107000N for
a parsed value out of range, 0x0106xxyy for a wrong parameter count,
0x010a0000 when the command itself cannot run. Which class the module
reports for each case is not documented per command; espatd's classes are
its reading of §1.4/§1.8.

Most tests share one daemon (the "rig", per test module and xdist worker):
a joined station, AT+CIPMUX=1, link 0 in active and link 1 in passive receive
mode, each to a loopback TcpServer peer. A test that fails throws the rig
away; the next test builds a fresh one."""

import hashlib
import os
import random
import re
import socket
import time

import pytest

import espat
from netpeer import Demux, TcpServer, recv_exact

OK = b"\r\nOK\r\n"
ERROR = b"\r\nERROR\r\n"
PROMPT = b"\r\nOK\r\n\r\n>"
BUSY = b"\r\nbusy p...\r\n"
#: the largest length AT+CIPRECVDATA takes (§2.29)
RECV_MAX = 0x7fffffff
#: silence kept around "+++" (the guard is 20 ms, §2.7)
GUARD = 0.1 * espat.SCALE


def rss_kib(pid):
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


def test_client_that_never_reads(espatd):
    """A client that never reads its replies cannot make espatd grow without
    bound: past a cap the daemon stops reading the client's input, the
    client's writes block, and everything works again once it reads."""
    d = espatd()
    c = d.client
    c.echo_off()
    base = rss_kib(d.proc.pid)
    fd = os.open(d.tty, os.O_RDWR | os.O_NOCTTY | os.O_NONBLOCK)
    sent = 0
    rest = b""
    blocked_since = None
    deadline = time.monotonic() + 30 * espat.SCALE
    # +CMD? answers about 2.7 KB per command: 20 MB of replies if all were kept
    while sent < 8000 and time.monotonic() < deadline:
        try:
            # a full pty takes part of a line: the rest goes first next time
            rest = rest[os.write(fd, rest):] if rest else b""
            if not rest:
                rest = b"AT+CMD?\r\n"
                rest = rest[os.write(fd, rest):]
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
    # read it all; the daemon serves again (after the rest of a cut line)
    os.close(fd)
    got = c.drain(0.5)
    assert got.count(b"\r\nOK\r\n") + got.count(b"\r\nbusy p...\r\n") >= 1
    # the line the full pty cut: its head may have come in a chunk the
    # daemon dropped as "busy p...", so its tail is garbage now; a CR LF
    # ends whatever is left (its reply, if any, is drained)
    c.write(rest + b"\r\n")
    c.pending = b""
    c.drain(0.3)
    c.transact(b"AT\r\n", b"\r\nOK\r\n")


# ---- the rig ---------------------------------------------------------------

def nasty(rng, n):
    """n bytes that look like what the serial side says and what the
    command side takes: result codes, +IPD headers, AT lines, NUL, CR, LF,
    backslash-zero. No "+++" (a read of exactly those three bytes during a
    data phase is a cancel, §2.7, and fragmented writes may produce one)."""
    pieces = [b"AT\r\n", OK, ERROR, b"\r\n+IPD,0,5:", b"\r\n+IPD,1,9\r\n", b"\x00",
              b"\r", b"\n", b"\\0", b">", b"AT+CIPCLOSE=5\r\n", b"SEND OK"]
    out = bytearray()
    while len(out) < n:
        if rng.random() < 0.3:
            out += rng.choice(pieces)
        else:
            out += rng.randbytes(rng.randint(1, 40))
    out = bytes(out[:n])
    while b"+++" in out:
        out = out.replace(b"+++", b"+-+")
    return out


def sha(b):
    return hashlib.sha256(bytes(b)).hexdigest()[:16]


def same_bytes(got, want, what):
    assert len(got) == len(want) and sha(got) == sha(want), (
        "%s: %d bytes (sha %s), expected %d (sha %s)%s" % (
            what, len(got), sha(got), len(want), sha(want),
            "" if len(got) != len(want) else
            "; first difference at %d" % next(i for i in range(len(got)) if got[i] != want[i])))


def peer_idle(peer, what):
    """Nothing more waits at the peer (no byte was duplicated)."""
    peer.setblocking(False)
    try:
        extra = peer.recv(65536)
    except BlockingIOError:
        extra = None
    finally:
        peer.settimeout(espat.TIMEOUT)
    assert extra is None, "%s: unexpected bytes at the peer: %r" % (what, extra[:200])


NOTICE1 = re.compile(rb"\r\n\+IPD,1,(\d+)\r\n")
RECVDATA_HEAD = re.compile(rb"\+CIPRECVDATA:(\d+),")


class Rig:
    """espatd with a joined station, AT+CIPMUX=1, link 0 (active receive)
    and link 1 (passive receive, AT+CIPRECVTYPE=1,1), each to its own
    accepted socket of a loopback TcpServer."""

    def __init__(self, workdir, seed):
        self.srv = TcpServer()
        self.d = espat.Daemon(workdir, state=False, seed=seed)
        self.rng = random.Random(seed)
        self.c = None
        self.peers = []
        self.moved = 0

    def start(self):
        c = self.c = self.d.start()
        c.echo_off()
        c.must_ok(b'AT+CWJAP="lab","pw"\r\n')
        c.transact(b"AT+CIPMUX=1\r\n", OK)
        for i in range(2):
            c.transact(b'AT+CIPSTART=%d,"TCP","127.0.0.1",%d\r\n' % (i, self.srv.port),
                       b"%d,CONNECT\r\n" % i + OK)
            self.peers.append(self.srv.accept())
        c.transact(b"AT+CIPRECVTYPE=1,1\r\n", OK)
        return self

    def stop(self, quiet_check=True):
        try:
            self.d.stop(quiet_check=quiet_check)
        finally:
            for p in self.peers:
                p.close()
            self.srv.close()

    @property
    def port(self):
        return self.srv.port

    # -- the data checks --------------------------------------------------
    def send(self, lid, payload, mode="whole"):
        """AT+CIPSEND on link lid; the peer gets exactly payload."""
        c = self.c
        c.transact(b"AT+CIPSEND=%d,%d\r\n" % (lid, len(payload)), PROMPT)
        c.write(payload, mode)
        c.expect(b"\r\nRecv %d bytes\r\n\r\nSEND OK\r\n" % len(payload))
        same_bytes(recv_exact(self.peers[lid], len(payload)), payload, "link %d up" % lid)
        self.moved += len(payload)

    def down_active(self, payload):
        """The peer of link 0 sends; it all comes as +IPD,0 frames."""
        c = self.c
        c.assert_nothing_pending(b"(peer 0 data)")
        self.peers[0].sendall(payload)
        dm = Demux(c)
        got = dm.wait_data(0, len(payload))
        c.pending = dm.buf + c.pending
        assert dm.text == b"" and not dm.notices, "besides +IPD: %r %r" % (dm.text, dm.notices)
        assert set(f[0] for f in dm.frames) == {0}, dm.frames
        same_bytes(got, payload, "link 0 down")
        c.assert_quiet()
        self.moved += len(payload)

    def down_passive(self, payload):
        """The peer of link 1 sends; notices, then AT+CIPRECVDATA reads it
        all (with the largest length the command takes)."""
        c = self.c
        c.assert_nothing_pending(b"(peer 1 data)")
        self.peers[1].sendall(payload)
        got = bytearray()
        while len(got) < len(payload):
            head = c.read_until(NOTICE1)
            assert head.startswith(b"\r\n+IPD,1,"), "before the notice: %r" % head
            c.write(b"AT+CIPRECVDATA=1,%d\r\n" % RECV_MAX)
            head = c.read_until(RECVDATA_HEAD)
            assert RECVDATA_HEAD.fullmatch(head), head
            n = int(RECVDATA_HEAD.fullmatch(head).group(1))
            assert n > 0
            deadline = time.monotonic() + espat.TIMEOUT
            while len(c.pending) < n + len(OK):
                assert time.monotonic() < deadline, "short +CIPRECVDATA"
                c._fill(deadline)
            got += c.pending[:n]
            assert c.pending[n:n + len(OK)] == OK, c.pending[n:n + 40]
            c.pending = c.pending[n + len(OK):]
        c.assert_quiet()
        same_bytes(got, payload, "link 1 down")
        self.moved += len(payload)

    def check_links(self, mode="whole", state=True):
        """AT answers OK, and both links carry fresh bytes both ways (and,
        with state, AT+CIPSTATE? shows both, nothing else)."""
        c = self.c
        c.transact(b"AT\r\n", OK)
        # byte by byte costs about a millisecond a byte: short blocks then
        most = 64 if mode == "bytes" else 1500
        for lid in (0, 1):
            self.send(lid, nasty(self.rng, self.rng.randint(1, most)), mode)
        self.down_active(nasty(self.rng, self.rng.randint(1, 3000)))
        self.down_passive(nasty(self.rng, self.rng.randint(1, 3000)))
        for lid in (0, 1):
            peer_idle(self.peers[lid], "link %d" % lid)
        if not state:
            return
        out = c.cmd(b"AT+CIPSTATE?\r\n")
        assert re.fullmatch(rb'\+CIPSTATE:0,"TCP","127\.0\.0\.1",%d,\d+,0\r\n'
                            rb'\+CIPSTATE:1,"TCP","127\.0\.0\.1",%d,\d+,0\r\n\r\nOK\r\n'
                            % (self.port, self.port), out), out


@pytest.fixture(scope="module")
def rig_holder(tmp_path_factory):
    h = {"rig": None, "n": 0, "dir": tmp_path_factory.mktemp("hostile")}
    yield h
    if h["rig"] is not None:
        h["rig"].stop()   # exit 0, no sanitizer report, nothing unread


@pytest.fixture
def rig(rig_holder, request):
    r = rig_holder["rig"]
    if r is None:
        rig_holder["n"] += 1
        r = Rig(rig_holder["dir"] / ("rig%d" % rig_holder["n"]),
                seed=rig_holder["n"] * 7919).start()
        rig_holder["rig"] = r
    r.c.assert_nothing_pending(b"(test start)")
    yield r
    rep = getattr(request.node, "rep_call", None)
    if rep is None or not rep.passed:
        # a failed test leaves the rig in an unknown state: start afresh,
        # but still report a crash or a sanitizer finding
        rig_holder["rig"] = None
        r.stop(quiet_check=False)


# ---- hostile parameters: the exact reply, then recovery --------------------

def E(code):
    return ("error", code)


def PROMPTS(lid, n):
    return ("prompt", lid, n)


#: (id, line without CR LF ({port} = the loopback server's), expectation)
CASES = [
    # huge lengths (§2.9: <length> 1..8192; §2.10 CIPSENDL up to 2^31-1;
    # §2.29 CIPRECVDATA up to 0x7fffffff)
    ("send-99999999", b"AT+CIPSEND=0,99999999", E(0x01070001)),
    ("send-8193", b"AT+CIPSEND=1,8193", E(0x01070001)),
    ("send-2^31", b"AT+CIPSEND=0,2147483648", E(0x01070001)),
    ("send-2^32-1", b"AT+CIPSEND=0,4294967295", E(0x01070001)),
    ("send-2^32", b"AT+CIPSEND=0,4294967296", E(0x01080001)),
    ("send-20-digits", b"AT+CIPSEND=0,99999999999999999999", E(0x01080001)),
    ("send-hex-33-bits", b"AT+CIPSEND=0,0x100000010", E(0x01080001)),
    ("sendex-99999999", b"AT+CIPSENDEX=1,99999999", E(0x01070001)),
    ("sendl-2^31", b"AT+CIPSENDL=0,2147483648", E(0x01070001)),
    ("recvdata-2^31", b"AT+CIPRECVDATA=1,2147483648", E(0x01070001)),
    ("recvdata-0", b"AT+CIPRECVDATA=1,0", E(0x01070001)),
    ("recvdata-max-no-data", b"AT+CIPRECVDATA=1,2147483647", E(0x010a0000)),
    ("recvdata-active-link", b"AT+CIPRECVDATA=0,2147483647", E(0x010a0000)),
    # negative numbers (§1.4: '-' only before decimal digits)
    ("send-minus-1", b"AT+CIPSEND=0,-1", E(0x01070001)),
    ("send-minus-2^31", b"AT+CIPSEND=0,-2147483648", E(0x01070001)),
    ("send-minus-2^31-1", b"AT+CIPSEND=0,-2147483649", E(0x01080001)),
    ("send-id-minus-1", b"AT+CIPSEND=-1,5", E(0x01070000)),
    ("send-double-minus", b"AT+CIPSEND=0,--5", E(0x01080001)),
    ("send-minus-hex", b"AT+CIPSEND=0,-0x5", E(0x01080001)),
    ("send-lone-minus", b"AT+CIPSEND=0,-", E(0x01080001)),
    ("close-minus-1", b"AT+CIPCLOSE=-1", E(0x01070000)),
    ("start-port-minus-1", b'AT+CIPSTART=2,"TCP","127.0.0.1",-1', E(0x01070003)),
    ("start-keepalive-minus-1", b'AT+CIPSTART=2,"TCP","127.0.0.1",{port},-1', E(0x01070004)),
    ("recvtype-minus-1", b"AT+CIPRECVTYPE=1,-1", E(0x01070001)),
    ("cipsto-minus-1", b"AT+CIPSTO=-1", E(0x01070000)),
    # overflowing numbers: never truncated to 32 or 16 bits (a wrapped
    # port would reach the server, a wrapped id would close a link)
    ("close-2^32", b"AT+CIPCLOSE=4294967296", E(0x01080000)),
    ("close-2^32-1", b"AT+CIPCLOSE=4294967295", E(0x01070000)),
    ("close-hex-2^32", b"AT+CIPCLOSE=0x100000000", E(0x01080000)),
    ("close-2^32+1", b"AT+CIPCLOSE=4294967297", E(0x01080000)),
    ("start-port-2^32+port", b'AT+CIPSTART=2,"TCP","127.0.0.1",{port32}', E(0x01080003)),
    ("start-port-2^16+port", b'AT+CIPSTART=2,"TCP","127.0.0.1",{port16}', E(0x01070003)),
    ("start-id-2^32", b'AT+CIPSTART=4294967296,"TCP","127.0.0.1",{port}', E(0x01080000)),
    ("start-id-5", b'AT+CIPSTART=5,"TCP","127.0.0.1",{port}', E(0x01070000)),
    ("start-timeout-60001", b'AT+CIPSTART=2,"TCP","127.0.0.1",{port},0,,60001', E(0x01070006)),
    ("start-udp-lport-65536", b'AT+CIPSTART=2,"UDP","127.0.0.1",{port},65536,0', E(0x01070004)),
    ("start-udp-mode-3", b'AT+CIPSTART=2,"UDP","127.0.0.1",{port},1000,3', E(0x01070005)),
    ("recvtype-id-2^31", b"AT+CIPRECVTYPE=2147483648,0", E(0x01070000)),
    ("cipsto-20-digits", b"AT+CIPSTO=99999999999999999999", E(0x01080000)),
    # number spellings §1.4 rejects: '+' sign, exponent, blanks, quotes,
    # a bare "0x"
    ("send-plus-sign", b"AT+CIPSEND=0,+5", E(0x01080001)),
    ("send-exponent", b"AT+CIPSEND=0,1e3", E(0x01080001)),
    ("send-leading-blank", b"AT+CIPSEND=0, 5", E(0x01080001)),
    ("send-trailing-blank", b"AT+CIPSEND=0,5 ", E(0x01080001)),
    ("send-quoted-number", b'AT+CIPSEND=0,"5"', E(0x01080001)),
    ("send-bare-0x", b"AT+CIPSEND=0,0x", E(0x01080001)),
    ("close-plus-0", b"AT+CIPCLOSE=+0", E(0x01080000)),
    ("close-trailing-blank", b"AT+CIPCLOSE=0 ", E(0x01080000)),
    ("close-hex-16", b"AT+CIPCLOSE=0x10", E(0x01070000)),
    # number spellings §1.4 accepts: 0x/0X hex, decimal with leading zeros
    # (not octal), "-0"; the data phase then takes exactly that many bytes
    ("send-hex-0x10", b"AT+CIPSEND=0,0x10", PROMPTS(0, 16)),
    ("send-hex-0X1f", b"AT+CIPSEND=1,0X1f", PROMPTS(1, 31)),
    ("send-leading-zero-010", b"AT+CIPSEND=0,010", PROMPTS(0, 10)),
    ("send-many-zeros", b"AT+CIPSEND=00,000000000000000000007", PROMPTS(0, 7)),
    ("send-minus-zero-id", b"AT+CIPSEND=-0,3", PROMPTS(0, 3)),
    ("sendex-hex", b"AT+CIPSENDEX=1,0x0004", PROMPTS(1, 4)),
    # empty parameters
    ("send-empty-length", b"AT+CIPSEND=0,", E(0x01080001)),
    ("send-empty-id", b"AT+CIPSEND=,5", E(0x01080000)),
    ("send-empty-all", b"AT+CIPSEND=", E(0x01080000)),
    ("send-trailing-comma", b"AT+CIPSEND=0,5,", E(0x01060403)),
    ("send-dest-on-tcp", b'AT+CIPSEND=0,5,"127.0.0.1",{port}', E(0x01060204)),
    ("close-empty", b"AT+CIPCLOSE=", E(0x01080000)),
    ("close-two-params", b"AT+CIPCLOSE=0,", E(0x01060102)),
    ("start-empty-host", b'AT+CIPSTART=2,"TCP",,{port}', E(0x01080002)),
    ("start-empty-type", b'AT+CIPSTART=2,,"127.0.0.1",{port}', E(0x01080001)),
    ("start-empty-port", b'AT+CIPSTART=2,"TCP","127.0.0.1",', E(0x01080003)),
    # unterminated / broken strings (§1.4: must start and end with '"';
    # '\x' is x; an unescaped '"' inside or a lone trailing '\' fails)
    ("start-type-unterminated", b'AT+CIPSTART=2,"TCP,"127.0.0.1",{port}', E(0x01080001)),
    ("start-host-unterminated", b'AT+CIPSTART=2,"TCP","127.0.0.1,{port}', E(0x01080002)),
    ("start-host-escaped-close", b'AT+CIPSTART=2,"TCP","127.0.0.1\\",{port}', E(0x01080002)),
    ("start-host-only-backslash", b'AT+CIPSTART=2,"TCP","\\",{port}', E(0x01080002)),
    ("start-host-lone-quote", b'AT+CIPSTART=2,"TCP",",{port}', E(0x01080002)),
    ("start-host-quote-inside", b'AT+CIPSTART=2,"TCP","127.0"0.1",{port}', E(0x01080002)),
    ("start-host-unquoted", b"AT+CIPSTART=2,TCP,127.0.0.1,{port}", E(0x01080001)),
    ("start-localip-unterminated", b'AT+CIPSTART=2,"TCP","127.0.0.1",{port},0,"127.0.0.1',
     E(0x01080005)),
    ("sslcsni-unterminated", b'AT+CIPSSLCSNI=0,"abc', E(0x01080001)),
    ("cipdomain-only-quote", b'AT+CIPDOMAIN="', E(0x01080000)),
    ("cipdomain-only-backslash", b'AT+CIPDOMAIN="\\"', E(0x01080000)),
    # NUL bytes in link commands: never a truncated, valid command
    ("close-nul-after-id", b"AT+CIPCLOSE=0\x00", E(0x01080000)),
    ("close-nul-before-id", b"AT+CIPCLOSE=\x000", E(0x01080000)),
    ("close-nul-first", b"\x00AT+CIPCLOSE=0", E(0x01030000)),
    # §1.3: the first character that is not a name character ends the name
    # and makes an execute command; CIPCLOSE's execute form is refused in
    # multiple connection mode
    ("close-nul-in-name", b"AT+CIPCLOSE\x00=0", E(0x010a0000)),
    ("send-nul-after-length", b"AT+CIPSEND=0,5\x00", E(0x01080001)),
    ("send-nul-after-id", b"AT+CIPSEND=0\x00,5", E(0x01080000)),
    ("start-host-raw-nul", b'AT+CIPSTART=2,"TCP","127.0.\x000.1",{port}', E(0x01070002)),
    ("start-host-escaped-nul", b'AT+CIPSTART=2,"TCP","127.0.0.1\\\x00",{port}', E(0x01070002)),
    ("at-nul-tail", b"AT\x00", ("ok",)),
    # a link that is in use, a link id beyond the five
    ("start-link-in-use", b'AT+CIPSTART=0,"TCP","127.0.0.1",{port}', E(0x010a0000)),
    ("send-id-5", b"AT+CIPSEND=5,5", E(0x01070000)),
]


def render(cmd, port):
    return (cmd.replace(b"{port32}", b"%d" % ((1 << 32) + port))
               .replace(b"{port16}", b"%d" % ((1 << 16) + port))
               .replace(b"{port}", b"%d" % port))


@pytest.mark.parametrize("line,expect", [pytest.param(c, e, id=i) for i, c, e in CASES])
def test_hostile_parameter(rig, line, expect):
    """The line, whole, byte by byte and cut at random (then with
    AT+SYSLOG=1: the ERR CODE too): the exact reply each time, AT still
    answers, nothing changed, both links carry data."""
    c = rig.c
    cmd = render(line, rig.port) + b"\r\n"
    for mode in espat.MODES:
        syslog = mode == "random"
        if syslog:
            c.transact(b"AT+SYSLOG=1\r\n", OK)
        if expect[0] == "error":
            c.transact(cmd, (b"ERR CODE:0x%08x\r\n" % expect[1] if syslog else b"") + ERROR,
                       mode=mode)
        elif expect[0] == "ok":
            c.transact(cmd, OK, mode=mode)
        else:
            _, lid, n = expect
            c.transact(cmd, PROMPT, mode=mode)
            # the announced count, no more, no less: AT lines are data
            payload = (b"AT\r\nAT+CIPCLOSE=%d\r\n" % lid + nasty(rig.rng, n))[:n]
            if line.startswith(b"AT+CIPSENDEX"):
                payload = payload.replace(b"\\", b"/")   # no escapes here
            c.write(payload, mode)
            c.expect(b"\r\nRecv %d bytes\r\n\r\nSEND OK\r\n" % n)
            same_bytes(recv_exact(rig.peers[lid], n), payload, "link %d" % lid)
        if syslog:
            c.transact(b"AT+SYSLOG=0\r\n", OK)
    rig.check_links(rig.rng.choice(espat.MODES), state=False)


# ---- AT commands during data phases are data --------------------------------

COMMANDS_AS_DATA = (b"AT\r\n", b"AT+CIPCLOSE=0\r\n", b"AT+CIPCLOSE=5\r\n", b"AT+RST\r\n",
                    b"AT+CIPMUX=0\r\n", b"ATE1\r\n", b"AT+CIPSEND=0,5\r\n")


@pytest.mark.parametrize("mode", espat.MODES)
def test_commands_inside_cipsend_data(rig, mode):
    """§2.9: after the '>' exactly <length> raw bytes are data, whatever they
    look like: each command line alone as a whole data block, then all of
    them in one block, on both links."""
    c = rig.c
    for lid in (0, 1):
        for line in COMMANDS_AS_DATA:
            rig.send(lid, line, mode)
        rig.send(lid, b"".join(COMMANDS_AS_DATA) + nasty(rig.rng, 60 if mode == "bytes" else 500),
                 mode)
    # "+++" with other bytes in the same read is data too (only a read of
    # exactly "+++" cancels, §2.7)
    if mode == "whole":
        rig.send(0, b"+++AT\r\n+++", "whole")
        rig.send(1, b"AT+++\r\n", "whole")
    c.transact(b"AT\r\n", OK)
    rig.check_links(mode)


def test_command_glued_to_its_data(rig):
    """Data sent in the same write as the AT+CIPSEND line arrives while the
    command is being processed: busy, discarded (§1.9); the data phase still
    waits for its bytes."""
    c = rig.c
    c.transact(b"AT+CIPSEND=0,4\r\nAT\r\n", PROMPT + BUSY)
    c.write(b"AT\r\n")
    c.expect(b"\r\nRecv 4 bytes\r\n\r\nSEND OK\r\n")
    assert recv_exact(rig.peers[0], 4) == b"AT\r\n"
    peer_idle(rig.peers[0], "link 0")
    rig.check_links()


def test_excess_after_data_is_dropped(rig):
    """§1.9: bytes beyond <length> in the same burst: one busy, dropped --
    even when they are a whole command line."""
    c = rig.c
    c.transact(b"AT+CIPSEND=1,3\r\n", PROMPT)
    c.transact(b"abcAT+CIPCLOSE=1\r\n", b"\r\nRecv 3 bytes\r\n" + BUSY + b"\r\nSEND OK\r\n")
    assert recv_exact(rig.peers[1], 3) == b"abc"
    peer_idle(rig.peers[1], "link 1")
    rig.check_links()


@pytest.mark.parametrize("mode", espat.MODES)
def test_commands_inside_cipsendex_data(rig, mode):
    """§2.12: AT+CIPSENDEX data ends at <length> or at backslash-zero; a
    backslash takes the next byte literally; command lines are data."""
    c = rig.c
    lines = b"".join(COMMANDS_AS_DATA)
    for lid in (0, 1):
        c.transact(b"AT+CIPSENDEX=%d,2048\r\n" % lid, PROMPT)
        c.write(lines + b"\\0", mode)
        c.expect(b"\r\nRecv %d bytes\r\n\r\nSEND OK\r\n" % len(lines))
        same_bytes(recv_exact(rig.peers[lid], len(lines)), lines, "link %d" % lid)
        # an escaped "\0" is a backslash and a zero, not the end
        c.transact(b"AT+CIPSENDEX=%d,100\r\n" % lid, PROMPT)
        c.write(b"AT+CIPCLOSE=%d\\\\0\r\n\\0" % lid, mode)
        want = b"AT+CIPCLOSE=%d\\0\r\n" % lid
        c.expect(b"\r\nRecv %d bytes\r\n\r\nSEND OK\r\n" % len(want))
        assert recv_exact(rig.peers[lid], len(want)) == want
    if mode == "whole":
        # what follows "\0" in the same read: busy, dropped (§1.9)
        c.transact(b"AT+CIPSENDEX=0,100\r\n", PROMPT)
        c.transact(b"AT\r\n\\0AT+CIPCLOSE=0\r\n",
                   b"\r\nRecv 4 bytes\r\n" + BUSY + b"\r\nSEND OK\r\n")
        assert recv_exact(rig.peers[0], 4) == b"AT\r\n"
    for lid in (0, 1):
        peer_idle(rig.peers[lid], "link %d" % lid)
    rig.check_links(mode)


def test_commands_inside_cipsendl_data_then_cancel(rig):
    """§2.10/§2.7: AT+CIPSENDL with the largest length; command lines are
    data; "+++" alone cancels (SEND CANCELLED) and the link stays usable."""
    c = rig.c
    data = b"".join(COMMANDS_AS_DATA) + nasty(rig.rng, 400)
    assert len(data) < 1024   # below the first +CIPSENDL report
    c.transact(b"AT+CIPSENDL=0,2147483647\r\n", PROMPT)
    c.write(data, "random")
    same_bytes(recv_exact(rig.peers[0], len(data)), data, "link 0")
    time.sleep(GUARD)
    c.transact(b"+++", b"\r\nSEND CANCELLED\r\n")
    c.transact(b"AT\r\n", OK)
    peer_idle(rig.peers[0], "link 0")
    rig.check_links()


def test_cancelled_sendl_does_not_complete_the_next_send(rig):
    """A cancelled AT+CIPSENDL whose last chunk still waits in the stack
    (its peer does not read) must not answer for a later AT+CIPSEND on
    another link: that one's data phase takes its <length> bytes (§2.9) and
    gets its own SEND OK, and the link of the cancelled send serves again
    once its peer reads."""
    c = rig.c
    slow_srv = TcpServer()
    # a peer that does not read, with a small window: the daemon's send of
    # one <transmit size> chunk stays in flight
    slow_srv.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 2048)
    try:
        c.transact(b'AT+CIPSTART=2,"TCP","127.0.0.1",%d\r\n' % slow_srv.port,
                   b"2,CONNECT\r\n" + OK)
        slow = slow_srv.accept()
        rig.peers.append(slow)
        c.transact(b"AT+CIPSENDLCFG=100000,2920\r\n", OK)   # no progress lines
        c.transact(b"AT+CIPSENDL=2,1000000\r\n", PROMPT)
        blob = os.urandom(40000)
        c.write(blob)
        time.sleep(0.3 * espat.SCALE)   # the stack stalls, a chunk in flight
        c.assert_quiet()
        c.transact(b"+++", b"\r\nSEND CANCELLED\r\n")
        c.transact(b"AT\r\n", OK)
        # a normal send on link 1, half of its data typed...
        c.transact(b"AT+CIPSEND=1,8\r\n", PROMPT)
        c.write(b"1234")
        # ...when the stalled peer reads: the old chunk completes
        slow.settimeout(0.3 * espat.SCALE)
        got = b""
        try:
            while True:
                chunk = slow.recv(65536)
                if not chunk:
                    break
                got += chunk
        except socket.timeout:
            pass
        assert got == blob[:len(got)], "the cancelled data arrived out of order"
        if len(got) == len(blob):
            pytest.skip("the stack took all of the data: no send was in flight")
        c.assert_quiet(0.1 * espat.SCALE)   # no SEND OK in the middle of link 1's data
        c.write(b"AT\r\n")
        c.expect(b"\r\nRecv 8 bytes\r\n\r\nSEND OK\r\n")
        assert recv_exact(rig.peers[1], 8) == b"1234AT\r\n"
        c.transact(b"AT+CIPSENDLCFG=1024,2920\r\n", OK)
        c.transact(b"AT+CIPCLOSE=2\r\n", b"2,CLOSED\r\n" + OK)
        rig.peers.remove(slow)
        slow.close()
    finally:
        slow_srv.close()
    rig.check_links()


# ---- random bytes with line ends at a daemon with open links ----------------

JUNK_REPLY = re.compile(rb"(\r\nERROR\r\n|\r\nbusy p\.\.\.\r\n)*")


def junk_lines(rng, n):
    """n random bytes cut into lines by CR LF every few dozen bytes. No
    byte is 't' or 'T', so no line -- wherever the daemon's reads happen to
    cut the stream -- can start with AT (or hold "AT+RST\\r\\n", §1.9)."""
    out = bytearray()
    while len(out) < n:
        out += rng.randbytes(rng.randint(0, 80)) + b"\r\n"
    out = bytes(out[:n])
    return out.replace(b"t", b"x").replace(b"T", b"x")


@pytest.mark.parametrize("mode,size", [("whole", 32768), ("random", 16384), ("bytes", 600)])
def test_random_lines_with_links_open(rig, mode, size):
    c = rig.c
    junk = junk_lines(rig.rng, size)
    # the peers talk meanwhile: active data waits or interleaves, the
    # passive notice comes once
    c.write(junk, mode)
    out = c.drain(0.2 * espat.SCALE)
    assert JUNK_REPLY.fullmatch(out), out[:300]
    assert out.count(ERROR) >= 1
    c.transact(b"\r\n", ERROR)   # ends whatever junk is still buffered
    rig.check_links(mode)


# ---- thousands of commands without reading, links busy meanwhile -------------

def test_flood_without_reading_while_links_carry_data(rig):
    """3000 commands written without reading a reply while both peers send:
    afterwards only replies are there (OK; busy for the rest of a read that
    carried a line, §1.9; ERROR for the tail of a line whose start was in
    such a rest), the +IPD payload is complete and in order, the passive
    data is all readable."""
    c = rig.c
    down0 = nasty(rig.rng, 20000)
    down1 = nasty(rig.rng, 5000)   # within the passive window (5760, §2.28)
    rig.peers[0].sendall(down0)
    rig.peers[1].sendall(down1)
    fd = os.open(rig.d.tty, os.O_RDWR | os.O_NOCTTY | os.O_NONBLOCK)
    sent = 0
    try:
        deadline = time.monotonic() + 10 * espat.SCALE
        while sent < 3000 and time.monotonic() < deadline:
            try:
                os.write(fd, b"AT\r\n")
                sent += 1
            except BlockingIOError:
                time.sleep(0.005)
    finally:
        os.close(fd)
    assert sent == 3000
    dm = Demux(c)
    dm.wait_data(0, len(down0))
    deadline = time.monotonic() + espat.TIMEOUT
    while dm.poll(0.1 * espat.SCALE) or not dm.notices:
        assert time.monotonic() < deadline, "no passive notice for link 1"
    same_bytes(dm.data[0], down0, "link 0 down")
    assert [n[0] for n in dm.notices] == [1], dm.notices
    # the Demux holds back a tail that may start an +IPD header
    assert b"\r\n+IPD,".startswith(dm.buf), dm.buf[:100]
    text = dm.text + dm.buf
    # a read that ends inside "AT\r\n" leaves the line's start in the
    # discarded rest (busy) and its end as a line of its own (ERROR)
    replies = re.findall(rb"\r\nOK\r\n|\r\nbusy p\.\.\.\r\n|\r\nERROR\r\n", text)
    assert b"".join(replies) == text, text[:300]
    oks = replies.count(OK)
    assert 1 <= oks <= sent and oks + replies.count(ERROR) <= sent
    # the passive data: all of it, in order
    got = bytearray()
    while len(got) < len(down1):
        c.write(b"AT+CIPRECVDATA=1,%d\r\n" % RECV_MAX)
        head = c.read_until(RECVDATA_HEAD)
        n = int(RECVDATA_HEAD.search(head).group(1))
        assert NOTICE1.sub(b"", head[:-len(RECVDATA_HEAD.search(head).group(0))]) == b"", head
        deadline = time.monotonic() + espat.TIMEOUT
        while len(c.pending) < n + len(OK):
            assert time.monotonic() < deadline
            c._fill(deadline)
        got += c.pending[:n]
        assert c.pending[n:n + len(OK)] == OK
        c.pending = c.pending[n + len(OK):]
        if len(got) < len(down1):
            c.read_until(NOTICE1)
    c.assert_quiet()
    same_bytes(got, down1, "link 1 down")
    rig.check_links()


# ---- passthrough: every byte is data until a guarded "+++" (§4) --------------

def test_commands_in_passthrough_are_data(espatd):
    """A single link in passthrough (AT+CIPMODE=1): command lines, AT+RST
    included, random bytes with CR LF, "+++" with anything around it in the
    same read -- all data for the peer, byte for byte; the peer's bytes come
    back raw. Then "+++" alone leaves, AT answers, and the link carries data
    in normal mode too."""
    srv = TcpServer()
    try:
        d = espatd()
        c = d.client
        c.echo_off()
        c.must_ok(b'AT+CWJAP="lab","pw"\r\n')
        c.transact(b'AT+CIPSTART="TCP","127.0.0.1",%d\r\n' % srv.port, b"CONNECT\r\n" + OK)
        peer = srv.accept()
        c.transact(b"AT+CIPMODE=1\r\n", OK)
        rng = random.Random(0x7ac7)
        for mode in espat.MODES:
            c.transact(b"AT+CIPSEND\r\n", PROMPT)
            block = (b"AT+RST\r\nAT\r\nAT+CIPMODE=0\r\nAT+CIPCLOSE\r\nATE1\r\n" +
                     junk_lines(rng, 3000 if mode != "bytes" else 300) + b"AT+RST\r\n")
            if mode == "whole":
                block += b"+++AT+RST\r\n+++"
            c.write(block, mode)
            same_bytes(recv_exact(peer, len(block)), block, "passthrough up (%s)" % mode)
            back = nasty(rng, 2000)
            peer.sendall(back)
            got = c.read_for(0.05)
            deadline = time.monotonic() + espat.TIMEOUT
            while len(got) < len(back) and time.monotonic() < deadline:
                got += c.read_for(0.05)
            same_bytes(got, back, "passthrough down (%s)" % mode)
            time.sleep(GUARD)
            c.write(b"+++")
            c.expect(b"", quiet=GUARD)
            c.transact(b"AT\r\n", OK)   # no restart happened: no "ready"
        peer_idle(peer, "passthrough")
        c.transact(b"AT+CIPMODE=0\r\n", OK)
        c.transact(b"AT+CIPSEND=6\r\n", PROMPT)
        c.transact(b"AT+RST", b"\r\nRecv 6 bytes\r\n\r\nSEND OK\r\n")
        assert recv_exact(peer, 6) == b"AT+RST"
        peer.sendall(b"still")
        c.expect(b"\r\n+IPD,5:still\r\n")
        c.transact(b"AT+CIPCLOSE\r\n", b"CLOSED\r\n" + OK)
        peer.close()
    finally:
        srv.close()
