"""AT+MDNS (protocol.md §2.34; ESP-AT TCP-IP_AT_Commands "AT+MDNS", and its
mDNS example): a real Multicast DNS responder (RFC 6762, DNS-SD RFC 6763)
checked with real mDNS queries and answers.

Every daemon here runs with --netif lo, so the station's address is
127.0.0.1 and the responder's socket, its group membership and every packet
it sends stay on the loopback interface; the queriers here use loopback
only. Two kinds of querier are used:

- a one-shot ("legacy", RFC 6762 §6.7) querier on an ephemeral port: it
  multicasts its query to 224.0.0.251:5353 on lo and gets a unicast answer
  with its ID, its question and TTLs of at most 10 s;
- a full mDNS listener bound to 5353 (shared with SO_REUSEADDR/SO_REUSEPORT,
  as mDNS implementations share it) that joined the group on lo: it sees
  the announcements (§8.3), multicast answers (§6) and goodbyes (§10.1).

If port 5353 cannot be shared on this machine, or loopback has no
multicast, the tests that need it are skipped with the reason.
"""

import select
import socket
import struct
import time

import pytest

import espat
from espat import SCALE

OK = b"\r\nOK\r\n"
ERROR = b"\r\nERROR\r\n"
JOIN = b'AT+CWJAP="lab","secret123"\r\n'
JOINED = b"WIFI CONNECTED\r\nWIFI GOT IP\r\n\r\nOK\r\n"
GROUP = "224.0.0.251"
PORT = 5353
LO = "127.0.0.1"
T_A, T_PTR, T_TXT, T_AAAA, T_SRV, T_ANY = 1, 12, 16, 28, 33, 255
FLUSH = 0x8000
#: how long "no answer" is watched for
SILENCE = 0.4 * SCALE

HOST = "espat-test"
PRINTER = (b'AT+MDNS=1,"espat-test","_printer",35,"My Printer.2","_tcp",2,'
           b'"product","my_printer","firmware_version","AT-V3.4.1.0"\r\n')
TXT = [b"product=my_printer", b"firmware_version=AT-V3.4.1.0"]


# ---- a small DNS codec (RFC 1035 §4) ---------------------------------------------------

def labels(name):
    """"a.b.local" -> (b"a", b"b", b"local"); a tuple passes through."""
    if isinstance(name, tuple):
        return name
    return tuple(x.encode() for x in name.split("."))


def enc_name(name):
    return b"".join(bytes([len(x)]) + x for x in labels(name)) + b"\0"


def dec_name(msg, off):
    out, end, hops = [], None, 0
    while True:
        n = msg[off]
        if n & 0xC0 == 0xC0:
            if end is None:
                end = off + 2
            off = ((n & 0x3F) << 8) | msg[off + 1]
            hops += 1
            assert hops < 64, "compression loop"
            continue
        if n == 0:
            return tuple(out), (end if end is not None else off + 1)
        out.append(bytes(msg[off + 1:off + 1 + n]))
        off += 1 + n


def query(questions, qid=0, known=(), flags=0):
    """questions: [(name, type[, class])]; known: [(name, type, ttl, rdata)]."""
    out = struct.pack(">HHHHHH", qid, flags, len(questions), len(known), 0, 0)
    for q in questions:
        out += enc_name(q[0]) + struct.pack(">HH", q[1], q[2] if len(q) > 2 else 1)
    for name, typ, ttl, rdata in known:
        out += enc_name(name) + struct.pack(">HHIH", typ, 1, ttl, len(rdata)) + rdata
    return out


def fold(name):
    return tuple(x.lower() for x in name)


class RR:
    def __init__(self, name, typ, cls, ttl, data):
        self.name, self.type, self.cls, self.ttl, self.data = name, typ, cls, ttl, data

    def key(self):
        return (fold(self.name), self.type)

    def __repr__(self):
        return "RR(%r, %d, 0x%x, %d, %r)" % (self.name, self.type, self.cls, self.ttl, self.data)


