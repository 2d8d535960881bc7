"""Faults: the serial client vanishing in a data phase, SIGTERM in the middle
of transfers. Every accepted byte arrives once; shutdown is clean."""

import os
import signal
import time

import espat
from netpeer import TcpServer, recv_exact


def test_pty_closed_in_a_data_phase(espatd):
    srv = TcpServer()
    d = espatd()
    c = d.client
    c.echo_off()
    c.must_ok(b'AT+CWJAP="lab","pw"\r\n')
    c.transact(b'AT+CIPSTART="TCP","127.0.0.1",%d\r\n' % srv.port, b"CONNECT\r\n\r\nOK\r\n")
    peer = srv.accept()
    c.transact(b"AT+CIPSEND=10\r\n", b"\r\nOK\r\n\r\n>")
    c.write(b"0123")
    time.sleep(0.1)
    c.close()
    time.sleep(0.2)
    # like a UART, the module still waits for the rest of the data
    c = d.connect()
    c.write(b"456789")
    c.expect(b"\r\nRecv 10 bytes\r\n\r\nSEND OK\r\n")
    assert recv_exact(peer, 10) == b"0123456789"
    peer.settimeout(0.2)
    try:
        extra = peer.recv(10)
    except OSError:
        extra = None  # nothing more: no byte twice, link still open
    assert extra is None, "after the data: %r" % extra
    c.transact(b"AT+CIPCLOSE\r\n", b"CLOSED\r\n\r\nOK\r\n")
    srv.close()


def test_sigterm_during_transfers(espatd):
    srv = TcpServer()
    d = espatd()
    c = d.client
    c.echo_off()
    c.transact(b"AT+SYSMSG=3\r\n", b"\r\nOK\r\n")  # saved: must survive
    c.transact(b"AT+CWAUTOCONN=0\r\n", b"\r\nOK\r\n")  # a quiet restart
    c.must_ok(b'AT+CWJAP="lab","pw"\r\n')
    c.transact(b"AT+CIPMUX=1\r\n", b"\r\nOK\r\n")
    peers = []
    for i in range(3):
        c.write(b'AT+CIPSTART=%d,"TCP","127.0.0.1",%d\r\n' % (i, srv.port))
        c.read_result()
        peers.append(srv.accept())
    for p in peers:  # the peers stream at the module while it stops
        p.setblocking(False)
        try:
            p.send(os.urandom(60000))
        except BlockingIOError:
            pass
    c.write(b"AT+CIPSEND=0,8\r\n")
    c.read_until(b">")
    c.write(b"unfinish")
    t0 = time.monotonic()
    d.proc.send_signal(signal.SIGTERM)
    rc = d.proc.wait(timeout=5 * espat.SCALE)
    assert rc == 0, d.log()
    assert time.monotonic() - t0 < 2 * espat.SCALE
    for p in peers:  # links were closed, not left hanging
        p.settimeout(2 * espat.SCALE)
        got = b""
        try:
            while True:
                chunk = p.recv(65536)
                if not chunk:
                    break
                got += chunk
        except ConnectionResetError:
            pass
        p.close()
    espat.check_stderr(d.log())
    d.proc = None
    c.close()
    d.client = None
    c = d.start()
    c.echo_off()
    c.transact(b"AT+SYSMSG?\r\n", b"+SYSMSG:3\r\nOK\r\n")
    srv.close()
