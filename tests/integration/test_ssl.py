"""SSL links and the SSL client configuration (protocol.md §2.5, §2.17, §2.26):
AT+CIPSTART "SSL", AT+CIPSERVER "SSL", AT+CIPSSLCCONF/CN/SNI/ALPN/PSK/PSKHEX/
CIPHER, against real TLS peers on loopback (openssl s_server and Python's ssl
module) with certificates the tests make with the openssl command.

Certificates reach the daemon as files in <state-dir>/mfg/<namespace>/ placed
before it starts (the AT+SYSMFG way is in test_sysmfg.py)."""

import hashlib
import os
import re
import shutil
import socket
import ssl
import subprocess
import threading
import time

import pytest

import espat
from netpeer import Demux, TcpServer, free_port, recv_exact

OK = b"\r\nOK\r\n"
ERROR = b"\r\nERROR\r\n"
OPENSSL = shutil.which("openssl")

pytestmark = pytest.mark.skipif(OPENSSL is None, reason="the openssl command is needed")


# ---- certificates ---------------------------------------------------------

def _run(args, cwd):
    subprocess.run(args, cwd=cwd, check=True, stdout=subprocess.DEVNULL,
                   stderr=subprocess.PIPE)


class Pki:
    """A CA with a server and a client certificate, and the bad cases: a
    second CA with its own server and client certificates, an expired server
    certificate, a certificate for another name. EC P-256 keys (fast)."""

    SERVER_EXT = ("subjectAltName=DNS:server.test,DNS:localhost,IP:127.0.0.1,IP:::1\n"
                  "extendedKeyUsage=serverAuth\n")
    CLIENT_EXT = "extendedKeyUsage=clientAuth\n"

    def __init__(self, d):
        self.d = str(d)
        os.makedirs(self.d, exist_ok=True)
        with open(self.p("server.ext"), "w") as f:
            f.write(self.SERVER_EXT)
        with open(self.p("client.ext"), "w") as f:
            f.write(self.CLIENT_EXT)
        with open(self.p("other.ext"), "w") as f:
            f.write("subjectAltName=DNS:other.test\nextendedKeyUsage=serverAuth\n")
        self.ca = self._ca("ca", "espatd test CA")
        self.other_ca = self._ca("other_ca", "some other CA")
        self.server = self._leaf("server", "server.test", "ca", "server.ext")
        self.client = self._leaf("client", "mcu.test", "ca", "client.ext")
        self.other_server = self._leaf("other_server", "server.test", "other_ca", "server.ext")
        self.other_client = self._leaf("other_client", "mcu.test", "other_ca", "client.ext")
        self.wrong_name = self._leaf("wrong_name", "other.test", "ca", "other.ext")
        self.expired = self._expired()

    def p(self, name):
        return os.path.join(self.d, name)

    def _ca(self, name, cn):
        _run([OPENSSL, "req", "-x509", "-newkey", "ec", "-pkeyopt",
              "ec_paramgen_curve:prime256v1", "-nodes", "-keyout", name + ".key",
              "-out", name + ".pem", "-days", "30", "-subj", "/CN=" + cn], self.d)
        return self.p(name + ".pem")

    def _leaf(self, name, cn, ca, ext):
        _run([OPENSSL, "req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
              "-nodes", "-keyout", name + ".key", "-out", name + ".csr", "-subj", "/CN=" + cn],
             self.d)
        _run([OPENSSL, "x509", "-req", "-in", name + ".csr", "-CA", ca + ".pem", "-CAkey",
              ca + ".key", "-CAcreateserial", "-out", name + ".pem", "-days", "30",
              "-extfile", ext], self.d)
        return (self.p(name + ".pem"), self.p(name + ".key"))

    def _expired(self):
        # OpenSSL 3.0's x509 has no -not_before: `openssl ca` sets both dates
        os.makedirs(self.p("newcerts"), exist_ok=True)
        open(self.p("index.txt"), "w").close()
        with open(self.p("serial"), "w") as f:
            f.write("1000\n")
        with open(self.p("ca.cnf"), "w") as f:
            f.write("[ca]\ndefault_ca=d\n[d]\ndir=%s\ndatabase=$dir/index.txt\n"
                    "new_certs_dir=$dir/newcerts\nserial=$dir/serial\ndefault_md=sha256\n"
                    "policy=p\nunique_subject=no\n[p]\ncommonName=supplied\n" % self.d)
        _run([OPENSSL, "req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
              "-nodes", "-keyout", "expired.key", "-out", "expired.csr", "-subj",
              "/CN=server.test"], self.d)
        _run([OPENSSL, "ca", "-batch", "-config", "ca.cnf", "-cert", "ca.pem", "-keyfile",
              "ca.key", "-in", "expired.csr", "-out", "expired.pem", "-notext",
              "-startdate", "20200101000000Z", "-enddate", "20200201000000Z",
              "-extfile", "server.ext"], self.d)
        return (self.p("expired.pem"), self.p("expired.key"))


@pytest.fixture(scope="module")
def pki(tmp_path_factory):
    return Pki(tmp_path_factory.mktemp("pki"))


def put_mfg(state_dir, ns, n, src):
    """Provision like a user: a PEM file at <state-dir>/mfg/<ns>/<ns>.<n>."""
    d = os.path.join(state_dir, "mfg", ns)
    os.makedirs(d, exist_ok=True)
    shutil.copy(src, os.path.join(d, "%s.%d" % (ns, n)))


def start(espatd, pki=None, files=None, mux=False, extra=(), args=(), profile=None,
          mode="whole", name="ssl", join=True):
    """A daemon that has the CA as client_ca.0, our client pair as
    client_cert.0/client_key.0 and our server pair as server_cert.0/
    server_key.0/server_ca.0 (plus `files`: {(ns, n): path}), joined."""
    tmp = None
    layout = {}
    if pki:
        layout = {("client_ca", 0): pki.ca, ("client_cert", 0): pki.client[0],
                  ("client_key", 0): pki.client[1], ("server_cert", 0): pki.server[0],
                  ("server_key", 0): pki.server[1], ("server_ca", 0): pki.ca}
    layout.update(files or {})
    d = espatd(*args, name=name, profile=profile, mode=mode, connect=False)
    tmp = d.state_dir
    d.stop()
    for (ns, n), src in layout.items():
        put_mfg(tmp, ns, n, src)
    c = d.start()
    c.echo_off()
    if join:
        c.must_ok(b'AT+CWJAP="lab","pw"\r\n')
    if mux:
        c.transact(b"AT+CIPMUX=1\r\n", OK)
    for cmd in extra:
        c.must_ok(cmd)
    return d, c


