"""TCP/IP configuration and status commands: exact transcripts (protocol.md
§2.1-§2.4, §2.11, §2.14-§2.16, §2.25, §2.32, §2.33, §6, §9).

AT+CIPSTATUS, AT+CIPSTATE?, AT+CIFSR, AT+CIPMUX, AT+CIPV6, AT+CIPDINFO,
AT+CIPDOMAIN (against a dnsmasq started here), AT+CIPDNS, AT+CIPTCPOPT,
AT+CIPCONNPERSIST, AT+CIPSENDLCFG.
"""

import os
import re
import socket
import subprocess
import time

import pytest

import netpeer
from espat import SCALE, host_default_route, host_ipv4

OK = b"\r\nOK\r\n"
ERROR = b"\r\nERROR\r\n"
JOINED = b"WIFI CONNECTED\r\nWIFI GOT IP\r\n\r\nOK\r\n"
JOIN = b'AT+CWJAP="lab","secret123"\r\n'
DEFAULT_DNS = b'"208.67.222.222","114.114.114.114","8.8.8.8"'
STA_MAC = b"1a:fe:35:98:d3:7b"
AP_MAC = b"1a:fe:35:98:d3:7c"
NAME64 = "a" * 59 + ".test"      # 64 bytes: the longest <domain name>
NAME65 = "a" * 60 + ".test"


def q(cmd):
    return b"AT+" + cmd + b"\r\n"


def restart(d):
    c = d.restart()
    c.echo_off()
    return c


# ---- AT+CIPSTATUS / AT+CIPSTATE? --------------------------------------------------


def test_status_at_boot(espatd, frag):
    c = espatd(mode=frag).client
    # echo on after boot (§1.6): the command line comes back first
    c.transact(b"AT+CIPSTATUS\r\n", b"AT+CIPSTATUS\r\nSTATUS:1\r\n\r\nOK\r\n")
    c.transact(b"AT+CIPSTATE?\r\n", b"AT+CIPSTATE?\r\n\r\nOK\r\n")
    c.transact(b"ATE0\r\n", b"ATE0\r\n\r\nOK\r\n")
    c.transact(b"AT+CIPSTATUS\r\n", b"STATUS:1\r\n\r\nOK\r\n")
    # no connection: just OK (§2.3)
    c.transact(b"AT+CIPSTATE?\r\n", OK)
    c.transact(b"at+cipstatus\r\n", b"STATUS:1\r\n\r\nOK\r\n")


def test_status_stat_values(c):
    """<stat> 0..5 (§2.2)."""
    c.echo_off()
    srv = netpeer.TcpServer()
    try:
        for mode, stat in ((b"0", b"0"), (b"2", b"0"), (b"3", b"1"), (b"1", b"1")):
            c.transact(b"AT+CWMODE=" + mode + b"\r\n", OK)
            c.transact(b"AT+CIPSTATUS\r\n", b"STATUS:" + stat + b"\r\n\r\nOK\r\n")
        c.transact(JOIN, JOINED)
        c.transact(b"AT+CIPSTATUS\r\n", b"STATUS:2\r\n\r\nOK\r\n")
        c.transact(b'AT+CIPSTART="TCP","127.0.0.1",%d\r\n' % srv.port, b"CONNECT\r\n\r\nOK\r\n")
        conn = srv.accept()
        lport = conn.getpeername()[1]
        line = b'+CIPSTATUS:0,"TCP","127.0.0.1",%d,%d,0\r\n' % (srv.port, lport)
        c.transact(b"AT+CIPSTATUS\r\n", b"STATUS:3\r\n" + line + OK)
        c.transact(b"AT+CIPCLOSE\r\n", b"CLOSED\r\n\r\nOK\r\n")
        conn.close()
        c.transact(b"AT+CIPSTATUS\r\n", b"STATUS:4\r\n\r\nOK\r\n")
        c.transact(b"AT+CWQAP\r\n", b"WIFI DISCONNECT\r\n\r\nOK\r\n")
        c.transact(b"AT+CIPSTATUS\r\n", b"STATUS:5\r\n\r\nOK\r\n")
        # a SoftAP-only module has no station: 0 whatever happened before
        c.transact(b"AT+CWMODE=2\r\n", OK)
        c.transact(b"AT+CIPSTATUS\r\n", b"STATUS:0\r\n\r\nOK\r\n")
    finally:
        srv.close()


def test_status_while_auto_joining(espatd):
    """A saved join runs at power-up: connecting is <stat> 5."""
    d = espatd()
    c = d.client
    c.echo_off()
    c.transact(JOIN, JOINED)
    d.join_ms = int(1500 * SCALE)
    c = restart(d)
    c.transact(b"AT+CIPSTATUS\r\n", b"STATUS:5\r\n\r\nOK\r\n")
    c.expect(b"WIFI CONNECTED\r\nWIFI GOT IP\r\n", timeout=5 * SCALE)
    c.transact(b"AT+CIPSTATUS\r\n", b"STATUS:2\r\n\r\nOK\r\n")


def test_state_lists_links(c):
    c.echo_off()
    srv = netpeer.TcpServer()
    srv6 = netpeer.TcpServer(socket.AF_INET6, "::1")
    udp = netpeer.UdpPeer()
    conns = []
    try:
        c.transact(JOIN, JOINED)
        c.transact(b"AT+CIPMUX=1\r\n", OK)
        c.transact(b"AT+CIPV6=1\r\n", OK)
        c.transact(b'AT+CIPSTART=4,"TCP","127.0.0.1",%d\r\n' % srv.port, b"4,CONNECT\r\n\r\nOK\r\n")
        conns.append(srv.accept())
        c.transact(b'AT+CIPSTART=1,"UDP","127.0.0.1",%d,4567,0\r\n' % udp.port,
                   b"1,CONNECT\r\n\r\nOK\r\n")
        c.transact(b'AT+CIPSTART=2,"TCPv6","::1",%d\r\n' % srv6.port, b"2,CONNECT\r\n\r\nOK\r\n")
        conns.append(srv6.accept())
        p4 = conns[0].getpeername()[1]
        p6 = conns[1].getpeername()[1]
        # in link-ID order, link ID printed, tetype 0 = we are the client
        lines = [b'1,"UDP","127.0.0.1",%d,4567,0\r\n' % udp.port,
                 b'2,"TCPv6","::1",%d,%d,0\r\n' % (srv6.port, p6),
                 b'4,"TCP","127.0.0.1",%d,%d,0\r\n' % (srv.port, p4)]
        state = b"".join(b"+CIPSTATE:" + l for l in lines)
        status = b"".join(b"+CIPSTATUS:" + l for l in lines)
        c.transact(b"AT+CIPSTATE?\r\n", state + OK)
        c.transact(b"AT+CIPSTATUS\r\n", b"STATUS:3\r\n" + status + OK)
        # the peer of link 4 goes away: the link is no longer listed
        conns[0].close()
        c.expect(b"4,CLOSED\r\n")
        c.transact(b"AT+CIPSTATE?\r\n",
                   b'+CIPSTATE:1,"UDP","127.0.0.1",%d,4567,0\r\n' % udp.port +
                   b'+CIPSTATE:2,"TCPv6","::1",%d,%d,0\r\n' % (srv6.port, p6) + OK)
        c.transact(b"AT+CIPCLOSE=5\r\n", b"1,CLOSED\r\n2,CLOSED\r\n\r\nOK\r\n")
        c.transact(b"AT+CIPSTATE?\r\n", OK)
        c.transact(b"AT+CIPSTATUS\r\n", b"STATUS:4\r\n\r\nOK\r\n")
    finally:
        for s in conns + [srv, srv6, udp]:
            s.close()


