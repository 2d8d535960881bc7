"""AT+PING (protocol.md §2.31): real ICMP echo to 127.0.0.1 and ::1, to names
served by a dnsmasq started here, and to an address nobody answers inside a
network namespace the test creates. Also the three ways to send ICMP: an
unprivileged ICMP socket (ping_group_range), a raw socket (CAP_NET_RAW), and
neither (answered as a timeout, with the reason in the log).

Traffic stays on loopback or inside the test's own namespaces.
"""

import os
import re
import shutil
import subprocess
import time
import uuid

import pytest

import espat
import netpeer
from espat import SCALE

OK = b"\r\nOK\r\n"
ERROR = b"\r\nERROR\r\n"
TIMEOUT = b"+PING:TIMEOUT\r\n" + ERROR
JOIN = b'AT+CWJAP="lab","secret123"\r\n'
JOINED = b"WIFI CONNECTED\r\nWIFI GOT IP\r\n\r\nOK\r\n"
PING_OK = re.compile(rb"\+PING:(\d+)\r\n\r\nOK\r\n")
#: the module's one-echo timeout (cmd_services.c PING_TIMEOUT_MS)
PING_TIMEOUT_S = 1.0
#: espatd may send ICMP only to loopback here (a safety net for the suite)
LOOPBACK_ONLY = ("--allow", "127.0.0.0/8", "--allow", "::1")

IP = shutil.which("ip") or "/usr/sbin/ip"
SETPRIV = shutil.which("setpriv") or "/usr/bin/setpriv"
SYSCTL = shutil.which("sysctl") or "/usr/sbin/sysctl"


def ping_ok(c, host, timeout=None):
    """AT+PING=<host> must answer +PING:<ms> and OK; returns the ms."""
    c.assert_nothing_pending(host)
    c.write(b'AT+PING="%s"\r\n' % host)
    out = c.read_result(timeout or espat.TIMEOUT)
    m = PING_OK.fullmatch(out)
    assert m, "AT+PING=%r answered %r" % (host, out)
    c.assert_quiet()
    ms = int(m.group(1))
    assert 0 <= ms < 1000, ms
    return ms


def ping_timeout(c, host, least=PING_TIMEOUT_S * 0.9, most=None):
    """AT+PING=<host> must answer +PING:TIMEOUT and ERROR after about the
    module's timeout."""
    t0 = time.monotonic()
    c.transact(b'AT+PING="%s"\r\n' % host, TIMEOUT, timeout=5 * SCALE)
    took = time.monotonic() - t0
    assert least <= took <= (most or (PING_TIMEOUT_S + 1.5) * SCALE), took
    return took


# ---- loopback ----------------------------------------------------------------------


def test_ping_loopback(espatd, frag):
    c = espatd(*LOOPBACK_ONLY, mode=frag).client
    c.echo_off()
    # no station address yet: nothing can answer
    c.transact(b'AT+PING="127.0.0.1"\r\n', TIMEOUT)
    c.transact(JOIN, JOINED)
    ping_ok(c, b"127.0.0.1")
    ping_ok(c, b"127.0.0.1")      # again: a new echo each time
    ping_ok(c, b"127.1.2.3")      # the kernel answers the whole of 127/8
    # IPv6 only after AT+CIPV6=1 (§2.1): until then as a failed lookup
    c.transact(b'AT+PING="::1"\r\n', TIMEOUT)
    c.transact(b"AT+CIPV6=1\r\n", OK)
    ping_ok(c, b"::1")
    ping_ok(c, b"0:0:0:0:0:0:0:1")
    ping_ok(c, b"127.0.0.1")
    # with AT+SYSLOG=1 the failure carries an ERR CODE
    c.transact(b"AT+CIPV6=0\r\n", OK)
    c.transact(b"AT+SYSLOG=1\r\n", OK)
    c.transact(b'AT+PING="::1"\r\n', b"+PING:TIMEOUT\r\nERR CODE:0x010a0000\r\n" + ERROR)
    c.transact(b"AT+CWQAP\r\n", b"WIFI DISCONNECT\r\n\r\nOK\r\n")
    c.transact(b'AT+PING="127.0.0.1"\r\n', b"+PING:TIMEOUT\r\nERR CODE:0x010a0000\r\n" + ERROR)