# ---- TLS peers --------------------------------------------------------------

class PyServer:
    """A TLS server on loopback made with Python's ssl module. accept()
    starts a thread that takes one client and does the handshake."""

    def __init__(self, cert, key, version=None, alpn=None, verify_ca=None, family=socket.AF_INET,
                 host="127.0.0.1", ciphers=None):
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.load_cert_chain(cert, key)
        if version:
            ctx.minimum_version = ctx.maximum_version = version
        if alpn:
            ctx.set_alpn_protocols(alpn)
        if verify_ca:
            ctx.load_verify_locations(verify_ca)
            ctx.verify_mode = ssl.CERT_REQUIRED
        if ciphers:
            ctx.set_ciphers(ciphers)
        self.sni = []
        ctx.sni_callback = lambda sock, name, c: self.sni.append(name)
        self.ctx = ctx
        self.sock = socket.socket(family, socket.SOCK_STREAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind((host, 0))
        self.sock.listen(8)
        self.port = self.sock.getsockname()[1]
        self.conn = None
        self.error = None
        self.thread = None

    def accept(self):
        def run():
            try:
                self.sock.settimeout(espat.TIMEOUT * 5)
                raw, _ = self.sock.accept()
                raw.settimeout(espat.TIMEOUT * 5)
                self.conn = self.ctx.wrap_socket(raw, server_side=True)
            except (OSError, ssl.SSLError) as e:
                self.error = e
        self.thread = threading.Thread(target=run, daemon=True)
        self.thread.start()
        return self

    def wait(self):
        self.thread.join(espat.TIMEOUT * 6)
        return self.conn

    def close(self):
        if self.conn:
            self.conn.close()
        self.sock.close()


class SServer:
    """openssl s_server on loopback. Its stdin stays open (it exits when
    stdin closes); what it prints (with -msg: the ClientHello's SNI and
    ALPN) is in .out()."""

    def __init__(self, tmp, args, naccept=1):
        self.port = free_port()
        self.logpath = os.path.join(str(tmp), "s_server-%d.log" % self.port)
        log = open(self.logpath, "wb")
        argv = [OPENSSL, "s_server", "-accept", "127.0.0.1:%d" % self.port, "-naccept",
                str(naccept), "-ign_eof"] + list(args)
        self.proc = subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=log,
                                     stderr=subprocess.STDOUT)
        log.close()
        deadline = time.monotonic() + 5 * espat.SCALE
        while b"ACCEPT" not in self.out():
            assert self.proc.poll() is None, "s_server exited:\n%s" % self.out()
            assert time.monotonic() < deadline, "s_server does not listen:\n%s" % self.out()
            time.sleep(0.01)

    def out(self):
        with open(self.logpath, "rb") as f:
            return f.read()

    def wait_out(self, what, timeout=None):
        deadline = time.monotonic() + (timeout or espat.TIMEOUT)
        while what not in self.out():
            assert time.monotonic() < deadline, "s_server never printed %r:\n%s" % (
                what, self.out().decode("latin-1"))
            time.sleep(0.01)

    def send(self, data):
        self.proc.stdin.write(data)
        self.proc.stdin.flush()

    def close(self):
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait()
        self.proc.stdin.close()


@pytest.fixture
def sservers(tmp_path):
    made = []

    def factory(*args, naccept=1):
        s = SServer(tmp_path, args, naccept)
        made.append(s)
        return s
    yield factory
    for s in made:
        s.close()


def server_args(pki, pair=None):
    pair = pair or pki.server
    return ["-cert", pair[0], "-key", pair[1]]


ERRNO_FAIL_RE = re.compile(rb"^\+ERRNO:0x[0-9a-f]+\r\nERR CODE:0x010a0000\r\n\r\nERROR\r\n"
                           rb"(\d,)?CLOSED\r\n$")


def start_fails(c, cmd, closed=b"CLOSED\r\n", timeout=None):
    """CIPSTART that fails after the socket existed, with SYSLOG=1: +ERRNO,
    ERR CODE, ERROR, then CLOSED (§2.5, §1.8)."""
    c.write(cmd)
    out = c.read_until(closed, timeout=timeout)
    c.assert_quiet()
    assert ERRNO_FAIL_RE.match(out), out
    return out


def log_has(d, text, timeout=None):
    deadline = time.monotonic() + (timeout or espat.TIMEOUT)
    while text not in d.log():
        assert time.monotonic() < deadline, "log lacks %r:\n%s" % (text, d.log())
        time.sleep(0.01)


def echo_check(c, conn, single=True, lid=0):
    """A few bytes each way over the open SSL link."""
    if single:
        c.transact(b"AT+CIPSEND=5\r\n", b"\r\nOK\r\n\r\n>")
    else:
        c.transact(b"AT+CIPSEND=%d,5\r\n" % lid, b"\r\nOK\r\n\r\n>")
    c.transact(b"hello", b"\r\nRecv 5 bytes\r\n\r\nSEND OK\r\n")
    assert recv_exact(conn, 5) == b"hello"
    conn.sendall(b"world")
    if single:
        c.expect(b"\r\n+IPD,5:world\r\n")
    else:
        c.expect(b"\r\n+IPD,%d,5:world\r\n" % lid)


# ---- the configuration commands ---------------------------------------------

