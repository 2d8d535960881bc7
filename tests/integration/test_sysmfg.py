"""AT+SYSMFG, the manufacturing NVS (ESP-AT Basic reference; protocol.md §6):
certificates and other values written over the AT port land in
<state-dir>/mfg/<namespace>/<key>, read back byte for byte, survive restarts
and AT+RESTORE, and are what the SSL links use."""

import os
import stat
import subprocess

import pytest

import espat
from test_ssl import OPENSSL, Pki, PyServer, log_has

OK = b"\r\nOK\r\n"
ERROR = b"\r\nERROR\r\n"
PROMPT = b"\r\nOK\r\n\r\n>"

PKI_NS = [b"client_cert", b"client_key", b"client_ca", b"server_cert", b"server_key",
          b"server_ca"]


@pytest.fixture(scope="module")
def pki(tmp_path_factory):
    if OPENSSL is None:
        pytest.skip("the openssl command is needed")
    return Pki(tmp_path_factory.mktemp("pki"))


def ready(d):
    c = d.client
    c.echo_off()
    return c


def write(c, ns, key, typ, data, mode=None):
    c.transact(b'AT+SYSMFG=2,"%s","%s",%d,%d\r\n' % (ns, key, typ, len(data)), PROMPT)
    c.write(data, mode)
    return c.read_result()


def listing(names):
    return b"".join(b'+SYSMFG:"%s"\r\n' % n for n in names) + OK


def read_reply(ns, key, typ, value):
    return b'+SYSMFG:"%s","%s",%d,%d,%s\r\n' % (ns, key, typ, len(value), value) + OK


def test_certificate_round_trip(espatd, pki, frag):
    d = espatd(mode=frag)
    c = ready(d)
    c.transact(b"AT+SYSMFG?\r\n", listing(PKI_NS))
    c.transact(b'AT+SYSMFG=1,"client_ca"\r\n', OK)
    pem = open(pki.ca, "rb").read()
    assert write(c, b"client_ca", b"client_ca.0", 8, pem) == OK
    # read back: all, a slice, the namespace's keys
    c.transact(b'AT+SYSMFG=1,"client_ca","client_ca.0"\r\n',
               read_reply(b"client_ca", b"client_ca.0", 8, pem))
    c.transact(b'AT+SYSMFG=1,"client_ca","client_ca.0",10,20\r\n',
               read_reply(b"client_ca", b"client_ca.0", 8, pem[10:30]))
    c.transact(b'AT+SYSMFG=1,"client_ca"\r\n', b'+SYSMFG:"client_ca","client_ca.0",8\r\n' + OK)
    c.transact(b"AT+SYSMFG=1\r\n", listing(PKI_NS))
    # on disk, as a file like those placed by hand, readable by nobody else
    path = os.path.join(d.state_dir, "mfg", "client_ca", "client_ca.0")
    assert open(path, "rb").read() == pem
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    # a restart reads it back
    c = d.restart()
    c.echo_off()
    c.transact(b'AT+SYSMFG=1,"client_ca","client_ca.0"\r\n',
               read_reply(b"client_ca", b"client_ca.0", 8, pem))
    # what the links use
    c.must_ok(b'AT+CWJAP="lab","pw"\r\n')
    c.transact(b"AT+CIPSSLCCONF=2\r\n", OK)
    srv = PyServer(*pki.server).accept()
    c.transact(b'AT+CIPSTART="SSL","127.0.0.1",%d\r\n' % srv.port, b"CONNECT\r\n" + OK)
    assert srv.wait() is not None
    c.transact(b"AT+CIPCLOSE\r\n", b"CLOSED\r\n" + OK)
    srv.close()


def mutual_tls_link(c, pki):
    """An SSL link to a server that verifies the client: it must see the
    client certificate provisioned (mcu.test)."""
    srv = PyServer(*pki.server, verify_ca=pki.ca).accept()
    c.transact(b'AT+CIPSTART="SSL","127.0.0.1",%d\r\n' % srv.port, b"CONNECT\r\n" + OK)
    conn = srv.wait()
    assert conn.getpeercert()["subject"] == ((("commonName", "mcu.test"),),)
    c.transact(b"AT+CIPCLOSE\r\n", b"CLOSED\r\n" + OK)
    srv.close()