def parse(msg):
    qid, flags, qd, an, ns, ar = struct.unpack(">HHHHHH", msg[:12])
    off, qs, rrs = 12, [], []
    for _ in range(qd):
        name, off = dec_name(msg, off)
        typ, cls = struct.unpack(">HH", msg[off:off + 4])
        off += 4
        qs.append((name, typ, cls))
    for _ in range(an + ns + ar):
        name, off = dec_name(msg, off)
        typ, cls, ttl, rdlen = struct.unpack(">HHIH", msg[off:off + 10])
        off += 10
        rd = msg[off:off + rdlen]
        if typ == T_A:
            data = socket.inet_ntoa(rd)
        elif typ == T_PTR:
            data = dec_name(msg, off)[0]
        elif typ == T_SRV:
            data = struct.unpack(">HHH", rd[:6]) + (dec_name(msg, off + 6)[0],)
        elif typ == T_TXT:
            data, i = [], 0
            while i < len(rd):
                data.append(bytes(rd[i + 1:i + 1 + rd[i]]))
                i += 1 + rd[i]
        else:
            data = bytes(rd)
        off += rdlen
        rrs.append(RR(name, typ, cls, ttl, data))
    assert off == len(msg), "trailing bytes in %r" % msg
    return {"id": qid, "flags": flags, "q": qs, "an": rrs[:an], "ns": rrs[an:an + ns],
            "ar": rrs[an + ns:]}


def by_key(rrs):
    out = {}
    for rr in rrs:
        assert rr.key() not in out, "duplicate record %r" % rr
        out[rr.key()] = rr
    return out


# ---- sockets ----------------------------------------------------------------------------

class Legacy:
    """A one-shot querier (RFC 6762 §6.7) on an ephemeral loopback port."""

    def __init__(self):
        self.s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.s.bind((LO, 0))
        self.s.setsockopt(socket.IPPROTO_IP, socket.IP_MULTICAST_IF, socket.inet_aton(LO))
        self.s.setsockopt(socket.IPPROTO_IP, socket.IP_MULTICAST_TTL, 255)

    def ask(self, msg, timeout=None):
        self.s.sendto(msg, (GROUP, PORT))
        r, _, _ = select.select([self.s], [], [], timeout or espat.TIMEOUT)
        if not r:
            return None
        data, src = self.s.recvfrom(65535)
        assert src[1] == PORT and src[0] == LO, src
        return parse(data)

    def silent(self, msg):
        """Nothing comes back for msg."""
        got = self.ask(msg, timeout=SILENCE)
        assert got is None, "unexpected answer %r" % (got,)

    def close(self):
        self.s.close()


class Listener:
    """A full mDNS participant on lo: bound to 5353 (shared), in the group."""

    def __init__(self):
        self.s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        try:
            self.s.bind(("", PORT))
        except OSError as e:
            self.s.close()
            pytest.skip("UDP port 5353 cannot be shared here: %s" % e)
        try:
            self.s.setsockopt(socket.IPPROTO_IP, socket.IP_ADD_MEMBERSHIP,
                              socket.inet_aton(GROUP) + socket.inet_aton(LO))
        except OSError as e:
            self.s.close()
            pytest.skip("no multicast on loopback here: %s" % e)
        self.s.setsockopt(socket.IPPROTO_IP, socket.IP_MULTICAST_IF, socket.inet_aton(LO))
        self.s.setsockopt(socket.IPPROTO_IP, socket.IP_MULTICAST_TTL, 255)

    def send(self, msg):
        self.s.sendto(msg, (GROUP, PORT))

    def responses(self, host, timeout):
        """mDNS responses (QR set) from 127.0.0.1 that mention `host`,
        collected for `timeout` seconds, with their arrival times."""
        out, deadline = [], time.monotonic() + timeout
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                return out
            r, _, _ = select.select([self.s], [], [], left)
            if not r:
                return out
            data, src = self.s.recvfrom(65535)
            if src != (LO, PORT) or len(data) < 12 or not data[2] & 0x80:
                continue   # a query (ours), or someone else
            if host.encode().lower() not in data.lower():
                continue
            out.append((time.monotonic(), parse(data)))

    def next_response(self, host, timeout=None):
        got = self.responses_until_one(host, timeout or espat.TIMEOUT)
        assert got, "no mDNS response about %s" % host
        return got

    def responses_until_one(self, host, timeout):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            got = self.responses(host, min(0.05, deadline - time.monotonic()))
            if got:
                return got[0]
        return None

    def drain(self, seconds=0.05):
        self.responses("", seconds)

    def close(self):
        self.s.close()