def test_state_keeps_peer_closed_link_with_held_data(c):
    """Passive mode: a link closed by its peer is still a link while its data
    waits to be read (§2.28), so CIPSTATE/CIPSTATUS still list it."""
    c.echo_off()
    srv = netpeer.TcpServer()
    try:
        c.transact(JOIN, JOINED)
        c.transact(b"AT+CIPRECVMODE=1\r\n", OK)
        c.transact(b'AT+CIPSTART="TCP","127.0.0.1",%d\r\n' % srv.port, b"CONNECT\r\n\r\nOK\r\n")
        conn = srv.accept()
        lport = conn.getpeername()[1]
        conn.sendall(b"hello")
        conn.close()
        c.expect(b"\r\n+IPD,5\r\n")
        time.sleep(0.1 * SCALE)  # the peer's FIN arrives too
        line = b'0,"TCP","127.0.0.1",%d,%d,0\r\n' % (srv.port, lport)
        c.transact(b"AT+CIPSTATE?\r\n", b"+CIPSTATE:" + line + OK)
        c.transact(b"AT+CIPSTATUS\r\n", b"STATUS:3\r\n+CIPSTATUS:" + line + OK)
        c.write(b"AT+CIPRECVDATA=5\r\n")
        out = c.read_until(b"CLOSED\r\n")
        assert out.startswith(b"+CIPRECVDATA:5,hello"), out
        c.assert_quiet()
        c.transact(b"AT+CIPSTATE?\r\n", OK)
        c.transact(b"AT+CIPSTATUS\r\n", b"STATUS:4\r\n\r\nOK\r\n")
    finally:
        srv.close()


# ---- AT+CIFSR ------------------------------------------------------------------------


def host_ipv6(ifname):
    """(link-local list, other list) of ifname's IPv6 addresses, via `ip`."""
    try:
        out = subprocess.run(["ip", "-6", "-o", "addr", "show", "dev", ifname],
                             capture_output=True, text=True, timeout=5).stdout
    except (OSError, subprocess.SubprocessError):
        return None
    ll, gl = [], []
    for m in re.finditer(r"inet6 ([0-9a-f:]+)/\d+", out):
        a = socket.inet_ntop(socket.AF_INET6, socket.inet_pton(socket.AF_INET6, m.group(1)))
        if a == "::1":
            continue
        (ll if a.startswith("fe80:") else gl).append(a)
    return ll, gl


def test_cifsr_modes(espatd, frag):
    c = espatd(mode=frag).client
    c.echo_off()
    c.transact(b"AT+CWMODE=3\r\n", OK)
    c.transact(b'AT+CIPSTAMAC="%s"\r\n' % STA_MAC, OK)
    c.transact(b'AT+CIPAPMAC="%s"\r\n' % AP_MAC, OK)
    ap = b'+CIFSR:APIP,"192.168.4.1"\r\n+CIFSR:APMAC,"%s"\r\n' % AP_MAC
    sta = b'+CIFSR:STAIP,"0.0.0.0"\r\n+CIFSR:STAMAC,"%s"\r\n' % STA_MAC
    # SoftAP lines first, then station lines; each only in its mode (§2.15)
    c.transact(b"AT+CIFSR\r\n", ap + sta + OK)
    c.transact(b"AT+CWMODE=1\r\n", OK)
    c.transact(b"AT+CIFSR\r\n", sta + OK)
    c.transact(b"AT+CWMODE=2\r\n", OK)
    c.transact(b"AT+CIFSR\r\n", ap + OK)
    c.transact(b'AT+CIPAP="192.168.9.1","192.168.9.1","255.255.255.0"\r\n', OK)
    c.transact(b"AT+CIFSR\r\n", b'+CIFSR:APIP,"192.168.9.1"\r\n+CIFSR:APMAC,"%s"\r\n' % AP_MAC
               + OK)
    c.transact(b"AT+CWMODE=0\r\n", OK)
    c.transact(b"AT+CIFSR\r\n", OK)
    # a static station address shows even before a join (as AT+CIPSTA?)
    c.transact(b"AT+CWMODE=1\r\n", OK)
    c.transact(b'AT+CIPSTA="10.1.2.3"\r\n', OK)
    c.transact(b"AT+CIFSR\r\n", b'+CIFSR:STAIP,"10.1.2.3"\r\n+CIFSR:STAMAC,"%s"\r\n' % STA_MAC
               + OK)
    # CIPV6 alone adds nothing without a join
    c.transact(b"AT+CIPV6=1\r\n", OK)
    c.transact(b"AT+CIFSR\r\n", b'+CIFSR:STAIP,"10.1.2.3"\r\n+CIFSR:STAMAC,"%s"\r\n' % STA_MAC
               + OK)
    c.check_all([b"AT+CIFSR?\r\n", b"AT+CIFSR=?\r\n", b"AT+CIFSR=1\r\n", b"AT+CIFSR=\r\n"])


def test_cifsr_after_join(c):
    """STAIP is the host's address after a join; with AT+CIPV6=1 the host's
    IPv6 addresses follow (STAIP6LL, STAIP6GL)."""
    c.echo_off()
    c.transact(b'AT+CIPSTAMAC="%s"\r\n' % STA_MAC, OK)
    c.transact(JOIN, JOINED)
    route = host_default_route()
    addr = host_ipv4(route[0]) if route else None
    mac = b'+CIFSR:STAMAC,"%s"\r\n' % STA_MAC
    if addr:
        c.transact(b"AT+CIFSR\r\n", b'+CIFSR:STAIP,"%s"\r\n' % addr[0].encode() + mac + OK)
    else:
        c.write(b"AT+CIFSR\r\n")
        out = c.read_result()
        assert re.fullmatch(rb'\+CIFSR:STAIP,"\d+\.\d+\.\d+\.\d+"\r\n' + re.escape(mac + OK),
                            out), out
    c.transact(b"AT+CIPV6=1\r\n", OK)
    v6 = host_ipv6(route[0]) if route else None
    c.write(b"AT+CIFSR\r\n")
    out = c.read_result()
    c.assert_quiet()
    if addr and v6 and len(v6[0]) <= 1 and len(v6[1]) <= 1:
        want = b'+CIFSR:STAIP,"%s"\r\n' % addr[0].encode()
        if v6[0]:
            want += b'+CIFSR:STAIP6LL,"%s"\r\n' % v6[0][0].encode()
        if v6[1]:
            want += b'+CIFSR:STAIP6GL,"%s"\r\n' % v6[1][0].encode()
        assert out == want + mac + OK
    else:
        assert re.fullmatch(rb'\+CIFSR:STAIP,"[0-9.]+"\r\n(\+CIFSR:STAIP6LL,"fe80:[0-9a-f:]+"\r\n)?'
                            rb'(\+CIFSR:STAIP6GL,"[0-9a-f:]+"\r\n)?' + re.escape(mac + OK),
                            out), out
    # after leaving, the address is gone again
    c.transact(b"AT+CWQAP\r\n", b"WIFI DISCONNECT\r\n\r\nOK\r\n")
    c.transact(b"AT+CIFSR\r\n", b'+CIFSR:STAIP,"0.0.0.0"\r\n' + mac + OK)