def test_client_pair_and_server_pair_over_at(espatd, pki):
    """Everything an SSL link needs, provisioned over the AT port."""
    d = espatd()
    c = ready(d)
    for ns, key, path in [(b"client_cert", b"client_cert.3", pki.client[0]),
                          (b"client_key", b"client_key.3", pki.client[1]),
                          (b"client_ca", b"client_ca.1", pki.ca),
                          (b"server_cert", b"server_cert.0", pki.server[0]),
                          (b"server_key", b"server_key.0", pki.server[1])]:
        assert write(c, ns, key, 8, open(path, "rb").read()) == OK
    c.transact(b"AT+CIPSSLCCONF=3,3,1\r\n", OK)
    c.transact(b"AT+CIPSSLCCONF?\r\n", b"+CIPSSLCCONF:0,3,3,1\r\n" + OK)
    c.must_ok(b'AT+CWJAP="lab","pw"\r\n')
    mutual_tls_link(c, pki)


def test_numbers_and_strings(espatd):
    d = espatd()
    c = ready(d)
    cases = [(1, b"255"), (2, b"-128"), (3, b"65535"), (4, b"-32768"), (5, b"4294967295"),
             (6, b"-2147483648"), (6, b"115200")]
    for i, (typ, v) in enumerate(cases):
        c.transact(b'AT+SYSMFG=2,"factory_param","k%d",%d,%s\r\n' % (i, typ, v), OK)
    assert write(c, b"factory_param", b"module_name", 7, b"MINI-1") == OK
    c.transact(b'AT+SYSMFG=1,"factory_param","k6"\r\n',
               read_reply(b"factory_param", b"k6", 6, b"115200"))
    c.transact(b'AT+SYSMFG=1,"factory_param","module_name"\r\n',
               read_reply(b"factory_param", b"module_name", 7, b"MINI-1"))
    c.transact(b"AT+SYSMFG?\r\n", listing(PKI_NS + [b"factory_param"]))
    keys = sorted([b"k%d" % i for i in range(len(cases))] + [b"module_name"])
    types = dict((b"k%d" % i, t) for i, (t, _) in enumerate(cases))
    types[b"module_name"] = 7
    expect = b"".join(b'+SYSMFG:"factory_param","%s",%d\r\n' % (k, types[k]) for k in keys) + OK
    c.transact(b'AT+SYSMFG=1,"factory_param"\r\n', expect)
    # types survive a restart (".<key>.type" beside the value)
    c = d.restart()
    c.echo_off()
    c.transact(b'AT+SYSMFG=1,"factory_param"\r\n', expect)
    c.transact(b'AT+SYSMFG=1,"factory_param","k1"\r\n',
               read_reply(b"factory_param", b"k1", 2, b"-128"))


def test_limits_and_errors(espatd, pki):
    d = espatd()
    c = ready(d)
    c.transact(b"AT+SYSLOG=1\r\n", OK)
    failures = []
    cases = [
        (b"AT+SYSMFG=3\r\n", b"0x01070000"),                               # operation 0..2
        (b'AT+SYSMFG=2,"app","k",1,256\r\n', b"0x01070004"),             # u8 range
        (b'AT+SYSMFG=2,"app","k",2,-129\r\n', b"0x01070004"),            # i8 range
        (b'AT+SYSMFG=2,"app","k",3,-1\r\n', b"0x01070004"),              # u16 range
        (b'AT+SYSMFG=2,"app","k",4,32768\r\n', b"0x01070004"),           # i16 range
        (b'AT+SYSMFG=2,"app","k",9,1\r\n', b"0x01070003"),               # type 1..8
        (b'AT+SYSMFG=2,"app","k",8,0\r\n', b"0x01070004"),               # no empty value
        (b'AT+SYSMFG=2,"app","k",8,65537\r\n', b"0x01070004"),           # 64 KiB a value
        (b'AT+SYSMFG=2,"app","k",7,4000\r\n', b"0x01070004"),            # NVS string limit
        (b'AT+SYSMFG=2,"client_ca","client_ca.0",1,1\r\n', b"0x01070003"),  # PEM only there
        (b'AT+SYSMFG=2,"app","k",1\r\n', b"0x01060504"),
        (b'AT+SYSMFG=1,"nothing"\r\n', b"0x010a0000"),                    # no such namespace
        (b'AT+SYSMFG=1,"client_ca","client_ca.9"\r\n', b"0x010a0000"),    # no such key
        (b'AT+SYSMFG=0,"client_ca","client_ca.9"\r\n', b"0x010a0000"),
        (b'AT+SYSMFG=1,"client_ca","client_ca.9",0\r\n', b"0x01060504"),  # offset, length
        (b"AT+SYSMFG\r\n", None),                                          # no execute form
    ]
    for cmd, code in cases:
        c.check(cmd, (b"ERR CODE:" + code + b"\r\n" if code else b"") + ERROR, failures)
    c.check(b'AT+SYSMFG=2,"app","k",7,3999\r\n', PROMPT, failures)
    c.write(b"s" * 3999)
    c.expect(OK)
    c.transact(b'AT+SYSMFG=1,"app","k",3990,9\r\n', read_reply(b"app", b"k", 7, b"s" * 9))
    c.transact(b'AT+SYSMFG=1,"app","k",3990,10\r\n', b"ERR CODE:0x01070004\r\n" + ERROR)
    assert not failures, "\n".join(failures)