@pytest.fixture(autouse=True)
def one_responder_at_a_time():
    """Every responder of the suite shares lo:5353 and the group, so one
    test's queries would reach another's daemon (pytest -n runs files side
    by side): the tests here take turns, each daemon gone before the next."""
    import fcntl
    import os
    import tempfile
    path = os.path.join(tempfile.gettempdir(), "espatd-mdns-tests.lock")
    with open(path, "a") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


@pytest.fixture
def legacy():
    # espatd shares port 5353 the way this probe does; where it cannot, no
    # AT+MDNS=1 here could succeed
    Listener().close()
    q = Legacy()
    yield q
    q.close()


@pytest.fixture
def listener():
    li = Listener()
    yield li
    li.close()


def start(espatd, *extra):
    d = espatd("--netif", "lo", *extra)
    c = d.client
    c.echo_off()
    return d, c


def joined(espatd, *extra):
    d, c = start(espatd, *extra)
    c.transact(JOIN, JOINED)
    return d, c


# ---- expected records --------------------------------------------------------------------

def host_name(host=HOST):
    return labels(host + ".local")


def svc_name(svc, proto="_tcp"):
    return (svc.encode(), proto.encode(), b"local")


def inst_name(inst, svc, proto="_tcp"):
    return (inst.encode(),) + svc_name(svc, proto)


ENUM = (b"_services", b"_dns-sd", b"_udp", b"local")


def check_records(rrs, inst, svc, port, txt, ip=LO, host=HOST, ttl=None, legacy=False):
    """rrs hold exactly the five records of one published service."""
    got = by_key(rrs)
    flush = 0 if legacy else FLUSH
    want = {
        (fold(svc_name(svc)), T_PTR): (1, 4500, inst_name(inst, svc)),
        (fold(ENUM), T_PTR): (1, 4500, svc_name(svc)),
        (fold(inst_name(inst, svc)), T_SRV): (1 | flush, 120, (0, 0, port, host_name(host))),
        (fold(inst_name(inst, svc)), T_TXT): (1 | flush, 4500, txt),
        (fold(host_name(host)), T_A): (1 | flush, 120, ip),
    }
    assert set(got) == set(want), "records %r" % rrs
    for k, (cls, t, data) in want.items():
        rr = got[k]
        assert rr.cls == cls, rr
        assert rr.ttl == (t if ttl is None else ttl), rr
        assert rr.data == data, rr


# ---- the whole life: announce, answer, goodbye ---------------------------------------------

