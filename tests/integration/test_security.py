"""Safety of an exposed daemon: the --allow egress policy, the --tcp
transport's loopback default."""

import socket

from netpeer import TcpServer, UdpPeer, free_port

OK = b"\r\nOK\r\n"
ERROR = b"\r\nERROR\r\n"


def test_allow_policy(espatd):
    allowed, other = TcpServer(), TcpServer()
    u = UdpPeer()
    d = espatd("--allow", "127.0.0.1:%d" % allowed.port, "--allow", "[::1]:1-2")
    c = d.client
    c.echo_off()
    c.must_ok(b'AT+CWJAP="lab","pw"\r\n')
    c.transact(b"AT+CIPMUX=1\r\n", OK)
    c.transact(b'AT+CIPSTART=0,"TCP","127.0.0.1",%d\r\n' % allowed.port, b"0,CONNECT\r\n" + OK)
    # refused as an unreachable host: ERROR then CLOSED, +ERRNO 0x71 with SYSLOG
    c.transact(b'AT+CIPSTART=1,"TCP","127.0.0.1",%d\r\n' % other.port, ERROR + b"1,CLOSED\r\n")
    c.transact(b"AT+SYSLOG=1\r\n", OK)
    c.transact(b'AT+CIPSTART=1,"UDP","127.0.0.1",%d\r\n' % u.port,
               b"+ERRNO:0x71\r\nERR CODE:0x010a0000\r\n" + ERROR + b"1,CLOSED\r\n")
    other.sock.settimeout(0.2)
    try:
        other.sock.accept()
        raise AssertionError("a refused destination was reached")
    except socket.timeout:
        pass
    assert "egress policy" in d.log()
    c.transact(b"AT+CIPCLOSE=0\r\n", b"0,CLOSED\r\n" + OK)
    for s in (allowed, other, u):
        s.close()
    assert free_port()  # sockets are released


def test_tcp_transport_binds_loopback_and_warns(espatd, tmp_path):
    import subprocess
    import time
    import espat
    port = free_port()
    log = tmp_path / "log"
    p = subprocess.Popen(espat.command(["--tcp", str(port), "--no-state"], tmp_path),
                         stdout=subprocess.DEVNULL, stderr=open(str(log), "wb"))
    try:
        deadline = time.monotonic() + 5 * espat.SCALE
        while True:
            out = subprocess.run(["ss", "-ltnH", "sport = :%d" % port],
                                 capture_output=True, text=True).stdout
            if out.strip() or time.monotonic() > deadline:
                break
            time.sleep(0.02)
        assert "127.0.0.1:%d" % port in out, out
        assert "warn" not in log.read_text()
    finally:
        p.terminate()
        p.wait()
    port = free_port()
    p = subprocess.Popen(espat.command(["--tcp", "0.0.0.0:%d" % port, "--no-state"], tmp_path),
                         stdout=subprocess.DEVNULL, stderr=open(str(log), "wb"))
    try:
        deadline = time.monotonic() + 5 * espat.SCALE
        while "anyone" not in log.read_text() and time.monotonic() < deadline:
            time.sleep(0.02)
        assert "anyone" in log.read_text(), log.read_text()
    finally:
        p.terminate()
        p.wait()
    espat.check_wrapper_logs(tmp_path)
