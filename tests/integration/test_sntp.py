"""SNTP (protocol.md §2.21-§2.23): AT+CIPSNTPCFG, AT+CIPSNTPTIME,
AT+CIPSNTPINTV and +TIME_UPDATED, against real time servers on loopback.

- chrony (Debian's chronyd, started here with -x so it never touches the
  clock, serving on 127.0.0.1:<high port>) for a real NTP implementation;
- a tiny SNTP server in this file whose clock runs a year (or two) ahead of
  the host's, to see that the device time follows the server, not the host.

espatd reaches them through --ntp-port. Every time zone example of the seed
reference is checked, both in the query and in AT+CIPSNTPTIME?. SNTP with the
module's public default servers is only ever configured before a station
address exists (so nothing is resolved or sent), and every daemon here runs
with an --allow rule limited to loopback.
"""

import calendar
import os
import pwd
import re
import shutil
import socket
import struct
import subprocess
import threading
import time

import pytest

import netpeer
from espat import SCALE

OK = b"\r\nOK\r\n"
ERROR = b"\r\nERROR\r\n"
JOIN = b'AT+CWJAP="lab","secret123"\r\n'
JOINED = b"WIFI CONNECTED\r\nWIFI GOT IP\r\n\r\nOK\r\n"
UPDATED = b"+TIME_UPDATED\r\n"
DEFAULTS = b'"cn.ntp.org.cn","ntp.sjtu.edu.cn","us.pool.ntp.org"'
LOOPBACK_ONLY = ("--allow", "127.0.0.0/8", "--allow", "::1")
YEAR = 365 * 86400
NTP_DELTA = 2208988800
CHRONYD = shutil.which("chronyd") or "/usr/sbin/chronyd"
TIME_RE = re.compile(rb"\+CIPSNTPTIME:(\w{3} \w{3} [ \d]\d \d\d:\d\d:\d\d \d{4})\r\nOK\r\n")


# ---- helpers -------------------------------------------------------------------------


def device_asctime(c):
    """AT+CIPSNTPTIME? -> (the text, its Unix seconds read as UTC)."""
    c.assert_nothing_pending(b"AT+CIPSNTPTIME?")
    c.write(b"AT+CIPSNTPTIME?\r\n")
    out = c.read_result()
    m = TIME_RE.fullmatch(out)
    assert m, "AT+CIPSNTPTIME? answered %r" % out
    c.assert_quiet()
    text = m.group(1).decode()
    return text, calendar.timegm(time.strptime(text, "%a %b %d %H:%M:%S %Y"))


def assert_asctime_near(c, expected, slack=2):
    """AT+CIPSNTPTIME? shows `expected` (Unix seconds of the local time)
    within `slack` seconds, in asctime's layout."""
    text, t = device_asctime(c)
    # the text is the device time cut to whole seconds (up to 1 s less), and
    # the offset SNTP learned may be off by the round trip's asymmetry (ms on
    # loopback, more under the sanitizers): 1.5 s below is still "the same"
    assert expected - 1.5 <= t <= expected + slack, (text, time.asctime(time.gmtime(expected)))
    # byte for byte what C's asctime() prints (Python's uses the same layout)
    assert text == time.asctime(time.gmtime(t)), text


def systimestamp(c):
    c.assert_nothing_pending(b"AT+SYSTIMESTAMP?")
    c.write(b"AT+SYSTIMESTAMP?\r\n")
    out = c.read_result()
    m = re.fullmatch(rb"\+SYSTIMESTAMP:(\d+)\r\n\r\nOK\r\n", out)
    assert m, out
    c.assert_quiet()
    return int(m.group(1))


def assert_near(value, expected, slack=2):
    assert expected - slack <= value <= expected + slack, (value, expected)


def sync(c, cmd, timeout=5):
    """An AT+CIPSNTPCFG that starts SNTP: OK, then +TIME_UPDATED once the
    server has answered (at once on loopback)."""
    c.transact(cmd, OK + UPDATED, timeout=timeout * SCALE)