def test_mdns_announce_answer_goodbye(espatd, legacy, listener):
    d, c = joined(espatd)
    listener.drain()
    c.transact(PRINTER, OK)
    t0 = time.monotonic()
    inst = "My Printer.2"   # a dot inside a label is just a byte (RFC 6763 §4.3)

    # §8.3: two unsolicited responses, one second apart, every record in
    # the answer section, ID 0, authoritative, no questions
    t1, a1 = listener.next_response(HOST)
    t2, a2 = listener.next_response(HOST, timeout=3 * SCALE)
    for a in (a1, a2):
        assert a["id"] == 0 and a["flags"] == 0x8400 and a["q"] == [] and a["ar"] == []
        check_records(a["an"], inst, "_printer", 35, TXT)
    assert t1 - t0 < 0.5 * SCALE
    assert 0.8 <= t2 - t1 <= 1.5 * SCALE, t2 - t1

    # legacy queries (§6.7): unicast, ID and question echoed, TTL <= 10,
    # no cache-flush bits; names match case-insensitively (§16)
    a = legacy.ask(query([("ESPAT-TEST.local", T_A)], qid=0x1234))
    assert a["id"] == 0x1234 and a["flags"] == 0x8400
    assert a["q"] == [(labels("ESPAT-TEST.local"), T_A, 1)]
    assert [(r.name, r.type, r.cls, r.ttl, r.data) for r in a["an"]] == [
        (host_name(), T_A, 1, 10, LO)]
    assert a["ar"] == []

    # PTR browse: the instance, with SRV, TXT and A as additional records
    # (RFC 6763 §12.1)
    a = legacy.ask(query([("_printer._tcp.local", T_PTR)], qid=7))
    assert a["id"] == 7
    assert [(r.name, r.type, r.ttl, r.data) for r in a["an"]] == [
        (svc_name("_printer"), T_PTR, 10, inst_name(inst, "_printer"))]
    ar = by_key(a["ar"])
    assert set(ar) == {(fold(inst_name(inst, "_printer")), T_SRV),
                       (fold(inst_name(inst, "_printer")), T_TXT),
                       (fold(host_name()), T_A)}
    assert ar[(fold(inst_name(inst, "_printer")), T_SRV)].data == (0, 0, 35, host_name())
    assert ar[(fold(inst_name(inst, "_printer")), T_TXT)].data == TXT
    assert ar[(fold(host_name()), T_A)].data == LO

    # SRV and TXT of the instance; ANY gives both (and A as additional)
    a = legacy.ask(query([(inst_name(inst, "_printer"), T_SRV)], qid=8))
    assert [(r.type, r.data) for r in a["an"]] == [(T_SRV, (0, 0, 35, host_name()))]
    assert [(r.type, r.data) for r in a["ar"]] == [(T_A, LO)]
    a = legacy.ask(query([(inst_name(inst, "_printer"), T_TXT)], qid=9))
    assert [(r.type, r.data) for r in a["an"]] == [(T_TXT, TXT)] and a["ar"] == []
    a = legacy.ask(query([(inst_name(inst, "_printer"), T_ANY)], qid=10))
    assert sorted(r.type for r in a["an"]) == [T_TXT, T_SRV]
    assert [(r.type, r.data) for r in a["ar"]] == [(T_A, LO)]
    # service type enumeration (RFC 6763 §9)
    a = legacy.ask(query([("_services._dns-sd._udp.local", T_PTR)], qid=11))
    assert [(r.name, r.data) for r in a["an"]] == [(ENUM, svc_name("_printer"))]

    # nothing for what is not ours: another name, AAAA (IPv4 only), another
    # class, a response, a non-zero opcode
    legacy.silent(query([("other-host.local", T_A)]))
    legacy.silent(query([("espat-test.local", T_AAAA)]))
    legacy.silent(query([("_http._tcp.local", T_PTR)]))
    legacy.silent(query([("espat-test.local", T_A, 3)]))
    legacy.silent(query([("espat-test.local", T_A)], flags=0x8400))
    legacy.silent(query([("espat-test.local", T_A)], flags=0x2000))
    legacy.silent(b"\x00\x00\x00\x00\x00\x01\x00\x00\x00\x00\x00\x00\x05")   # torn

    # §7.1 known-answer suppression: a PTR the querier lists with at least
    # half its TTL is not sent again; with less it is
    known = enc_name(inst_name(inst, "_printer"))
    legacy.silent(query([("_printer._tcp.local", T_PTR)],
                        known=[("_printer._tcp.local", T_PTR, 2250, known)]))
    a = legacy.ask(query([("_printer._tcp.local", T_PTR)], qid=12,
                         known=[("_printer._tcp.local", T_PTR, 2249, known)]))
    assert [r.type for r in a["an"]] == [T_PTR]

    # a full mDNS query (source port 5353): a multicast answer, ID 0, no
    # questions, full TTL and the cache-flush bit; at least a second after
    # the last announcement (§6: a record is multicast once a second at most)
    time.sleep(max(0.0, t2 + 1.1 - time.monotonic()))
    listener.drain()
    listener.send(query([("espat-test.local", T_A)]))
    _, a = listener.next_response(HOST)
    assert a["id"] == 0 and a["q"] == [] and a["ar"] == []
    assert [(r.name, r.type, r.cls, r.ttl, r.data) for r in a["an"]] == [
        (host_name(), T_A, 1 | FLUSH, 120, LO)]
    # ... and asked again at once, nothing more is multicast (§6)
    listener.send(query([("espat-test.local", T_A)]))
    assert listener.responses(HOST, SILENCE) == []
    # a legacy querier is still answered meanwhile (unicast is not limited)
    assert legacy.ask(query([("espat-test.local", T_A)]))["an"][0].data == LO

    # AT+MDNS=0: goodbye (§10.1): every record again with TTL 0
    listener.drain()
    c.transact(b"AT+MDNS=0\r\n", OK)
    _, g = listener.next_response(HOST)
    assert g["id"] == 0 and g["flags"] == 0x8400 and g["q"] == []
    check_records(g["an"], inst, "_printer", 35, TXT, ttl=0)
    assert listener.responses(HOST, SILENCE) == []
    legacy.silent(query([("espat-test.local", T_A)]))
    # off when off is fine; on again with another service answers that one
    c.transact(b"AT+MDNS=0\r\n", OK)
    c.transact(b'AT+MDNS=1,"espat-test","_http",8080\r\n', OK)
    a = legacy.ask(query([("_http._tcp.local", T_PTR)], qid=13))
    assert [r.data for r in a["an"]] == [inst_name(HOST, "_http")]
    legacy.silent(query([("_printer._tcp.local", T_PTR)]))
    c.transact(b"AT+MDNS=0\r\n", OK)


