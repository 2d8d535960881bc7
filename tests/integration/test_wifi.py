"""Wi-Fi AT commands on the virtual station: exact transcripts (protocol.md
§3.1, §3.3c, §5.5; /tmp/spec_basic_wifi.md)."""

import re
import time

import pytest

from espat import JOIN_MS, SCALE, host_default_route, host_ipv4, host_mac

AP_ALPHA = "alpha:pw-alpha1:-60:1:aa:00:00:00:00:01"
AP_BETA = "beta::-40:11:aa:00:00:00:00:02"       # open
AP_GAMMA = "gamma:pw-gamma1:-80:6:aa:00:00:00:00:03"
APS = ["--ap", AP_ALPHA, "--ap", AP_BETA, "--ap", AP_GAMMA]
ALPHA = b'+CWLAP:(3,"alpha",-60,"aa:00:00:00:00:01",1,-1,-1,4,4,7,0)\r\n'
BETA = b'+CWLAP:(0,"beta",-40,"aa:00:00:00:00:02",11,-1,-1,0,0,7,0)\r\n'
GAMMA = b'+CWLAP:(3,"gamma",-80,"aa:00:00:00:00:03",6,-1,-1,4,4,7,0)\r\n'

JOINED = b"WIFI CONNECTED\r\nWIFI GOT IP\r\n\r\nOK\r\n"
REJOINED = b"WIFI DISCONNECT\r\n" + JOINED
OK = b"\r\nOK\r\n"
ERROR = b"\r\nERROR\r\n"
ZERO_CIPSTA = (b'+CIPSTA:ip:"0.0.0.0"\r\n+CIPSTA:gateway:"0.0.0.0"\r\n'
               b'+CIPSTA:netmask:"0.0.0.0"\r\n\r\nOK\r\n')


# ---- AT+CWMODE ------------------------------------------------------------------


def test_cwmode(espatd, frag):
    c = espatd(mode=frag).client
    c.transact(b"AT+CWMODE?\r\n", b"AT+CWMODE?\r\n+CWMODE:1\r\n\r\nOK\r\n")
    c.transact(b"ATE0\r\n", b"ATE0\r\n\r\nOK\r\n")
    for m in (b"0", b"2", b"3", b"1"):
        c.transact(b"AT+CWMODE=" + m + b"\r\n", OK)
        c.transact(b"AT+CWMODE?\r\n", b"+CWMODE:" + m + b"\r\n\r\nOK\r\n")
    c.transact(b"AT+CWMODE=3,0\r\n", OK)
    c.transact(b"AT+CWMODE?\r\n", b"+CWMODE:3\r\n\r\nOK\r\n")
    c.transact(b"AT+CWMODE=0x2\r\n", OK)   # hexadecimal integers (§1.4)
    c.transact(b"AT+CWMODE?\r\n", b"+CWMODE:2\r\n\r\nOK\r\n")


def test_cwmode_bad(c):
    c.echo_off()
    c.check_all([b"AT+CWMODE=4\r\n", b"AT+CWMODE=5\r\n", b"AT+CWMODE=-1\r\n",
                b'AT+CWMODE="1"\r\n', b"AT+CWMODE=\r\n", b"AT+CWMODE=1,2\r\n",
                b"AT+CWMODE=1,0,0\r\n", b"AT+CWMODE=0x4\r\n", b"AT+CWMODE\r\n",
                b"AT+CWMODE=?\r\n", b"AT+CWMODE=4294967297\r\n", b"AT+CWMODE=1.0\r\n"])
    c.transact(b"AT+CWMODE?\r\n", b"+CWMODE:1\r\n\r\nOK\r\n")


def test_cwmode_switch_reconnects(espatd):
    # switching back to a station mode joins the saved AP (auto_connect 1)
    d = espatd()
    c = d.client
    c.echo_off()
    c.transact(b'AT+CWJAP="lab","secret123"\r\n', JOINED)
    c.write(b"AT+CWMODE=2\r\n")
    c.expect_any([b"WIFI DISCONNECT\r\n\r\nOK\r\n", b"\r\nOK\r\nWIFI DISCONNECT\r\n"])
    c.transact(b"AT+CWMODE=1\r\n", OK, quiet=0)
    c.expect(b"WIFI CONNECTED\r\nWIFI GOT IP\r\n", timeout=2 * SCALE)
    c.transact(b"AT+CWSTATE?\r\n", b'+CWSTATE:2,"lab"\r\n\r\nOK\r\n')
    c.write(b"AT+CWMODE=2\r\n")
    c.expect_any([b"WIFI DISCONNECT\r\n\r\nOK\r\n", b"\r\nOK\r\nWIFI DISCONNECT\r\n"])
    # auto_connect 0: no join
    c.transact(b"AT+CWMODE=3,0\r\n", OK)
    c.assert_quiet(0.4)
    c.transact(b"AT+CWJAP?\r\n", OK)


# ---- AT+CWJAP --------------------------------------------------------------------


def test_cwjap_lab_mode(espatd, frag):
    # no --ap: any SSID joins
    c = espatd(mode=frag).client
    cmd = b'AT+CWJAP="any net","whatever1"\r\n'
    c.transact(cmd, cmd + JOINED)
    c.transact(b"ATE0\r\n", b"ATE0\r\n\r\nOK\r\n")
    c.write(b"AT+CWJAP?\r\n")
    out = c.read_result()
    assert re.fullmatch(rb'\+CWJAP:"any net","[0-9a-f]{2}(:[0-9a-f]{2}){5}",6,-45,0,1,3,0,1'
                        rb'\r\n\r\nOK\r\n', out), out
    c.transact(b"AT+CWSTATE?\r\n", b'+CWSTATE:2,"any net"\r\n\r\nOK\r\n')
    # already connected: WIFI DISCONNECT first
    c.transact(b'AT+CWJAP="other","pw","12:34:56:78:9a:bc"\r\n', REJOINED)
    c.transact(b"AT+CWJAP?\r\n",
               b'+CWJAP:"other","12:34:56:78:9a:bc",6,-45,0,1,3,0,1\r\n\r\nOK\r\n')
    c.transact(b"AT+CWSTATE?\r\n", b'+CWSTATE:2,"other"\r\n\r\nOK\r\n')


def test_cwjap_not_connected_query(c):
    c.transact(b"AT+CWJAP?\r\n", b"AT+CWJAP?\r\n\r\nOK\r\n")


def test_cwjap_escapes_and_open(c):
    c.echo_off()
    c.transact(b'AT+CWJAP="a\\,b\\"c\\\\d"\r\n', JOINED)   # ssid a,b"c\d, no password
    c.transact(b"AT+CWSTATE?\r\n", b'+CWSTATE:2,"a,b"c\\d"\r\n\r\nOK\r\n')


def test_cwjap_all_params(c):
    c.echo_off()
    c.transact(b'AT+CWJAP="lab","pw","02:11:22:33:44:55",1,5,10,1,20,3\r\n', JOINED)
    c.transact(b"AT+CWJAP?\r\n", b'+CWJAP:"lab","02:11:22:33:44:55",6,-45,1,5,10,1,3'
               b"\r\n\r\nOK\r\n")
    # skipped parameters keep their defaults (Wi-Fi doc example ",,,,,,,3")
    c.transact(b'AT+CWJAP="lab","pw","02:11:22:33:44:55",,,,,,0\r\n', REJOINED)
    c.transact(b"AT+CWJAP?\r\n", b'+CWJAP:"lab","02:11:22:33:44:55",6,-45,0,1,3,0,0'
               b"\r\n\r\nOK\r\n")