class FakeSntp:
    """An SNTP server on 127.0.0.1 (or another loopback address) whose clock
    is the host's plus `offset` seconds (changeable while it runs); stratum 0
    makes it a kiss-o'-death. Records the time of each request."""

    def __init__(self, offset=0.0, stratum=1, host="127.0.0.1", port=0):
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        self.sock = socket.socket(family, socket.SOCK_DGRAM)
        self.sock.bind((host, port))
        self.sock.settimeout(0.05)
        self.port = self.sock.getsockname()[1]
        self.offset = offset
        self.stratum = stratum
        self.requests = []
        self.stopping = False
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    @staticmethod
    def _ts(t):
        sec = int(t)
        frac = int((t - sec) * (1 << 32)) & 0xffffffff
        return struct.pack(">II", (sec + NTP_DELTA) & 0xffffffff, frac)

    def _serve(self):
        while not self.stopping:
            try:
                data, peer = self.sock.recvfrom(512)
            except socket.timeout:
                continue
            except OSError:
                return
            if len(data) < 48 or data[0] & 7 != 3:
                continue
            self.requests.append(time.monotonic())
            rx = self._ts(time.time() + self.offset)
            reply = bytes([0 << 6 | 4 << 3 | 4, self.stratum, 6, 0xec]) + bytes(8) + b"LOCL"
            reply += rx + data[40:48] + rx + self._ts(time.time() + self.offset)
            self.sock.sendto(reply, peer)

    def close(self):
        self.stopping = True
        self.thread.join()
        self.sock.close()


@pytest.fixture
def fake_ntp():
    servers = []

    def make(offset=0.0, stratum=1, host="127.0.0.1", port=0):
        s = FakeSntp(offset, stratum, host, port)
        servers.append(s)
        return s

    yield make
    for s in servers:
        s.close()


def free_udp_port():
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def ntp_answers(port):
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.settimeout(0.2)
    try:
        req = bytearray(48)
        req[0] = 0x23
        req[40:48] = FakeSntp._ts(time.time())
        s.sendto(bytes(req), ("127.0.0.1", port))
        data = s.recv(512)
        return len(data) >= 48 and data[0] & 7 == 4 and data[1] != 0 and data[0] >> 6 != 3
    except OSError:
        return False
    finally:
        s.close()


@pytest.fixture
def chrony(tmp_path):
    """chronyd serving NTP on 127.0.0.1:<port>, run by the test (not the
    system service), with -x: it never touches the system clock."""
    if not os.access(CHRONYD, os.X_OK):
        pytest.skip("chrony not installed (scripts/deps.sh)")
    d = tmp_path / "chrony"
    d.mkdir()
    port = free_udp_port()
    conf = d / "chrony.conf"
    conf.write_text("\n".join([
        "port %d" % port,
        "bindaddress 127.0.0.1",
        "allow 127.0.0.1",
        "local stratum 1",   # serve the local clock, no upstream sources
        "cmdport 0",
        "pidfile %s" % (d / "chronyd.pid"),
        "driftfile %s" % (d / "drift"),
    ]) + "\n")
    user = pwd.getpwuid(os.geteuid()).pw_name
    log_path = d / "chronyd.log"
    log = open(log_path, "wb")
    proc = subprocess.Popen([CHRONYD, "-x", "-d", "-u", user, "-f", str(conf)],
                            stdin=subprocess.DEVNULL, stdout=log, stderr=log)
    log.close()
    deadline = time.monotonic() + 5 * SCALE
    while not ntp_answers(port):
        if proc.poll() is not None or time.monotonic() > deadline:
            if proc.poll() is None:
                proc.kill()
            proc.wait()
            text = log_path.read_text()
            if proc.returncode and "superuser" in text.lower():
                pytest.skip("chronyd needs root here: %s" % text.strip())
            raise AssertionError("chronyd did not start:\n%s" % text)
        time.sleep(0.05)
    yield port
    proc.terminate()
    try:
        proc.wait(timeout=5)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


