"""UDP broadcast (protocol.md §2.5: 255.255.255.255 = broadcast) between two
network namespaces the test creates, joined by a veth pair: espatd in one, a
receiver in the other. Needs root and iproute2; skipped otherwise."""

import os
import shutil
import subprocess
import uuid

import pytest

import espat

IP = shutil.which("ip") or "/usr/sbin/ip"


def run(*argv):
    subprocess.run(argv, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)


@pytest.fixture
def netns():
    """Two namespaces: "<name>-a" (10.77.0.1 on veth0, default route) for
    espatd and "<name>-b" (10.77.0.2 on veth1) for the peer."""
    if os.geteuid() != 0 or not os.access(IP, os.X_OK):
        pytest.skip("needs root and iproute2 for a network namespace")
    name = "espatd-%s" % uuid.uuid4().hex[:8]
    a, b = name + "-a", name + "-b"
    made = []
    try:
        for ns in (a, b):
            try:
                run(IP, "netns", "add", ns)
            except subprocess.CalledProcessError as e:
                pytest.skip("cannot create a network namespace: %s" %
                            e.stderr.decode().strip())
            made.append(ns)
            run(IP, "-n", ns, "link", "set", "lo", "up")
        run(IP, "-n", a, "link", "add", "veth0", "type", "veth", "peer", "name", "veth1",
            "netns", b)
        run(IP, "-n", a, "addr", "add", "10.77.0.1/24", "dev", "veth0")
        run(IP, "-n", b, "addr", "add", "10.77.0.2/24", "dev", "veth1")
        run(IP, "-n", a, "link", "set", "veth0", "up")
        run(IP, "-n", b, "link", "set", "veth1", "up")
        run(IP, "-n", a, "route", "add", "default", "dev", "veth0")
        yield a, b
    finally:
        for ns in made:
            subprocess.run([IP, "netns", "delete", ns], stderr=subprocess.DEVNULL)


RECEIVER = r"""
import socket, sys
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("", int(sys.argv[1])))
s.settimeout(float(sys.argv[2]))
print("ready", flush=True)
data, addr = s.recvfrom(100)
print(data.decode(), addr[0], flush=True)
"""


def test_udp_broadcast(espatd, netns):
    ns_dut, ns_peer = netns
    port = 47123
    rx = subprocess.Popen([IP, "netns", "exec", ns_peer, "/usr/bin/python3", "-c", RECEIVER,
                           str(port), str(5 * espat.SCALE)], stdout=subprocess.PIPE,
                          stderr=subprocess.PIPE)
    assert rx.stdout.readline() == b"ready\n", rx.stderr.read()
    d = espatd(connect=False, netns=ns_dut)
    c = d.connect()
    c.echo_off()
    c.must_ok(b'AT+CWJAP="lab","pw"\r\n')
    # the station reports the namespace's default-route interface
    c.transact(b"AT+CIPSTA?\r\n", b'+CIPSTA:ip:"10.77.0.1"\r\n+CIPSTA:gateway:"0.0.0.0"\r\n'
               b'+CIPSTA:netmask:"255.255.255.0"\r\n\r\nOK\r\n')
    c.transact(b'AT+CIPSTART="UDP","255.255.255.255",%d\r\n' % port, b"CONNECT\r\n\r\nOK\r\n")
    c.transact(b"AT+CIPSEND=9\r\n", b"\r\nOK\r\n\r\n>")
    c.transact(b"broadcast", b"\r\nRecv 9 bytes\r\n\r\nSEND OK\r\n")
    out, err = rx.communicate(timeout=10 * espat.SCALE)
    assert out.split() == [b"broadcast", b"10.77.0.1"], err
    c.transact(b"AT+CIPCLOSE\r\n", b"CLOSED\r\n\r\nOK\r\n")