def test_ping_forms_and_bad_parameters(espatd):
    c = espatd(*LOOPBACK_ONLY).client
    c.echo_off()
    c.transact(JOIN, JOINED)
    # set form only (§1.12)
    c.check_all([b"AT+PING\r\n", b"AT+PING?\r\n", b"AT+PING=?\r\n",
                b"AT+PING=127.0.0.1\r\n", b'AT+PING=""\r\n', b'AT+PING="127.0.0.1",1\r\n',
                b"AT+PING=\r\n", b'AT+PING="%s"\r\n' % (b"a" * 60 + b".test")])
    c.transact(b"AT+SYSLOG=1\r\n", OK)
    c.transact(b"AT+PING=127.0.0.1\r\n", b"ERR CODE:0x01080000\r\n" + ERROR)
    c.transact(b'AT+PING=""\r\n', b"ERR CODE:0x01070000\r\n" + ERROR)
    c.transact(b'AT+PING="127.0.0.1",1\r\n', b"ERR CODE:0x01060102\r\n" + ERROR)
    c.transact(b'AT+PING="%s"\r\n' % (b"a" * 60 + b".test"), b"ERR CODE:0x01040000\r\n" + ERROR)
    c.transact(b"AT+PING?\r\n", ERROR)


# ---- names through the CIPDNS servers -------------------------------------------


@pytest.fixture
def dnsmasq(tmp_path):
    if not os.access(netpeer.DNSMASQ, os.X_OK):
        pytest.skip("dnsmasq not installed")
    server = netpeer.Dnsmasq(tmp_path, [
        "--host-record=pinghost.test,127.0.0.1",
        "--host-record=loop6.test,::1",
        # IPv4 first: the AAAA leads nowhere, the A answers
        "--host-record=dual.test,127.0.0.9,fd00::77",
        "--host-record=%s,127.0.0.1" % ("b" * 59 + ".test")], probe="pinghost.test")
    yield server.port
    server.stop()


def test_ping_names(espatd, dnsmasq, frag):
    c = espatd("--dns-port", str(dnsmasq), *LOOPBACK_ONLY, mode=frag).client
    c.echo_off()
    c.transact(JOIN, JOINED)
    c.transact(b'AT+CIPDNS=1,"127.0.0.1"\r\n', OK)
    ping_ok(c, b"pinghost.test")
    ping_ok(c, b"PINGHOST.test")
    ping_ok(c, b"b" * 59 + b".test")      # 64 bytes, the longest name
    ping_ok(c, b"dual.test")
    # no such name: +PING:TIMEOUT at once (a DNS failure, §2.31)
    t0 = time.monotonic()
    c.transact(b'AT+PING="nx.test"\r\n', TIMEOUT)
    assert time.monotonic() - t0 < 2 * SCALE
    # an IPv6-only name: not without AT+CIPV6=1
    c.transact(b'AT+PING="loop6.test"\r\n', TIMEOUT)
    c.transact(b"AT+CIPV6=1\r\n", OK)
    ping_ok(c, b"loop6.test")
    ping_ok(c, b"dual.test")              # still the IPv4 address first
    ping_ok(c, b"pinghost.test")


# ---- busy and the egress policy ----------------------------------------------------


def test_ping_refused_by_policy_is_a_timeout_and_busy(espatd):
    """--allow that does not cover the target: as an unreachable host, a
    timeout after the module's wait; the command is busy meanwhile (§1.9);
    AT+RST typed then restarts without a late result."""
    d = espatd("--allow", "127.0.0.2", "--allow", "[::1]:80", boot_ms=100)
    c = d.client
    c.echo_off()
    c.transact(b"AT+SYSSTORE=0\r\n", OK)
    c.transact(JOIN, JOINED)
    c.transact(b"AT+CIPV6=1\r\n", OK)
    ping_ok(c, b"127.0.0.2")              # covered by a rule
    ping_ok(c, b"::1")                    # a rule with ports still covers the host
    t0 = time.monotonic()
    c.write(b'AT+PING="127.0.0.1"\r\n')
    time.sleep(0.1)
    c.write(b"AT\r\n")
    c.expect(b"\r\nbusy p...\r\n", quiet=0)
    c.expect(TIMEOUT, timeout=3 * SCALE)
    took = time.monotonic() - t0
    assert PING_TIMEOUT_S * 0.9 <= took <= (PING_TIMEOUT_S + 1.0) * SCALE, took
    assert "refused by the egress policy" in d.log()
    c.write(b'AT+PING="127.0.0.1"\r\n')
    time.sleep(0.1)
    c.write(b"AT+RST\r\n")
    c.expect(b"\r\nWill force to restart!!!\r\n\r\nready\r\n", timeout=3 * SCALE,
             quiet=1.5 * SCALE)


# ---- namespaces: no answer, and the three kinds of socket -----------------------------


def run(*argv):
    subprocess.run(argv, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)