@pytest.fixture
def dnsmasq(tmp_path):
    if not os.access(netpeer.DNSMASQ, os.X_OK):
        pytest.skip("dnsmasq not installed")
    server = netpeer.Dnsmasq(tmp_path, ["--host-record=time.test,127.0.0.1"],
                             probe="time.test")
    yield server.port
    server.stop()


# ---- defaults, forms, parameters -----------------------------------------------------


def test_defaults_and_sntp_off(espatd, fake_ntp):
    """SNTP is off at boot: the query shows 0 and the time zone; nothing is
    sent even with a station address; the clock is the unsynced 1970 one."""
    srv = fake_ntp()
    c = espatd("--ntp-port", str(srv.port), *LOOPBACK_ONLY).client
    c.echo_off()
    c.transact(b"AT+CIPSNTPCFG?\r\n", b"+CIPSNTPCFG:0,0\r\n" + OK)
    c.transact(b"AT+CIPSNTPINTV?\r\n", b"+CIPSNTPINTV:3600\r\n" + OK)
    text, t = device_asctime(c)
    assert 0 <= t < 30 and text.startswith("Thu Jan  1 00:00:"), text
    c.transact(JOIN, JOINED)
    assert c.read_for(1.2 * SCALE) == b""
    assert srv.requests == []
    c.transact(b"AT+CIPSNTPCFG?\r\n", b"+CIPSNTPCFG:0,0\r\n" + OK)