# ---- defaults (the reference's own example) -------------------------------------------------

def test_mdns_reference_example_defaults(espatd, legacy):
    """AT+MDNS=1,"espressif","_iot",8080: instance = hostname, proto _tcp,
    a TXT record with one empty string (RFC 6763 §6.1)."""
    d, c = joined(espatd)
    c.transact(b'AT+MDNS=1,"espressif","_iot",8080\r\n', OK)
    a = legacy.ask(query([("_iot._tcp.local", T_PTR)], qid=1))
    assert [r.data for r in a["an"]] == [inst_name("espressif", "_iot")]
    check_records(a["an"] + a["ar"] + [RR(ENUM, T_PTR, 1, 10, svc_name("_iot"))],
                  "espressif", "_iot", 8080, [b""], host="espressif", ttl=10, legacy=True)
    c.transact(b"AT+MDNS=0\r\n", OK)


def test_mdns_omitted_fields_and_udp_proto(espatd, legacy):
    """Omitted <instance> and <proto> take their defaults; <proto> _udp;
    a 63-byte host name (one DNS label) is the longest."""
    d, c = joined(espatd)
    host = "h" * 63
    c.transact(b'AT+MDNS=1,"%s","_srv",1,,"_udp",1,"k",""\r\n' % host.encode(), OK)
    a = legacy.ask(query([("_srv._udp.local", T_PTR)], qid=2))
    assert [r.data for r in a["an"]] == [inst_name(host, "_srv", "_udp")]
    ar = by_key(a["ar"])
    assert ar[(fold(inst_name(host, "_srv", "_udp")), T_TXT)].data == [b"k="]
    assert ar[(fold(inst_name(host, "_srv", "_udp")), T_SRV)].data == (0, 0, 1, host_name(host))
    assert ar[(fold(host_name(host)), T_A)].data == LO
    c.transact(b"AT+MDNS=0\r\n", OK)
    c.transact(b'AT+MDNS=1,"espat-test","_srv",65535,,\r\n', OK)
    a = legacy.ask(query([("_srv._tcp.local", T_PTR)], qid=3))
    assert [r.data for r in a["an"]] == [inst_name(HOST, "_srv")]
    assert by_key(a["ar"])[(fold(inst_name(HOST, "_srv")), T_SRV)].data[2] == 65535
    c.transact(b"AT+MDNS=0\r\n", OK)


