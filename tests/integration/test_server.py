"""The module's TCP server: AT+CIPSERVER, AT+CIPSERVERMAXCONN, AT+CIPSTO
(protocol.md §2.17, §2.18, §2.20), with real loopback clients."""

import os
import socket
import time

import pytest

import espat
from netpeer import free_port, recv_exact

OK = b"\r\nOK\r\n"
ERROR = b"\r\nERROR\r\n"


def ready(d, extra=()):
    c = d.client
    c.echo_off()
    c.must_ok(b'AT+CWJAP="lab","pw"\r\n')
    c.transact(b"AT+CIPMUX=1\r\n", OK)
    for cmd in extra:
        c.must_ok(cmd)
    return c


def refused(port):
    """A client the server does not take: reset (or closed) at once, maybe
    even before connect() returns."""
    try:
        s = client(port)
        return s.recv(10) == b""
    except ConnectionResetError:
        return True


def client(port, host="127.0.0.1", family=socket.AF_INET):
    s = socket.socket(family, socket.SOCK_STREAM)
    s.settimeout(espat.TIMEOUT)
    s.connect((host, port))
    return s


@pytest.mark.parametrize("mode", espat.MODES)
def test_server_accepts_and_talks(espatd, mode):
    d = espatd(mode=mode)
    c = ready(d)
    port = free_port()
    c.transact(b"AT+CIPSERVER?\r\n", b"+CIPSERVER:0\r\n" + OK)
    c.transact(b"AT+CIPSERVER=1,%d\r\n" % port, OK)
    c.transact(b"AT+CIPSERVER?\r\n", b'+CIPSERVER:1,%d,"TCP",0,0\r\n' % port + OK)
    s = client(port)
    c.expect(b"0,CONNECT\r\n")
    s.sendall(b"ping")
    c.expect(b"\r\n+IPD,0,4:ping\r\n")
    c.transact(b"AT+CIPSEND=0,4\r\n", b"\r\nOK\r\n\r\n>")
    c.transact(b"pong", b"\r\nRecv 4 bytes\r\n\r\nSEND OK\r\n")
    assert recv_exact(s, 4) == b"pong"
    c.transact(b"AT+CIPSTATE?\r\n", b'+CIPSTATE:0,"TCP","127.0.0.1",%d,%d,1\r\n' % (
        s.getsockname()[1], port) + OK)
    s.close()
    c.expect(b"0,CLOSED\r\n")
    c.transact(b"AT+CIPSERVER=0\r\n", OK)
    c.transact(b"AT+CIPSERVER=0\r\n", ERROR)  # no "no change" + OK (§2.17)


def test_server_link_conn(espatd):
    d = espatd()
    c = ready(d, [b"AT+SYSMSG=2\r\n"])
    port = free_port()
    c.transact(b"AT+CIPSERVER=1,%d\r\n" % port, OK)
    s = client(port)
    c.expect(b'+LINK_CONN:0,0,"TCP",1,"127.0.0.1",%d,%d\r\n' % (s.getsockname()[1], port))
    s.close()
    c.expect(b"0,CLOSED\r\n")