def test_forms_and_bad_parameters(espatd):
    c = espatd(*LOOPBACK_ONLY).client
    c.echo_off()
    # only the documented forms (§1.12)
    c.check_all([b"AT+CIPSNTPCFG=?\r\n", b"AT+CIPSNTPCFG\r\n", b"AT+CIPSNTPTIME\r\n",
                b"AT+CIPSNTPTIME=1\r\n", b"AT+CIPSNTPTIME=?\r\n", b"AT+CIPSNTPINTV\r\n",
                b"AT+CIPSNTPINTV=?\r\n"])
    c.transact(b"AT+SYSLOG=1\r\n", OK)
    for cmd, code in [
            (b"AT+CIPSNTPCFG=\r\n", b"01080000"),
            (b"AT+CIPSNTPCFG=2\r\n", b"01070000"),
            (b"AT+CIPSNTPCFG=-1,8\r\n", b"01070000"),
            (b"AT+CIPSNTPCFG=1,1500\r\n", b"01070001"),     # hours beyond 14
            (b"AT+CIPSNTPCFG=1,-1300\r\n", b"01070001"),    # hours beyond -12
            (b"AT+CIPSNTPCFG=1,860\r\n", b"01070001"),      # minutes beyond 59
            (b"AT+CIPSNTPCFG=1,+800\r\n", b"01080001"),     # no '+' in integers (§1.4)
            (b'AT+CIPSNTPCFG=1,"8"\r\n', b"01080001"),
            (b"AT+CIPSNTPCFG=1,8,cn.ntp.org.cn\r\n", b"01080002"),
            (b'AT+CIPSNTPCFG=1,8,"%s"\r\n' % (b"a" * 65), b"01040002"),
            (b'AT+CIPSNTPCFG=1,8,"a","b","c","d"\r\n', b"01060506"),
            (b"AT+CIPSNTPINTV=14\r\n", b"01070000"),
            (b"AT+CIPSNTPINTV=4294968\r\n", b"01070000"),
            (b"AT+CIPSNTPINTV=0\r\n", b"01070000"),
            (b"AT+CIPSNTPINTV=\r\n", b"01080000"),
            (b"AT+CIPSNTPINTV=60,1\r\n", b"01060102")]:
        c.transact(cmd, b"ERR CODE:0x" + code + b"\r\n" + ERROR)
    # nothing changed
    c.transact(b"AT+CIPSNTPCFG?\r\n", b"+CIPSNTPCFG:0,0\r\n" + OK)
    c.transact(b"AT+CIPSNTPINTV?\r\n", b"+CIPSNTPINTV:3600\r\n" + OK)
    c.transact(b"AT+CIPSNTPCFG?=\r\n", b"ERR CODE:0x01090000\r\n" + ERROR)
    # the limits
    c.transact(b"AT+CIPSNTPINTV=15\r\n", OK)
    c.transact(b"AT+CIPSNTPINTV?\r\n", b"+CIPSNTPINTV:15\r\n" + OK)
    c.transact(b"AT+CIPSNTPINTV=4294967\r\n", OK)
    c.transact(b"AT+CIPSNTPINTV?\r\n", b"+CIPSNTPINTV:4294967\r\n" + OK)
    c.transact(b"AT+CIPSNTPCFG=1,-12\r\n", OK)
    c.transact(b"AT+CIPSNTPCFG?\r\n", b"+CIPSNTPCFG:1,-12," + DEFAULTS + b"\r\n" + OK)
    c.transact(b"AT+CIPSNTPCFG=1,14\r\n", OK)
    c.transact(b"AT+CIPSNTPCFG?\r\n", b"+CIPSNTPCFG:1,14," + DEFAULTS + b"\r\n" + OK)
    c.transact(b"AT+CIPSNTPCFG=1,1459\r\n", OK)
    c.transact(b"AT+CIPSNTPCFG?\r\n", b"+CIPSNTPCFG:1,14," + DEFAULTS + b"\r\n" + OK)
    c.transact(b"AT+CIPSNTPCFG=1,-1259\r\n", OK)
    c.transact(b"AT+CIPSNTPCFG?\r\n", b"+CIPSNTPCFG:1,-12," + DEFAULTS + b"\r\n" + OK)
    # omitted time zone: kept; empty or omitted servers are no servers
    c.transact(b'AT+CIPSNTPCFG=1,,"a.test"\r\n', OK)
    c.transact(b"AT+CIPSNTPCFG?\r\n", b'+CIPSNTPCFG:1,-12,"a.test"\r\n' + OK)
    c.transact(b'AT+CIPSNTPCFG=1,3,,"b.test"\r\n', OK)
    c.transact(b"AT+CIPSNTPCFG?\r\n", b'+CIPSNTPCFG:1,3,"b.test"\r\n' + OK)
    c.transact(b'AT+CIPSNTPCFG=1,3,"","b.test","c.test"\r\n', OK)
    c.transact(b"AT+CIPSNTPCFG?\r\n", b'+CIPSNTPCFG:1,3,"b.test","c.test"\r\n' + OK)
    c.transact(b"AT+CIPSNTPCFG=1\r\n", OK)
    c.transact(b"AT+CIPSNTPCFG?\r\n", b"+CIPSNTPCFG:1,3," + DEFAULTS + b"\r\n" + OK)
    # off: servers not shown, the zone stays (and may change)
    c.transact(b"AT+CIPSNTPCFG=0\r\n", OK)
    c.transact(b"AT+CIPSNTPCFG?\r\n", b"+CIPSNTPCFG:0,3\r\n" + OK)
    c.transact(b"AT+CIPSNTPCFG=0,-500\r\n", OK)
    c.transact(b"AT+CIPSNTPCFG?\r\n", b"+CIPSNTPCFG:0,-5\r\n" + OK)
    c.transact(b"at+cipsntpcfg?\r\n", b"+CIPSNTPCFG:0,-5\r\n" + OK)