def test_config_queries_and_defaults(espatd):
    d, c = start(espatd)
    c.transact(b"AT+CIPSSLCCONF?\r\n", b"+CIPSSLCCONF:0,0,0,0\r\n" + OK)
    c.transact(b"AT+CIPSSLCCN?\r\n", b"+CIPSSLCCN:0,\r\n" + OK)
    c.transact(b"AT+CIPSSLCSNI?\r\n", b"+CIPSSLCSNI:0,\r\n" + OK)
    c.transact(b"AT+CIPSSLCALPN?\r\n", b"+CIPSSLCALPN:0\r\n" + OK)
    c.transact(b"AT+CIPSSLCPSK?\r\n", b"+CIPSSLCPSK:0,,\r\n" + OK)
    c.transact(b"AT+CIPSSLCPSKHEX?\r\n", b"+CIPSSLCPSKHEX:0,,\r\n" + OK)
    c.transact(b"AT+CIPSSLCCIPHER?\r\n", b"+CIPSSLCCIPHER:0\r\n" + OK)
    # single connection mode: no link id
    c.transact(b'AT+CIPSSLCCN="server.test"\r\n', OK)
    c.transact(b'AT+CIPSSLCSNI="sni.test"\r\n', OK)
    c.transact(b'AT+CIPSSLCALPN=2,"h2","http/1.1"\r\n', OK)
    c.transact(b'AT+CIPSSLCPSK="key",\"id\"\r\n', OK)
    c.transact(b'AT+CIPSSLCCIPHER=2,0xC02B,0x1301\r\n', OK)
    c.transact(b"AT+CIPSSLCCN?\r\n", b"+CIPSSLCCN:0,server.test\r\n" + OK)
    c.transact(b"AT+CIPSSLCSNI?\r\n", b"+CIPSSLCSNI:0,sni.test\r\n" + OK)
    c.transact(b"AT+CIPSSLCALPN?\r\n", b"+CIPSSLCALPN:0,h2,http/1.1\r\n" + OK)
    c.transact(b"AT+CIPSSLCPSK?\r\n", b"+CIPSSLCPSK:0,key,id\r\n" + OK)
    c.transact(b"AT+CIPSSLCPSKHEX?\r\n", b"+CIPSSLCPSKHEX:0,6b6579,id\r\n" + OK)
    c.transact(b"AT+CIPSSLCCIPHER?\r\n", b"+CIPSSLCCIPHER:0,0xC02B,0x1301\r\n" + OK)
    c.transact(b'AT+CIPSSLCPSKHEX="00FF10",\"hint\"\r\n', OK)
    c.transact(b"AT+CIPSSLCPSKHEX?\r\n", b"+CIPSSLCPSKHEX:0,00ff10,hint\r\n" + OK)
    c.transact(b"AT+CIPSSLCPSK?\r\n", b"+CIPSSLCPSK:0,,hint\r\n" + OK)  # %s stops at NUL
    # clearing
    c.transact(b"AT+CIPSSLCALPN=0\r\n", OK)
    c.transact(b"AT+CIPSSLCCIPHER=0\r\n", OK)
    c.transact(b'AT+CIPSSLCCN=""\r\n', OK)
    c.transact(b"AT+CIPSSLCALPN?\r\n", b"+CIPSSLCALPN:0\r\n" + OK)
    c.transact(b"AT+CIPSSLCCIPHER?\r\n", b"+CIPSSLCCIPHER:0\r\n" + OK)
    c.transact(b"AT+CIPSSLCCN?\r\n", b"+CIPSSLCCN:0,\r\n" + OK)
    # multiple connections: one line per link; 5 = all
    c.transact(b"AT+CIPMUX=1\r\n", OK)
    c.transact(b'AT+CIPSSLCCN=5,"all.test"\r\n', OK)
    c.transact(b'AT+CIPSSLCCN=3,"three.test"\r\n', OK)
    c.transact(b"AT+CIPSSLCCN?\r\n", b"".join(
        b"+CIPSSLCCN:%d,%s\r\n" % (i, b"three.test" if i == 3 else b"all.test")
        for i in range(5)) + OK)
    c.transact(b'AT+CIPSSLCALPN=1,1,"mqtt"\r\n', OK)
    c.transact(b"AT+CIPSSLCALPN?\r\n", b"".join(
        b"+CIPSSLCALPN:%d%s\r\n" % (i, b",mqtt" if i == 1 else b"") for i in range(5)) + OK)
    c.transact(b"AT+CIPSSLCCONF=2,0,7,9\r\n", OK)
    c.transact(b"AT+CIPSSLCCONF?\r\n", b"".join(
        b"+CIPSSLCCONF:%d,0,%s\r\n" % (i, b"7,9" if i == 2 else b"0,0") for i in range(5)) + OK)
    c.transact(b"AT+CIPSSLCCONF=5,0\r\n", OK)
    c.transact(b"AT+CIPSSLCCONF?\r\n", b"".join(
        b"+CIPSSLCCONF:%d,0,0,0\r\n" % i for i in range(5)) + OK)


def test_config_limits(espatd):
    """Every limit of the reference answers ERROR (with SYSLOG: the code)."""
    d, c = start(espatd)
    name64 = b"n" * 64
    cases_single = [
        (b"AT+CIPSSLCCONF=4\r\n", b"0x01070000"),          # auth_mode 0..3
        (b"AT+CIPSSLCCONF=-1\r\n", b"0x01070000"),
        (b"AT+CIPSSLCCONF=0,256\r\n", b"0x01070001"),      # pki_number u8
        (b"AT+CIPSSLCCONF=0,0,256\r\n", b"0x01070002"),    # ca_number u8
        (b"AT+CIPSSLCCONF=0,0,0,0\r\n", b"0x01060304"),    # no link id in single mode
        (b"AT+CIPSSLCCONF\r\n", None),                     # no execute form
        (b"AT+CIPSSLCCONF=?\r\n", None),
        (b'AT+CIPSSLCCN="%s"\r\n' % (name64 + b"x"), b"0x01040000"),  # 64 bytes max
        (b'AT+CIPSSLCSNI="%s"\r\n' % (name64 + b"x"), b"0x01040000"),
        (b"AT+CIPSSLCCN=1\r\n", b"0x01080000"),            # a string
        (b"AT+CIPSSLCALPN=6\r\n", b"0x01070000"),          # counts 0..5
        (b'AT+CIPSSLCALPN=2,"h2"\r\n', b"0x01060302"),     # counts and names agree
        (b'AT+CIPSSLCALPN=1,"h2","x"\r\n', b"0x01060203"),
        (b'AT+CIPSSLCALPN=1,""\r\n', b"0x01070001"),       # empty protocol name
        (b'AT+CIPSSLCPSK="%s","h"\r\n' % (b"k" * 33), b"0x01040000"),  # 32 max
        (b'AT+CIPSSLCPSK="k","%s"\r\n' % (b"h" * 33), b"0x01040001"),
        (b'AT+CIPSSLCPSK="k"\r\n', b"0x01060201"),
        (b'AT+CIPSSLCPSKHEX="abc","h"\r\n', b"0x01070000"),       # odd length
        (b'AT+CIPSSLCPSKHEX="zz","h"\r\n', b"0x01070000"),        # not hex
        (b'AT+CIPSSLCPSKHEX="%s","h"\r\n' % (b"ab" * 33), b"0x01040000"),  # 32 bytes max
        (b"AT+CIPSSLCCIPHER=17\r\n", b"0x01070000"),       # at most 16 suites
        (b"AT+CIPSSLCCIPHER=1,0\r\n", b"0x01070001"),      # suite ids 1..0xFFFF
        (b"AT+CIPSSLCCIPHER=1,0x10000\r\n", b"0x01070001"),
        (b"AT+CIPSSLCCIPHER=2,0xC02B\r\n", b"0x01060302"),
    ]
    c.transact(b"AT+SYSLOG=1\r\n", OK)
    failures = []
    for cmd, code in cases_single:
        exp = (b"ERR CODE:" + code + b"\r\n" if code else b"") + ERROR
        c.check(cmd, exp, failures)
    # the limits themselves are fine
    for cmd in (b'AT+CIPSSLCCN="%s"\r\n' % name64, b'AT+CIPSSLCSNI="%s"\r\n' % name64,
                b'AT+CIPSSLCPSK="%s","%s"\r\n' % (b"k" * 32, b"h" * 32),
                b'AT+CIPSSLCPSKHEX="%s","h"\r\n' % (b"ab" * 32),
                b'AT+CIPSSLCALPN=5,"a","b","c","d","e"\r\n',
                b"AT+CIPSSLCCIPHER=1,0xFFFF\r\n", b"AT+CIPSSLCCONF=0,255,255\r\n"):
        c.check(cmd, OK, failures)
    c.transact(b"AT+CIPMUX=1\r\n", OK)
    for cmd, code in [(b"AT+CIPSSLCCN=6,\"a\"\r\n", b"0x01070000"),   # link 0..5
                      (b"AT+CIPSSLCCONF=6,0\r\n", b"0x01070000"),
                      (b"AT+CIPSSLCCONF=0\r\n", b"0x01060201"),       # id and mode
                      (b'AT+CIPSSLCSNI="a"\r\n', b"0x01080000")]:     # id first
        c.check(cmd, b"ERR CODE:" + code + b"\r\n" + ERROR, failures)
    assert not failures, "\n".join(failures)