def test_cwjap_bad_params(c):
    c.echo_off()
    c.check_all([
        b'AT+CWJAP="lab","pw",,2\r\n',                # pci_en 0..1
        b'AT+CWJAP="lab","pw",,,7201\r\n',            # reconn_interval 0..7200
        b'AT+CWJAP="lab","pw",,,,0\r\n',              # listen_interval 1..100
        b'AT+CWJAP="lab","pw",,,,101\r\n',
        b'AT+CWJAP="lab","pw",,,,,2\r\n',             # scan_mode 0..1
        b'AT+CWJAP="lab","pw",,,,,,2\r\n',            # jap_timeout 3..600
        b'AT+CWJAP="lab","pw",,,,,,601\r\n',
        b'AT+CWJAP="lab","pw",,,,,,,4\r\n',           # pmf 0..3
        b'AT+CWJAP="lab","pw","11:22:33"\r\n',        # bssid
        b'AT+CWJAP="lab","pw",,,,,,,,1\r\n',          # 10 parameters
        b'AT+CWJAP="' + b"s" * 33 + b'","pw"\r\n',    # ssid > 32
        b'AT+CWJAP="lab","' + b"p" * 64 + b'"\r\n',   # 64 but not a hex key
        b'AT+CWJAP="lab","' + b"a" * 65 + b'"\r\n',   # password > 64
        b'AT+CWJAP=,"pw"\r\n',                        # password without ssid
        b"AT+CWJAP=lab,pw\r\n",
        b'AT+CWJAP="lab",1\r\n',
    ])
    c.transact(b"AT+CWJAP?\r\n", OK)
    # the longest valid ones join
    c.transact(b'AT+CWJAP="' + b"s" * 32 + b'","' + b"p" * 63 + b'"\r\n', JOINED)


def wpa_psk(passphrase, ssid):
    """The raw key WPA2 derives from a passphrase (IEEE 802.11i H.4)."""
    import hashlib
    return hashlib.pbkdf2_hmac("sha1", passphrase.encode(), ssid.encode(), 4096, 32).hex()


def test_cwjap_raw_key(espatd):
    """A 64-hex-digit password is the raw WPA2 key: it joins an AP whose
    passphrase derives it, in either case, and no other."""
    c = espatd(*APS).client
    c.echo_off()
    key = wpa_psk("pw-alpha1", "alpha").encode()
    assert len(key) == 64
    c.transact(b'AT+CWJAP="alpha","' + key + b'"\r\n', JOINED)
    c.transact(b'AT+CWJAP="alpha","' + key.upper() + b'"\r\n', REJOINED)
    c.transact(b"AT+CWQAP\r\n", b"WIFI DISCONNECT\r\n\r\nOK\r\n")
    # the key of another passphrase, or of the right one for another SSID
    for bad in (wpa_psk("pw-alpha2", "alpha"), wpa_psk("pw-alpha1", "gamma")):
        c.transact(b'AT+CWJAP="alpha","' + bad.encode() + b'"\r\n', b"+CWJAP:2\r\n" + ERROR)


def test_cwjap_raw_key_configured(espatd):
    """An AP configured with its raw key takes that key or the passphrase."""
    key = wpa_psk("delta-pass", "delta")
    c = espatd("--ap", "delta:" + key).client
    c.echo_off()
    c.transact(b'AT+CWJAP="delta","delta-pass"\r\n', JOINED)
    c.transact(b'AT+CWJAP="delta","' + key.encode() + b'"\r\n', REJOINED)
    c.transact(b'AT+CWQAP\r\n', b"WIFI DISCONNECT\r\n\r\nOK\r\n")
    c.transact(b'AT+CWJAP="delta","delta-pasS"\r\n', b"+CWJAP:2\r\n" + ERROR)


def test_cwjap_configured_aps(espatd, frag):
    c = espatd(*APS, mode=frag, join_ms=20).client
    c.echo_off()
    c.transact(b'AT+CWJAP="alpha","wrong-pw"\r\n', b"+CWJAP:2\r\n\r\nERROR\r\n")
    c.transact(b'AT+CWJAP="nothere","pw-alpha1"\r\n', b"+CWJAP:3\r\n\r\nERROR\r\n")
    c.transact(b"AT+CWJAP?\r\n", OK)
    c.transact(b'AT+CWJAP="alpha","pw-alpha1"\r\n', JOINED)
    c.transact(b"AT+CWJAP?\r\n",
               b'+CWJAP:"alpha","aa:00:00:00:00:01",1,-60,0,1,3,0,1\r\n\r\nOK\r\n')
    c.transact(b"AT+CWSTATE?\r\n", b'+CWSTATE:2,"alpha"\r\n\r\nOK\r\n')
    c.transact(b'AT+CWJAP="beta",""\r\n', REJOINED)
    c.transact(b"AT+CWJAP?\r\n",
               b'+CWJAP:"beta","aa:00:00:00:00:02",11,-40,0,1,3,0,1\r\n\r\nOK\r\n')
    # a failing join while connected leaves the old AP first
    c.transact(b'AT+CWJAP="gamma","nope"\r\n', b"WIFI DISCONNECT\r\n+CWJAP:2\r\n\r\nERROR\r\n")
    c.transact(b"AT+CWJAP?\r\n", OK)
    # a BSSID that does not match: not found
    c.transact(b'AT+CWJAP="alpha","pw-alpha1","aa:00:00:00:00:09"\r\n',
               b"+CWJAP:3\r\n\r\nERROR\r\n")
    c.transact(b'AT+CWJAP="alpha","pw-alpha1","aa:00:00:00:00:01"\r\n', JOINED)


def test_cwjap_scan_mode_picks_ap(espatd):
    c = espatd("--ap", "dup:pw123456:-70:1:aa:00:00:00:00:10",
               "--ap", "dup:pw123456:-50:6:aa:00:00:00:00:11").client
    c.echo_off()
    # scan_mode 0: the first found; 1: the strongest
    c.transact(b'AT+CWJAP="dup","pw123456",,,,,0\r\n', JOINED)
    c.transact(b"AT+CWJAP?\r\n",
               b'+CWJAP:"dup","aa:00:00:00:00:10",1,-70,0,1,3,0,1\r\n\r\nOK\r\n')
    c.transact(b'AT+CWJAP="dup","pw123456",,,,,1\r\n', REJOINED)
    c.transact(b"AT+CWJAP?\r\n",
               b'+CWJAP:"dup","aa:00:00:00:00:11",6,-50,0,1,3,1,1\r\n\r\nOK\r\n')


def test_cwjap_execute(espatd):
    c = espatd().client
    c.echo_off()
    c.transact(b"AT+CWJAP\r\n", ERROR)   # nothing saved yet
    c.transact(b'AT+CWJAP="lab","secret123"\r\n', JOINED)
    c.transact(b"AT+CWQAP\r\n", b"WIFI DISCONNECT\r\n\r\nOK\r\n")
    c.transact(b"AT+CWJAP\r\n", JOINED)
    c.transact(b"AT+CWJAP\r\n", REJOINED)
    c.transact(b"AT+CWSTATE?\r\n", b'+CWSTATE:2,"lab"\r\n\r\nOK\r\n')