def test_seed_timezone_examples(espatd, frag):
    """Every <timezone> example of the seed reference (and the English
    reference's =1,530): what the query prints, and the local time that
    AT+CIPSNTPTIME? shows for a known device time (set with
    AT+SYSTIMESTAMP, the same clock SNTP sets). No station address: the
    public servers named here are never resolved nor contacted."""
    c = espatd(*LOOPBACK_ONLY, mode=frag).client
    c.echo_off()
    # the seed's AT+CIPSNTPTIME? example: UTC+8 shows Mon Dec 12 02:33:32 2016
    utc = calendar.timegm((2016, 12, 12, 2, 33, 32)) - 8 * 3600
    cn = b'"cn.ntp.org.cn","ntp.sjtu.edu.cn"'
    us = b'"0.pool.ntp.org","time.google.com"'
    cases = [
        (b"AT+CIPSNTPCFG=1,8," + cn, b"+CIPSNTPCFG:1,8," + cn, 8 * 3600),
        (b"AT+CIPSNTPCFG=1,800," + cn, b"+CIPSNTPCFG:1,8," + cn, 8 * 3600),
        (b"AT+CIPSNTPCFG=1,-5," + us, b"+CIPSNTPCFG:1,-5," + us, -5 * 3600),
        (b"AT+CIPSNTPCFG=1,-500," + us, b"+CIPSNTPCFG:1,-5," + us, -5 * 3600),
        (b"AT+CIPSNTPCFG=1,1245," + us, b"+CIPSNTPCFG:1,12," + us, 12 * 3600 + 45 * 60),
        # "ESP-AT ignores the leading zero ... UTC+00:15 ... 0 in the response"
        (b"AT+CIPSNTPCFG=1,015", b"+CIPSNTPCFG:1,0," + DEFAULTS, 15 * 60),
        (b"AT+CIPSNTPCFG=1,530", b"+CIPSNTPCFG:1,5," + DEFAULTS, 5 * 3600 + 30 * 60),
    ]
    for cmd, query, offset in cases:
        c.transact(b"AT+SYSTIMESTAMP=%d\r\n" % utc, OK)
        c.transact(cmd + b"\r\n", OK)
        c.transact(b"AT+CIPSNTPCFG?\r\n", query + b"\r\n" + OK)
        assert_asctime_near(c, utc + offset)
        assert_near(systimestamp(c), utc)   # SYSTIMESTAMP stays UTC
    # the exact text of the seed example
    c.transact(b"AT+SYSTIMESTAMP=%d\r\n" % utc, OK)
    c.transact(b"AT+CIPSNTPCFG=1,8," + cn + b"\r\n", OK)
    c.write(b"AT+CIPSNTPTIME?\r\n")
    c.expect_any([b"+CIPSNTPTIME:Mon Dec 12 02:33:%d 2016\r\nOK\r\n" % s for s in (32, 33, 34)])
    # English reference: one instant at UTC+8 and at UTC+5:30
    utc = calendar.timegm((2021, 10, 19, 9, 47, 56))
    c.transact(b"AT+SYSTIMESTAMP=%d\r\n" % utc, OK)
    c.transact(b"AT+CIPSNTPCFG=1,8," + cn + b"\r\n", OK)
    c.write(b"AT+CIPSNTPTIME?\r\n")
    c.expect_any([b"+CIPSNTPTIME:Tue Oct 19 17:47:%d 2021\r\nOK\r\n" % s for s in (56, 57, 58)])
    c.transact(b"AT+CIPSNTPCFG=1,530\r\n", OK)
    c.write(b"AT+CIPSNTPTIME?\r\n")
    c.expect_any([b"+CIPSNTPTIME:Tue Oct 19 15:17:%d 2021\r\nOK\r\n" % s for s in (56, 57, 58)])
    # nothing asynchronous: no station, so no sync was ever attempted
    assert c.read_for(0.3) == b""


def test_unsynced_time_ignores_the_zone(espatd):
    """Before the clock is set, AT+CIPSNTPTIME? shows the seconds since boot
    in 1970 whatever the zone (as a module: "Thu Jan  1 00:02:08 1970" with
    zone 8 set, esp-at#315)."""
    c = espatd(*LOOPBACK_ONLY).client
    c.echo_off()
    c.transact(b"AT+CIPSNTPCFG=1,8\r\n", OK)
    text, t = device_asctime(c)
    assert 0 <= t < 30 and text.startswith("Thu Jan  1 00:00:"), text
    assert systimestamp(c) < 30


# ---- real servers --------------------------------------------------------------------