def test_cconf_needs_its_certificates(espatd, pki):
    """NO CERT FOUND / NO PRVT_KEY FOUND / NO CA FOUND as the module prints
    them, for the items the auth mode needs (§2.26)."""
    d, c = start(espatd, files={("client_cert", 0): pki.client[0],
                                ("client_cert", 1): pki.client[0],
                                ("client_key", 1): pki.client[1],
                                ("client_ca", 2): pki.ca})
    c.transact(b"AT+CIPSSLCCONF=1\r\n", b"NO PRVT_KEY FOUND\r\n" + ERROR)
    c.transact(b"AT+CIPSSLCCONF=1,2\r\n", b"NO CERT FOUND\r\n" + ERROR)
    c.transact(b"AT+CIPSSLCCONF=1,1\r\n", OK)
    c.transact(b"AT+CIPSSLCCONF=2\r\n", b"NO CA FOUND\r\n" + ERROR)
    c.transact(b"AT+CIPSSLCCONF=2,0,2\r\n", OK)
    c.transact(b"AT+CIPSSLCCONF=3,0,2\r\n", b"NO PRVT_KEY FOUND\r\n" + ERROR)
    c.transact(b"AT+CIPSSLCCONF=3,1,1\r\n", b"NO CA FOUND\r\n" + ERROR)
    c.transact(b"AT+CIPSSLCCONF=3,1,2\r\n", OK)
    c.transact(b"AT+CIPSSLCCONF?\r\n", b"+CIPSSLCCONF:0,3,1,2\r\n" + OK)
    log_has(d, "auth mode 2 needs the CA certificate client_ca.0")


def test_cconf_saved_only_with_sysstore(espatd, pki):
    d, c = start(espatd, pki, join=False)  # no auto-join output after restarts
    c.transact(b"AT+CIPSSLCCONF=2\r\n", OK)
    c.transact(b'AT+CIPSSLCCN="server.test"\r\n', OK)
    c = d.restart()
    c.echo_off()
    # CCONF is kept (SYSSTORE=1 by default), CN never is (§6.3, §6.4)
    c.transact(b"AT+CIPSSLCCONF?\r\n", b"+CIPSSLCCONF:0,2,0,0\r\n" + OK)
    c.transact(b"AT+CIPSSLCCN?\r\n", b"+CIPSSLCCN:0,\r\n" + OK)
    c.transact(b"AT+SYSSTORE=0\r\n", OK)
    c.transact(b"AT+CIPSSLCCONF=0\r\n", OK)
    c = d.restart()
    c.echo_off()
    c.transact(b"AT+CIPSSLCCONF?\r\n", b"+CIPSSLCCONF:0,2,0,0\r\n" + OK)
    # AT+RESTORE forgets it, the certificates stay
    c.write(b"AT+RESTORE\r\n")
    c.expect(OK + b"\r\nready\r\n", timeout=5)
    c.echo_off()
    c.transact(b"AT+CIPSSLCCONF?\r\n", b"+CIPSSLCCONF:0,0,0,0\r\n" + OK)
    c.transact(b"AT+CIPSSLCCONF=3\r\n", OK)


def test_bad_pem_files_are_refused_at_load(espatd, tmp_path, pki):
    junk = tmp_path / "junk.pem"
    junk.write_bytes(b"-----BEGIN CERTIFICATE-----\nnot base64 at all\n"
                     b"-----END CERTIFICATE-----\n")
    d, c = start(espatd, files={("client_ca", 0): str(junk), ("client_key", 0): pki.ca,
                                ("client_cert", 0): pki.client[1]})
    for item in ("client_ca/client_ca.0", "client_key/client_key.0",
                 "client_cert/client_cert.0"):
        log_has(d, "mfg/%s ignored" % item)
    c.transact(b"AT+CIPSSLCCONF=2\r\n", b"NO CA FOUND\r\n" + ERROR)
    c.transact(b"AT+CIPSSLCCONF=1\r\n", b"NO CERT FOUND\r\n" + ERROR)


# ---- client links -------------------------------------------------------------

@pytest.mark.parametrize("version", ["TLSv1_2", "TLSv1_3"])
def test_auth0_both_versions(espatd, pki, version):
    d, c = start(espatd, pki)
    srv = PyServer(*pki.server, version=getattr(ssl.TLSVersion, version)).accept()
    c.transact(b'AT+CIPSTART="SSL","127.0.0.1",%d\r\n' % srv.port, b"CONNECT\r\n" + OK)
    conn = srv.wait()
    assert conn is not None, srv.error
    assert conn.version() == version.replace("_", ".")
    echo_check(c, conn)
    c.transact(b"AT+CIPSTATE?\r\n", b'+CIPSTATE:0,"SSL","127.0.0.1",%d,%d,0\r\n' % (
        srv.port, conn.getpeername()[1]) + OK)
    conn.close()
    c.expect(b"CLOSED\r\n")
    srv.close()