def test_server_errors(espatd):
    d = espatd()
    c = d.client
    c.echo_off()
    port = free_port()
    # single connection mode: no server
    c.transact(b"AT+CIPSERVER=1,%d\r\n" % port, ERROR)
    c.transact(b"AT+CIPMUX=1\r\n", OK)
    for bad in (b"AT+CIPSERVER=2\r\n", b"AT+CIPSERVER=1,0\r\n", b"AT+CIPSERVER=1,65536\r\n",
                b'AT+CIPSERVER=1,%d,"UDP"\r\n' % port,
                b'AT+CIPSERVER=1,%d,"TCPv6"\r\n' % port,   # needs CIPV6=1
                b"AT+CIPSERVER=?\r\n", b"AT+CIPSERVER\r\n"):
        c.transact(bad, ERROR)
    c.transact(b"AT+CIPSERVER=1,%d\r\n" % port, OK)
    c.transact(b"AT+CIPSERVER=1,%d\r\n" % free_port(), ERROR)   # only one server
    c.transact(b"AT+CIPSERVERMAXCONN=2\r\n", ERROR)            # only before start
    c.transact(b"AT+CIPMUX=0\r\n", ERROR)                      # server running
    # a port in use: ERROR (+ERRNO with SYSLOG)
    c.transact(b"AT+CIPSERVER=0\r\n", OK)
    busy = socket.socket()
    busy.bind(("0.0.0.0", 0))
    busy.listen(1)
    c.transact(b"AT+SYSLOG=1\r\n", OK)
    c.transact(b"AT+CIPSERVER=1,%d\r\n" % busy.getsockname()[1],
               b"+ERRNO:0x62\r\nERR CODE:0x010a0000\r\n" + ERROR)
    busy.close()


def test_default_port_333(espatd):
    if os.geteuid() != 0:
        pytest.skip("port 333 needs root")
    d = espatd()
    c = ready(d)
    try:
        probe = socket.socket()
        probe.bind(("0.0.0.0", 333))
        probe.close()
    except OSError:
        pytest.skip("port 333 is in use here")
    c.transact(b"AT+CIPSERVER=1\r\n", OK)
    c.transact(b"AT+CIPSERVER?\r\n", b'+CIPSERVER:1,333,"TCP",0,0\r\n' + OK)
    c.transact(b"AT+CIPSERVER=0\r\n", OK)


def test_five_clients_and_refusal(espatd):
    d = espatd()
    c = ready(d)
    port = free_port()
    c.transact(b"AT+CIPSERVERMAXCONN?\r\n", b"+CIPSERVERMAXCONN:5\r\n" + OK)
    c.transact(b"AT+CIPSERVER=1,%d\r\n" % port, OK)
    clients = []
    for i in range(5):
        clients.append(client(port))
        c.expect(b"%d,CONNECT\r\n" % i)
    # every client talks on its own link
    for i, s in enumerate(clients):
        s.sendall(b"c%d" % i)
        c.expect(b"\r\n+IPD,%d,2:c%d\r\n" % (i, i))
    # a sixth is not taken: closed at once, nothing on the serial side
    assert refused(port)
    c.assert_quiet(0.1)
    # a freed id is reused by the next client
    clients[2].close()
    c.expect(b"2,CLOSED\r\n")
    clients[2] = client(port)
    c.expect(b"2,CONNECT\r\n")
    c.transact(b"AT+CIPSERVER=0,1\r\n", b"".join(b"%d,CLOSED\r\n" % i for i in range(5)) + OK)
    for s in clients:
        assert s.recv(10) == b""


def test_maxconn(espatd):
    d = espatd()
    c = ready(d)
    port = free_port()
    for bad in (b"AT+CIPSERVERMAXCONN=0\r\n", b"AT+CIPSERVERMAXCONN=6\r\n"):
        c.transact(bad, ERROR)
    c.transact(b"AT+CIPSERVERMAXCONN=2\r\n", OK)
    c.transact(b"AT+CIPSERVERMAXCONN?\r\n", b"+CIPSERVERMAXCONN:2\r\n" + OK)
    c.transact(b"AT+CIPSERVER=1,%d\r\n" % port, OK)
    a, b = client(port), client(port)
    c.expect(b"0,CONNECT\r\n1,CONNECT\r\n")
    assert refused(port)
    c.assert_quiet(0.1)
    # client links of our own do not count against the server's limit
    c.transact(b"AT+CIPSERVER=0\r\n", OK)          # keeps its clients
    a.sendall(b"still")
    c.expect(b"\r\n+IPD,0,5:still\r\n")
    c.transact(b"AT+CIPCLOSE=5\r\n", b"0,CLOSED\r\n1,CLOSED\r\n" + OK)