def test_sync_with_chrony(espatd, chrony, frag):
    """chronyd on loopback serves the host's own time: the device time is the
    host's, shown in the configured zone."""
    d = espatd("--ntp-port", str(chrony), "--allow", "127.0.0.1", mode=frag)
    c = d.client
    c.echo_off()
    c.transact(JOIN, JOINED)
    sync(c, b'AT+CIPSNTPCFG=1,0,"127.0.0.1"\r\n')
    c.transact(b"AT+CIPSNTPCFG?\r\n", b'+CIPSNTPCFG:1,0,"127.0.0.1"\r\n' + OK)
    assert_near(systimestamp(c), time.time())
    assert_asctime_near(c, time.time())
    # another zone: a new sync, and the local time moves with the zone
    sync(c, b'AT+CIPSNTPCFG=1,-500,"127.0.0.1"\r\n')
    assert_asctime_near(c, time.time() - 5 * 3600)
    sync(c, b'AT+CIPSNTPCFG=1,1245,"127.0.0.1"\r\n')
    assert_asctime_near(c, time.time() + 12 * 3600 + 45 * 60)
    assert_near(systimestamp(c), time.time())
    assert "sntp: time from 127.0.0.1" in d.log()


def test_time_follows_the_server_not_the_host(espatd, fake_ntp, dnsmasq):
    """A server a year ahead of the host: AT+SYSTIMESTAMP? and
    AT+CIPSNTPTIME? follow it. The first server refuses (nothing listens on
    127.0.0.2), the second is a name served by the test's DNS server. The
    system clock is untouched."""
    srv = fake_ntp(offset=YEAR)
    d = espatd("--ntp-port", str(srv.port), "--dns-port", str(dnsmasq), *LOOPBACK_ONLY,
               boot_ms=100)
    c = d.client
    c.echo_off()
    c.transact(b"AT+SYSSTORE=0\r\n", OK)
    c.transact(JOIN, JOINED)
    c.transact(b'AT+CIPDNS=1,"127.0.0.1"\r\n', OK)
    host_before = time.time()
    sync(c, b'AT+CIPSNTPCFG=1,1245,"127.0.0.2","time.test"\r\n')
    assert len(srv.requests) == 1
    assert abs(time.time() - host_before) < 10 * SCALE   # the host clock did not jump
    c.transact(b'AT+CIPSNTPCFG?\r\n', b'+CIPSNTPCFG:1,12,"127.0.0.2","time.test"\r\n' + OK)
    assert_near(systimestamp(c), time.time() + YEAR)
    assert_asctime_near(c, time.time() + YEAR + 12 * 3600 + 45 * 60)
    # SNTP off: the learned offset stays, no more requests
    c.transact(b"AT+CIPSNTPCFG=0\r\n", OK)
    c.transact(b"AT+CIPSNTPCFG?\r\n", b"+CIPSNTPCFG:0,12\r\n" + OK)
    assert_near(systimestamp(c), time.time() + YEAR)
    # on again: syncs again at once
    sync(c, b'AT+CIPSNTPCFG=1,0,"time.test"\r\n')
    assert len(srv.requests) == 2
    assert_asctime_near(c, time.time() + YEAR)
    # a reset turns SNTP off (never saved, §6.4): no late +TIME_UPDATED
    c.write(b"AT+RST\r\n")
    c.expect(OK + b"\r\nready\r\n", timeout=3 * SCALE, quiet=1.2 * SCALE)
    c.transact(b"ATE0\r\n", b"ATE0\r\n" + OK)  # echo is on again after a boot
    c.transact(b"AT+CIPSNTPCFG?\r\n", b"+CIPSNTPCFG:0,0\r\n" + OK)
    assert len(srv.requests) == 2