def test_cwjap_execute_with_configured_aps(espatd):
    c = espatd(*APS).client
    c.echo_off()
    c.transact(b'AT+CWJAP="gamma","pw-gamma1"\r\n', JOINED)
    c.transact(b"AT+CWQAP\r\n", b"WIFI DISCONNECT\r\n\r\nOK\r\n")
    c.transact(b"AT+CWJAP\r\n", JOINED)
    c.transact(b"AT+CWJAP?\r\n",
               b'+CWJAP:"gamma","aa:00:00:00:00:03",6,-80,0,1,3,0,1\r\n\r\nOK\r\n')


def test_cwjap_needs_station_mode(c):
    c.echo_off()
    c.transact(b'AT+CWJAP="lab","secret123"\r\n', JOINED)
    for mode in (b"2", b"0"):
        c.write(b"AT+CWMODE=" + mode + b"\r\n")
        if mode == b"2":
            c.expect_any([b"WIFI DISCONNECT\r\n\r\nOK\r\n", b"\r\nOK\r\nWIFI DISCONNECT\r\n"])
        else:
            c.expect(OK)
        c.check_all([b'AT+CWJAP="lab","secret123"\r\n', b"AT+CWJAP\r\n"])
        c.transact(b"AT+CWJAP?\r\n", OK)


def test_cwjap_typed_during_join_is_busy(espatd):
    c = espatd(join_ms=500).client
    c.echo_off()
    c.transact(b'AT+CWJAP="lab","secret123"\r\n', b"", quiet=0)
    time.sleep(0.05)
    c.transact(b'AT+CWJAP="x","y"\r\n', b"\r\nbusy p...\r\n", quiet=0)
    c.expect(JOINED, timeout=2 * SCALE)
    c.transact(b"AT+CWSTATE?\r\n", b'+CWSTATE:2,"lab"\r\n\r\nOK\r\n')


# ---- AT+CWQAP, AT+CWSTATE ----------------------------------------------------------


def test_cwqap(espatd):
    c = espatd().client
    c.transact(b"AT+CWQAP\r\n", b"AT+CWQAP\r\n\r\nOK\r\n")   # not connected: just OK
    c.echo_off()
    c.transact(b'AT+CWJAP="lab","secret123"\r\n', JOINED)
    # WIFI DISCONNECT comes before the OK (ESP32 log in the spec notes)
    c.transact(b"AT+CWQAP\r\n", b"WIFI DISCONNECT\r\n\r\nOK\r\n")
    c.transact(b"AT+CWQAP\r\n", OK)
    c.transact(b"AT+CWJAP?\r\n", OK)
    c.check_all([b"AT+CWQAP?\r\n", b"AT+CWQAP=1\r\n", b"AT+CWQAP=?\r\n"])


def test_cwstate(espatd):
    c = espatd(join_ms=500).client
    c.transact(b"AT+CWSTATE?\r\n", b'AT+CWSTATE?\r\n+CWSTATE:0,""\r\n\r\nOK\r\n')
    c.echo_off()
    c.transact(b'AT+CWJAP="lab","secret123"\r\n', JOINED, timeout=3 * SCALE)
    c.transact(b"AT+CWSTATE?\r\n", b'+CWSTATE:2,"lab"\r\n\r\nOK\r\n')
    c.transact(b"AT+CWQAP\r\n", b"WIFI DISCONNECT\r\n\r\nOK\r\n")
    c.write(b"AT+CWSTATE?\r\n")
    out = c.read_result()
    # 4 = disconnected; whether the last SSID is still shown is UNCONFIRMED
    assert out in (b'+CWSTATE:4,""\r\n\r\nOK\r\n', b'+CWSTATE:4,"lab"\r\n\r\nOK\r\n'), out
    # a join that runs without a command (CWMODE switch): 3, then 1, then 2
    c.transact(b"AT+CWMODE=2\r\n", OK)
    c.transact(b"AT+CWMODE=1\r\n", OK, quiet=0)
    c.transact(b"AT+CWSTATE?\r\n", b'+CWSTATE:3,"lab"\r\n\r\nOK\r\n', quiet=0)
    c.expect(b"WIFI CONNECTED\r\n", timeout=2 * SCALE, quiet=0)
    c.transact(b"AT+CWSTATE?\r\n", b'+CWSTATE:1,"lab"\r\n\r\nOK\r\n', quiet=0)
    c.expect(b"WIFI GOT IP\r\n", timeout=2 * SCALE)
    c.transact(b"AT+CWSTATE?\r\n", b'+CWSTATE:2,"lab"\r\n\r\nOK\r\n')
    c.check_all([b"AT+CWSTATE\r\n", b"AT+CWSTATE=1\r\n"])


# ---- AT+CWLAP / AT+CWLAPOPT -----------------------------------------------------------


def test_cwlap(espatd, frag):
    c = espatd(*APS, mode=frag, join_ms=20).client
    c.transact(b"AT+CWLAP\r\n", b"AT+CWLAP\r\n" + ALPHA + BETA + GAMMA + OK)
    c.echo_off()
    c.transact(b'AT+CWLAP="gamma"\r\n', GAMMA + OK)
    c.transact(b'AT+CWLAP="alpha","aa:00:00:00:00:01"\r\n', ALPHA + OK)
    c.transact(b'AT+CWLAP="alpha","aa:00:00:00:00:01",1,0,400,1000\r\n', ALPHA + OK)


def test_cwlap_set_filters(espatd):
    c = espatd(*APS, join_ms=20).client
    c.echo_off()
    failures = []
    for cmd, want in [
        (b'AT+CWLAP="beta"\r\n', BETA + OK),
        (b'AT+CWLAP="nothere"\r\n', OK),
        (b'AT+CWLAP="Alpha"\r\n', OK),                          # case matters
        (b'AT+CWLAP="alpha","aa:00:00:00:00:02"\r\n', OK),
        (b'AT+CWLAP="alpha","AA:00:00:00:00:01"\r\n', ALPHA + OK),
        (b'AT+CWLAP="alpha",,1\r\n', ALPHA + OK),
        (b'AT+CWLAP="alpha",,6\r\n', OK),
        (b'AT+CWLAP="alpha",,,1,0,0\r\n', ALPHA + OK),
        (b'AT+CWLAP="","aa:00:00:00:00:02",\r\n', BETA + OK),   # "" filters nothing
        (b'AT+CWLAP=""\r\n', ALPHA + BETA + GAMMA + OK),
        (b"AT+CWLAP=alpha\r\n", ERROR),
        (b'AT+CWLAP="alpha","zz"\r\n', ERROR),
        (b'AT+CWLAP="alpha",,15\r\n', ERROR),
        (b'AT+CWLAP="alpha",,0\r\n', ERROR),
        (b'AT+CWLAP="alpha",,1,2\r\n', ERROR),
        (b'AT+CWLAP="alpha",,1,0,1501\r\n', ERROR),
        (b'AT+CWLAP="alpha",,1,0,0,1501\r\n', ERROR),
        (b'AT+CWLAP="alpha",,1,0,0,0,0\r\n', ERROR),
        (b"AT+CWLAP?\r\n", ERROR),
        (b"AT+CWLAP\r\n", ALPHA + BETA + GAMMA + OK),           # the filter is gone
    ]:
        c.check(cmd, want, failures)
    assert not failures, "\n".join(failures)


