"""UDP broadcast (protocol.md §2.5: 255.255.255.255 = broadcast) in a network
namespace the test creates: a veth pair, espatd on one end, a receiver on the
other. Needs root and iproute2; skipped otherwise."""

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
    if os.geteuid() != 0 or not os.access(IP, os.X_OK):
        pytest.skip("needs root and iproute2 for a network namespace")
    name = "espatd-%s" % uuid.uuid4().hex[:8]
    try:
        run(IP, "netns", "add", name)
    except subprocess.CalledProcessError as e:
        pytest.skip("cannot create a network namespace: %s" % e.stderr.decode().strip())
    try:
        run(IP, "-n", name, "link", "set", "lo", "up")
        run(IP, "-n", name, "link", "add", "veth0", "type", "veth", "peer", "name", "veth1")
        run(IP, "-n", name, "addr", "add", "10.77.0.1/24", "dev", "veth0")
        run(IP, "-n", name, "addr", "add", "10.77.0.2/24", "dev", "veth1")
        run(IP, "-n", name, "link", "set", "veth0", "up")
        run(IP, "-n", name, "link", "set", "veth1", "up")
        run(IP, "-n", name, "route", "add", "default", "dev", "veth0")
        yield name
    finally:
        subprocess.run([IP, "netns", "delete", name], stderr=subprocess.DEVNULL)


RECEIVER = r"""
import socket, sys
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.setsockopt(socket.SOL_SOCKET, socket.SO_BINDTODEVICE, b"veth1")
s.bind(("", int(sys.argv[1])))
s.settimeout(float(sys.argv[2]))
print("ready", flush=True)
data, addr = s.recvfrom(100)
print(data.decode(), addr[0], flush=True)
"""


def test_udp_broadcast(espatd, netns):
    port = 47123
    rx = subprocess.Popen([IP, "netns", "exec", netns, "/usr/bin/python3", "-c", RECEIVER,
                           str(port), str(5 * espat.SCALE)], stdout=subprocess.PIPE,
                          stderr=subprocess.PIPE)
    assert rx.stdout.readline() == b"ready\n", rx.stderr.read()
    d = espatd(connect=False, netns=netns)
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