# ---- AT+CIPMUX ------------------------------------------------------------------------


def test_cipmux(espatd, frag):
    d = espatd(mode=frag)
    c = d.client
    c.transact(b"AT+CIPMUX?\r\n", b"AT+CIPMUX?\r\n+CIPMUX:0\r\n\r\nOK\r\n")
    c.echo_off()
    c.transact(b"AT+CIPMUX=1\r\n", OK)
    c.transact(b"AT+CIPMUX?\r\n", b"+CIPMUX:1\r\n\r\nOK\r\n")
    c.transact(b"AT+CIPMUX=1\r\n", OK)
    c.transact(b"AT+CIPMUX=0\r\n", OK)
    c.transact(b"AT+CIPMUX?\r\n", b"+CIPMUX:0\r\n\r\nOK\r\n")
    c.transact(b"AT+CIPMUX=0x1\r\n", OK)
    c.transact(b"AT+CIPMUX?\r\n", b"+CIPMUX:1\r\n\r\nOK\r\n")
    c.check_all([b"AT+CIPMUX=2\r\n", b"AT+CIPMUX=-1\r\n", b"AT+CIPMUX=\r\n",
                b"AT+CIPMUX=1,0\r\n", b'AT+CIPMUX="1"\r\n', b"AT+CIPMUX\r\n",
                b"AT+CIPMUX=?\r\n", b"AT+CIPMUX=1 \r\n", b"AT+CIPMUX?1\r\n"])
    c.transact(b"AT+CIPMUX?\r\n", b"+CIPMUX:1\r\n\r\nOK\r\n")
    # no NVS record: back to 0 after a restart even with SYSSTORE=1 (§6.4)
    c = restart(d)
    c.transact(b"AT+CIPMUX?\r\n", b"+CIPMUX:0\r\n\r\nOK\r\n")


def test_cipmux_refused_with_a_link(c):
    c.echo_off()
    srv = netpeer.TcpServer()
    try:
        c.transact(JOIN, JOINED)
        c.transact(b'AT+CIPSTART="TCP","127.0.0.1",%d\r\n' % srv.port, b"CONNECT\r\n\r\nOK\r\n")
        conn = srv.accept()
        # "connection exists" (§2.16), even for the current value
        c.check_all([b"AT+CIPMUX=1\r\n", b"AT+CIPMUX=0\r\n"])
        c.transact(b"AT+SYSLOG=1\r\n", OK)
        c.transact(b"AT+CIPMUX=1\r\n", b"ERR CODE:0x010a0000\r\n\r\nERROR\r\n")
        c.transact(b"AT+CIPMUX?\r\n", b"+CIPMUX:0\r\n\r\nOK\r\n")
        c.transact(b"AT+CIPCLOSE\r\n", b"CLOSED\r\n\r\nOK\r\n")
        conn.close()
        c.transact(b"AT+CIPMUX=1\r\n", OK)
    finally:
        srv.close()


def test_cipmux_refused_in_passthrough_or_with_server(c):
    """Mux 1 needs CIPMODE=0; mux 0 needs no server (§2.16). AT+CIPMODE and
    AT+CIPSERVER belong to other chapters: skipped while they are missing."""
    c.echo_off()
    c.write(b"AT+CIPMODE?\r\n")
    have_mode = c.read_result().endswith(OK)
    c.assert_quiet()
    if have_mode:
        c.transact(b"AT+CIPMODE=1\r\n", OK)
        c.check_all([b"AT+CIPMUX=1\r\n"])
        c.transact(b"AT+CIPMUX=0\r\n", OK)
        c.transact(b"AT+CIPMODE=0\r\n", OK)
    c.transact(b"AT+CIPMUX=1\r\n", OK)
    c.write(b"AT+CIPSERVER?\r\n")
    have_server = c.read_result().endswith(OK)
    c.assert_quiet()
    if have_server:
        port = netpeer.free_port()
        c.transact(b"AT+CIPSERVER=1,%d\r\n" % port, OK)
        c.check_all([b"AT+CIPMUX=0\r\n"])
        c.transact(b"AT+CIPMUX=1\r\n", OK)
        c.transact(b"AT+CIPSERVER=0\r\n", OK)
        c.transact(b"AT+CIPMUX=0\r\n", OK)
    if not (have_mode and have_server):
        pytest.skip("AT+CIPMODE / AT+CIPSERVER not implemented yet")


# ---- AT+CIPV6 -------------------------------------------------------------------------


def test_cipv6(espatd, frag):
    d = espatd(mode=frag)
    c = d.client
    c.echo_off()
    c.transact(b"AT+CIPV6?\r\n", b"+CIPV6:0\r\n\r\nOK\r\n")
    c.transact(b"AT+CIPV6=1\r\n", OK)
    c.transact(b"AT+CIPV6?\r\n", b"+CIPV6:1\r\n\r\nOK\r\n")
    c.check_all([b"AT+CIPV6=2\r\n", b"AT+CIPV6=-1\r\n", b"AT+CIPV6=\r\n", b"AT+CIPV6=1,1\r\n",
                b'AT+CIPV6="1"\r\n', b"AT+CIPV6\r\n", b"AT+CIPV6=?\r\n"])
    c.transact(b"AT+CIPV6?\r\n", b"+CIPV6:1\r\n\r\nOK\r\n")
    # saved with SYSSTORE=1 (§2.1, §6.3)
    c = restart(d)
    c.transact(b"AT+CIPV6?\r\n", b"+CIPV6:1\r\n\r\nOK\r\n")
    # with SYSSTORE=0 the change lives in RAM only
    c.transact(b"AT+SYSSTORE=0\r\n", OK)
    c.transact(b"AT+CIPV6=0\r\n", OK)
    c.transact(b"AT+CIPV6?\r\n", b"+CIPV6:0\r\n\r\nOK\r\n")
    c = restart(d)
    c.transact(b"AT+CIPV6?\r\n", b"+CIPV6:1\r\n\r\nOK\r\n")
    c.transact(b"AT+CIPV6=0\r\n", OK)
    c = restart(d)
    c.transact(b"AT+CIPV6?\r\n", b"+CIPV6:0\r\n\r\nOK\r\n")


# ---- AT+CIPDINFO ----------------------------------------------------------------------