@pytest.mark.parametrize("version", ["TLSv1_2", "TLSv1_3"])
def test_auth2_verifies_the_server(espatd, pki, version):
    d, c = start(espatd, pki, extra=[b"AT+CIPSSLCCONF=2,0,0\r\n"])
    # by address: the certificate's IP SAN
    srv = PyServer(*pki.server, version=getattr(ssl.TLSVersion, version)).accept()
    c.transact(b'AT+CIPSTART="SSL","127.0.0.1",%d\r\n' % srv.port, b"CONNECT\r\n" + OK)
    conn = srv.wait()
    echo_check(c, conn)
    c.transact(b"AT+CIPCLOSE\r\n", b"CLOSED\r\n" + OK)
    srv.close()
    # by name (/etc/hosts): the DNS SAN, and SNI is the name
    srv = PyServer(*pki.server, version=getattr(ssl.TLSVersion, version)).accept()
    c.transact(b'AT+CIPSTART="SSL","localhost",%d\r\n' % srv.port, b"CONNECT\r\n" + OK)
    conn = srv.wait()
    assert srv.sni == ["localhost"]
    c.transact(b"AT+CIPCLOSE\r\n", b"CLOSED\r\n" + OK)
    srv.close()
    # CIPSSLCCN names what the certificate must carry instead of the host
    c.transact(b'AT+CIPSSLCCN="server.test"\r\n', OK)
    srv = PyServer(*pki.server, version=getattr(ssl.TLSVersion, version)).accept()
    c.transact(b'AT+CIPSTART="SSL","127.0.0.1",%d\r\n' % srv.port, b"CONNECT\r\n" + OK)
    srv.wait()
    assert srv.sni == [None]  # an address is never sent as SNI
    c.transact(b"AT+CIPCLOSE\r\n", b"CLOSED\r\n" + OK)
    srv.close()


def test_auth2_failures_say_why(espatd, pki):
    """Wrong CA, wrong name, expired: ERROR then CLOSED (+ERRNO with
    SYSLOG), and the log names the reason (§2.5)."""
    d, c = start(espatd, pki, extra=[b"AT+CIPSSLCCONF=2,0,0\r\n", b"AT+SYSLOG=1\r\n"])
    cases = [
        (pki.other_server, None, "unable to get local issuer certificate"),
        (pki.wrong_name, None, "IP address mismatch"),
        (pki.wrong_name, b"server.test", "hostname mismatch"),
        (pki.server, b"elsewhere.test", "hostname mismatch"),
        (pki.expired, None, "certificate has expired"),
    ]
    for pair, cn, why in cases:
        c.transact(b'AT+CIPSSLCCN="%s"\r\n' % (cn or b""), OK)
        srv = PyServer(*pair).accept()
        start_fails(c, b'AT+CIPSTART="SSL","127.0.0.1",%d\r\n' % srv.port)
        srv.wait()
        assert srv.conn is None  # the client gave up in the handshake
        log_has(d, why)
        srv.close()
    # the same expired server is fine without verification (auth mode 0)
    c.transact(b"AT+CIPSSLCCONF=0\r\n", OK)
    srv = PyServer(*pki.expired).accept()
    c.transact(b'AT+CIPSTART="SSL","127.0.0.1",%d\r\n' % srv.port, b"CONNECT\r\n" + OK)
    echo_check(c, srv.wait())
    c.transact(b"AT+CIPCLOSE\r\n", b"CLOSED\r\n" + OK)
    srv.close()
    log = d.log()
    assert "the server must be signed by client_ca.0 and carry the name" in log


def test_auth1_and_3_present_the_client_certificate(espatd, pki, sservers):
    """A server that requires client certificates (s_server -Verify): auth
    mode 0 fails for want of one, 1 and 3 succeed; our certificate from
    another CA fails."""
    d, c = start(espatd, pki, mux=True, extra=[b"AT+SYSLOG=1\r\n"],
                 files={("client_cert", 1): pki.other_client[0],
                        ("client_key", 1): pki.other_client[1]})
    args = server_args(pki) + ["-Verify", "1", "-verify_return_error", "-CAfile", pki.ca,
                               "-tls1_2"]
    s = sservers(*args)
    start_fails(c, b'AT+CIPSTART=0,"SSL","127.0.0.1",%d\r\n' % s.port, closed=b"0,CLOSED\r\n")
    log_has(d, "alert handshake failure")
    for mode in (1, 3):
        c.transact(b"AT+CIPSSLCCONF=0,%d,0,0\r\n" % mode, OK)
        s = sservers(*args)
        c.transact(b'AT+CIPSTART=0,"SSL","127.0.0.1",%d\r\n' % s.port, b"0,CONNECT\r\n" + OK)
        s.wait_out(b"subject=CN = mcu.test")
        c.transact(b"AT+CIPSEND=0,4\r\n", b"\r\nOK\r\n\r\n>")
        c.transact(b"ping", b"\r\nRecv 4 bytes\r\n\r\nSEND OK\r\n")
        s.wait_out(b"ping")
        s.send(b"pong\n")
        c.expect(b"\r\n+IPD,0,5:pong\n\r\n")
        c.transact(b"AT+CIPCLOSE=0\r\n", b"0,CLOSED\r\n" + OK)
    # TLS 1.3 too
    s = sservers(*(args[:-1] + ["-tls1_3"]))
    c.transact(b'AT+CIPSTART=0,"SSL","127.0.0.1",%d\r\n' % s.port, b"0,CONNECT\r\n" + OK)
    s.wait_out(b"subject=CN = mcu.test")
    c.transact(b"AT+CIPCLOSE=0\r\n", b"0,CLOSED\r\n" + OK)
    # a client certificate the server does not trust
    c.transact(b"AT+CIPSSLCCONF=0,1,1,0\r\n", OK)
    s = sservers(*args)
    start_fails(c, b'AT+CIPSTART=0,"SSL","127.0.0.1",%d\r\n' % s.port, closed=b"0,CLOSED\r\n")
    log_has(d, "alert unknown ca")