def test_mdns_static_station_address(espatd, legacy):
    """With AT+CIPSTA the A record carries the static address, as
    AT+CIPSTA? and AT+CIFSR show it."""
    d, c = start(espatd)
    c.transact(b'AT+CIPSTA="192.168.4.77","192.168.4.1","255.255.255.0"\r\n', OK)
    c.transact(JOIN, JOINED)
    c.transact(b'AT+MDNS=1,"espat-test","_http",80\r\n', OK)
    a = legacy.ask(query([("espat-test.local", T_A)], qid=4))
    assert [r.data for r in a["an"]] == ["192.168.4.77"]
    c.transact(b"AT+MDNS=0\r\n", OK)


# ---- errors, byte for byte ---------------------------------------------------------------

BAD = [
    b"AT+MDNS\r\n",                         # no execute form
    b"AT+MDNS?\r\n",                        # no query form
    b"AT+MDNS=?\r\n",                       # no test form (§1.12)
    b"AT+MDNS=\r\n",
    b"AT+MDNS=2\r\n",                       # the lookup form is not in the reference
    b'AT+MDNS=2,0,"_http","_tcp"\r\n',
    b"AT+MDNS=-1\r\n",
    b'AT+MDNS="1"\r\n',
    b'AT+MDNS=0,"espat-test"\r\n',          # 0: "do not set the following parameters"
    b"AT+MDNS=0,\r\n",
    b"AT+MDNS=1\r\n",                       # hostname, service type and port needed
    b'AT+MDNS=1,"espat-test"\r\n',
    b'AT+MDNS=1,"espat-test","_http"\r\n',
    b'AT+MDNS=1,"espat-test","_http",\r\n',
    b'AT+MDNS=1,,"_http",80\r\n',
    b'AT+MDNS=1,"espat-test",,80\r\n',
    b'AT+MDNS=1,"","_http",80\r\n',
    b'AT+MDNS=1,"espat-test","",80\r\n',
    b'AT+MDNS=1,espat-test,"_http",80\r\n',
    b'AT+MDNS=1,"espat-test","_http","80"\r\n',
    b'AT+MDNS=1,"espat-test","_http",0\r\n',
    b'AT+MDNS=1,"espat-test","_http",65536\r\n',
    b'AT+MDNS=1,"espat-test","_http",-1\r\n',
    b'AT+MDNS=1,"%s","_http",80\r\n' % (b"h" * 64),      # a DNS label is 63 bytes
    b'AT+MDNS=1,"espat-test","%s",80\r\n' % (b"s" * 64),
    b'AT+MDNS=1,"espat-test","_http",80,"%s"\r\n' % (b"i" * 64),
    b'AT+MDNS=1,"espat-test","_http",80,"i","%s"\r\n' % (b"p" * 64),
    b'AT+MDNS=1,"espat-test","_http",80,"i",_tcp\r\n',
    b'AT+MDNS=1,"espat-test","_http",80,"i","_tcp",0\r\n',          # <txt_number> [1,10]
    b'AT+MDNS=1,"espat-test","_http",80,"i","_tcp",11\r\n',
    b'AT+MDNS=1,"espat-test","_http",80,"i","_tcp",1\r\n',          # pairs missing
    b'AT+MDNS=1,"espat-test","_http",80,"i","_tcp",1,"k"\r\n',
    b'AT+MDNS=1,"espat-test","_http",80,"i","_tcp",2,"k","v"\r\n',
    b'AT+MDNS=1,"espat-test","_http",80,"i","_tcp",1,"k","v","x"\r\n',
    b'AT+MDNS=1,"espat-test","_http",80,"i","_tcp",1,"k","v","k2","v2"\r\n',
    b'AT+MDNS=1,"espat-test","_http",80,"i","_tcp",,"k","v"\r\n',   # pairs need a count
    b'AT+MDNS=1,"espat-test","_http",80,"i","_tcp","1","k","v"\r\n',
    b'AT+MDNS=1,"espat-test","_http",80,"i","_tcp",1,"","v"\r\n',   # empty key
    b'AT+MDNS=1,"espat-test","_http",80,"i","_tcp",1,"a=b","v"\r\n',  # '=' in a key
    b'AT+MDNS=1,"espat-test","_http",80,"i","_tcp",1,,"v"\r\n',
    b'AT+MDNS=1,"espat-test","_http",80,"i","_tcp",1,"k",\r\n',
    b'AT+MDNS=1,"espat-test","_http",80,"i","_tcp",1,"k",v\r\n',
]