def test_cipdinfo(espatd, frag):
    d = espatd(mode=frag)
    c = d.client
    # "true"/"false" with no CR LF after them (§2.25, §1.7)
    c.transact(b"AT+CIPDINFO?\r\n", b"AT+CIPDINFO?\r\n+CIPDINFO:false\r\nOK\r\n")
    c.echo_off()
    c.transact(b"AT+CIPDINFO?\r\n", b"+CIPDINFO:false\r\nOK\r\n")
    c.transact(b"AT+CIPDINFO=1\r\n", OK)
    c.transact(b"AT+CIPDINFO?\r\n", b"+CIPDINFO:true\r\nOK\r\n")
    c.check_all([b"AT+CIPDINFO=2\r\n", b"AT+CIPDINFO=-1\r\n", b"AT+CIPDINFO=\r\n",
                b"AT+CIPDINFO=1,1\r\n", b'AT+CIPDINFO="1"\r\n', b"AT+CIPDINFO\r\n",
                b"AT+CIPDINFO=?\r\n"])
    c.transact(b"AT+CIPDINFO?\r\n", b"+CIPDINFO:true\r\nOK\r\n")
    c.transact(b"AT+CIPDINFO=0\r\n", OK)
    c.transact(b"AT+CIPDINFO?\r\n", b"+CIPDINFO:false\r\nOK\r\n")
    c.transact(b"AT+CIPDINFO=1\r\n", OK)
    c = restart(d)   # never saved (§6.4)
    c.transact(b"AT+CIPDINFO?\r\n", b"+CIPDINFO:false\r\nOK\r\n")


# ---- AT+CIPDNS ------------------------------------------------------------------------


def system_dns():
    """What espatd reports in automatic mode: the first three numeric
    nameservers of /etc/resolv.conf, or the firmware's defaults."""
    out = []
    try:
        with open("/etc/resolv.conf") as f:
            lines = f.read().splitlines()
    except OSError:
        lines = []
    for line in lines:
        f = line.split()
        if len(out) == 3 or len(f) < 2 or f[0] != "nameserver":
            continue
        a = f[1]
        for fam in (socket.AF_INET, socket.AF_INET6):
            try:
                out.append(socket.inet_ntop(fam, socket.inet_pton(fam, a.split("%")[0]
                                                                   if fam == socket.AF_INET6
                                                                   else a)))
                break
            except OSError:
                continue
    if not out:
        return DEFAULT_DNS
    return b",".join(b'"%s"' % a.encode() for a in out)


def test_cipdns(espatd, frag):
    d = espatd(mode=frag)
    c = d.client
    c.echo_off()
    auto = b"+CIPDNS:0," + system_dns() + b"\r\n\r\nOK\r\n"
    c.transact(b"AT+CIPDNS?\r\n", auto)
    # manual without servers: the firmware's three defaults (§2.32)
    c.transact(b"AT+CIPDNS=1\r\n", OK)
    c.transact(b"AT+CIPDNS?\r\n", b"+CIPDNS:1," + DEFAULT_DNS + b"\r\n\r\nOK\r\n")
    c.transact(b'AT+CIPDNS=1,"1.1.1.1"\r\n', OK)
    c.transact(b"AT+CIPDNS?\r\n", b'+CIPDNS:1,"1.1.1.1"\r\n\r\nOK\r\n')
    c.transact(b'AT+CIPDNS=1,"1.1.1.1","9.9.9.9"\r\n', OK)
    c.transact(b"AT+CIPDNS?\r\n", b'+CIPDNS:1,"1.1.1.1","9.9.9.9"\r\n\r\nOK\r\n')
    c.transact(b'AT+CIPDNS=1,"208.67.222.222","114.114.114.114","8.8.8.8"\r\n', OK)
    c.transact(b"AT+CIPDNS?\r\n", b"+CIPDNS:1," + DEFAULT_DNS + b"\r\n\r\nOK\r\n")
    # IPv6 servers, printed in their short form
    c.transact(b'AT+CIPDNS=1,"240c::6666","2001:4860:4860:0:0:0:0:8888","240E:5A::6666"\r\n', OK)
    c.transact(b"AT+CIPDNS?\r\n",
               b'+CIPDNS:1,"240c::6666","2001:4860:4860::8888","240e:5a::6666"\r\n\r\nOK\r\n')
    # omitted servers are skipped
    c.transact(b'AT+CIPDNS=1,,"9.9.9.9"\r\n', OK)
    c.transact(b"AT+CIPDNS?\r\n", b'+CIPDNS:1,"9.9.9.9"\r\n\r\nOK\r\n')
    c.transact(b"AT+CIPDNS=1,\r\n", OK)
    c.transact(b"AT+CIPDNS?\r\n", b"+CIPDNS:1," + DEFAULT_DNS + b"\r\n\r\nOK\r\n")
    # back to automatic; servers given with <enable> 0 do not count
    c.transact(b"AT+CIPDNS=0\r\n", OK)
    c.transact(b"AT+CIPDNS?\r\n", auto)
    c.transact(b'AT+CIPDNS=0,"1.1.1.1"\r\n', OK)
    c.transact(b"AT+CIPDNS?\r\n", auto)


def test_cipdns_bad(c):
    c.echo_off()
    c.transact(b'AT+CIPDNS=1,"1.1.1.1","9.9.9.9"\r\n', OK)
    c.check_all([
        b'AT+CIPDNS=1,"8.8.8.8","8.8.8.8"\r\n',            # the three must differ
        b'AT+CIPDNS=1,"8.8.8.8","1.1.1.1","8.8.8.8"\r\n',
        b'AT+CIPDNS=1,"8.8.8.8",,"8.8.8.8"\r\n',
        b'AT+CIPDNS=1,"2001:db8::1","2001:DB8:0::1"\r\n',   # equal once parsed
        b'AT+CIPDNS=1,"1.2.3"\r\n', b'AT+CIPDNS=1,"1.2.3.256"\r\n',
        b'AT+CIPDNS=1,"dns.google"\r\n', b'AT+CIPDNS=1,""\r\n', b'AT+CIPDNS=1,"::g"\r\n',
        b"AT+CIPDNS=1,8.8.8.8\r\n", b'AT+CIPDNS=1,"8.8.8.8\r\n',
        b'AT+CIPDNS=1,"1.1.1.1","2.2.2.2","3.3.3.3","4.4.4.4"\r\n',
        b"AT+CIPDNS=2\r\n", b"AT+CIPDNS=-1\r\n", b"AT+CIPDNS=\r\n", b'AT+CIPDNS="1"\r\n',
        b'AT+CIPDNS=,"1.1.1.1"\r\n',
        b"AT+CIPDNS\r\n", b"AT+CIPDNS=?\r\n"])
    c.transact(b"AT+CIPDNS?\r\n", b'+CIPDNS:1,"1.1.1.1","9.9.9.9"\r\n\r\nOK\r\n')
    c.transact(b"AT+SYSLOG=1\r\n", OK)
    c.transact(b'AT+CIPDNS=1,"8.8.8.8","8.8.8.8"\r\n', b"ERR CODE:0x01070002\r\n" + ERROR)
    c.transact(b'AT+CIPDNS=1,"8.8.8"\r\n', b"ERR CODE:0x01070001\r\n" + ERROR)
    c.transact(b"AT+CIPDNS=3\r\n", b"ERR CODE:0x01070000\r\n" + ERROR)
    c.transact(b'AT+CIPDNS=1,8.8.8.8\r\n', b"ERR CODE:0x01080001\r\n" + ERROR)
    c.transact(b'AT+CIPDNS=1,"1.1.1.1","2.2.2.2","3.3.3.3","4.4.4.4"\r\n',
               b"ERR CODE:0x01060405\r\n" + ERROR)