def test_cwlapopt(espatd):
    d = espatd(*APS, join_ms=20)
    c = d.client
    c.echo_off()
    failures = []
    for opt, want in [
        (b"1,0x7FF", BETA + ALPHA + GAMMA),                       # sorted by RSSI
        (b"0,2047", ALPHA + BETA + GAMMA),
        (b"1,31", b'+CWLAP:(0,"beta",-40,"aa:00:00:00:00:02",11)\r\n'
                  b'+CWLAP:(3,"alpha",-60,"aa:00:00:00:00:01",1)\r\n'
                  b'+CWLAP:(3,"gamma",-80,"aa:00:00:00:00:03",6)\r\n'),
        (b"1,6", b'+CWLAP:("beta",-40)\r\n+CWLAP:("alpha",-60)\r\n+CWLAP:("gamma",-80)\r\n'),
        (b"0,2", b'+CWLAP:("alpha")\r\n+CWLAP:("beta")\r\n+CWLAP:("gamma")\r\n'),
        (b"0,0x600", b"+CWLAP:(7,0)\r\n+CWLAP:(7,0)\r\n+CWLAP:(7,0)\r\n"),
        (b"0,0x180", b"+CWLAP:(4,4)\r\n+CWLAP:(0,0)\r\n+CWLAP:(4,4)\r\n"),
        (b"0,0x70", b"+CWLAP:(1,-1,-1)\r\n+CWLAP:(11,-1,-1)\r\n+CWLAP:(6,-1,-1)\r\n"),
        (b"0,2047,-70", ALPHA + BETA),                            # rssi filter
        (b"1,2047,-60", BETA + ALPHA),
        (b"0,2047,-40", BETA),
        (b"0,2047,-39", b""),
        (b"0,2047,-100,1", BETA),                                 # authmode mask: OPEN
        (b"0,2047,-100,8", ALPHA + GAMMA),                        # WPA2_PSK
        (b"0,2047,-100,0x0", b""),
        (b"1,2,-70,8", b'+CWLAP:("alpha")\r\n'),
    ]:
        c.check(b"AT+CWLAPOPT=" + opt + b"\r\n", OK, failures)
        c.check(b"AT+CWLAP\r\n", want + OK, failures)
    # options also apply to the set form
    c.check(b'AT+CWLAP="alpha"\r\n', b'+CWLAP:("alpha")\r\n' + OK, failures)
    c.check(b'AT+CWLAP="gamma"\r\n', OK, failures)   # filtered by rssi
    assert not failures, "\n".join(failures)
    c.check_all([b"AT+CWLAPOPT=2,2047\r\n", b"AT+CWLAPOPT=1,2048\r\n", b"AT+CWLAPOPT=1\r\n",
                b"AT+CWLAPOPT=1,2047,-101\r\n", b"AT+CWLAPOPT=1,2047,41\r\n",
                b"AT+CWLAPOPT=1,2047,-100,0x10000\r\n", b"AT+CWLAPOPT=1,2047,-100,1,1\r\n",
                b"AT+CWLAPOPT=-1,2047\r\n", b"AT+CWLAPOPT?\r\n", b"AT+CWLAPOPT\r\n",
                b'AT+CWLAPOPT=1,"2047"\r\n'])
    # the failed sets changed nothing
    c.transact(b"AT+CWLAP\r\n", b'+CWLAP:("alpha")\r\n' + OK)
    # not saved
    c = d.restart()
    c.echo_off()
    c.transact(b"AT+CWLAP\r\n", ALPHA + BETA + GAMMA + OK)


def test_ap_file(espatd, tmp_path):
    path = tmp_path / "aps.conf"
    path.write_text("# access points for the test\n"
                    "[ap]\n"
                    'ssid = "corp net"\n'
                    "password = corp-secret\n"
                    "rssi = -52\n"
                    "channel = 13\n"
                    "ecn = 4\n"
                    "bssid = 0a:11:22:33:44:55\n"
                    "\n"
                    "[ap]\n"
                    "ssid = guest\n")
    c = espatd("--ap-file", str(path), join_ms=20).client
    c.echo_off()
    c.transact(b"AT+CWLAP\r\n",
               b'+CWLAP:(4,"corp net",-52,"0a:11:22:33:44:55",13,-1,-1,4,4,7,0)\r\n'
               b'+CWLAP:(0,"guest",-45,"', quiet=0)
    c.read_until(b'",6,-1,-1,0,0,7,0)\r\n\r\nOK\r\n')
    c.transact(b'AT+CWJAP="corp net","nope"\r\n', b"+CWJAP:2\r\n\r\nERROR\r\n")
    c.transact(b'AT+CWJAP="corp net","corp-secret"\r\n', JOINED)
    c.transact(b"AT+CWJAP?\r\n",
               b'+CWJAP:"corp net","0a:11:22:33:44:55",13,-52,0,1,3,0,1\r\n\r\nOK\r\n')


def test_cwlap_lab_mode(c):
    c.echo_off()
    c.transact(b"AT+CWLAP\r\n", OK)   # nothing in range but the AP joined
    c.transact(b'AT+CWJAP="lab","secret123","02:aa:bb:cc:dd:ee"\r\n', JOINED)
    c.transact(b"AT+CWLAP\r\n",
               b'+CWLAP:(3,"lab",-45,"02:aa:bb:cc:dd:ee",6,-1,-1,4,4,7,0)\r\n' + OK)


def test_cwlap_needs_station_mode(espatd):
    c = espatd(*APS, join_ms=20).client
    c.echo_off()
    c.transact(b"AT+CWMODE=2\r\n", OK)
    c.check_all([b"AT+CWLAP\r\n", b'AT+CWLAP="alpha"\r\n'])
    c.transact(b"AT+CWMODE=3\r\n", OK)
    c.transact(b"AT+CWLAP\r\n", ALPHA + BETA + GAMMA + OK)


# ---- AT+CWAUTOCONN, AT+CWDHCP -----------------------------------------------------------


def test_cwautoconn(espatd):
    c = espatd().client
    # no CR LF after the value: no blank line before OK (§1.7)
    c.transact(b"AT+CWAUTOCONN?\r\n", b"AT+CWAUTOCONN?\r\n+CWAUTOCONN:1\r\nOK\r\n")
    c.echo_off()
    c.transact(b"AT+CWAUTOCONN=0\r\n", OK)
    c.transact(b"AT+CWAUTOCONN?\r\n", b"+CWAUTOCONN:0\r\nOK\r\n")
    c.check_all([b"AT+CWAUTOCONN=2\r\n", b"AT+CWAUTOCONN=-1\r\n", b"AT+CWAUTOCONN=\r\n",
                b"AT+CWAUTOCONN=1,1\r\n", b"AT+CWAUTOCONN\r\n", b'AT+CWAUTOCONN="1"\r\n'])
    c.transact(b"AT+CWAUTOCONN=1\r\n", OK)
    c.transact(b"AT+CWAUTOCONN?\r\n", b"+CWAUTOCONN:1\r\nOK\r\n")


def test_cwdhcp(espatd):
    c = espatd().client
    c.transact(b"AT+CWDHCP?\r\n", b"AT+CWDHCP?\r\n+CWDHCP:3\r\nOK\r\n")
    c.echo_off()
    for op, want in [(b"0,1", b"2"), (b"0,2", b"0"), (b"1,2", b"2"), (b"1,1", b"3"),
                     (b"0,3", b"0"), (b"1,3", b"3")]:
        c.transact(b"AT+CWDHCP=" + op + b"\r\n", OK)
        c.transact(b"AT+CWDHCP?\r\n", b"+CWDHCP:" + want + b"\r\nOK\r\n")
    c.check_all([b"AT+CWDHCP=2,1\r\n", b"AT+CWDHCP=1,4\r\n", b"AT+CWDHCP=1\r\n",
                b"AT+CWDHCP=1,1,1\r\n", b"AT+CWDHCP=-1,1\r\n", b"AT+CWDHCP\r\n"])
    c.transact(b"AT+CWDHCP?\r\n", b"+CWDHCP:3\r\nOK\r\n")