def test_mdns_errors(espatd, legacy):
    d, c = start(espatd)
    # before a join the station has no address: nothing to publish
    c.check_all([b'AT+MDNS=1,"espat-test","_http",80\r\n'] + BAD)
    c.transact(JOIN, JOINED)
    c.check_all(BAD)
    # a failed command published nothing
    legacy.silent(query([("espat-test.local", T_A)]))
    legacy.silent(query([("i._http._tcp.local", T_TXT)]))
    # on while on: turn it off first
    c.transact(b'AT+MDNS=1,"espat-test","_http",80\r\n', OK)
    c.check_all([b'AT+MDNS=1,"espat-test","_http",80\r\n',
                b'AT+MDNS=1,"other","_ftp",21\r\n'] + BAD)
    assert legacy.ask(query([("espat-test.local", T_A)]))["an"][0].data == LO
    legacy.silent(query([("other.local", T_A)]))
    c.transact(b"AT+MDNS=0\r\n", OK)
    c.transact(b'AT+MDNS=1,"other","_ftp",21\r\n', OK)
    c.transact(b"AT+MDNS=0\r\n", OK)
    # with AT+SYSLOG=1 the ERR CODE of the failures that have one by rule
    # (§1.4, §1.8): a parse failure names its parameter, a count its need
    c.transact(b"AT+SYSLOG=1\r\n", OK)
    c.transact(b'AT+MDNS=1,espat-test,"_http",80\r\n', b"ERR CODE:0x01080001\r\n" + ERROR)
    c.transact(b'AT+MDNS=1,"espat-test","_http","80"\r\n', b"ERR CODE:0x01080003\r\n" + ERROR)
    c.transact(b'AT+MDNS=1,"espat-test","_http",0\r\n', b"ERR CODE:0x01070003\r\n" + ERROR)
    c.transact(b'AT+MDNS=0,"x"\r\n', b"ERR CODE:0x01060102\r\n" + ERROR)
    c.transact(b"AT+MDNS=?\r\n", ERROR)   # like every command's "=?" (test_basic.py)


# ---- echo and the command list ------------------------------------------------------------

def test_mdns_with_echo(espatd, legacy):
    d = espatd("--netif", "lo")
    c = d.client
    c.transact(JOIN, JOIN + JOINED)
    cmd = b'AT+MDNS=1,"espat-test","_http",80\r\n'
    c.transact(cmd, cmd + OK)
    assert legacy.ask(query([("espat-test.local", T_A)]))["an"][0].data == LO
    c.transact(b"AT+MDNS=0\r\n", b"AT+MDNS=0\r\n" + OK)