def test_cipdns_saved(espatd):
    d = espatd()
    c = d.client
    c.echo_off()
    auto = b"+CIPDNS:0," + system_dns() + b"\r\n\r\nOK\r\n"
    c.transact(b'AT+CIPDNS=1,"1.2.3.4","fd00::53"\r\n', OK)
    saved = b'+CIPDNS:1,"1.2.3.4","fd00::53"\r\n\r\nOK\r\n'
    c = restart(d)
    c.transact(b"AT+CIPDNS?\r\n", saved)
    # SYSSTORE=0: RAM only
    c.transact(b"AT+SYSSTORE=0\r\n", OK)
    c.transact(b'AT+CIPDNS=1,"5.6.7.8"\r\n', OK)
    c.transact(b"AT+CIPDNS?\r\n", b'+CIPDNS:1,"5.6.7.8"\r\n\r\nOK\r\n')
    c = restart(d)
    c.transact(b"AT+CIPDNS?\r\n", saved)
    c.transact(b"AT+CIPDNS=0\r\n", OK)
    c = restart(d)
    c.transact(b"AT+CIPDNS?\r\n", auto)
    # AT+RESTORE forgets it
    c.transact(b'AT+CIPDNS=1,"1.2.3.4"\r\n', OK)
    c.transact(b"AT+RESTORE\r\n", OK)
    c.expect(b"\r\nready\r\n", timeout=3 * SCALE)
    c.echo_off()
    c.transact(b"AT+CIPDNS?\r\n", auto)


# ---- AT+CIPTCPOPT ---------------------------------------------------------------------


def tcpopt(*lines):
    return b"".join(b"+CIPTCPOPT:%s\r\n" % l for l in lines) + OK


def test_ciptcpopt_single(espatd, frag):
    d = espatd(mode=frag)
    c = d.client
    c.echo_off()
    # single mode: link 0 only (§2.33)
    c.transact(b"AT+CIPTCPOPT?\r\n", tcpopt(b"0,-1,0,0,0"))
    c.transact(b"AT+CIPTCPOPT=0,1,5000\r\n", OK)
    c.transact(b"AT+CIPTCPOPT?\r\n", tcpopt(b"0,0,1,5000,0"))
    # an omitted option keeps its value
    c.transact(b"AT+CIPTCPOPT=,,,120\r\n", OK)
    c.transact(b"AT+CIPTCPOPT?\r\n", tcpopt(b"0,0,1,5000,120"))
    c.transact(b"AT+CIPTCPOPT=10,,\r\n", OK)
    c.transact(b"AT+CIPTCPOPT?\r\n", tcpopt(b"0,10,1,5000,120"))
    c.transact(b"AT+CIPTCPOPT=,0,,7200\r\n", OK)
    c.transact(b"AT+CIPTCPOPT?\r\n", tcpopt(b"0,10,0,5000,7200"))
    c.transact(b"AT+CIPTCPOPT=-1,0,0,0\r\n", OK)
    c.transact(b"AT+CIPTCPOPT?\r\n", tcpopt(b"0,-1,0,0,0"))
    c.check_all([b"AT+CIPTCPOPT=-2,0,0\r\n", b"AT+CIPTCPOPT=0,2,0\r\n",
                b"AT+CIPTCPOPT=0,-1,0\r\n", b"AT+CIPTCPOPT=0,0,-1\r\n",
                b"AT+CIPTCPOPT=0,0,0,7201\r\n", b"AT+CIPTCPOPT=0,0,0,-1\r\n",
                b"AT+CIPTCPOPT=1\r\n", b"AT+CIPTCPOPT=1,1\r\n", b"AT+CIPTCPOPT=\r\n",
                b"AT+CIPTCPOPT=0,0,0,0,0\r\n", b'AT+CIPTCPOPT="0",0,0\r\n',
                b"AT+CIPTCPOPT=a,0,0\r\n", b"AT+CIPTCPOPT\r\n", b"AT+CIPTCPOPT=?\r\n"])
    c.transact(b"AT+CIPTCPOPT?\r\n", tcpopt(b"0,-1,0,0,0"))
    c.transact(b"AT+SYSLOG=1\r\n", OK)
    c.transact(b"AT+CIPTCPOPT=0,0,0,7201\r\n", b"ERR CODE:0x01070003\r\n" + ERROR)
    c.transact(b"AT+CIPTCPOPT=1,1\r\n", b"ERR CODE:0x01060302\r\n" + ERROR)


def test_ciptcpopt_multi(espatd):
    d = espatd()
    c = d.client
    c.echo_off()
    c.transact(b"AT+CIPTCPOPT=3,1,100\r\n", OK)   # single mode: link 0
    c.transact(b"AT+CIPMUX=1\r\n", OK)
    c.transact(b"AT+CIPTCPOPT?\r\n", tcpopt(b"0,3,1,100,0", b"1,-1,0,0,0", b"2,-1,0,0,0",
                                            b"3,-1,0,0,0", b"4,-1,0,0,0"))
    c.transact(b"AT+CIPTCPOPT=3,5,1,250,30\r\n", OK)
    c.transact(b"AT+CIPTCPOPT?\r\n", tcpopt(b"0,3,1,100,0", b"1,-1,0,0,0", b"2,-1,0,0,0",
                                            b"3,5,1,250,30", b"4,-1,0,0,0"))
    # link ID 5 = all links; omitted options keep each link's value
    c.transact(b"AT+CIPTCPOPT=5,0,,\r\n", OK)
    c.transact(b"AT+CIPTCPOPT?\r\n", tcpopt(b"0,0,1,100,0", b"1,0,0,0,0", b"2,0,0,0,0",
                                            b"3,0,1,250,30", b"4,0,0,0,0"))
    c.transact(b"AT+CIPTCPOPT=4,,,,15\r\n", OK)
    c.check_all([b"AT+CIPTCPOPT=6,0,0,0\r\n", b"AT+CIPTCPOPT=-1,0,0,0\r\n",
                b"AT+CIPTCPOPT=0,0,0\r\n", b"AT+CIPTCPOPT=,0,0,0\r\n",
                b"AT+CIPTCPOPT=0,0,0,0,0,0\r\n", b"AT+CIPTCPOPT=0,0,2,0\r\n"])
    want = tcpopt(b"0,0,1,100,0", b"1,0,0,0,0", b"2,0,0,0,0", b"3,0,1,250,30",
                  b"4,0,0,0,15")
    c.transact(b"AT+CIPTCPOPT?\r\n", want)
    # saved with SYSSTORE=1 (§2.33, §6.3)
    c = restart(d)
    c.transact(b"AT+CIPTCPOPT?\r\n", tcpopt(b"0,0,1,100,0"))   # CIPMUX is 0 again
    c.transact(b"AT+CIPMUX=1\r\n", OK)
    c.transact(b"AT+CIPTCPOPT?\r\n", want)
    c.transact(b"AT+SYSSTORE=0\r\n", OK)
    c.transact(b"AT+CIPTCPOPT=5,-1,0,0,0\r\n", OK)
    c.transact(b"AT+CIPTCPOPT?\r\n", tcpopt(b"0,-1,0,0,0", b"1,-1,0,0,0", b"2,-1,0,0,0",
                                            b"3,-1,0,0,0", b"4,-1,0,0,0"))
    c = restart(d)
    c.transact(b"AT+CIPMUX=1\r\n", OK)
    c.transact(b"AT+CIPTCPOPT?\r\n", want)