def test_resync_interval(espatd, fake_ntp):
    """AT+CIPSNTPINTV: after a sync the next one comes an interval later
    (counted from the AT+CIPSNTPINTV that set it), with +TIME_UPDATED again,
    and the device time follows the server's new time."""
    srv = fake_ntp(offset=YEAR)
    c = espatd("--ntp-port", str(srv.port), *LOOPBACK_ONLY).client
    c.echo_off()
    c.transact(JOIN, JOINED)
    sync(c, b'AT+CIPSNTPCFG=1,0,"127.0.0.1"\r\n')
    assert_near(systimestamp(c), time.time() + YEAR)
    assert len(srv.requests) == 1
    # 3600 s by default: nothing soon
    assert c.read_for(1.0) == b""
    srv.offset = 2 * YEAR
    c.transact(b"AT+CIPSNTPINTV=15\r\n", OK)
    t0 = time.monotonic()
    c.expect(UPDATED, timeout=20 * SCALE)
    took = time.monotonic() - t0
    assert 14.5 <= took <= 16.5 * SCALE, took
    assert len(srv.requests) == 2
    assert_near(systimestamp(c), time.time() + 2 * YEAR)
    c.transact(b"AT+CIPSNTPINTV?\r\n", b"+CIPSNTPINTV:15\r\n" + OK)


def test_sync_waits_for_the_network(espatd, fake_ntp):
    """Configured before the station has an address: no request until it
    has one, then the sync and +TIME_UPDATED follow the join."""
    srv = fake_ntp(offset=YEAR)
    c = espatd("--ntp-port", str(srv.port), *LOOPBACK_ONLY).client
    c.echo_off()
    c.transact(b'AT+CIPSNTPCFG=1,8,"127.0.0.1"\r\n', OK)
    assert c.read_for(1.5 * SCALE) == b""
    assert srv.requests == []
    c.write(JOIN)
    got = c.read_until(UPDATED, timeout=5 * SCALE)
    if not got.startswith(JOINED):
        got += c.read_result()
    assert got.replace(UPDATED, b"", 1) == JOINED, got
    c.assert_quiet()
    assert len(srv.requests) == 1
    assert_asctime_near(c, time.time() + YEAR + 8 * 3600)


def test_egress_policy_blocks_sntp(espatd, fake_ntp):
    """A server outside the --allow rules is never contacted: no sync."""
    srv = fake_ntp(offset=YEAR)
    d = espatd("--ntp-port", str(srv.port), "--allow", "127.0.0.1:9")
    c = d.client
    c.echo_off()
    c.transact(JOIN, JOINED)
    c.transact(b'AT+CIPSNTPCFG=1,0,"127.0.0.1"\r\n', OK)
    assert c.read_for(1.5 * SCALE) == b""
    assert srv.requests == []
    assert "refused by the egress policy" in d.log()
    assert systimestamp(c) < 60


def test_unserving_server_is_skipped(espatd, fake_ntp):
    """A kiss-o'-death (stratum 0) from the first server: the second one
    gives the time."""
    kod = fake_ntp(offset=-YEAR, stratum=0)
    good = fake_ntp(offset=YEAR, host="127.0.0.3", port=kod.port)
    c = espatd("--ntp-port", str(kod.port), *LOOPBACK_ONLY).client
    c.echo_off()
    c.transact(JOIN, JOINED)
    sync(c, b'AT+CIPSNTPCFG=1,0,"127.0.0.1","127.0.0.3"\r\n')
    assert len(kod.requests) == 1 and len(good.requests) == 1
    assert_near(systimestamp(c), time.time() + YEAR)


def test_ipv6_server(espatd, fake_ntp):
    """A server at an IPv6 address is used only with AT+CIPV6=1 (§2.1);
    before that it cannot be reached and no request goes out."""
    v4 = fake_ntp(offset=YEAR)
    srv = fake_ntp(offset=2 * YEAR, host="::1", port=v4.port)
    c = espatd("--ntp-port", str(v4.port), *LOOPBACK_ONLY).client
    c.echo_off()
    c.transact(JOIN, JOINED)
    c.transact(b'AT+CIPSNTPCFG=1,0,"::1"\r\n', OK)
    assert c.read_for(1.0 * SCALE) == b""
    assert srv.requests == []
    c.transact(b"AT+CIPV6=1\r\n", OK)
    sync(c, b'AT+CIPSNTPCFG=1,0,"::1"\r\n')
    assert len(srv.requests) == 1 and v4.requests == []
    assert_near(systimestamp(c), time.time() + 2 * YEAR)