def test_sni_observed_and_independent_of_cn(espatd, pki, sservers):
    d, c = start(espatd, pki, extra=[b"AT+SYSLOG=1\r\n"])
    # s_server refuses a ClientHello without the SNI it wants
    args = server_args(pki) + ["-servername", "server.test", "-servername_fatal",
                               "-cert2", pki.server[0], "-key2", pki.server[1]]
    c.transact(b'AT+CIPSSLCSNI="wrong.test"\r\n', OK)
    s = sservers(*args)
    start_fails(c, b'AT+CIPSTART="SSL","127.0.0.1",%d\r\n' % s.port)
    log_has(d, "unrecognized name")
    c.transact(b'AT+CIPSSLCSNI="server.test"\r\n', OK)
    s = sservers(*(args + ["-msg"]))
    c.transact(b'AT+CIPSTART="SSL","127.0.0.1",%d\r\n' % s.port, b"CONNECT\r\n" + OK)
    s.wait_out(b"Hostname in TLS extension: \"server.test\"")
    c.transact(b"AT+CIPCLOSE\r\n", b"CLOSED\r\n" + OK)
    # SNI and the name check are separate: SNI sni.test, certificate
    # checked for server.test (CIPSSLCCN), host an address
    c.transact(b"AT+CIPSSLCCONF=2\r\n", OK)
    c.transact(b'AT+CIPSSLCSNI="sni.test"\r\n', OK)
    c.transact(b'AT+CIPSSLCCN="server.test"\r\n', OK)
    srv = PyServer(*pki.server).accept()
    c.transact(b'AT+CIPSTART="SSL","127.0.0.1",%d\r\n' % srv.port, b"CONNECT\r\n" + OK)
    srv.wait()
    assert srv.sni == ["sni.test"]
    c.transact(b"AT+CIPCLOSE\r\n", b"CLOSED\r\n" + OK)
    srv.close()


def test_alpn_offered_chosen_and_refused(espatd, pki, sservers):
    d, c = start(espatd, pki, extra=[b"AT+SYSLOG=1\r\n"])
    c.transact(b'AT+CIPSSLCALPN=3,"mqtt","h2","http/1.1"\r\n', OK)
    srv = PyServer(*pki.server, alpn=["x-none", "h2"]).accept()
    c.transact(b'AT+CIPSTART="SSL","127.0.0.1",%d\r\n' % srv.port, b"CONNECT\r\n" + OK)
    conn = srv.wait()
    assert conn.selected_alpn_protocol() == "h2"
    c.transact(b"AT+CIPCLOSE\r\n", b"CLOSED\r\n" + OK)
    srv.close()
    # what the ClientHello carried, seen by s_server
    s = sservers(*(server_args(pki) + ["-alpn", "x-espatd,h2", "-msg"]))
    c.transact(b'AT+CIPSTART="SSL","127.0.0.1",%d\r\n' % s.port, b"CONNECT\r\n" + OK)
    s.wait_out(b"ALPN protocols advertised by the client: mqtt, h2, http/1.1")
    s.wait_out(b"ALPN protocols selected: h2")
    c.transact(b"AT+CIPCLOSE\r\n", b"CLOSED\r\n" + OK)
    # a server that speaks none of them refuses the handshake
    s = sservers(*(server_args(pki) + ["-alpn", "x-other"]))
    start_fails(c, b'AT+CIPSTART="SSL","127.0.0.1",%d\r\n' % s.port)
    log_has(d, "no application protocol")


@pytest.mark.parametrize("version", ["-tls1_2", "-tls1_3"])
def test_psk(espatd, sservers, version):
    key = "2b7e151628aed2a6abf7158809cf4f3c"
    d, c = start(espatd, extra=[b"AT+SYSLOG=1\r\n", b"AT+CIPMUX=1\r\n"])
    s = sservers("-nocert", "-psk", key, "-psk_identity", "espatd-mcu", version, "-msg")
    c.transact(b'AT+CIPSSLCPSKHEX=5,"%s","espatd-mcu"\r\n' % key.encode(), OK)
    c.transact(b'AT+CIPSTART=1,"SSL","127.0.0.1",%d\r\n' % s.port, b"1,CONNECT\r\n" + OK)
    c.transact(b"AT+CIPSEND=1,3\r\n", b"\r\nOK\r\n\r\n>")
    c.transact(b"psk", b"\r\nRecv 3 bytes\r\n\r\nSEND OK\r\n")
    s.wait_out(b"psk")
    assert b"PSK warning" not in s.out()
    c.transact(b"AT+CIPCLOSE=1\r\n", b"1,CLOSED\r\n" + OK)
    # a key the server does not know
    c.transact(b'AT+CIPSSLCPSK=1,"not the key","espatd-mcu"\r\n', OK)
    s = sservers("-nocert", "-psk", key, "-psk_identity", "espatd-mcu", version)
    start_fails(c, b'AT+CIPSTART=1,"SSL","127.0.0.1",%d\r\n' % s.port, closed=b"1,CLOSED\r\n")
    log_has(d, "link 1: connect to 127.0.0.1 port %d failed: TLS handshake" % s.port)


def test_cipher_suites(espatd, pki):
    d, c = start(espatd, pki, extra=[b"AT+SYSLOG=1\r\n"])
    for suite, version, name in [
            (0xC02C, ssl.TLSVersion.TLSv1_2, "ECDHE-ECDSA-AES256-GCM-SHA384"),
            (0xC009, ssl.TLSVersion.TLSv1_2, "ECDHE-ECDSA-AES128-SHA"),
            (0x1303, ssl.TLSVersion.TLSv1_3, "TLS_CHACHA20_POLY1305_SHA256")]:
        c.transact(b"AT+CIPSSLCCIPHER=1,0x%04X\r\n" % suite, OK)
        srv = PyServer(*pki.server, version=version, ciphers="ALL:@SECLEVEL=0").accept()
        c.transact(b'AT+CIPSTART="SSL","127.0.0.1",%d\r\n' % srv.port, b"CONNECT\r\n" + OK)
        conn = srv.wait()
        assert conn.cipher()[0] == name
        c.transact(b"AT+CIPCLOSE\r\n", b"CLOSED\r\n" + OK)
        srv.close()
    # an RSA suite with an EC certificate: nothing in common
    c.transact(b"AT+CIPSSLCCIPHER=1,0xC02F\r\n", OK)
    srv = PyServer(*pki.server, version=ssl.TLSVersion.TLSv1_2).accept()
    start_fails(c, b'AT+CIPSTART="SSL","127.0.0.1",%d\r\n' % srv.port)
    srv.wait()
    srv.close()
    log_has(d, "handshake failure")