@pytest.fixture
def lonely_netns():
    """A namespace whose default route leads onto a link where nobody
    answers: veth0 (10.78.0.1/24, default route) is paired with veth1 in the
    same namespace, up but without an address, so ARP goes unanswered."""
    if os.geteuid() != 0 or not os.access(IP, os.X_OK):
        pytest.skip("needs root and iproute2 for a network namespace")
    name = "espatd-ping-%s" % uuid.uuid4().hex[:8]
    try:
        run(IP, "netns", "add", name)
    except subprocess.CalledProcessError as e:
        pytest.skip("cannot create a network namespace: %s" % e.stderr.decode().strip())
    try:
        run(IP, "-n", name, "link", "set", "lo", "up")
        run(IP, "-n", name, "link", "add", "veth0", "type", "veth", "peer", "name", "veth1")
        run(IP, "-n", name, "addr", "add", "10.78.0.1/24", "dev", "veth0")
        run(IP, "-n", name, "link", "set", "veth0", "up")
        run(IP, "-n", name, "link", "set", "veth1", "up")
        run(IP, "-n", name, "route", "add", "default", "dev", "veth0")
        yield name
    finally:
        subprocess.run([IP, "netns", "delete", name], stderr=subprocess.DEVNULL)


class WrappedDaemon(espat.Daemon):
    """espatd started through a wrapper that execs it in place (setpriv)."""

    def __init__(self, *args, wrapper=(), **kw):
        super().__init__(*args, **kw)
        self.wrapper = list(wrapper)

    def argv(self, extra=None):
        argv = super().argv(extra)
        # before ESPATD_WRAPPER's part too: valgrind must run espatd itself
        i = argv.index(espat.espatd_bin()) - len(espat.wrapper_argv(self.workdir))
        return argv[:i] + self.wrapper + argv[i:]


@pytest.fixture
def wrapped(tmp_path, request):
    """Factory for daemons run through a wrapper; stopped (exit 0, clean
    stderr, silent line) at the end like the espatd fixture's."""
    made = []

    def factory(*extra, wrapper=(), netns=None):
        d = WrappedDaemon(tmp_path / ("w%d" % len(made)), list(extra), state=False,
                          netns=netns, wrapper=wrapper)
        made.append(d)
        d.start()
        return d

    yield factory
    espat.stop_all(request, made)


#: run espatd without CAP_NET_RAW (so no raw ICMP socket), even as root
NO_RAW = (SETPRIV, "--bounding-set=-net_raw", "--inh-caps=-net_raw")


def need_setpriv():
    if not os.access(SETPRIV, os.X_OK):
        pytest.skip("needs setpriv (util-linux) to drop CAP_NET_RAW")


def test_ping_unanswered_address_times_out(espatd, lonely_netns):
    """An address on the link that nobody answers: +PING:TIMEOUT after the
    module's wait; loopback still answers in the same namespace. (A raw
    socket here: the test runs as root.)"""
    d = espatd(connect=False, netns=lonely_netns)
    c = d.connect()
    c.echo_off()
    c.transact(JOIN, JOINED)
    ping_ok(c, b"127.0.0.1")
    ping_timeout(c, b"10.78.0.2")
    ping_timeout(c, b"192.0.2.1")     # through the default route, same silence
    ping_ok(c, b"127.0.0.1")
    c.transact(b"AT+CIPV6=1\r\n", OK)
    ping_ok(c, b"::1")


def test_ping_unprivileged_icmp_socket(wrapped, lonely_netns):
    """No CAP_NET_RAW, but ping_group_range covers the process's group (set
    in the test's namespace only): the unprivileged ICMP socket works, for
    IPv4 and IPv6."""
    need_setpriv()
    run(IP, "netns", "exec", lonely_netns, SYSCTL, "-q", "-w",
        "net.ipv4.ping_group_range=0 2147483647")
    d = wrapped(wrapper=NO_RAW, netns=lonely_netns)
    c = d.client
    c.echo_off()
    c.transact(JOIN, JOINED)
    ping_ok(c, b"127.0.0.1")
    ping_timeout(c, b"10.78.0.2")
    c.transact(b"AT+CIPV6=1\r\n", OK)
    ping_ok(c, b"::1")
    assert "may not send ICMP" not in d.log()


def test_ping_without_permission_is_a_timeout(wrapped, lonely_netns):
    """Neither an unprivileged ICMP socket (ping_group_range "1 0", a new
    namespace's default) nor CAP_NET_RAW: AT+PING answers as a timeout, and
    the log says why and how to grant the right."""
    need_setpriv()
    run(IP, "netns", "exec", lonely_netns, SYSCTL, "-q", "-w",
        "net.ipv4.ping_group_range=1 0")
    d = wrapped(wrapper=NO_RAW, netns=lonely_netns)
    c = d.client
    c.echo_off()
    c.transact(JOIN, JOINED)
    ping_timeout(c, b"127.0.0.1")
    c.transact(b"AT+CIPV6=1\r\n", OK)
    ping_timeout(c, b"::1")
    log = d.log()
    assert "may not send ICMP" in log, log
    assert "ping_group_range" in log and "setcap cap_net_raw+ep" in log, log