# ---- AT+CWHOSTNAME ----------------------------------------------------------------------


@pytest.mark.parametrize("profile,default", [("esp32", b"espressif"), ("esp8266", b"LWIP")])
def test_cwhostname(espatd, profile, default):
    d = espatd(profile=profile)
    c = d.client
    c.transact(b"AT+CWHOSTNAME?\r\n",
               b"AT+CWHOSTNAME?\r\n+CWHOSTNAME:" + default + b"\r\n\r\nOK\r\n")
    c.echo_off()
    c.transact(b'AT+CWHOSTNAME="my-host"\r\n', OK)
    c.transact(b"AT+CWHOSTNAME?\r\n", b"+CWHOSTNAME:my-host\r\n\r\nOK\r\n")
    c.transact(b'AT+CWHOSTNAME="' + b"h" * 32 + b'"\r\n', OK)
    c.transact(b"AT+CWHOSTNAME?\r\n", b"+CWHOSTNAME:" + b"h" * 32 + b"\r\n\r\nOK\r\n")
    c.check_all([b'AT+CWHOSTNAME="' + b"h" * 33 + b'"\r\n', b"AT+CWHOSTNAME=host\r\n",
                b'AT+CWHOSTNAME="a","b"\r\n', b"AT+CWHOSTNAME\r\n"])
    c.transact(b"AT+CWMODE=2\r\n", OK)
    c.check_all([b'AT+CWHOSTNAME="ap-only"\r\n'])   # needs station mode
    c.transact(b"AT+CWMODE=1\r\n", OK)
    c.transact(b"AT+CWHOSTNAME?\r\n", b"+CWHOSTNAME:" + b"h" * 32 + b"\r\n\r\nOK\r\n")
    # not saved
    c = d.restart()
    c.echo_off()
    c.transact(b"AT+CWHOSTNAME?\r\n", b"+CWHOSTNAME:" + default + b"\r\n\r\nOK\r\n")


# ---- AT+CWRECONNCFG -----------------------------------------------------------------------


def test_cwreconncfg(espatd):
    c = espatd().client
    c.transact(b"AT+CWRECONNCFG?\r\n", b"AT+CWRECONNCFG?\r\n+CWRECONNCFG:0,0\r\n\r\nOK\r\n")
    c.echo_off()
    for v in (b"5,100", b"7200,1000", b"0,0", b"1,0"):
        c.transact(b"AT+CWRECONNCFG=" + v + b"\r\n", OK)
        c.transact(b"AT+CWRECONNCFG?\r\n", b"+CWRECONNCFG:" + v + b"\r\n\r\nOK\r\n")
    c.check_all([b"AT+CWRECONNCFG=7201,0\r\n", b"AT+CWRECONNCFG=0,1001\r\n",
                b"AT+CWRECONNCFG=-1,0\r\n", b"AT+CWRECONNCFG=1\r\n", b"AT+CWRECONNCFG\r\n",
                b"AT+CWRECONNCFG=1,2,3\r\n"])
    c.transact(b"AT+CWRECONNCFG?\r\n", b"+CWRECONNCFG:1,0\r\n\r\nOK\r\n")


def test_cwreconncfg_shared_with_cwjap(c):
    # CWJAP's <reconn_interval> is CWRECONNCFG's <interval_second>; a CWJAP
    # without it sets 1 (Wi-Fi docs)
    c.echo_off()
    c.transact(b"AT+CWRECONNCFG=5,100\r\n", OK)
    c.transact(b'AT+CWJAP="lab","secret123"\r\n', JOINED)
    c.transact(b"AT+CWRECONNCFG?\r\n", b"+CWRECONNCFG:1,100\r\n\r\nOK\r\n")
    c.transact(b'AT+CWJAP="lab","secret123","02:00:00:00:00:07",,9\r\n', REJOINED)
    c.transact(b"AT+CWRECONNCFG?\r\n", b"+CWRECONNCFG:9,100\r\n\r\nOK\r\n")
    c.transact(b"AT+CWJAP?\r\n",
               b'+CWJAP:"lab","02:00:00:00:00:07",6,-45,0,9,3,0,1\r\n\r\nOK\r\n')


def test_cwreconncfg_then_cwjap_query(c):
    c.echo_off()
    c.transact(b'AT+CWJAP="lab","secret123","02:00:00:00:00:07"\r\n', JOINED)
    c.transact(b"AT+CWRECONNCFG=3,5\r\n", OK)
    c.transact(b"AT+CWJAP?\r\n",
               b'+CWJAP:"lab","02:00:00:00:00:07",6,-45,0,3,3,0,1\r\n\r\nOK\r\n')


# ---- AT+CIPSTA / AT+CIPAP ---------------------------------------------------------------


def expected_host_cipsta():
    route = host_default_route()
    if not route:
        return None
    ifname, gw = route
    addr = host_ipv4(ifname)
    if not addr:
        return None
    ip, mask = addr
    return ('+CIPSTA:ip:"%s"\r\n+CIPSTA:gateway:"%s"\r\n+CIPSTA:netmask:"%s"\r\n\r\nOK\r\n'
            % (ip, gw, mask)).encode()


def test_cipsta_after_join(c):
    c.echo_off()
    c.transact(b"AT+CIPSTA?\r\n", ZERO_CIPSTA)
    c.transact(b'AT+CWJAP="lab","secret123"\r\n', JOINED)
    want = expected_host_cipsta()
    if want:
        c.transact(b"AT+CIPSTA?\r\n", want)
    else:
        c.write(b"AT+CIPSTA?\r\n")
        out = c.read_result()
        ip = rb'"\d+\.\d+\.\d+\.\d+"'
        assert re.fullmatch(rb"\+CIPSTA:ip:" + ip + rb"\r\n\+CIPSTA:gateway:" + ip +
                            rb"\r\n\+CIPSTA:netmask:" + ip + rb"\r\n\r\nOK\r\n", out), out
    c.transact(b"AT+CWQAP\r\n", b"WIFI DISCONNECT\r\n\r\nOK\r\n")
    c.transact(b"AT+CIPSTA?\r\n", ZERO_CIPSTA)