def keepalive_timer(lport):
    out = subprocess.run(["ss", "-tnoH", "state", "established", "( sport = :%d )" % lport],
                         capture_output=True, text=True, timeout=5).stdout
    m = re.search(r"timer:\(keepalive,((?:\d+(?:min|sec|ms))+)", out)
    if not m:
        return None
    units = {"min": 60, "sec": 1, "ms": 0.001}
    return sum(int(n) * units[u] for n, u in re.findall(r"(\d+)(min|sec|ms)", m.group(1)))


def test_ciptcpopt_applies_to_open_link(c):
    """Set on an open link, the options reach its socket: keep-alive (seen
    with ss) and SO_LINGER 0 (AT+CIPCLOSE then resets the connection)."""
    c.echo_off()
    srv = netpeer.TcpServer()
    try:
        c.transact(JOIN, JOINED)
        c.transact(b"AT+CIPMUX=1\r\n", OK)
        c.transact(b'AT+CIPSTART=2,"TCP","127.0.0.1",%d\r\n' % srv.port, b"2,CONNECT\r\n\r\nOK\r\n")
        conn = srv.accept()
        lport = conn.getpeername()[1]
        have_ss = subprocess.run(["which", "ss"], capture_output=True).returncode == 0
        if have_ss:
            assert keepalive_timer(lport) is None
        c.transact(b"AT+CIPTCPOPT=2,0,1,0,300\r\n", OK)
        if have_ss:
            t = keepalive_timer(lport)
            assert t is not None and 240 <= t <= 300, t
        c.transact(b"AT+CIPTCPOPT?\r\n", tcpopt(b"0,-1,0,0,0", b"1,-1,0,0,0", b"2,0,1,0,300",
                                                b"3,-1,0,0,0", b"4,-1,0,0,0"))
        c.transact(b"AT+CIPCLOSE=2\r\n", b"2,CLOSED\r\n\r\nOK\r\n")
        conn.settimeout(3 * SCALE)
        with pytest.raises(ConnectionResetError):
            conn.recv(16)
        conn.close()
        # CIPSTART's <keep_alive> is the same setting (§2.5)
        c.transact(b'AT+CIPSTART=2,"TCP","127.0.0.1",%d,45\r\n' % srv.port,
                   b"2,CONNECT\r\n\r\nOK\r\n")
        conn = srv.accept()
        if have_ss:
            t = keepalive_timer(conn.getpeername()[1])
            assert t is not None and 40 <= t <= 45, t
        c.transact(b"AT+CIPTCPOPT?\r\n", tcpopt(b"0,-1,0,0,0", b"1,-1,0,0,0", b"2,0,1,0,45",
                                                b"3,-1,0,0,0", b"4,-1,0,0,0"))
        c.transact(b"AT+CIPTCPOPT=2,-1,,,\r\n", OK)
        c.transact(b"AT+CIPCLOSE=2\r\n", b"2,CLOSED\r\n\r\nOK\r\n")
        conn.settimeout(3 * SCALE)
        assert conn.recv(16) == b""   # an orderly FIN this time
        conn.close()
    finally:
        srv.close()


# ---- AT+CIPCONNPERSIST ----------------------------------------------------------------


def test_cipconnpersist(espatd, frag):
    d = espatd(mode=frag)
    c = d.client
    c.echo_off()
    c.transact(b"AT+CIPCONNPERSIST?\r\n", b"+CIPCONNPERSIST:0\r\n\r\nOK\r\n")
    c.transact(b"AT+CIPCONNPERSIST=1\r\n", OK)
    c.transact(b"AT+CIPCONNPERSIST?\r\n", b"+CIPCONNPERSIST:1\r\n\r\nOK\r\n")
    c.check_all([b"AT+CIPCONNPERSIST=2\r\n", b"AT+CIPCONNPERSIST=-1\r\n",
                b"AT+CIPCONNPERSIST=0,1\r\n", b"AT+CIPCONNPERSIST=\r\n",
                b'AT+CIPCONNPERSIST="1"\r\n', b"AT+CIPCONNPERSIST\r\n",
                b"AT+CIPCONNPERSIST=?\r\n"])
    # multi: one value per link (§2.14); single mode set link 0
    c.transact(b"AT+CIPMUX=1\r\n", OK)
    c.transact(b"AT+CIPCONNPERSIST?\r\n", b"+CIPCONNPERSIST:1,0,0,0,0\r\n\r\nOK\r\n")
    c.transact(b"AT+CIPCONNPERSIST=4,1\r\n", OK)
    c.transact(b"AT+CIPCONNPERSIST=0,0\r\n", OK)
    c.transact(b"AT+CIPCONNPERSIST=2,1\r\n", OK)
    c.transact(b"AT+CIPCONNPERSIST?\r\n", b"+CIPCONNPERSIST:0,0,1,0,1\r\n\r\nOK\r\n")
    c.check_all([b"AT+CIPCONNPERSIST=5,1\r\n", b"AT+CIPCONNPERSIST=-1,1\r\n",
                b"AT+CIPCONNPERSIST=1\r\n", b"AT+CIPCONNPERSIST=1,2\r\n",
                b"AT+CIPCONNPERSIST=,1\r\n", b"AT+CIPCONNPERSIST=1,\r\n",
                b"AT+CIPCONNPERSIST=1,1,1\r\n"])
    c.transact(b"AT+CIPMUX=0\r\n", OK)
    c.transact(b"AT+CIPCONNPERSIST?\r\n", b"+CIPCONNPERSIST:0\r\n\r\nOK\r\n")
    c.transact(b"AT+CIPCONNPERSIST=1\r\n", OK)
    c = restart(d)   # not saved (§6.4)
    c.transact(b"AT+CIPCONNPERSIST?\r\n", b"+CIPCONNPERSIST:0\r\n\r\nOK\r\n")