def test_handshake_timeout(espatd):
    """A server that accepts and never speaks: 10 s per handshake packet
    (§2.5), then ERROR and CLOSED; the log says so."""
    d, c = start(espatd, extra=[b"AT+SYSLOG=1\r\n"])
    srv = TcpServer()
    t0 = time.monotonic()
    c.write(b'AT+CIPSTART="SSL","127.0.0.1",%d\r\n' % srv.port)
    peer = srv.accept()
    c.expect(b"+ERRNO:0x6e\r\nERR CODE:0x010a0000\r\n\r\nERROR\r\nCLOSED\r\n",
             timeout=15 * espat.SCALE)
    assert time.monotonic() - t0 >= 9.5
    log_has(d, "TLS handshake: no answer for 10 s")
    peer.close()
    srv.close()


def test_missing_item_at_connect(espatd, pki):
    """A certificate erased after AT+CIPSSLCCONF: the message and ERROR at
    CIPSTART, before any socket (no CLOSED)."""
    d, c = start(espatd, pki, extra=[b"AT+CIPSSLCCONF=2\r\n"])
    c.transact(b'AT+SYSMFG=0,"client_ca","client_ca.0"\r\n', OK)
    c.transact(b'AT+CIPSTART="SSL","127.0.0.1",%d\r\n' % free_port(),
               b"NO CA FOUND\r\n" + ERROR)
    log_has(d, "SSL configuration unusable")


def test_sslv6_and_sendex_sendl(espatd, pki):
    d, c = start(espatd, pki, mux=True, extra=[b"AT+CIPV6=1\r\n"])
    srv = PyServer(*pki.server, family=socket.AF_INET6, host="::1").accept()
    c.transact(b'AT+CIPSTART=4,"SSLv6","::1",%d\r\n' % srv.port, b"4,CONNECT\r\n" + OK)
    conn = srv.wait()
    c.transact(b"AT+CIPSTATE?\r\n", b'+CIPSTATE:4,"SSLv6","::1",%d,%d,0\r\n' % (
        srv.port, conn.getpeername()[1]) + OK)
    c.transact(b"AT+CIPSENDEX=4,10\r\n", b"\r\nOK\r\n\r\n>")
    c.transact(b"ab\\0", b"\r\nRecv 2 bytes\r\n\r\nSEND OK\r\n")
    assert recv_exact(conn, 2) == b"ab"
    c.transact(b"AT+CIPSENDL=4,6000\r\n", b"\r\nOK\r\n\r\n>")
    blob = os.urandom(6000)
    c.write(blob)
    out = c.read_until(b"SEND OK\r\n")
    assert out.endswith(b"\r\nSEND OK\r\n") and b"+CIPSENDL:" in out
    assert recv_exact(conn, 6000) == blob
    conn.close()
    c.expect(b"4,CLOSED\r\n")
    srv.close()


def test_passthrough_over_ssl(espatd, pki):
    d, c = start(espatd, pki)
    srv = PyServer(*pki.server).accept()
    c.transact(b"AT+CIPMODE=1\r\n", OK)
    c.transact(b'AT+CIPSTART="SSL","127.0.0.1",%d\r\n' % srv.port, b"CONNECT\r\n" + OK)
    conn = srv.wait()
    c.transact(b"AT+CIPSEND\r\n", b"\r\nOK\r\n\r\n>")
    payload = bytes(range(256)) * 8
    c.write(payload)
    assert recv_exact(conn, len(payload)) == payload
    conn.sendall(b"raw back")
    c.expect(b"raw back")
    time.sleep(0.05)
    c.write(b"+++")
    time.sleep(0.1)
    c.transact(b"AT+CIPMODE=0\r\n", OK)
    c.transact(b"AT+CIPCLOSE\r\n", b"CLOSED\r\n" + OK)
    srv.close()


# ---- megabytes, both receive modes --------------------------------------------

def _service(conn, down, state, got_up):
    """One non-blocking round on the server side: send some of `down`,
    read what has arrived."""
    if state["sent"] < len(down):
        try:
            state["sent"] += conn.send(down[state["sent"]:state["sent"] + 16384])
        except (ssl.SSLWantWriteError, ssl.SSLWantReadError, BlockingIOError):
            pass
    try:
        while True:
            chunk = conn.recv(65536)
            if not chunk:
                break
            got_up += chunk
    except (ssl.SSLWantReadError, ssl.SSLWantWriteError, BlockingIOError):
        pass


RECV_RE = re.compile(rb"\+CIPRECVDATA:(\d+),|\r\nERROR\r\n")


def _recvdata(c, maxlen):
    c.write(b"AT+CIPRECVDATA=%d\r\n" % maxlen)
    head = c.read_until(RECV_RE)
    m = RECV_RE.search(head)
    assert re.match(rb"^(\r\n\+IPD,\d+\r\n)*$", head[:m.start()]), head
    if m.group(1) is None:
        return b""
    n = int(m.group(1))
    deadline = time.monotonic() + espat.TIMEOUT
    while len(c.pending) < n + 6:
        assert time.monotonic() < deadline
        c._fill(deadline)
    body = c.pending[:n]
    assert c.pending[n:n + 6] == OK
    c.pending = c.pending[n + 6:]
    return bytes(body)


@pytest.mark.parametrize("passive", [False, True], ids=["active", "passive"])
def test_megabytes_with_hash(espatd, pki, passive):
    size = 2 << 20
    d, c = start(espatd, pki, extra=[b"AT+CIPRECVMODE=1\r\n"] if passive else [])
    srv = PyServer(*pki.server).accept()
    c.transact(b'AT+CIPSTART="SSL","127.0.0.1",%d\r\n' % srv.port, b"CONNECT\r\n" + OK)
    conn = srv.wait()
    conn.setblocking(False)
    up, down = os.urandom(size), os.urandom(size)
    state = {"sent": 0}
    got_up = bytearray()
    dm = Demux(c)
    off = 0
    while off < size:
        block = up[off:off + 8192]
        c.write(b"AT+CIPSEND=%d\r\n" % len(block))
        dm.wait_text(b">")
        c.write(block)
        dm.wait_text(b"SEND OK\r\n")
        off += len(block)
        _service(conn, down, state, got_up)
        if not passive:
            dm.poll()
    deadline = time.monotonic() + 60 * espat.SCALE
    while len(got_up) < size or state["sent"] < size:
        _service(conn, down, state, got_up)
        if not passive:
            dm.poll(0.01)
        else:
            time.sleep(0.001)
        assert time.monotonic() < deadline
    if passive:
        c.pending = dm.buf + c.pending
        got_down = bytearray()
        while len(got_down) < size:
            assert time.monotonic() < deadline
            got_down += _recvdata(c, 8192)
    else:
        got_down = dm.wait_data(-1, size)
    assert hashlib.sha256(bytes(got_up)).digest() == hashlib.sha256(up).digest()
    assert hashlib.sha256(bytes(got_down)).digest() == hashlib.sha256(down).digest()
    conn.close()
    c.drain(0.3)
    srv.close()