def test_cipsta_static(espatd, frag):
    c = espatd(mode=frag).client
    c.echo_off()
    c.transact(b'AT+CIPSTA="192.168.5.7","192.168.5.1","255.255.255.0"\r\n', OK)
    static = (b'+CIPSTA:ip:"192.168.5.7"\r\n+CIPSTA:gateway:"192.168.5.1"\r\n'
              b'+CIPSTA:netmask:"255.255.255.0"\r\n\r\nOK\r\n')
    c.transact(b"AT+CIPSTA?\r\n", static)
    c.transact(b"AT+CWDHCP?\r\n", b"+CWDHCP:2\r\nOK\r\n")   # station DHCP off
    # a join keeps the static address
    c.transact(b'AT+CWJAP="lab","secret123"\r\n', JOINED)
    c.transact(b"AT+CIPSTA?\r\n", static)
    c.transact(b"AT+CWQAP\r\n", b"WIFI DISCONNECT\r\n\r\nOK\r\n")
    # only the address: espatd derives x.y.z.1 and /24 (UNCONFIRMED choice)
    c.transact(b'AT+CIPSTA="10.1.2.3"\r\n', OK)
    c.transact(b"AT+CIPSTA?\r\n", b'+CIPSTA:ip:"10.1.2.3"\r\n+CIPSTA:gateway:"10.1.2.1"\r\n'
               b'+CIPSTA:netmask:"255.255.255.0"\r\n\r\nOK\r\n')
    # DHCP on again: the static address is gone
    c.transact(b"AT+CWDHCP=1,1\r\n", OK)
    c.transact(b"AT+CWDHCP?\r\n", b"+CWDHCP:3\r\nOK\r\n")
    c.transact(b"AT+CIPSTA?\r\n", ZERO_CIPSTA)


def test_cipsta_bad(c):
    c.echo_off()
    c.check_all([b'AT+CIPSTA="192.168.5.7","192.168.5.1"\r\n',
                b'AT+CIPSTA="300.1.1.1"\r\n', b"AT+CIPSTA=192.168.5.7\r\n",
                b'AT+CIPSTA="1.2.3"\r\n', b'AT+CIPSTA=""\r\n',
                b'AT+CIPSTA="1.2.3.4","1.2.3.1","255.255.255.0","x"\r\n',
                b'AT+CIPSTA="1.2.3.4","1.2.3.1","255.255.255.256"\r\n', b"AT+CIPSTA\r\n"])
    c.transact(b"AT+CIPSTA?\r\n", ZERO_CIPSTA)
    c.transact(b"AT+CWDHCP?\r\n", b"+CWDHCP:3\r\nOK\r\n")


def test_cipsta_in_any_mode(espatd):
    """Zephyr's esp_at sets a static address before AT+CWMODE, and the mode
    saved at its last run may be 0: the address waits for the station."""
    d = espatd()
    c = d.client
    c.echo_off()
    static = (b'+CIPSTA:ip:"192.168.5.7"\r\n+CIPSTA:gateway:"192.168.5.1"\r\n'
              b'+CIPSTA:netmask:"255.255.255.0"\r\n\r\nOK\r\n')
    c.transact(b"AT+CWMODE=0\r\n", OK)
    c.transact(b'AT+CWDHCP=0,1\r\n', OK)
    c.transact(b'AT+CIPSTA="192.168.5.7","192.168.5.1","255.255.255.0"\r\n', OK)
    c.transact(b"AT+CWMODE=2\r\n", OK)
    c.transact(b'AT+CIPSTA="192.168.5.7","192.168.5.1","255.255.255.0"\r\n', OK)
    c.transact(b"AT+CIPSTA?\r\n", static)
    c.transact(b"AT+CWMODE=1,0\r\n", OK)
    c.transact(b"AT+CIPSTA?\r\n", static)
    c.transact(b'AT+CWJAP="lab","secret123"\r\n', JOINED)
    c.transact(b"AT+CIPSTA?\r\n", static)


def test_cipap(espatd):
    c = espatd().client
    c.echo_off()
    # SoftAP commands need CWMODE 2 or 3
    c.check_all([b"AT+CIPAP?\r\n", b'AT+CIPAP="192.168.9.1"\r\n'])
    c.transact(b"AT+CWMODE=2\r\n", OK)
    default = (b'+CIPAP:ip:"192.168.4.1"\r\n+CIPAP:gateway:"192.168.4.1"\r\n'
               b'+CIPAP:netmask:"255.255.255.0"\r\n\r\nOK\r\n')
    c.transact(b"AT+CIPAP?\r\n", default)
    c.transact(b'AT+CIPAP="192.168.9.1","192.168.9.1","255.255.0.0"\r\n', OK)
    c.transact(b"AT+CIPAP?\r\n", b'+CIPAP:ip:"192.168.9.1"\r\n+CIPAP:gateway:"192.168.9.1"\r\n'
               b'+CIPAP:netmask:"255.255.0.0"\r\n\r\nOK\r\n')
    c.transact(b"AT+CWDHCP?\r\n", b"+CWDHCP:1\r\nOK\r\n")   # SoftAP DHCP bit cleared
    c.transact(b"AT+CWMODE=3\r\n", OK)
    c.transact(b"AT+CIPAP?\r\n", b'+CIPAP:ip:"192.168.9.1"\r\n+CIPAP:gateway:"192.168.9.1"\r\n'
               b'+CIPAP:netmask:"255.255.0.0"\r\n\r\nOK\r\n')
    c.check_all([b'AT+CIPAP="192.168.9.1","192.168.9.1"\r\n', b'AT+CIPAP="192.168.9"\r\n',
                b"AT+CIPAP=192.168.9.1\r\n", b"AT+CIPAP\r\n"])


# ---- AT+CIPSTAMAC / AT+CIPAPMAC -----------------------------------------------------------

MAC_RE = rb'"([0-9a-f]{2}(?::[0-9a-f]{2}){5})"'


def query_mac(c, name):
    c.write(b"AT+" + name + b"?\r\n")
    out = c.read_result()
    m = re.fullmatch(rb"\+" + name + rb":" + MAC_RE + rb"\r\n\r\nOK\r\n", out)
    assert m, out
    return m.group(1).decode()


def test_mac_defaults(c):
    c.echo_off()
    c.transact(b"AT+CWMODE=3\r\n", OK)
    sta = query_mac(c, b"CIPSTAMAC")
    ap = query_mac(c, b"CIPAPMAC")
    # ESP32: the SoftAP MAC is the station MAC + 1
    s = bytes.fromhex(sta.replace(":", ""))
    a = bytes.fromhex(ap.replace(":", ""))
    assert a[:5] == s[:5] and a[5] == (s[5] + 1) & 0xff, (sta, ap)
    assert not s[0] & 1 and not a[0] & 1
    route = host_default_route()
    if route and host_mac(route[0]):
        assert sta == host_mac(route[0])


def test_mac_set(espatd):
    c = espatd().client
    c.echo_off()
    c.transact(b"AT+CWMODE=3\r\n", OK)
    c.transact(b'AT+CIPSTAMAC="1a:fe:35:98:d3:7b"\r\n', OK)
    c.transact(b"AT+CIPSTAMAC?\r\n", b'+CIPSTAMAC:"1a:fe:35:98:d3:7b"\r\n\r\nOK\r\n')
    c.transact(b'AT+CIPAPMAC="18:FE:35:98:D3:7B"\r\n', OK)     # printed in lowercase
    c.transact(b"AT+CIPAPMAC?\r\n", b'+CIPAPMAC:"18:fe:35:98:d3:7b"\r\n\r\nOK\r\n')