def test_bad_data_is_refused(espatd, pki):
    d = espatd()
    c = ready(d)
    junk = b"-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n"
    key = open(pki.client[1], "rb").read()
    cert = open(pki.client[0], "rb").read()
    assert write(c, b"client_cert", b"client_cert.0", 8, junk) == ERROR
    assert write(c, b"client_cert", b"client_cert.0", 8, key) == ERROR   # a key is no cert
    assert write(c, b"client_key", b"client_key.0", 8, cert) == ERROR    # nor a cert a key
    assert write(c, b"client_ca", b"client_ca.0", 8, b"\x00" + cert) == ERROR
    assert write(c, b"app", b"s", 7, b"a\x00b") == ERROR                 # strings are C strings
    c.transact(b'AT+SYSMFG=1,"client_cert"\r\n', OK)
    assert not os.path.exists(os.path.join(d.state_dir, "mfg", "client_cert", "client_cert.0"))
    log_has(d, "client_cert.client_cert.0 refused: no certificate (PEM or DER) in the data")
    # encrypted keys cannot be used (there is no passphrase to give)
    enc = os.path.join(pki.d, "enc.key")
    subprocess.run([OPENSSL, "pkey", "-in", pki.client[1], "-aes128", "-passout", "pass:x",
                    "-out", enc], check=True)
    assert write(c, b"client_key", b"client_key.0", 8, open(enc, "rb").read()) == ERROR
    # the good ones go in, and binary data with every byte value elsewhere
    assert write(c, b"client_key", b"client_key.0", 8, key) == OK
    blob = bytes(range(256)) * 4
    assert write(c, b"blobs", b"all", 8, blob, "random") == OK
    c.transact(b'AT+SYSMFG=1,"blobs","all"\r\n', read_reply(b"blobs", b"all", 8, blob))


def der(pki, path, kind):
    out = os.path.join(pki.d, os.path.basename(path) + ".der")
    subprocess.run([OPENSSL, kind, "-in", path, "-outform", "DER", "-out", out], check=True)
    return open(out, "rb").read()


def test_der_certificates(espatd, pki):
    """DER works as PEM does (the module's mbedTLS reads either): a CA, a
    client certificate and its key written as DER make a verified TLS link
    with a client certificate; DER that is not what the namespace holds, or
    cut short, is refused."""
    d = espatd()
    c = ready(d)
    ca = der(pki, pki.ca, "x509")
    cert = der(pki, pki.client[0], "x509")
    key = der(pki, pki.client[1], "pkey")
    assert b"\x00" in ca and not ca.startswith(b"-----")
    assert write(c, b"client_ca", b"client_ca.0", 8, cert[:-1]) == ERROR    # cut short
    assert write(c, b"client_key", b"client_key.0", 8, cert) == ERROR       # a cert is no key
    assert write(c, b"client_cert", b"client_cert.0", 8, key) == ERROR      # nor a key a cert
    assert write(c, b"client_ca", b"client_ca.0", 8, ca) == OK
    assert write(c, b"client_cert", b"client_cert.0", 8, cert) == OK
    assert write(c, b"client_key", b"client_key.0", 8, key) == OK
    c.transact(b'AT+SYSMFG=1,"client_ca","client_ca.0"\r\n',
               read_reply(b"client_ca", b"client_ca.0", 8, ca))
    c.must_ok(b'AT+CWJAP="lab","pw"\r\n')
    c.transact(b"AT+CIPSSLCCONF=3\r\n", OK)
    mutual_tls_link(c, pki)