def test_cipsto(espatd):
    d = espatd()
    c = ready(d)
    port = free_port()
    c.transact(b"AT+CIPSTO?\r\n", b"+CIPSTO:180\r\n" + OK)
    for bad in (b"AT+CIPSTO=7201\r\n", b"AT+CIPSTO=-1\r\n", b"AT+CIPSTO\r\n"):
        c.transact(bad, ERROR)
    c.transact(b"AT+CIPSTO=1\r\n", OK)
    c.transact(b"AT+CIPSTO?\r\n", b"+CIPSTO:1\r\n" + OK)
    c.transact(b"AT+CIPSERVER=1,%d\r\n" % port, OK)
    s = client(port)
    c.expect(b"0,CONNECT\r\n")
    # traffic from the client restarts the timer ...
    for _ in range(3):
        time.sleep(0.6)
        s.sendall(b"k")
        c.expect(b"\r\n+IPD,0,1:k\r\n")
    # ... traffic from the module does not (seed reference)
    t0 = time.monotonic()
    c.transact(b"AT+CIPSEND=0,1\r\n", b"\r\nOK\r\n\r\n>")
    c.transact(b"m", b"\r\nRecv 1 bytes\r\n\r\nSEND OK\r\n")
    c.expect(b"0,CLOSED\r\n", timeout=3 * espat.SCALE)
    elapsed = time.monotonic() - t0
    assert 0.2 < elapsed < 1.5 * espat.SCALE, elapsed
    assert s.recv(10) == b"m"
    assert s.recv(10) == b""
    # 0 = never
    c.transact(b"AT+CIPSTO=0\r\n", OK)
    s = client(port)
    c.expect(b"0,CONNECT\r\n")
    time.sleep(1.3)
    c.assert_quiet()
    s.close()
    c.expect(b"0,CLOSED\r\n")


def test_tcpv6_server(espatd):
    try:
        probe = socket.socket(socket.AF_INET6)
        probe.bind(("::1", 0))
        probe.close()
    except OSError:
        pytest.skip("no IPv6 loopback")
    d = espatd()
    c = ready(d, [b"AT+CIPV6=1\r\n", b"AT+CIPDINFO=1\r\n"])
    port = free_port(socket.AF_INET6)
    c.transact(b'AT+CIPSERVER=1,%d,"TCPv6"\r\n' % port, OK)
    c.transact(b"AT+CIPSERVER?\r\n", b'+CIPSERVER:1,%d,"TCPv6",0,0\r\n' % port + OK)
    s = client(port, "::1", socket.AF_INET6)
    c.expect(b"0,CONNECT\r\n")
    s.sendall(b"six")
    c.expect(b'\r\n+IPD,0,3,"::1",%d:six\r\n' % s.getsockname()[1])
    # an IPv4 client reaches a TCPv6 server too, shown as IPv4
    s4 = client(port)
    c.expect(b"1,CONNECT\r\n")
    s4.sendall(b"4")
    c.expect(b'\r\n+IPD,1,1,"127.0.0.1",%d:4\r\n' % s4.getsockname()[1])
    c.transact(b"AT+CIPSERVER=0,1\r\n", b"0,CLOSED\r\n1,CLOSED\r\n" + OK)


def test_server_passive_mode(espatd):
    d = espatd()
    c = ready(d, [b"AT+CIPRECVMODE=1\r\n"])
    port = free_port()
    c.transact(b"AT+CIPSERVER=1,%d\r\n" % port, OK)
    s = client(port)
    c.expect(b"0,CONNECT\r\n")
    s.sendall(b"passive")
    c.expect(b"\r\n+IPD,0,7\r\n")
    c.transact(b"AT+CIPRECVDATA=0,100\r\n", b"+CIPRECVDATA:7,passive\r\nOK\r\n")
    s.close()
    c.expect(b"0,CLOSED\r\n")