def test_cipconnpersist_keeps_link_when_station_leaves(c):
    c.echo_off()
    srv = netpeer.TcpServer()
    try:
        c.transact(JOIN, JOINED)
        c.transact(b'AT+CIPSTART="TCP","127.0.0.1",%d\r\n' % srv.port, b"CONNECT\r\n\r\nOK\r\n")
        conn = srv.accept()
        line = b'+CIPSTATE:0,"TCP","127.0.0.1",%d,%d,0\r\n' % (srv.port, conn.getpeername()[1])
        c.transact(b"AT+CIPCONNPERSIST=1\r\n", OK)
        c.write(b"AT+CWQAP\r\n")
        out = c.read_result()
        assert b"CLOSED" not in out, out
        c.transact(b"AT+CIPSTATE?\r\n", line + OK)
        c.transact(JOIN, JOINED)
        c.transact(b"AT+CIPCONNPERSIST=0\r\n", OK)
        c.write(b"AT+CWQAP\r\n")
        out = c.read_result()
        c.assert_quiet()
        assert b"CLOSED\r\n" in out, out
        c.transact(b"AT+CIPSTATE?\r\n", OK)
        conn.close()
    finally:
        srv.close()


# ---- AT+CIPSENDLCFG -------------------------------------------------------------------


def test_cipsendlcfg(espatd, frag):
    d = espatd(mode=frag)
    c = d.client
    c.echo_off()
    c.transact(b"AT+CIPSENDLCFG?\r\n", b"+CIPSENDLCFG:1024,2920\r\n\r\nOK\r\n")
    c.transact(b"AT+CIPSENDLCFG=100,100\r\n", OK)
    c.transact(b"AT+CIPSENDLCFG?\r\n", b"+CIPSENDLCFG:100,100\r\n\r\nOK\r\n")
    c.transact(b"AT+CIPSENDLCFG=1048576\r\n", OK)   # <transmit size> kept
    c.transact(b"AT+CIPSENDLCFG?\r\n", b"+CIPSENDLCFG:1048576,100\r\n\r\nOK\r\n")
    c.transact(b"AT+CIPSENDLCFG=2048,2920\r\n", OK)
    c.transact(b"AT+CIPSENDLCFG?\r\n", b"+CIPSENDLCFG:2048,2920\r\n\r\nOK\r\n")
    c.check_all([b"AT+CIPSENDLCFG=99\r\n", b"AT+CIPSENDLCFG=1048577\r\n",
                b"AT+CIPSENDLCFG=1024,99\r\n", b"AT+CIPSENDLCFG=1024,2921\r\n",
                b"AT+CIPSENDLCFG=\r\n", b"AT+CIPSENDLCFG=,2920\r\n",
                b"AT+CIPSENDLCFG=1024,2920,1\r\n", b'AT+CIPSENDLCFG="1024"\r\n',
                b"AT+CIPSENDLCFG\r\n", b"AT+CIPSENDLCFG=?\r\n"])
    c.transact(b"AT+CIPSENDLCFG?\r\n", b"+CIPSENDLCFG:2048,2920\r\n\r\nOK\r\n")
    c.transact(b"AT+CIPSENDLCFG=512,1000\r\n", OK)
    c = restart(d)   # not saved (§6.4)
    c.transact(b"AT+CIPSENDLCFG?\r\n", b"+CIPSENDLCFG:1024,2920\r\n\r\nOK\r\n")


# ---- command types that do not exist ---------------------------------------------------


def test_missing_command_types(c):
    """No test (=?) handler in this chapter; other missing types ERROR too
    (§1.12), without an ERR CODE line even with SYSLOG=1."""
    c.echo_off()
    cmds = [b"AT+CIPSTATUS?\r\n", b"AT+CIPSTATUS=0\r\n", b"AT+CIPSTATUS=?\r\n",
            b"AT+CIPSTATE\r\n", b"AT+CIPSTATE=0\r\n", b"AT+CIPSTATE=?\r\n",
            b"AT+CIFSR?\r\n", b"AT+CIFSR=?\r\n", b"AT+CIPDOMAIN\r\n", b"AT+CIPDOMAIN?\r\n",
            b"AT+CIPDOMAIN=?\r\n", b"AT+CIPV6=?\r\n", b"AT+CIPMUX=?\r\n", b"AT+CIPDINFO=?\r\n",
            b"AT+CIPDNS=?\r\n", b"AT+CIPTCPOPT=?\r\n", b"AT+CIPCONNPERSIST=?\r\n",
            b"AT+CIPSENDLCFG=?\r\n", b"AT+CIPV6\r\n", b"AT+CIPSENDLCFG\r\n"]
    c.check_all(cmds)
    c.transact(b"AT+SYSLOG=1\r\n", OK)
    c.check_all(cmds)
    c.transact(b"AT+CIPMUX=2\r\n", b"ERR CODE:0x01070000\r\n" + ERROR)
    c.transact(b"AT+CIPMUX=1,1\r\n", b"ERR CODE:0x01060102\r\n" + ERROR)
    c.transact(b'AT+CIPMUX="1"\r\n', b"ERR CODE:0x01080000\r\n" + ERROR)
    c.transact(b"AT+CIPSTATUSX\r\n", b"ERR CODE:0x01090000\r\n" + ERROR)


# ---- AT+CIPDOMAIN against a real DNS server -------------------------------------------


@pytest.fixture
def dnsmasq(tmp_path):
    if not os.access(netpeer.DNSMASQ, os.X_OK):
        pytest.skip("dnsmasq not installed")
    server = netpeer.Dnsmasq(tmp_path, [
        "--address=/espatd.test/10.20.30.40",
        "--host-record=dual.test,10.1.1.1,fd00::1",
        "--host-record=v6only.test,fd00::66",
        "--host-record=multi.test,10.9.9.1", "--host-record=multi.test,10.9.9.2",
        "--host-record=%s,10.64.64.64" % NAME64], probe="espatd.test")
    yield server.port
    server.stop()


def domain(*ips):
    return b"".join(b'+CIPDOMAIN:"%s"\r\n' % ip for ip in ips) + OK