def test_names_stay_inside_the_state_dir(espatd, tmp_path):
    d = espatd()
    c = ready(d)
    c.transact(b"AT+SYSLOG=1\r\n", OK)
    bad_ns = [b"../x", b"a/b", b".", b"..", b"", b"sixteen_chars_xx", b"a b", b"a.b"]
    bad_keys = [b"../../evil", b"a/b", b".hidden", b".", b"..", b"", b"sixteen_chars_xx",
                b"a\\\\b"]
    failures = []
    for ns in bad_ns:
        c.check(b'AT+SYSMFG=2,"%s","k",1,1\r\n' % ns, b"ERR CODE:0x01070001\r\n" + ERROR,
                failures)
    for key in bad_keys:
        c.check(b'AT+SYSMFG=2,"app","%s",1,1\r\n' % key, b"ERR CODE:0x01070002\r\n" + ERROR,
                failures)
        c.check(b'AT+SYSMFG=0,"app","%s"\r\n' % key, b"ERR CODE:0x01070002\r\n" + ERROR,
                failures)
    assert not failures, "\n".join(failures)
    # 15 characters are fine, in both
    c.transact(b'AT+SYSMFG=2,"fifteen_chars_x","key-with.dots_",1,7\r\n', OK)
    assert os.path.exists(os.path.join(d.state_dir, "mfg", "fifteen_chars_x", "key-with.dots_"))
    # a symlinked namespace directory is never written through
    outside = tmp_path / "outside"
    outside.mkdir()
    os.symlink(str(outside), os.path.join(d.state_dir, "mfg", "linked"))
    c.transact(b'AT+SYSMFG=2,"linked","k",1,1\r\n', b"ERR CODE:0x010a0000\r\n" + ERROR)
    assert os.listdir(str(outside)) == []
    log_has(d, "cannot write")
    # nothing was created by the refused names anywhere
    for root, dirs, files in os.walk(str(tmp_path)):
        for f in files + dirs:
            assert "evil" not in f and f != "x", os.path.join(root, f)


def test_erase(espatd, pki):
    d = espatd()
    c = ready(d)
    cert = open(pki.client[0], "rb").read()
    for n in range(3):
        assert write(c, b"client_cert", b"client_cert.%d" % n, 8, cert) == OK
    c.transact(b'AT+SYSMFG=0,"client_cert","client_cert.1"\r\n', OK)
    c.transact(b'AT+SYSMFG=0,"client_cert","client_cert.1"\r\n', ERROR)
    c.transact(b'AT+SYSMFG=1,"client_cert"\r\n',
               b'+SYSMFG:"client_cert","client_cert.0",8\r\n'
               b'+SYSMFG:"client_cert","client_cert.2",8\r\n' + OK)
    ns_dir = os.path.join(d.state_dir, "mfg", "client_cert")
    assert sorted(os.listdir(ns_dir)) == ["client_cert.0", "client_cert.2"]
    c.transact(b'AT+SYSMFG=0,"client_cert"\r\n', OK)
    c.transact(b'AT+SYSMFG=1,"client_cert"\r\n', OK)
    assert os.listdir(ns_dir) == []
    c.transact(b'AT+SYSMFG=2,"app","k",5,7\r\n', OK)
    c.transact(b'AT+SYSMFG=0,"app"\r\n', OK)
    c.transact(b'AT+SYSMFG=1,"app"\r\n', ERROR)  # an empty custom namespace is gone
    c = d.restart()
    c.echo_off()
    c.transact(b'AT+SYSMFG=1,"client_cert"\r\n', OK)


def test_restore_keeps_it_and_no_state_keeps_it_in_ram(espatd, pki):
    cert = open(pki.client[0], "rb").read()
    d = espatd()
    c = ready(d)
    assert write(c, b"client_cert", b"client_cert.0", 8, cert) == OK
    c.write(b"AT+RESTORE\r\n")
    c.expect(OK + b"\r\nready\r\n", timeout=5 * espat.SCALE)
    c.echo_off()
    c.transact(b'AT+SYSMFG=1,"client_cert"\r\n', b'+SYSMFG:"client_cert","client_cert.0",8\r\n' + OK)
    # without a state dir the partition lives in RAM, restarts included
    d2 = espatd(state=False)
    c2 = ready(d2)
    assert write(c2, b"client_cert", b"client_cert.0", 8, cert) == OK
    c2.write(b"AT+RST\r\n")
    c2.expect(OK + b"\r\nready\r\n", timeout=5 * espat.SCALE)
    c2.echo_off()
    c2.transact(b'AT+SYSMFG=1,"client_cert","client_cert.0"\r\n',
                read_reply(b"client_cert", b"client_cert.0", 8, cert))


def test_data_phase(espatd):
    """'+++' read alone is data here; URCs wait until the data is in."""
    d = espatd()
    c = ready(d)
    c.transact(b'AT+SYSMFG=2,"app","plus",8,3\r\n', PROMPT)
    c.write(b"+++")
    c.expect(OK)
    c.transact(b'AT+SYSMFG=1,"app","plus"\r\n', read_reply(b"app", b"plus", 8, b"+++"))
    c.transact(b'AT+SYSMFG=2,"app","long",8,6\r\n', PROMPT)
    c.write(b"+++")
    c.write(b"abcdef")  # 3 more complete it; the rest is busy, as for CIPSEND
    c.expect(OK + b"\r\nbusy p...\r\n")
    c.transact(b'AT+SYSMFG=1,"app","long"\r\n', read_reply(b"app", b"long", 8, b"+++abc"))
    # busy between the command and its prompt is the engine's usual rule;
    # afterwards the line is a command line again
    c.transact(b"AT\r\n", OK)