def test_mac_set_rules(c):
    c.echo_off()
    c.transact(b"AT+CWMODE=3\r\n", OK)
    c.transact(b'AT+CIPSTAMAC="1a:fe:35:98:d3:7b"\r\n', OK)
    c.transact(b'AT+CIPAPMAC="1a:fe:35:98:d3:7c"\r\n', OK)
    c.check_all([
        b'AT+CIPSTAMAC="15:fe:35:98:d3:7b"\r\n',     # multicast bit
        b'AT+CIPSTAMAC="01:00:5e:00:00:01"\r\n',
        b'AT+CIPSTAMAC="ff:ff:ff:ff:ff:ff"\r\n',
        b'AT+CIPSTAMAC="00:00:00:00:00:00"\r\n',
        b'AT+CIPSTAMAC="1a:fe:35:98:d3:7c"\r\n',     # equal to the SoftAP MAC
        b'AT+CIPAPMAC="1a:fe:35:98:d3:7b"\r\n',      # equal to the station MAC
        b'AT+CIPAPMAC="1b:fe:35:98:d3:7b"\r\n',
        b'AT+CIPSTAMAC="1a:fe:35:98:d3"\r\n',
        b'AT+CIPSTAMAC="1a:fe:35:98:d3:7"\r\n',
        b'AT+CIPSTAMAC="1a-fe-35-98-d3-7b"\r\n',
        b'AT+CIPSTAMAC="1a:fe:35:98:d3:7b:00"\r\n',
        b"AT+CIPSTAMAC=1a:fe:35:98:d3:7b\r\n",
        b'AT+CIPSTAMAC="1a:fe:35:98:d3:7b","x"\r\n',
        b"AT+CIPSTAMAC\r\n",
    ])
    c.transact(b"AT+CIPSTAMAC?\r\n", b'+CIPSTAMAC:"1a:fe:35:98:d3:7b"\r\n\r\nOK\r\n')
    c.transact(b"AT+CIPAPMAC?\r\n", b'+CIPAPMAC:"1a:fe:35:98:d3:7c"\r\n\r\nOK\r\n')


def test_cwlapopt_mask_zero(espatd):
    c = espatd(*APS, join_ms=20).client
    c.echo_off()
    failures = []
    for _ in range(3):
        # a full listing first leaves its text on the stack the next one reuses
        c.check(b"AT+CWLAPOPT=0,0x7FF\r\n", OK, failures)
        c.check(b"AT+CWLAP\r\n", ALPHA + BETA + GAMMA + OK, failures)
        c.check(b"AT+CWLAPOPT=0,0\r\n", OK, failures)
        c.check(b"AT+CWLAP\r\n", b"+CWLAP:()\r\n" * 3 + OK, failures)
    assert not failures, "\n".join(failures)


def test_cwreconncfg_interval_from_cwjap_saved(espatd):
    # the join at power-up must still be running when AT+CWRECONNCFG? is
    # answered: slower daemons (valgrind) get a longer join
    d = espatd(join_ms=int(JOIN_MS * SCALE))
    c = d.client
    c.echo_off()
    c.transact(b"AT+CWRECONNCFG=3,5\r\n", OK)
    c.transact(b'AT+CWJAP="home","pw12345678","02:12:34:56:78:9a",0,7\r\n', JOINED)
    c.transact(b"AT+CWRECONNCFG?\r\n", b"+CWRECONNCFG:7,5\r\n\r\nOK\r\n")
    c = d.restart()
    c.echo_off()
    c.transact(b"AT+CWRECONNCFG?\r\n", b"+CWRECONNCFG:7,5\r\n\r\nOK\r\n", quiet=0)
    c.expect(b"WIFI CONNECTED\r\nWIFI GOT IP\r\n", timeout=2 * SCALE)
    c.transact(b"AT+CWJAP?\r\n",
               b'+CWJAP:"home","02:12:34:56:78:9a",6,-45,0,7,3,0,1\r\n\r\nOK\r\n')


def test_cwjap_omitted_ssid_and_password_reuse_last(espatd):
    c = espatd(*APS).client
    c.echo_off()
    c.transact(b"AT+CWJAP=,\r\n", ERROR)   # nothing to reuse yet
    c.transact(b'AT+CWJAP="alpha","pw-alpha1"\r\n', JOINED)
    c.transact(b"AT+CWQAP\r\n", b"WIFI DISCONNECT\r\n\r\nOK\r\n")
    c.transact(b"AT+CWJAP=,\r\n", JOINED)
    c.transact(b"AT+CWJAP?\r\n",
               b'+CWJAP:"alpha","aa:00:00:00:00:01",1,-60,0,1,3,0,1\r\n\r\nOK\r\n')


def test_cwjap_timeout(espatd):
    # the join takes longer than <jap_timeout> (3 s, the minimum): code 1
    c = espatd(join_ms=4000).client
    c.echo_off()
    t0 = time.monotonic()
    c.transact(b'AT+CWJAP="lab","secret123",,,,,,3\r\n', b"+CWJAP:1\r\n\r\nERROR\r\n",
               timeout=6 * SCALE)
    assert time.monotonic() - t0 >= 2.9
    c.transact(b"AT+CWJAP?\r\n", OK)


def test_cwqap_stops_a_join_in_progress(espatd):
    d = espatd()
    c = d.client
    c.echo_off()
    c.transact(b'AT+CWJAP="home","pw12345678"\r\n', JOINED)
    d.join_ms = 600
    c = d.restart()
    c.echo_off()
    c.transact(b"AT+CWSTATE?\r\n", b'+CWSTATE:3,"home"\r\n\r\nOK\r\n')
    # never connected: no WIFI DISCONNECT, and the join is abandoned
    c.transact(b"AT+CWQAP\r\n", OK)
    c.assert_quiet(0.8)
    c.write(b"AT+CWSTATE?\r\n")
    out = c.read_result()
    assert out in (b'+CWSTATE:4,""\r\n\r\nOK\r\n', b'+CWSTATE:4,"home"\r\n\r\nOK\r\n',
                   b'+CWSTATE:0,""\r\n\r\nOK\r\n'), out


# ---- Wi-Fi commands of the module that espatd does not have yet -----------------------------


def test_cwsap_query_default(c):
    c.echo_off()
    c.transact(b"AT+CWMODE=2\r\n", OK)
    mac = query_mac(c, b"CIPAPMAC")
    tail = mac.replace(":", "")[6:].upper().encode()
    c.transact(b"AT+CWSAP?\r\n", b'+CWSAP:"ESP_' + tail + b'","",1,0,4,0\r\n\r\nOK\r\n')


def test_cwlif_no_stations(c):
    c.echo_off()
    c.transact(b"AT+CWMODE=2\r\n", OK)
    c.transact(b"AT+CWLIF\r\n", OK)


def test_cwqif(espatd):
    """AT+CWQIF disconnects SoftAP stations; none ever joins the virtual one."""
    c = espatd().client
    c.echo_off()
    c.transact(b"AT+CWQIF\r\n", ERROR)   # no SoftAP in station mode
    c.transact(b"AT+CWMODE=3\r\n", OK)
    c.transact(b"AT+CWQIF\r\n", OK)
    c.check_all([b'AT+CWQIF="aa:bb:cc:dd:ee:ff"\r\n',   # no such station
                b'AT+CWQIF="aa:bb:cc"\r\n', b"AT+CWQIF=1\r\n", b'AT+CWQIF=""\r\n',
                b'AT+CWQIF="aa:bb:cc:dd:ee:ff",1\r\n', b"AT+CWQIF?\r\n"])