def test_cipdomain(espatd, dnsmasq, frag):
    c = espatd("--dns-port", str(dnsmasq), mode=frag).client
    c.echo_off()
    # no station address yet: no DNS (§2.4)
    c.check_all([b'AT+CIPDOMAIN="espatd.test"\r\n'])
    c.transact(JOIN, JOINED)
    c.transact(b'AT+CIPDNS=1,"127.0.0.1"\r\n', OK)
    # the address is quoted in ESP-AT (§2.4)
    c.transact(b'AT+CIPDOMAIN="espatd.test"\r\n', domain(b"10.20.30.40"))
    c.transact(b'AT+CIPDOMAIN="espatd.test",2\r\n', domain(b"10.20.30.40"))
    c.transact(b'AT+CIPDOMAIN="espatd.test",1,5000\r\n', domain(b"10.20.30.40"))
    c.transact(b'AT+CIPDOMAIN="espatd.test",1,0,1\r\n', domain(b"10.20.30.40"))
    c.transact(b'AT+CIPDOMAIN="espatd.test",,,\r\n', domain(b"10.20.30.40"))
    c.transact(b'AT+CIPDOMAIN="ESPATD.test"\r\n', domain(b"10.20.30.40"))
    c.transact(b'AT+CIPDOMAIN="dual.test"\r\n', domain(b"10.1.1.1"))
    c.transact(b'AT+CIPDOMAIN="%s"\r\n' % NAME64.encode(), domain(b"10.64.64.64"))
    # a numeric address needs no server
    c.transact(b'AT+CIPDOMAIN="192.0.2.77"\r\n', domain(b"192.0.2.77"))
    # IPv6 only: refused until AT+CIPV6=1 (§2.1)
    c.check_all([b'AT+CIPDOMAIN="dual.test",3\r\n'])
    c.transact(b"AT+CIPV6=1\r\n", OK)
    c.transact(b'AT+CIPDOMAIN="dual.test",3\r\n', domain(b"fd00::1"))
    c.transact(b'AT+CIPDOMAIN="dual.test",2\r\n', domain(b"10.1.1.1"))
    # prefer IPv4: falls back to IPv6 when there is no A record
    c.transact(b'AT+CIPDOMAIN="v6only.test"\r\n', domain(b"fd00::66"))
    c.transact(b'AT+CIPDOMAIN="v6only.test",1\r\n', domain(b"fd00::66"))
    # show_all: every address; without it only the first
    c.write(b'AT+CIPDOMAIN="multi.test",1,0,1\r\n')
    c.expect_any([domain(b"10.9.9.1", b"10.9.9.2"), domain(b"10.9.9.2", b"10.9.9.1")])
    c.write(b'AT+CIPDOMAIN="multi.test"\r\n')
    c.expect_any([domain(b"10.9.9.1"), domain(b"10.9.9.2")])
    # failures: no such name, no address of the family, bad parameters
    c.check_all([b'AT+CIPDOMAIN="nx.test"\r\n', b'AT+CIPDOMAIN="v6only.test",2\r\n',
                b'AT+CIPDOMAIN="espatd.test",3\r\n', b'AT+CIPDOMAIN="192.0.2.77",3\r\n',
                b'AT+CIPDOMAIN="%s"\r\n' % NAME65.encode(), b'AT+CIPDOMAIN=""\r\n',
                b"AT+CIPDOMAIN=espatd.test\r\n", b'AT+CIPDOMAIN="espatd.test",0\r\n',
                b'AT+CIPDOMAIN="espatd.test",4\r\n', b'AT+CIPDOMAIN="espatd.test",1,60001\r\n',
                b'AT+CIPDOMAIN="espatd.test",1,-1\r\n', b'AT+CIPDOMAIN="espatd.test",1,0,2\r\n',
                b'AT+CIPDOMAIN="espatd.test",1,0,0,0\r\n', b"AT+CIPDOMAIN=\r\n",
                b'AT+CIPDOMAIN=,1\r\n'])
    c.transact(b"AT+SYSLOG=1\r\n", OK)
    c.transact(b'AT+CIPDOMAIN="%s"\r\n' % NAME65.encode(), b"ERR CODE:0x01040000\r\n" + ERROR)
    c.transact(b'AT+CIPDOMAIN="nx.test"\r\n', b"ERR CODE:0x010a0000\r\n" + ERROR)
    c.transact(b'AT+CIPDOMAIN="espatd.test",4\r\n', b"ERR CODE:0x01070001\r\n" + ERROR)
    c.transact(b"AT+CIPV6=0\r\n", OK)
    c.transact(b'AT+CIPDOMAIN="dual.test",3\r\n', b"ERR CODE:0x01070001\r\n" + ERROR)
    # back to the system's servers (on port 53): they do not serve .test
    c.transact(b"AT+CIPDNS=0\r\n", OK)
    c.transact(b'AT+CIPDOMAIN="espatd.test",1,1000\r\n', b"ERR CODE:0x010a0000\r\n" + ERROR,
               timeout=5 * SCALE)
    c.transact(b'AT+CIPDNS=1,"127.0.0.1"\r\n', OK)
    c.transact(b'AT+CIPDOMAIN="espatd.test"\r\n', domain(b"10.20.30.40"))
    # the station leaves: no address, no lookup
    c.transact(b"AT+CWQAP\r\n", b"WIFI DISCONNECT\r\n\r\nOK\r\n")
    c.transact(b'AT+CIPDOMAIN="espatd.test"\r\n', b"ERR CODE:0x010a0000\r\n" + ERROR)


def test_cipdomain_uses_saved_servers(espatd, dnsmasq):
    """CIPDNS saved with SYSSTORE=1 is the resolver's after a restart."""
    d = espatd("--dns-port", str(dnsmasq))
    c = d.client
    c.echo_off()
    c.transact(b'AT+CIPDNS=1,"127.0.0.1"\r\n', OK)
    c = restart(d)
    c.transact(JOIN, JOINED)
    c.transact(b'AT+CIPDOMAIN="espatd.test"\r\n', domain(b"10.20.30.40"))
    # manual servers that do not serve the name: the lookup fails
    c.transact(b'AT+CIPDNS=1,"127.0.0.2"\r\n', OK)
    c.transact(b'AT+CIPDOMAIN="espatd.test",1,1000\r\n', ERROR, timeout=5 * SCALE)
    c.transact(b'AT+CIPDNS=1,"127.0.0.1"\r\n', OK)
    c.transact(b'AT+CIPDOMAIN="espatd.test"\r\n', domain(b"10.20.30.40"))


def test_cipdomain_timeout_busy_and_reset(espatd):
    """A server that never answers: <timeout> bounds the lookup; the command
    stays busy meanwhile (§1.9); a forced reset drops it without a late
    result."""
    silent = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    silent.bind(("127.0.0.1", 0))
    try:
        d = espatd("--dns-port", str(silent.getsockname()[1]), boot_ms=100)
        c = d.client
        c.echo_off()
        c.transact(b"AT+SYSSTORE=0\r\n", OK)   # no auto-join after the reset below
        c.transact(JOIN, JOINED)
        c.transact(b'AT+CIPDNS=1,"127.0.0.1"\r\n', OK)
        t0 = time.monotonic()
        c.write(b'AT+CIPDOMAIN="slow.test",1,400\r\n')
        time.sleep(0.05)
        c.write(b"AT\r\n")
        c.expect(b"\r\nbusy p...\r\n", quiet=0)
        c.expect(ERROR, timeout=3 * SCALE)
        took = time.monotonic() - t0
        assert 0.35 <= took <= 2.5 * SCALE, took
        # AT+RST typed while the lookup runs: forced restart, no late ERROR
        c.write(b'AT+CIPDOMAIN="slow.test",1,600\r\n')
        time.sleep(0.05)
        c.write(b"AT+RST\r\n")
        c.expect(b"\r\nWill force to restart!!!\r\n\r\nready\r\n", timeout=3 * SCALE,
                 quiet=1.0 * SCALE)
    finally:
        silent.close()
