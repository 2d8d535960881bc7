"""AT+CIUPDATE and AT+CIPFWVER (protocol.md §2.24) against a local server
that speaks the HTTP API of ESP-AT's own OTA client (esp-at
components/at/src/at_ota_cmd.c):

  GET /v1/device/rom/?is_format_simple=true              latest: "rom_version"
  GET /v1/device/rom/?action=download_rom&version=V&filename=NAME.bin
  GET /v1/device/rom/                                     versions (AT+CIPFWVER)

all with "Authorization: token T". Plain HTTP serves ota mode 0, HTTPS (a
test CA made with the openssl command) ota mode 1."""

import http.server
import json
import os
import time
import shutil
import socketserver
import ssl
import threading
import urllib.parse

import pytest

import espat
from test_ssl import OPENSSL, Pki, PyServer, echo_check, log_has, start, start_fails

pytestmark = pytest.mark.skipif(OPENSSL is None, reason="the openssl command is needed")

OK = b"\r\nOK\r\n"
ERROR = b"\r\nERROR\r\n"
TOKEN = "0123456789abcdef0123456789abcdef01234567"
GMR_TAIL = b"(espatd - ESP32 - Jun  7 2024 03:48:17)"


class OtaServer:
    """The ESP-AT OTA API on 127.0.0.1 (a thread). `files` maps
    (version, name) to the bytes served; `latest` is the version the
    simple query reports; `cut` = (version, name) whose download stops
    half-way with the connection closed."""

    def __init__(self, files, latest, tls=None, token=TOKEN):
        self.files = dict(files)
        self.latest = latest
        self.token = token
        self.cut = None
        self.stall = None   # (version, name) whose body never comes
        self.requests = []
        srv = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *a):
                pass

            def reply(self, code, body, ctype="application/json", length=None):
                self.send_response(code)
                self.send_header("Content-Type", ctype)
                self.send_header("Content-Length", str(len(body) if length is None else length))
                self.end_headers()
                self.wfile.write(body)

            def do_GET(self):
                auth = self.headers.get("Authorization")
                srv.requests.append((self.path, auth))
                u = urllib.parse.urlsplit(self.path)
                q = dict(urllib.parse.parse_qsl(u.query))
                if u.path != "/v1/device/rom/":
                    return self.reply(404, b'{"status": 404}')
                if auth != "token " + srv.token:
                    return self.reply(403, b'{"status": 403, "message": "bad token"}')
                if q.get("action") == "download_rom":
                    name = q.get("filename", "")
                    name = name[:-4] if name.endswith(".bin") else name
                    key = (q.get("version"), name)
                    if key not in srv.files:
                        return self.reply(404, b'{"status": 404, "message": "no such rom"}')
                    body = srv.files[key]
                    if srv.stall == key:
                        # headers, a little of the body, then silence
                        self.send_response(200)
                        self.send_header("Content-Length", str(len(body)))
                        self.end_headers()
                        self.wfile.write(body[:100])
                        self.wfile.flush()
                        time.sleep(6)
                        self.close_connection = True
                        return None
                    if srv.cut == key:
                        # the server goes away half-way through the body
                        self.reply(200, body[:len(body) // 2], "application/octet-stream",
                                   length=len(body))
                        self.wfile.flush()
                        self.close_connection = True
                        self.connection.shutdown(2)
                        return None
                    return self.reply(200, body, "application/octet-stream")
                if q.get("is_format_simple") == "true":
                    return self.reply(200, json.dumps({
                        "status": 200, "rom_version": srv.latest, "message": "ok"}).encode())
                versions = sorted({v for v, _ in srv.files})
                return self.reply(200, json.dumps({
                    "status": 200, "productVersions": [{"version": v} for v in versions]
                }).encode())

        class Server(socketserver.ThreadingMixIn, http.server.HTTPServer):
            daemon_threads = True
            allow_reuse_address = True

        self.httpd = Server(("127.0.0.1", 0), Handler)
        if tls:
            ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            ctx.load_cert_chain(*tls)
            self.httpd.socket = ctx.wrap_socket(self.httpd.socket, server_side=True)
        self.port = self.httpd.server_address[1]
        self.url = "%s://127.0.0.1:%d" % ("https" if tls else "http", self.port)
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    def close(self):
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture(scope="module")
def pki(tmp_path_factory):
    return Pki(tmp_path_factory.mktemp("otapki"))


@pytest.fixture
def servers():
    made = []

    def factory(*a, **kw):
        s = OtaServer(*a, **kw)
        made.append(s)
        return s
    yield factory
    for s in made:
        s.close()


IMAGE = b"\xe9" + os.urandom(200000)


def firmware(d):
    p = os.path.join(d.state_dir, "ota")
    with open(os.path.join(p, "firmware.bin"), "rb") as f:
        img = f.read()
    with open(os.path.join(p, "version")) as f:
        return img, f.read().strip()


def gmr_first(c):
    out = c.cmd(b"AT+GMR\r\n")
    return out.split(b"\r\n")[0]


def test_execute_latest_then_restart_and_gmr(espatd, servers):
    srv = servers({("v3.5.0.0", "ota"): IMAGE}, "v3.5.0.0")
    d = espatd("--ota-server", srv.url, "--ota-token", TOKEN)
    c = d.client
    c.echo_off()
    c.transact(b"AT+CIUPDATE?\r\n", b"+CIPUPDATE:0\r\n" + OK)
    c.transact(b"AT+CIUPDATE\r\n",
               b"+CIPUPDATE:1\r\n+CIPUPDATE:2\r\n+CIPUPDATE:3\r\n+CIPUPDATE:4\r\n" + OK +
               b"\r\nready\r\n", timeout=10 * espat.SCALE)
    assert srv.requests == [
        ("/v1/device/rom/?is_format_simple=true", "token " + TOKEN),
        ("/v1/device/rom/?action=download_rom&version=v3.5.0.0&filename=ota.bin",
         "token " + TOKEN)]
    assert firmware(d) == (IMAGE, "v3.5.0.0")
    c.echo_off()
    assert gmr_first(c) == b"AT version:v3.5.0.0" + GMR_TAIL
    c.transact(b"AT+CIUPDATE?\r\n", b"+CIPUPDATE:0\r\n" + OK)
    # it survives a power cycle, and leaves nothing temporary behind
    c = d.restart()
    c.echo_off()
    assert gmr_first(c) == b"AT version:v3.5.0.0" + GMR_TAIL
    assert sorted(os.listdir(os.path.join(d.state_dir, "ota"))) == ["firmware.bin", "version"]


def test_set_forms_and_cipfwver(espatd, servers):
    new = b"\xe9new image"
    srv = servers({("v3.5.0.0", "ota"): IMAGE, ("v3.6.0.0", "ota"): new}, "v3.6.0.0")
    d = espatd("--ota-server", srv.url, "--ota-token", TOKEN)
    c = d.client
    c.echo_off()
    c.transact(b"AT+CIPFWVER?\r\n",
               b'+CIPFWVER:"v3.5.0.0"\r\n+CIPFWVER:"v3.6.0.0"\r\n' + OK)
    # a given version: no version query, so no :2/:3
    c.transact(b'AT+CIUPDATE=0,"v3.5.0.0","ota"\r\n',
               b"+CIPUPDATE:1\r\n+CIPUPDATE:4\r\n" + OK + b"\r\nready\r\n",
               timeout=10 * espat.SCALE)
    assert firmware(d) == (IMAGE, "v3.5.0.0")
    c.echo_off()
    # non-blocking: OK at once, progress as it goes, no restart
    c.transact(b"AT+CIUPDATE=0,,,1\r\n", OK, quiet=0)
    c.expect(b"+CIPUPDATE:1\r\n+CIPUPDATE:2\r\n+CIPUPDATE:3\r\n+CIPUPDATE:4\r\n",
             timeout=10 * espat.SCALE)
    assert firmware(d) == (new, "v3.6.0.0")
    c.transact(b"AT+CIUPDATE?\r\n", b"+CIPUPDATE:4\r\n" + OK)
    assert gmr_first(c) == b"AT version:v3.5.0.0" + GMR_TAIL  # until a restart
    c.transact(b"AT+RST\r\n", OK + b"\r\nready\r\n", timeout=2 * espat.SCALE)
    c.echo_off()
    assert gmr_first(c) == b"AT version:v3.6.0.0" + GMR_TAIL
    # parameter checks
    for bad in (b"AT+CIUPDATE=2\r\n", b"AT+CIUPDATE=0,,,2\r\n", b'AT+CIUPDATE=0,"a",,0,1\r\n',
                b'AT+CIUPDATE=0,"' + b"v" * 65 + b'"\r\n'):
        c.transact(bad, ERROR)
    # ota mode 1 without an https:// server configured
    c.transact(b"AT+CIUPDATE=1\r\n", ERROR)
    c.transact(b"AT+CIUPDATE?\r\n", b"+CIPUPDATE:-1\r\n" + OK)


def test_failures_leave_the_old_image(espatd, servers):
    img2 = b"\xe9" + os.urandom(300000)
    srv = servers({("v3.5.0.0", "ota"): IMAGE, ("v3.7.0.0", "ota"): img2}, "v3.5.0.0")
    d = espatd("--ota-server", srv.url, "--ota-token", TOKEN)
    c = d.client
    c.echo_off()
    c.transact(b'AT+CIUPDATE=0,"v3.5.0.0"\r\n', b"+CIPUPDATE:1\r\n+CIPUPDATE:4\r\n" + OK +
               b"\r\nready\r\n", timeout=10 * espat.SCALE)
    c.echo_off()
    # unknown version (404): blocking -> ERROR; non-blocking -> +CIPUPDATE:-1
    c.transact(b'AT+CIUPDATE=0,"v9.9.9.9"\r\n', b"+CIPUPDATE:1\r\n" + ERROR,
               timeout=10 * espat.SCALE)
    c.transact(b"AT+CIUPDATE?\r\n", b"+CIPUPDATE:-1\r\n" + OK)
    c.transact(b'AT+CIUPDATE=0,"v9.9.9.9",,1\r\n', OK, quiet=0)
    c.expect(b"+CIPUPDATE:1\r\n+CIPUPDATE:-1\r\n", timeout=10 * espat.SCALE)
    # the server goes away in the middle of the body
    srv.cut = ("v3.7.0.0", "ota")
    c.transact(b'AT+CIUPDATE=0,"v3.7.0.0"\r\n', b"+CIPUPDATE:1\r\n" + ERROR,
               timeout=10 * espat.SCALE)
    assert firmware(d) == (IMAGE, "v3.5.0.0")
    assert sorted(os.listdir(os.path.join(d.state_dir, "ota"))) == ["firmware.bin", "version"]
    # an unknown partition name never becomes a path
    c.transact(b'AT+CIUPDATE=0,"v3.5.0.0","../../etc"\r\n', ERROR)
    c.transact(b'AT+CIUPDATE=0,"v3.5.0.0","mqtt_ca"\r\n', ERROR)
    d.stop()
    # a wrong token: the version query is refused (403)
    c = d.start(["--ota-server", srv.url, "--ota-token", "wrong"])
    c.echo_off()
    c.transact(b"AT+CIUPDATE\r\n", b"+CIPUPDATE:1\r\n+CIPUPDATE:2\r\n" + ERROR,
               timeout=10 * espat.SCALE)
    c.transact(b"AT+CIPFWVER?\r\n", ERROR, timeout=10 * espat.SCALE)
    assert srv.requests[-1][1] == "token wrong"
    assert firmware(d) == (IMAGE, "v3.5.0.0")
    assert gmr_first(c) == b"AT version:v3.5.0.0" + GMR_TAIL
    # the server is gone altogether
    srv.close()
    c.transact(b"AT+CIUPDATE=0,,,1\r\n", OK, quiet=0)
    c.expect(b"+CIPUPDATE:1\r\n+CIPUPDATE:-1\r\n", timeout=10 * espat.SCALE)
    log_has(d, "OTA of \"ota\" failed")


def test_https_mode_verified(espatd, servers, pki, tmp_path):
    srv = servers({("v3.5.0.0", "ota"): IMAGE}, "v3.5.0.0", tls=pki.server)
    # a CA that did not sign the server: no download
    d = espatd("--ota-server", srv.url, "--ota-token", TOKEN, "--ota-ca", pki.other_ca)
    c = d.client
    c.echo_off()
    c.transact(b"AT+CIUPDATE=1\r\n", b"+CIPUPDATE:1\r\n" + ERROR, timeout=10 * espat.SCALE)
    log_has(d, "OTA of \"ota\" failed")
    assert not os.path.exists(os.path.join(d.state_dir, "ota", "firmware.bin"))
    # ota mode 0 has no http:// server here
    c.transact(b"AT+CIUPDATE=0\r\n", ERROR)
    d.stop()
    # the right CA
    c = d.start(["--ota-server", srv.url, "--ota-token", TOKEN, "--ota-ca", pki.ca])
    c.echo_off()
    c.transact(b"AT+CIUPDATE=1\r\n",
               b"+CIPUPDATE:1\r\n+CIPUPDATE:2\r\n+CIPUPDATE:3\r\n+CIPUPDATE:4\r\n" + OK +
               b"\r\nready\r\n", timeout=10 * espat.SCALE)
    assert firmware(d) == (IMAGE, "v3.5.0.0")
    # no --ota-ca: the CA comes from <state-dir>/mfg/client_ca/client_ca.0
    d.stop()
    c = d.start(["--ota-server", srv.url, "--ota-token", TOKEN])
    c.echo_off()
    c.transact(b'AT+CIUPDATE=1,"v3.5.0.0"\r\n', b"+CIPUPDATE:1\r\n" + ERROR,
               timeout=10 * espat.SCALE)
    d.stop()
    os.makedirs(os.path.join(d.state_dir, "mfg", "client_ca"), exist_ok=True)
    shutil.copy(pki.ca, os.path.join(d.state_dir, "mfg", "client_ca", "client_ca.0"))
    c = d.start(["--ota-server", srv.url, "--ota-token", TOKEN])
    c.echo_off()
    c.transact(b'AT+CIUPDATE=1,"v3.5.0.0"\r\n', b"+CIPUPDATE:1\r\n+CIPUPDATE:4\r\n" + OK +
               b"\r\nready\r\n", timeout=10 * espat.SCALE)


def test_certificate_partition_used_by_next_tls(espatd, servers, pki):
    with open(pki.ca, "rb") as f:
        ca = f.read()
    srv = servers({("v1", "client_ca"): ca, ("v1", "client_key"): b"not a key\n"}, "v1",
                  tls=pki.server)
    # the module trusts the wrong CA at first
    d, c = start(espatd, files={("client_ca", 0): pki.other_ca},
                 args=("--ota-server", srv.url, "--ota-token", TOKEN, "--ota-ca", pki.ca),
                 extra=[b"AT+CIPSSLCCONF=2,0,0\r\n"])
    tls = PyServer(*pki.server).accept()
    start_fails_plain(c, b'AT+CIPSTART="SSL","127.0.0.1",%d\r\n' % tls.port)
    tls.wait()
    tls.close()
    # an invalid PEM is refused and changes nothing
    c.transact(b'AT+CIUPDATE=1,"v1","client_key"\r\n', b"+CIPUPDATE:1\r\n" + ERROR,
               timeout=10 * espat.SCALE)
    assert not os.path.exists(os.path.join(d.state_dir, "mfg", "client_key"))
    # OTA of client_ca: latest version, blocking, no restart
    c.transact(b'AT+CIUPDATE=1,,"client_ca"\r\n',
               b"+CIPUPDATE:1\r\n+CIPUPDATE:2\r\n+CIPUPDATE:3\r\n+CIPUPDATE:4\r\n" + OK,
               timeout=10 * espat.SCALE)
    with open(os.path.join(d.state_dir, "mfg", "client_ca", "client_ca.0"), "rb") as f:
        assert f.read() == ca
    # the link settings are as they were, and the next connection verifies
    c.transact(b"AT+CIPSSLCCONF?\r\n", b"+CIPSSLCCONF:0,2,0,0\r\n" + OK)
    tls = PyServer(*pki.server).accept()
    c.transact(b'AT+CIPSTART="SSL","127.0.0.1",%d\r\n' % tls.port, b"CONNECT\r\n" + OK)
    echo_check(c, tls.wait())
    c.transact(b"AT+CIPCLOSE\r\n", b"CLOSED\r\n" + OK)
    tls.close()


def start_fails_plain(c, cmd):
    """CIPSTART refused in the handshake: ERROR then CLOSED (SYSLOG off)."""
    c.write(cmd)
    out = c.read_until(b"CLOSED\r\n", timeout=5 * espat.SCALE)
    c.assert_quiet()
    assert out.endswith(ERROR + b"CLOSED\r\n"), out


_ = start_fails  # the SYSLOG variant lives in test_ssl


def test_timeout(espatd, servers):
    """A server that stops sending: the update gives up at the timeout (the
    module's 3 minutes; --ota-timeout shortens it here) and the old image
    stays."""
    img2 = os.urandom(5000)
    srv = servers({("v3.5.0.0", "ota"): IMAGE, ("v3.8.0.0", "ota"): img2}, "v3.5.0.0")
    d = espatd("--ota-server", srv.url, "--ota-token", TOKEN, "--ota-timeout", "2")
    c = d.client
    c.echo_off()
    c.transact(b'AT+CIUPDATE=0,"v3.5.0.0"\r\n', b"+CIPUPDATE:1\r\n+CIPUPDATE:4\r\n" + OK +
               b"\r\nready\r\n", timeout=10 * espat.SCALE)
    c.echo_off()
    srv.stall = ("v3.8.0.0", "ota")
    t0 = time.monotonic()
    c.transact(b'AT+CIUPDATE=0,"v3.8.0.0"\r\n', b"+CIPUPDATE:1\r\n" + ERROR,
               timeout=10 * espat.SCALE)
    assert 1.5 < time.monotonic() - t0 < 5 * espat.SCALE
    assert firmware(d) == (IMAGE, "v3.5.0.0")
    # non-blocking: OK at once, then -1 at the timeout
    c.transact(b'AT+CIUPDATE=0,"v3.8.0.0",,1\r\n', OK, quiet=0)
    c.expect(b"+CIPUPDATE:1\r\n+CIPUPDATE:-1\r\n", timeout=10 * espat.SCALE)
    assert firmware(d) == (IMAGE, "v3.5.0.0")
    log_has(d, "OTA timeout")


def test_nonblocking_start_failures(espatd, servers):
    """Non-blocking, the module answers OK first and reports the failure as
    +CIPUPDATE:-1; blocking, ERROR."""
    d = espatd()   # no --ota-server
    c = d.client
    c.echo_off()
    c.transact(b"AT+CIUPDATE=0,,,1\r\n", OK + b"+CIPUPDATE:-1\r\n")
    c.transact(b"AT+CIUPDATE=0\r\n", ERROR)
    srv = servers({("v3.5.0.0", "ota"): IMAGE}, "v3.5.0.0")
    d2 = espatd("--ota-server", srv.url, "--ota-token", TOKEN)
    c2 = d2.client
    c2.echo_off()
    c2.transact(b'AT+CIUPDATE=0,"v3.5.0.0","mqtt_ca",1\r\n', OK + b"+CIPUPDATE:-1\r\n")
    c2.transact(b"AT+CIUPDATE?\r\n", b"+CIPUPDATE:-1\r\n" + OK)