def test_mdns_listed_by_at_cmd(c):
    c.echo_off()
    c.write(b"AT+CMD?\r\n")
    out = c.read_result()
    c.assert_quiet()
    assert b',"AT+MDNS",0,0,1,0\r\n' in out, out


# ---- it stops when the module would ---------------------------------------------------------

def test_mdns_stops_on_reset(espatd, legacy, listener):
    """AT+RST: the module reboots; its responder is gone (no goodbye: a
    resetting module sends nothing) and after the reboot mDNS is off."""
    d, c = joined(espatd)
    c.transact(b'AT+MDNS=1,"espat-test","_http",80\r\n', OK)
    assert legacy.ask(query([("espat-test.local", T_A)]))["an"][0].data == LO
    listener.responses(HOST, 1.2 * SCALE)       # both announcements
    c.transact(b"AT+RST\r\n", OK, quiet=0)
    # the saved join comes back by itself (§5.5); mDNS does not
    c.expect(b"\r\nready\r\nWIFI CONNECTED\r\nWIFI GOT IP\r\n", timeout=2 * SCALE)
    legacy.silent(query([("espat-test.local", T_A)]))
    assert listener.responses(HOST, SILENCE) == []
    c.echo_off()
    # off, so on again is fine (not "already on")
    c.transact(b'AT+MDNS=1,"espat-test","_http",80\r\n', OK)
    assert legacy.ask(query([("espat-test.local", T_A)]))["an"][0].data == LO
    c.transact(b"AT+MDNS=0\r\n", OK)


def test_mdns_stops_when_station_disconnects(espatd, legacy, listener):
    """The station loses its address (AT+CWQAP): the responder stops, with
    no goodbye (the module's link is gone), and stays off after a rejoin."""
    d, c = joined(espatd)
    c.transact(b'AT+MDNS=1,"espat-test","_http",80\r\n', OK)
    assert legacy.ask(query([("espat-test.local", T_A)]))["an"][0].data == LO
    listener.responses(HOST, 1.2 * SCALE)
    c.transact(b"AT+CWQAP\r\n", b"WIFI DISCONNECT\r\n\r\nOK\r\n")
    assert listener.responses(HOST, SILENCE) == []
    legacy.silent(query([("espat-test.local", T_A)]))
    c.transact(b'AT+MDNS=1,"espat-test","_http",80\r\n', ERROR)    # no address
    c.transact(JOIN, JOINED)
    legacy.silent(query([("espat-test.local", T_A)]))
    c.transact(b'AT+MDNS=1,"espat-test","_http",80\r\n', OK)
    assert legacy.ask(query([("espat-test.local", T_A)]))["an"][0].data == LO
    c.transact(b"AT+MDNS=0\r\n", OK)


def test_mdns_stops_on_restore(espatd, legacy):
    d, c = joined(espatd)
    c.transact(b'AT+MDNS=1,"espat-test","_http",80\r\n', OK)
    assert legacy.ask(query([("espat-test.local", T_A)]))["an"][0].data == LO
    c.transact(b"AT+RESTORE\r\n", OK, quiet=0)
    c.expect(b"\r\nready\r\n", timeout=2 * SCALE)
    legacy.silent(query([("espat-test.local", T_A)]))


def test_mdns_daemon_exit_with_responder_on(espatd, legacy):
    """SIGTERM with the responder on: a clean exit (the fixture checks the
    status and the sanitizer report), and nothing answers afterwards."""
    d, c = joined(espatd)
    c.transact(b'AT+MDNS=1,"espat-test","_http",80\r\n', OK)
    assert legacy.ask(query([("espat-test.local", T_A)]))["an"][0].data == LO
    d.stop()
    legacy.silent(query([("espat-test.local", T_A)]))