# ---- the SSL server ---------------------------------------------------------------

def tls_client(port, pki, cert=None, version=None):
    ctx = ssl.create_default_context(cafile=pki.ca)
    if cert:
        ctx.load_cert_chain(*cert)
    if version:
        ctx.maximum_version = version
    s = socket.create_connection(("127.0.0.1", port), timeout=espat.TIMEOUT)
    return ctx.wrap_socket(s, server_hostname="server.test")


@pytest.mark.parametrize("ca", [0, 1])
def test_ssl_server_five_clients(espatd, pki, ca):
    d, c = start(espatd, pki, mux=True)
    port = free_port()
    c.transact(b'AT+CIPSERVER=1,%d,"SSL",%d\r\n' % (port, ca), OK)
    c.transact(b"AT+CIPSERVER?\r\n", b'+CIPSERVER:1,%d,"SSL",%d,0\r\n' % (port, ca) + OK)
    clients = []
    for i in range(5):
        s = tls_client(port, pki, cert=pki.client if ca else None)
        clients.append(s)
        c.expect(b"%d,CONNECT\r\n" % i)
    for i, s in enumerate(clients):
        s.sendall(b"hi%d" % i)
        c.expect(b"\r\n+IPD,%d,3:hi%d\r\n" % (i, i))
        c.transact(b"AT+CIPSEND=%d,3\r\n" % i, b"\r\nOK\r\n\r\n>")
        c.transact(b"yo%d" % i, b"\r\nRecv 3 bytes\r\n\r\nSEND OK\r\n")
        assert recv_exact(s, 3) == b"yo%d" % i
    c.transact(b"AT+CIPSTATE?\r\n", b"".join(
        b'+CIPSTATE:%d,"SSL","127.0.0.1",%d,%d,1\r\n' % (i, s.getsockname()[1], port)
        for i, s in enumerate(clients)) + OK)
    clients[3].close()
    c.expect(b"3,CLOSED\r\n")
    c.transact(b"AT+CIPSERVER=0,1\r\n", b"".join(
        b"%d,CLOSED\r\n" % i for i in (0, 1, 2, 4)) + OK)
    for s in clients:
        s.close()


def test_ssl_server_client_certificates(espatd, pki):
    """<CA enable> 1: clients without a certificate, or with one from
    another CA, never become links; the log says why."""
    d, c = start(espatd, pki, mux=True)
    port = free_port()
    c.transact(b'AT+CIPSERVER=1,%d,"SSL",1\r\n' % port, OK)
    with pytest.raises((ssl.SSLError, ConnectionResetError)):
        s = tls_client(port, pki, version=ssl.TLSVersion.TLSv1_2)
        s.recv(1)
    with pytest.raises((ssl.SSLError, ConnectionResetError)):
        s = tls_client(port, pki, cert=pki.other_client, version=ssl.TLSVersion.TLSv1_2)
        s.recv(1)
    # TLS 1.3: the client's handshake ends before the server's verdict; the
    # server's alert closes it
    s = tls_client(port, pki)
    with pytest.raises((ssl.SSLError, ConnectionResetError)):
        s.recv(1)
    c.assert_quiet(0.2)
    log_has(d, "server: SSL client rejected")
    log_has(d, "peer did not return a certificate")
    s = tls_client(port, pki, cert=pki.client)
    c.expect(b"0,CONNECT\r\n")
    s.close()
    c.expect(b"0,CLOSED\r\n")


def test_ssl_server_needs_its_certificate(espatd, pki):
    d, c = start(espatd, mux=True)
    port = free_port()
    c.transact(b'AT+CIPSERVER=1,%d,"SSL"\r\n' % port, OK)
    with pytest.raises((ssl.SSLError, ConnectionResetError, OSError)):
        s = tls_client(port, pki)
        s.recv(1)
    c.assert_quiet(0.2)
    log_has(d, "provision server_cert.0 and server_key.0")


# ---- profile limits -------------------------------------------------------------

def test_esp8266_one_ssl_link_no_ssl_server(espatd, pki):
    d, c = start(espatd, pki, mux=True, profile="esp8266")
    srv = PyServer(*pki.server).accept()
    c.transact(b'AT+CIPSTART=0,"SSL","127.0.0.1",%d\r\n' % srv.port, b"0,CONNECT\r\n" + OK)
    srv.wait()
    c.transact(b'AT+CIPSTART=1,"SSL","127.0.0.1",%d\r\n' % srv.port, ERROR)
    log_has(d, "allows 1 SSL link(s) at once")
    c.transact(b'AT+CIPSERVER=1,%d,"SSL",0\r\n' % free_port(), ERROR)
    c.transact(b"AT+CIPCLOSE=0\r\n", b"0,CLOSED\r\n" + OK)
    srv.close()


def test_passthrough_reconnect_never_in_the_clear(espatd, pki):
    """Link 0 of an SSL passthrough drops: what the MCU types afterwards must
    never reach the server in plaintext (a reconnect speaks TLS or does not
    happen)."""
    d, c = start(espatd, pki, extra=[b"AT+CIPRECONNINTV=1\r\n"])
    srv = PyServer(*pki.server).accept()
    c.transact(b"AT+CIPMODE=1\r\n", OK)
    c.transact(b'AT+CIPSTART="SSL","127.0.0.1",%d\r\n' % srv.port, b"CONNECT\r\n" + OK)
    conn = srv.wait()
    c.transact(b"AT+CIPSEND\r\n", b"\r\nOK\r\n\r\n>")
    conn.close()
    time.sleep(0.3)
    c.write(b"secret typed by the MCU")
    srv.sock.settimeout(1.0)
    try:
        raw, _ = srv.sock.accept()
    except socket.timeout:
        raw = None
    if raw is not None:
        raw.settimeout(1.0)
        first = raw.recv(4096)
        assert first[:1] == b"\x16" and b"secret" not in first, first  # a TLS handshake
        raw.close()
    time.sleep(0.05)
    c.write(b"+++")
    time.sleep(0.1)
    c.drain(0.3)
    srv.close()
