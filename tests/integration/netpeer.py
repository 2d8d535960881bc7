"""Loopback peers and an AT output demultiplexer for the link tests.

Every peer binds 127.0.0.1 or ::1 only.
"""

import re
import socket
import time

import espat

IPD_RE = re.compile(rb"\+IPD,(?:(\d),)?(\d+)(?:,\"([^\"]*)\",(\d+))?([:\r])")


class TcpServer:
    """A listening TCP peer; accept() returns a connected socket."""

    def __init__(self, family=socket.AF_INET, host="127.0.0.1"):
        self.sock = socket.socket(family, socket.SOCK_STREAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind((host, 0))
        self.sock.listen(16)
        self.port = self.sock.getsockname()[1]

    def accept(self, timeout=None):
        self.sock.settimeout(timeout or espat.TIMEOUT)
        conn, _ = self.sock.accept()
        conn.settimeout(espat.TIMEOUT)
        return conn

    def close(self):
        self.sock.close()


class UdpPeer:
    def __init__(self, family=socket.AF_INET, host="127.0.0.1", port=0):
        self.sock = socket.socket(family, socket.SOCK_DGRAM)
        self.sock.bind((host, port))
        self.port = self.sock.getsockname()[1]
        self.sock.settimeout(espat.TIMEOUT)

    def recv(self):
        return self.sock.recvfrom(65536)

    def close(self):
        self.sock.close()


class HangingListener:
    """A listener whose backlog is full: the next connect to it hangs (its
    SYN is dropped) until a timeout, all on loopback."""

    def __init__(self):
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(0)
        self.port = self.sock.getsockname()[1]
        self.fillers = []
        for _ in range(4):
            f = socket.socket()
            f.setblocking(False)
            try:
                f.connect(("127.0.0.1", self.port))
            except BlockingIOError:
                pass
            self.fillers.append(f)
        time.sleep(0.1)

    def close(self):
        for f in self.fillers:
            f.close()
        self.sock.close()


def free_port(family=socket.AF_INET, kind=socket.SOCK_STREAM):
    s = socket.socket(family, kind)
    s.bind(("127.0.0.1" if family == socket.AF_INET else "::1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def recv_exact(conn, n, timeout=None):
    conn.settimeout(timeout or espat.TIMEOUT)
    out = b""
    while len(out) < n:
        chunk = conn.recv(n - len(out))
        if not chunk:
            break
        out += chunk
    return out


class Demux:
    """Splits what espatd writes into +IPD payloads (by their length) and the
    remaining text, so bulk tests can interleave sends and receives."""

    def __init__(self, client):
        self.c = client
        self.buf = b""
        self.text = b""
        self.data = {}       # link id (-1 single) -> bytearray
        self.frames = []     # (id, len, ip, port) of active +IPD
        self.notices = []    # (id, len) of passive notices

    def _parse(self):
        while True:
            i = self.buf.find(b"\r\n+IPD,")
            if i < 0:
                # keep a possible partial marker at the end
                keep = 0
                for k in range(1, 7):
                    if self.buf.endswith(b"\r\n+IPD,"[:k]):
                        keep = k
                self.text += self.buf[:len(self.buf) - keep]
                self.buf = self.buf[len(self.buf) - keep:]
                return
            m = IPD_RE.match(self.buf, i + 2)
            if not m:
                if len(self.buf) - i > 64:
                    raise AssertionError("bad +IPD header: %r" % self.buf[i:i + 64])
                self.text += self.buf[:i]
                self.buf = self.buf[i:]
                return
            lid = int(m.group(1)) if m.group(1) is not None else -1
            n = int(m.group(2))
            if m.group(5) == b"\r":
                # passive notice "\r\n+IPD,<id>,<len>\r\n"
                if len(self.buf) < m.end() + 1:
                    self.text += self.buf[:i]
                    self.buf = self.buf[i:]
                    return
                assert self.buf[m.end():m.end() + 1] == b"\n"
                self.notices.append((lid, n))
                self.text += self.buf[:i]
                self.buf = self.buf[m.end() + 1:]
                continue
            end = m.end() + n + 2
            if len(self.buf) < end:
                self.text += self.buf[:i]
                self.buf = self.buf[i:]
                return
            assert self.buf[end - 2:end] == b"\r\n", "no CR LF after +IPD data"
            self.data.setdefault(lid, bytearray()).extend(self.buf[m.end():end - 2])
            self.frames.append((lid, n, m.group(3), m.group(4)))
            self.text += self.buf[:i]
            self.buf = self.buf[end:]

    def poll(self, wait=0.0):
        """Take what has arrived, waiting up to `wait` for the first byte."""
        if wait:
            self.c._fill(time.monotonic() + wait)
        else:
            self.c.pending += self.c._raw_read(0)
        got, self.c.pending = self.c.pending, b""
        if got:
            self.buf += got
            self._parse()
        return bool(got)

    def wait_text(self, marker, timeout=None):
        """Wait until `marker` is in the text; consume text up to its end."""
        deadline = time.monotonic() + (timeout or espat.TIMEOUT * 4)
        while True:
            if marker in self.text:
                i = self.text.index(marker) + len(marker)
                before, self.text = self.text[:i], self.text[i:]
                return before
            # The tail held back as a possible "\r\n+IPD," start may end
            # the marker (an +IPD always brings its own leading CR LF).
            both = self.text + self.buf
            if marker in both and not self.buf.startswith(b"\r\n+"):
                i = both.index(marker) + len(marker)
                before = both[:i]
                self.buf = both[i:]
                self.text = b""
                return before
            if time.monotonic() > deadline:
                raise AssertionError("timeout waiting for %r; text %r buf %r" % (
                    marker, self.text[-200:], self.buf[:200]))
            self.poll(0.02)

    def wait_data(self, lid, n, timeout=None):
        deadline = time.monotonic() + (timeout or espat.TIMEOUT * 10)
        while len(self.data.get(lid, b"")) < n:
            if time.monotonic() > deadline:
                raise AssertionError("link %d: %d of %d bytes arrived" % (
                    lid, len(self.data.get(lid, b"")), n))
            self.poll(0.02)
        return bytes(self.data[lid])


# ---- a real DNS server -----------------------------------------------------

DNSMASQ = "/usr/sbin/dnsmasq"


def free_udp_tcp_port():
    """A port free for both UDP and TCP on 127.0.0.1 (dnsmasq binds both)."""
    for _ in range(50):
        u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        u.bind(("127.0.0.1", 0))
        port = u.getsockname()[1]
        t = socket.socket()
        try:
            t.bind(("127.0.0.1", port))
            return port
        except OSError:
            continue
        finally:
            t.close()
            u.close()
    raise AssertionError("no free port")


def dns_query_ok(port, name):
    """True when the server on 127.0.0.1:port answers an A query for name."""
    import struct
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.settimeout(0.2)
    try:
        qname = b"".join(bytes([len(p)]) + p.encode() for p in name.split(".")) + b"\0"
        s.sendto(struct.pack(">HHHHHH", 0x4242, 0x0100, 1, 0, 0, 0) + qname +
                 struct.pack(">HH", 1, 1), ("127.0.0.1", port))
        data = s.recv(512)
        return len(data) >= 12 and data[:2] == b"\x42\x42" and (data[3] & 15) == 0
    except OSError:
        return False
    finally:
        s.close()


class Dnsmasq:
    """dnsmasq on 127.0.0.1:<port>, authoritative for .test. `records` are
    dnsmasq options such as "--host-record=name.test,127.0.0.1,::1"; the
    first one's name must have an A record (used to see it is up)."""

    def __init__(self, workdir, records, probe):
        import os
        import subprocess
        self.port = free_udp_tcp_port()
        argv = [DNSMASQ, "--no-daemon", "--port=%d" % self.port,
                "--listen-address=127.0.0.1", "--bind-interfaces", "--no-resolv",
                "--no-hosts", "--pid-file", "--conf-file=/dev/null",
                # authoritative for .test: NXDOMAIN / NODATA instead of REFUSED
                "--local=/test/", "--log-facility=-"] + list(records)
        if os.geteuid() == 0:
            argv.append("--user=root")
        self.log_path = os.path.join(str(workdir), "dnsmasq.log")
        log = open(self.log_path, "wb")
        self.proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=log, stderr=log)
        log.close()
        deadline = time.monotonic() + 5 * espat.SCALE
        while not dns_query_ok(self.port, probe):
            if self.proc.poll() is not None or time.monotonic() > deadline:
                self.stop()
                with open(self.log_path, "rb") as f:
                    raise AssertionError("dnsmasq did not start:\n%s" % f.read().decode())
            time.sleep(0.02)

    def stop(self):
        import subprocess
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