def test_got_ipv6_urcs(espatd):
    """With AT+CIPV6=1 a join also reports the station's IPv6 addresses,
    the ones AT+CIFSR shows (§3.1); without it, only WIFI GOT IP."""
    c = espatd().client
    c.echo_off()
    c.transact(b'AT+CWJAP="lab","secret123"\r\n', JOINED)
    c.transact(b"AT+CWQAP\r\n", b"WIFI DISCONNECT\r\n\r\nOK\r\n")
    c.transact(b"AT+CIPV6=1\r\n", OK)
    c.write(b'AT+CWJAP="lab","secret123"\r\n')
    out = c.read_result()
    cifsr = c.cmd(b"AT+CIFSR\r\n")
    want = b"WIFI CONNECTED\r\nWIFI GOT IP\r\n"
    if b"STAIP6LL" in cifsr:
        want += b"WIFI GOT IPv6 LL\r\n"
    if b"STAIP6GL" in cifsr:
        want += b"WIFI GOT IPv6 GL\r\n"
    assert out == want + b"\r\nOK\r\n", (out, cifsr)


def rst(c):
    """AT+RST, its ready, and echo off again (a restart turns it on)."""
    c.transact(b"AT+RST\r\n", b"\r\nOK\r\n", quiet=0)
    c.expect(b"\r\nready\r\n", timeout=3 * SCALE)
    c.echo_off()


def test_cwinit(espatd):
    """AT+CWINIT=0 frees the Wi-Fi driver: the station leaves and Wi-Fi
    commands fail until AT+CWINIT=1 or a restart (TinyGSM's radioOff)."""
    c = espatd(boot_ms=50).client
    c.echo_off()
    c.transact(b"AT+CWINIT?\r\n", b"+CWINIT:1\r\n" + OK)
    c.transact(b"AT+SYSSTORE=0\r\n", OK)  # no saved join to come back after the restart
    c.transact(b'AT+CWJAP="lab","secret123"\r\n', JOINED)
    c.transact(b"AT+CWINIT=0\r\n", b"WIFI DISCONNECT\r\n" + OK)
    c.transact(b"AT+CWINIT?\r\n", b"+CWINIT:0\r\n" + OK)
    c.check_all([b"AT+CWMODE?\r\n", b"AT+CWMODE=1\r\n", b'AT+CWJAP="lab","secret123"\r\n',
                b"AT+CWLAP\r\n", b"AT+CWJAP\r\n", b'AT+CIPSTART="TCP","127.0.0.1",9\r\n'])
    c.transact(b"AT+CWINIT=0\r\n", OK)   # already off
    c.transact(b"AT+CWINIT=1\r\n", OK)
    c.transact(b"AT+CWMODE?\r\n", b"+CWMODE:1\r\n" + OK)
    c.transact(b'AT+CWJAP="lab","secret123"\r\n', JOINED)
    c.check_all([b"AT+CWINIT=2\r\n", b"AT+CWINIT\r\n", b"AT+CWINIT=?\r\n", b"AT+CWINIT=1,1\r\n"])
    # never saved: a restart brings the driver back
    c.transact(b"AT+CWINIT=0\r\n", b"WIFI DISCONNECT\r\n" + OK)
    rst(c)
    c.transact(b"AT+CWINIT?\r\n", b"+CWINIT:1\r\n" + OK)


def test_cwcountry(espatd):
    """The module's factory country (China, channels 1-13); AT+CWCOUNTRY
    bounds what scans find and joins reach; never saved."""
    d = espatd(*APS, "--ap", "delta:pw-delta1:-50:13:aa:00:00:00:00:04")
    c = d.client
    c.echo_off()
    delta = b'+CWLAP:(3,"delta",-50,"aa:00:00:00:00:04",13,-1,-1,4,4,7,0)\r\n'
    c.transact(b"AT+CWCOUNTRY?\r\n", b'+CWCOUNTRY:0,"CN",1,13\r\n' + OK)
    c.transact(b"AT+SYSSTORE=0\r\n", OK)  # no saved join to come back after the restart
    c.transact(b"AT+CWLAPOPT=0,2047\r\n", OK)
    c.transact(b"AT+CWLAP\r\n", ALPHA + BETA + GAMMA + delta + OK)
    # the US: channels 1-11; delta (13) is out of reach
    c.transact(b'AT+CWCOUNTRY=0,"US",1,11\r\n', OK)
    c.transact(b"AT+CWCOUNTRY?\r\n", b'+CWCOUNTRY:0,"US",1,11\r\n' + OK)
    c.transact(b"AT+CWLAP\r\n", ALPHA + BETA + GAMMA + OK)
    c.transact(b'AT+CWJAP="delta","pw-delta1"\r\n', b"+CWJAP:3\r\n" + ERROR)
    # channels 6-11 only
    c.transact(b'AT+CWCOUNTRY=1,"XX",6,6\r\n', OK)
    c.transact(b"AT+CWLAP\r\n", BETA + GAMMA + OK)
    c.transact(b'AT+CWJAP="alpha","pw-alpha1"\r\n', b"+CWJAP:3\r\n" + ERROR)
    c.transact(b'AT+CWJAP="gamma","pw-gamma1"\r\n', JOINED)
    c.check_all([b'AT+CWCOUNTRY=2,"CN",1,13\r\n', b'AT+CWCOUNTRY=0,"",1,13\r\n',
                b'AT+CWCOUNTRY=0,"ABCD",1,13\r\n', b'AT+CWCOUNTRY=0,"CN",0,13\r\n',
                b'AT+CWCOUNTRY=0,"CN",1,0\r\n', b'AT+CWCOUNTRY=0,"CN",2,14\r\n',
                b'AT+CWCOUNTRY=0,CN,1,13\r\n', b'AT+CWCOUNTRY=0,"CN",1\r\n',
                b"AT+CWCOUNTRY\r\n", b"AT+CWCOUNTRY=?\r\n"])
    c.transact(b"AT+CWCOUNTRY?\r\n", b'+CWCOUNTRY:1,"XX",6,6\r\n' + OK)
    # a restart brings the factory country back (not saved)
    rst(c)
    c.transact(b"AT+CWCOUNTRY?\r\n", b'+CWCOUNTRY:0,"CN",1,13\r\n' + OK)


def test_cwsap_set_query_and_rules(espatd):
    d = espatd()
    c = d.client
    c.echo_off()
    # station mode only: no SoftAP to configure
    c.transact(b'AT+CWSAP="x","",1,0\r\n', ERROR)
    c.transact(b"AT+CWSAP?\r\n", ERROR)
    c.transact(b"AT+CWLIF\r\n", ERROR)
    c.transact(b"AT+CWMODE=3\r\n", OK)
    c.transact(b'AT+CWSAP="espatd-ap","12345678",6,3,2,1\r\n', OK)
    c.transact(b"AT+CWSAP?\r\n", b'+CWSAP:"espatd-ap","12345678",6,3,2,1\r\n' + OK)
    for bad in (b'AT+CWSAP="a","short",6,3\r\n',        # WPA password < 8
                b'AT+CWSAP="a","12345678",6,0\r\n',     # open with a password
                b'AT+CWSAP="a","12345678",6,1\r\n',     # WEP
                b'AT+CWSAP="a","12345678",14,3\r\n',    # channel
                b'AT+CWSAP="","",1,0\r\n',              # empty SSID
                b'AT+CWSAP="a","",1,0,11\r\n',          # max conn
                b'AT+CWSAP="a",""\r\n'):
        c.transact(bad, ERROR)
    c.transact(b"AT+CWSAP?\r\n", b'+CWSAP:"espatd-ap","12345678",6,3,2,1\r\n' + OK)
    # saved with SYSSTORE=1
    c = d.restart()
    c.echo_off()
    c.transact(b"AT+CWSAP?\r\n", b'+CWSAP:"espatd-ap","12345678",6,3,2,1\r\n' + OK)
