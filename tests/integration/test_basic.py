"""Basic AT commands: exact transcripts (protocol.md §1, §5.5, §6, §7;
/tmp/spec_basic_wifi.md)."""

import re
import time

import pytest

from espat import SCALE, ok

GMR = {
    "esp32": (b"AT version:3.4.0.0(espatd - ESP32 - Jun  7 2024 03:48:17)\r\n"
              b"SDK version:v5.0.6-espatd\r\n"
              b"compile time(espatd):Jun  7 2024 04:46:00\r\n"
              b"Bin version:v3.4.0.0(WROOM-32)\r\n"),
    "esp8266": (b"AT version:2.2.1.0(espatd - ESP8266 - Aug  6 2021 06:50:15)\r\n"
                b"SDK version:v3.4-22-g967752e2\r\n"
                b"compile time(espatd):Aug  6 2021 07:02:22\r\n"
                b"Bin version:2.2.1(WROOM-02)\r\n"),
}

# ---- AT, ATE0/ATE1 ----------------------------------------------------------


def test_at(espatd, frag):
    c = espatd(mode=frag).client
    c.transact(b"AT\r\n", b"AT\r\n\r\nOK\r\n")
    c.transact(b"AT\r\n", b"AT\r\n\r\nOK\r\n")


def test_lowercase_at(c):
    c.transact(b"at\r\n", b"at\r\n\r\nOK\r\n")
    c.transact(b"aT\r\n", b"aT\r\n\r\nOK\r\n")


def test_echo_off_and_on(espatd, frag):
    c = espatd(mode=frag).client
    # the ATE0 line itself is still echoed (§3.3a)
    c.transact(b"ATE0\r\n", b"ATE0\r\n\r\nOK\r\n")
    c.transact(b"AT\r\n", b"\r\nOK\r\n")
    c.transact(b"AT+CWMODE?\r\n", b"+CWMODE:1\r\n\r\nOK\r\n")
    c.transact(b"ATE0\r\n", b"\r\nOK\r\n")
    # ATE1 arrives while echo is off: not echoed
    c.transact(b"ATE1\r\n", b"\r\nOK\r\n")
    c.transact(b"AT\r\n", b"AT\r\n\r\nOK\r\n")
    c.transact(b"ATE1\r\n", b"ATE1\r\n\r\nOK\r\n")
    c.transact(b"AT+CWMODE?\r\n", b"AT+CWMODE?\r\n+CWMODE:1\r\n\r\nOK\r\n")


def test_echo_of_failing_lines(c):
    c.transact(b"AT+NOPE\r\n", b"AT+NOPE\r\n\r\nERROR\r\n")
    c.transact(b"\r\n", b"\r\n\r\nERROR\r\n")
    c.transact(b"AT+CWMODE=9\r\n", b"AT+CWMODE=9\r\n\r\nERROR\r\n")


def test_ate_and_at_other_forms_fail(c):
    c.echo_off()
    failures = []
    for cmd in (b"ATE\r\n", b"ATE2\r\n", b"ATE0?\r\n", b"ATE1=1\r\n", b"AT?\r\n",
                b"AT=1\r\n"):
        c.check(cmd, b"\r\nERROR\r\n", failures)
        c.check(b"AT\r\n", b"\r\nOK\r\n", failures)
    assert not failures, "\n".join(failures)


def test_ate_unknown_errcode(c):
    c.echo_off()
    c.transact(b"AT+SYSLOG=1\r\n", ok(b""))
    c.transact(b"ATE\r\n", b"ERR CODE:0x01090000\r\n\r\nERROR\r\n")
    c.transact(b"ATE2\r\n", b"ERR CODE:0x01090000\r\n\r\nERROR\r\n")


# ---- AT+RST -------------------------------------------------------------------


def test_rst(espatd, frag):
    d = espatd(mode=frag, boot_ms=300)
    c = d.client
    c.transact(b"ATE0\r\n", b"ATE0\r\n\r\nOK\r\n")
    c.transact(b"AT+SYSLOG=1\r\n", b"\r\nOK\r\n")
    c.transact(b"AT+RST\r\n", b"\r\nOK\r\n", quiet=0)
    t0 = time.monotonic()
    # nothing for a good part of the boot time, then exactly "ready"
    c.assert_quiet(0.15)
    c.expect(b"\r\nready\r\n", timeout=2 * SCALE)
    assert time.monotonic() - t0 >= 0.25
    # echo is on again, SYSLOG is off again (never saved, §6.4)
    c.transact(b"AT\r\n", b"AT\r\n\r\nOK\r\n")
    c.transact(b"AT+SYSLOG?\r\n", b"AT+SYSLOG?\r\n+SYSLOG:0\r\n\r\nOK\r\n")


def test_rst_with_echo_on(c):
    c.transact(b"AT+RST\r\n", b"AT+RST\r\n\r\nOK\r\n\r\nready\r\n", timeout=2 * SCALE)
    c.transact(b"AT\r\n", b"AT\r\n\r\nOK\r\n")


def test_input_during_reboot_is_lost(espatd):
    c = espatd(boot_ms=400).client
    c.echo_off()
    c.transact(b"AT+RST\r\n", b"\r\nOK\r\n", quiet=0)
    time.sleep(0.05)
    c.write(b"AT+CWMODE=2\r\n")  # the module is rebooting: nobody reads it
    c.expect(b"\r\nready\r\n", timeout=2 * SCALE)
    c.transact(b"AT+CWMODE?\r\n", b"AT+CWMODE?\r\n+CWMODE:1\r\n\r\nOK\r\n")


def test_rst_other_forms(c):
    # AT+RST=<mode> exists only on C2/C3; the esp32 profile has no set form
    c.echo_off()
    c.transact(b"AT+RST=1\r\n", b"\r\nERROR\r\n")
    c.transact(b"AT+RST?\r\n", b"\r\nERROR\r\n")
    c.transact(b"AT+RST=?\r\n", b"\r\nERROR\r\n")
    c.transact(b"AT\r\n", b"\r\nOK\r\n")


# ---- AT+GSLP (Basic AT+GSLP) ---------------------------------------------------


def test_gslp_sleeps_then_boots(espatd):
    """"<ms>", OK, then nothing, with typed bytes lost and links gone, until
    the chip wakes and boots as after a reset."""
    from netpeer import TcpServer
    srv = TcpServer()
    d = espatd(boot_ms=100)
    c = d.client
    c.echo_off()
    c.must_ok(b'AT+CWJAP="lab","pw"\r\n')
    c.transact(b'AT+CIPSTART="TCP","127.0.0.1",%d\r\n' % srv.port, b"CONNECT\r\n\r\nOK\r\n")
    peer = srv.accept()
    c.transact(b"AT+GSLP=700\r\n", b"700\r\n\r\nOK\r\n", quiet=0)
    t0 = time.monotonic()
    time.sleep(0.1)
    c.write(b"AT+CWMODE=2\r\n")  # the UART sleeps: nobody reads it
    c.assert_quiet(0.4)
    c.expect(b"\r\nready\r\n", timeout=3 * SCALE)
    assert time.monotonic() - t0 >= 0.7
    # the saved join comes back by itself, as after a reset
    c.expect(b"WIFI CONNECTED\r\nWIFI GOT IP\r\n", timeout=3 * SCALE)
    peer.settimeout(2 * SCALE)
    assert peer.recv(16) == b""  # the link went with the sleep
    c.transact(b"AT+CWMODE?\r\n", b"AT+CWMODE?\r\n+CWMODE:1\r\n\r\nOK\r\n")
    c.transact(b"AT+CIPSTATUS\r\n", b"AT+CIPSTATUS\r\nSTATUS:2\r\n\r\nOK\r\n")
    peer.close()
    srv.close()


@pytest.mark.parametrize("profile", ["esp32", "esp8266"])
def test_gslp_zero(espatd, profile):
    """0 restarts an ESP32 at once; an ESP8266 sleeps until its RST pin."""
    c = espatd(profile=profile, boot_ms=100).client
    c.echo_off()
    c.transact(b"AT+GSLP=0\r\n", b"0\r\n\r\nOK\r\n", quiet=0)
    if profile == "esp32":
        c.expect(b"\r\nready\r\n", timeout=2 * SCALE)
        c.transact(b"AT\r\n", b"AT\r\n\r\nOK\r\n")
    else:
        c.write(b"AT\r\n")
        c.assert_quiet(1.0)


def test_gslp_bad(c):
    c.echo_off()
    for bad in (b"AT+GSLP=-1", b"AT+GSLP=2147483648", b"AT+GSLP", b"AT+GSLP?",
                b"AT+GSLP=?", b'AT+GSLP="5"', b"AT+GSLP=5,1", b"AT+GSLP="):
        c.transact(bad + b"\r\n", b"\r\nERROR\r\n")
    c.transact(b"AT\r\n", b"\r\nOK\r\n")


# ---- AT+GMR -------------------------------------------------------------------


@pytest.mark.parametrize("profile", ["esp32", "esp8266"])
def test_gmr(espatd, profile, frag):
    c = espatd(profile=profile, mode=frag).client
    c.transact(b"AT+GMR\r\n", b"AT+GMR\r\n" + GMR[profile] + b"\r\nOK\r\n")
    c.transact(b"at+gmr\r\n", b"at+gmr\r\n" + GMR[profile] + b"\r\nOK\r\n")


def test_gmr_default_profile_is_esp32(c):
    c.echo_off()
    c.transact(b"AT+GMR\r\n", GMR["esp32"] + b"\r\nOK\r\n")


def test_gmr_other_forms(c):
    c.echo_off()
    for cmd in (b"AT+GMR?\r\n", b"AT+GMR=1\r\n", b"AT+GMR=?\r\n"):
        c.transact(cmd, b"\r\nERROR\r\n")


# ---- AT+CMD? --------------------------------------------------------------------

# protocol.md §1.12: (query, set, exec) per command; test is always 0
TYPES = {
    "AT": (0, 0, 1), "ATE0": (0, 0, 1), "ATE1": (0, 0, 1), "AT+GMR": (0, 0, 1),
    "AT+RESTORE": (0, 0, 1), "AT+CMD": (1, 0, 0),
    "AT+TRANSINTVL": (1, 1, 0), "AT+SYSTIMESTAMP": (1, 1, 0), "AT+RFPOWER": (1, 1, 0),
    "AT+SYSMSG": (1, 1, 0), "AT+SYSLOG": (1, 1, 0), "AT+SYSSTORE": (1, 1, 0),
    "AT+UART": (1, 1, 0), "AT+UART_CUR": (1, 1, 0), "AT+UART_DEF": (1, 1, 0),
    "AT+CIPSTAMAC": (1, 1, 0), "AT+CIPAPMAC": (1, 1, 0), "AT+CIPSTA": (1, 1, 0),
    "AT+CIPAP": (1, 1, 0),
    "AT+CWMODE": (1, 1, 0), "AT+CWRECONNCFG": (1, 1, 0), "AT+CWDHCP": (1, 1, 0),
    "AT+CWAUTOCONN": (1, 1, 0), "AT+CWHOSTNAME": (1, 1, 0), "AT+CWSTATE": (1, 0, 0),
    "AT+CWJAP": (1, 1, 1), "AT+CWLAP": (0, 1, 1), "AT+CWLAPOPT": (0, 1, 0),
    "AT+CWQAP": (0, 0, 1),
}


def test_cmd_query(c):
    c.echo_off()
    c.write(b"AT+CMD?\r\n")
    out = c.read_result()
    c.assert_quiet()
    assert out.endswith(b"\r\n\r\nOK\r\n")
    first = (b'+CMD:0,"AT",0,0,0,1\r\n'
             b'+CMD:1,"ATE0",0,0,0,1\r\n'
             b'+CMD:2,"ATE1",0,0,0,1\r\n'
             b'+CMD:3,"AT+RST",0,0,0,1\r\n'
             b'+CMD:4,"AT+GMR",0,0,0,1\r\n'
             b'+CMD:5,"AT+CMD",0,1,0,0\r\n')
    assert out.startswith(first)
    body = out[:-len(b"\r\nOK\r\n")]
    lines = body.split(b"\r\n")
    assert lines[-1] == b""
    lines = lines[:-1]
    names = []
    for i, line in enumerate(lines):
        m = re.fullmatch(rb'\+CMD:(\d+),"(AT[A-Z0-9_+!%./:-]*)",([01]),([01]),([01]),([01])', line)
        assert m, line
        assert int(m.group(1)) == i, "indices must count up from 0: %r" % line
        name = m.group(2).decode()
        names.append(name)
        flags = tuple(int(m.group(k)) for k in (3, 4, 5, 6))
        assert flags[0] == 0, "no command has a test (=?) form (§1.12): %r" % line
        assert any(flags[1:]), line
        if name in TYPES:
            assert flags[1:] == TYPES[name], "%s flags %r, §1.12 says %r" % (
                name, flags[1:], TYPES[name])
    assert len(names) == len(set(names)), "duplicate names"
    for name in TYPES:
        assert name in names, "%s missing from AT+CMD?" % name
    assert "AT+CIPSSLSIZE" not in names
    # every command listed is known (with SYSLOG=1 an unknown name would get
    # "ERR CODE:0x01090000") and has no test form: plain ERROR for "=?"
    c.transact(b"AT+SYSLOG=1\r\n", b"\r\nOK\r\n")
    for name in names:
        c.transact(name.encode() + b"=?\r\n", b"\r\nERROR\r\n")
    c.transact(b"AT+CMD=?\r\n", b"\r\nERROR\r\n")
    c.transact(b"AT+CMD\r\n", b"\r\nERROR\r\n")


# ---- AT+RESTORE -----------------------------------------------------------------


def test_restore(espatd):
    d = espatd()
    c = d.client
    c.echo_off()
    for cmd in (b"AT+CWMODE=3\r\n", b"AT+SYSMSG=5\r\n", b"AT+CWAUTOCONN=0\r\n",
                b"AT+UART_DEF=9600,8,1,0,0\r\n", b"AT+CWDHCP=0,1\r\n",
                b'AT+CIPSTAMAC="1a:fe:35:98:d3:7b"\r\n', b"AT+CWRECONNCFG=7,9\r\n"):
        c.transact(cmd, b"\r\nOK\r\n")
    c.must_ok(b'AT+CWJAP="lab","secret123"\r\n')
    c.transact(b"AT+CWQAP\r\n", b"WIFI DISCONNECT\r\n\r\nOK\r\n")
    c.transact(b"AT+RESTORE\r\n", b"\r\nOK\r\n\r\nready\r\n", timeout=2 * SCALE)
    defaults = [
        (b"AT+CWMODE?\r\n", b"+CWMODE:1\r\n\r\nOK\r\n"),
        (b"AT+SYSMSG?\r\n", b"+SYSMSG:0\r\nOK\r\n"),
        (b"AT+CWAUTOCONN?\r\n", b"+CWAUTOCONN:1\r\nOK\r\n"),
        (b"AT+UART_DEF?\r\n", b"+UART_DEF:115200,8,1,0,0\r\n\r\nOK\r\n"),
        (b"AT+UART_CUR?\r\n", b"+UART_CUR:115200,8,1,0,0\r\n\r\nOK\r\n"),
        (b"AT+CWDHCP?\r\n", b"+CWDHCP:3\r\nOK\r\n"),
        (b"AT+CWRECONNCFG?\r\n", b"+CWRECONNCFG:0,0\r\n\r\nOK\r\n"),
        (b"AT+CWJAP?\r\n", b"\r\nOK\r\n"),
        (b"AT+CWJAP\r\n", b"\r\nERROR\r\n"),  # no saved AP any more
    ]
    c.transact(b"ATE0\r\n", b"ATE0\r\n\r\nOK\r\n")  # echo is on after the reboot
    for cmd, want in defaults:
        c.transact(cmd, want)
    c.transact(b"AT+CIPSTAMAC?\r\n", b"", quiet=0)
    mac = c.read_result()
    assert b"1a:fe:35:98:d3:7b" not in mac
    # and the file on disk was erased too
    c = d.restart()
    c.echo_off()
    for cmd, want in defaults:
        c.transact(cmd, want)


def test_restore_other_forms(c):
    c.echo_off()
    for cmd in (b"AT+RESTORE?\r\n", b"AT+RESTORE=1\r\n", b"AT+RESTORE=?\r\n"):
        c.transact(cmd, b"\r\nERROR\r\n")


# ---- AT+SYSSTORE ------------------------------------------------------------------


def test_sysstore(espatd):
    c = espatd().client
    c.transact(b"AT+SYSSTORE?\r\n", b"AT+SYSSTORE?\r\n+SYSSTORE:1\r\n\r\nOK\r\n")
    c.transact(b"ATE0\r\n", b"ATE0\r\n\r\nOK\r\n")
    c.transact(b"AT+SYSSTORE=0\r\n", b"\r\nOK\r\n")
    c.transact(b"AT+SYSSTORE?\r\n", b"+SYSSTORE:0\r\n\r\nOK\r\n")
    for bad in (b"AT+SYSSTORE=2\r\n", b"AT+SYSSTORE=-1\r\n", b'AT+SYSSTORE="1"\r\n',
                b"AT+SYSSTORE=\r\n", b"AT+SYSSTORE=1,1\r\n", b"AT+SYSSTORE\r\n"):
        c.transact(bad, b"\r\nERROR\r\n")
    c.transact(b"AT+SYSSTORE?\r\n", b"+SYSSTORE:0\r\n\r\nOK\r\n")
    c.transact(b"AT+SYSSTORE=1\r\n", b"\r\nOK\r\n")
    c.transact(b"AT+SYSSTORE?\r\n", b"+SYSSTORE:1\r\n\r\nOK\r\n")


def test_sysstore_not_saved_across_reset(c):
    c.echo_off()
    c.transact(b"AT+SYSSTORE=0\r\n", b"\r\nOK\r\n")
    c.transact(b"AT+RST\r\n", b"\r\nOK\r\n\r\nready\r\n", timeout=2 * SCALE)
    c.echo_off()
    c.transact(b"AT+SYSSTORE?\r\n", b"+SYSSTORE:1\r\n\r\nOK\r\n")


# ---- AT+SYSMSG ----------------------------------------------------------------------


def test_sysmsg(espatd, frag):
    c = espatd(mode=frag).client
    # "+SYSMSG:<n>" has no CR LF of its own: no blank line before OK (§1.7)
    c.transact(b"AT+SYSMSG?\r\n", b"AT+SYSMSG?\r\n+SYSMSG:0\r\nOK\r\n")
    c.echo_off()
    for v in (b"7", b"0", b"4", b"3"):
        c.transact(b"AT+SYSMSG=" + v + b"\r\n", b"\r\nOK\r\n")
        c.transact(b"AT+SYSMSG?\r\n", b"+SYSMSG:" + v + b"\r\nOK\r\n")
    for bad in (b"AT+SYSMSG=8\r\n", b"AT+SYSMSG=-1\r\n", b'AT+SYSMSG="1"\r\n',
                b"AT+SYSMSG=\r\n", b"AT+SYSMSG\r\n", b"AT+SYSMSG=?\r\n"):
        c.transact(bad, b"\r\nERROR\r\n")
    c.transact(b"AT+SYSMSG?\r\n", b"+SYSMSG:3\r\nOK\r\n")


# ---- AT+SYSLOG and ERR CODE -----------------------------------------------------------


def test_syslog_query_set(c):
    c.transact(b"AT+SYSLOG?\r\n", b"AT+SYSLOG?\r\n+SYSLOG:0\r\n\r\nOK\r\n")
    c.transact(b"AT+SYSLOG=1\r\n", b"AT+SYSLOG=1\r\n\r\nOK\r\n")
    # with echo on, the code line follows the echoed command
    c.transact(b"AT+FOO\r\n", b"AT+FOO\r\nERR CODE:0x01090000\r\n\r\nERROR\r\n")
    c.transact(b"AT+SYSLOG=0\r\n", b"AT+SYSLOG=0\r\n\r\nOK\r\n")
    c.echo_off()
    c.transact(b"AT+SYSLOG=1\r\n", b"\r\nOK\r\n")
    c.transact(b"AT+SYSLOG?\r\n", b"+SYSLOG:1\r\n\r\nOK\r\n")
    c.transact(b"AT+SYSLOG=0\r\n", b"\r\nOK\r\n")
    c.transact(b"AT+SYSLOG?\r\n", b"+SYSLOG:0\r\n\r\nOK\r\n")
    c.transact(b"AT+SYSLOG=2\r\n", b"\r\nERROR\r\n")


def test_unknown_command_plain_error_without_syslog(c):
    c.echo_off()
    c.transact(b"AT+FOO\r\n", b"\r\nERROR\r\n")


ERRCODES = [
    (b"AT+FOO", 0x01090000),                 # unknown command (§3.3b)
    (b"AT+CWMODEX?", 0x01090000),
    (b"", 0x01030000),                       # empty line (§1.2)
    (b"XYZ", 0x01030000),                    # not starting with AT (§1.3)
    (b"A", 0x01030000),
    (b"AT+CWMODE?x", 0x01090000),            # query followed by junk (§1.3)
    (b"AT+CWMODE=?x", 0x01090000),
    (b"AT+CWMODE=a", 0x01080000),            # parse failures: 0x0108000N (§1.4)
    (b'AT+CWMODE="1"', 0x01080000),
    (b"AT+CWMODE=1x", 0x01080000),
    (b"AT+CWMODE=+1", 0x01080000),
    (b"AT+CWMODE= 1", 0x01080000),
    (b"AT+CWMODE=-", 0x01080000),
    (b"AT+CWMODE=0x", 0x01080000),
    (b"AT+CWMODE=4294967296", 0x01080000),   # beyond 32 bits
    (b'AT+CWJAP="ssid",pwd', 0x01080001),
    (b'AT+CWJAP="ssid","pwd', 0x01080001),
    (b'AT+CWJAP="ssid","pw"d"', 0x01080001),
    (b'AT+CWJAP=ssid,"pwd"', 0x01080000),
    (b"AT+CWLAPOPT=1,zz", 0x01080001),
    (b'AT+CWRECONNCFG=1,"2"', 0x01080001),
    (b'AT+CWHOSTNAME="abc', 0x01080000),
    (b'AT+CWHOSTNAME="abc\\"', 0x01080000),
    (b"AT+CWHOSTNAME=abc", 0x01080000),
    (b'AT+CIPSTA="1.2.3.4",1.2.3.1,"255.255.255.0"', 0x01080001),
]


def test_errcode(c):
    c.echo_off()
    c.transact(b"AT+SYSLOG=1\r\n", b"\r\nOK\r\n")
    failures = []
    for cmd, code in ERRCODES:
        c.check(cmd + b"\r\n", b"ERR CODE:0x%08x\r\n\r\nERROR\r\n" % code, failures)
        c.check(b"AT\r\n", b"\r\nOK\r\n", failures)
    assert not failures, "\n".join(failures)


def test_errcode_missing_handler_has_no_code_line(c):
    # §1.3: a known command without a handler for the type: ERROR only
    c.echo_off()
    c.transact(b"AT+SYSLOG=1\r\n", b"\r\nOK\r\n")
    for cmd in (b"AT+GMR?\r\n", b"AT+CWMODE=?\r\n", b"AT+CWSTATE=1\r\n", b"AT+CWQAP?\r\n"):
        c.transact(cmd, b"\r\nERROR\r\n")


def test_errcode_busy(espatd):
    d = espatd(join_ms=600)
    c = d.client
    c.echo_off()
    c.transact(b"AT+SYSLOG=1\r\n", b"\r\nOK\r\n")
    c.transact(b'AT+CWJAP="lab","secret123"\r\n', b"", quiet=0)
    time.sleep(0.05)
    c.transact(b"AT\r\n", b"ERR CODE:0x010b0000\r\n\r\nbusy p...\r\n", quiet=0)
    c.expect(b"WIFI CONNECTED\r\nWIFI GOT IP\r\n\r\nOK\r\n", timeout=3 * SCALE)


def test_errcode_busy_same_write(c):
    c.echo_off()
    c.transact(b"AT+SYSLOG=1\r\n", b"\r\nOK\r\n")
    c.write(b"AT\r\nAT\r\n")
    c.expect_any([b"\r\nOK\r\nERR CODE:0x010b0000\r\n\r\nbusy p...\r\n",
                  b"ERR CODE:0x010b0000\r\n\r\nbusy p...\r\n\r\nOK\r\n"])


# ---- busy p... (§1.9) ---------------------------------------------------------------------


def test_busy_second_command_in_same_write(c):
    c.write(b"AT\r\nAT\r\n")
    c.expect_any([b"AT\r\n\r\nOK\r\n\r\nbusy p...\r\n",
                  b"AT\r\n\r\nbusy p...\r\n\r\nOK\r\n"])
    # one busy per chunk, not per line
    c.write(b"AT\r\nAT\r\nAT\r\nAT+GMR\r\n")
    c.expect_any([b"AT\r\n\r\nOK\r\n\r\nbusy p...\r\n",
                  b"AT\r\n\r\nbusy p...\r\n\r\nOK\r\n"])
    c.transact(b"AT\r\n", b"AT\r\n\r\nOK\r\n")


def test_busy_second_command_not_run(c):
    c.echo_off()
    c.write(b"AT+CWMODE=2\r\nAT+CWMODE=3\r\n")
    c.expect_any([b"\r\nOK\r\n\r\nbusy p...\r\n", b"\r\nbusy p...\r\n\r\nOK\r\n"])
    c.transact(b"AT+CWMODE?\r\n", b"+CWMODE:2\r\n\r\nOK\r\n")


def test_busy_while_joining(espatd):
    d = espatd(join_ms=600)
    c = d.client
    # echo on: the typed bytes are not echoed while the command runs
    c.transact(b'AT+CWJAP="lab","secret123"\r\n', b'AT+CWJAP="lab","secret123"\r\n', quiet=0)
    c.transact(b"AT\r\n", b"\r\nbusy p...\r\n", quiet=0)
    time.sleep(0.05)
    c.transact(b"AT+CWMODE?\r\n", b"\r\nbusy p...\r\n", quiet=0)
    c.expect(b"WIFI CONNECTED\r\nWIFI GOT IP\r\n\r\nOK\r\n", timeout=3 * SCALE)
    # idle again: answered normally
    c.transact(b"AT\r\n", b"AT\r\n\r\nOK\r\n")


def test_busy_force_restart(espatd):
    d = espatd(join_ms=800)
    c = d.client
    c.echo_off()
    c.transact(b"AT+CWAUTOCONN=0\r\n", b"\r\nOK\r\n")
    c.transact(b'AT+CWJAP="lab","secret123"\r\n', b"", quiet=0)
    time.sleep(0.05)
    c.write(b"AT+RST\r\n")
    c.expect(b"\r\nWill force to restart!!!\r\n\r\nready\r\n", timeout=2 * SCALE)
    # the interrupted join never reports, echo is back on
    c.assert_quiet(0.6)
    c.transact(b"AT+CWSTATE?\r\n", b'AT+CWSTATE?\r\n+CWSTATE:0,""\r\n\r\nOK\r\n')


def test_busy_force_restart_in_the_same_write(c):
    # "AT+RST\r\n" in the part of a chunk that arrives while a command runs
    c.echo_off()
    c.transact(b"AT+CWAUTOCONN=0\r\n", b"\r\nOK\r\n")
    c.write(b'AT+CWJAP="lab","secret123"\r\nAT+RST\r\n')
    c.expect(b"\r\nWill force to restart!!!\r\n\r\nready\r\n", timeout=2 * SCALE)
    c.assert_quiet(0.3)
    c.write(b"AT\r\nAT+RST\r\n")
    c.expect_any([b"AT\r\n\r\nOK\r\n\r\nWill force to restart!!!\r\n\r\nready\r\n",
                  b"AT\r\n\r\nWill force to restart!!!\r\n\r\nready\r\n"], timeout=2 * SCALE)
    c.transact(b"AT+CWSTATE?\r\n", b'AT+CWSTATE?\r\n+CWSTATE:0,""\r\n\r\nOK\r\n')


def test_busy_during_scan(espatd):
    d = espatd("--ap", "alpha:pw12345678:-60:1:aa:00:00:00:00:01", join_ms=600)
    c = d.client
    c.echo_off()
    c.transact(b"AT+CWLAP\r\n", b"", quiet=0)
    time.sleep(0.05)
    c.transact(b"AT\r\n", b"\r\nbusy p...\r\n", quiet=0)
    c.expect(b'+CWLAP:(3,"alpha",-60,"aa:00:00:00:00:01",1,-1,-1,4,4,7,0)\r\n\r\nOK\r\n',
             timeout=3 * SCALE)


# ---- AT+UART_CUR / AT+UART_DEF / AT+UART ---------------------------------------------------


def test_uart_queries(espatd):
    c = espatd().client
    c.transact(b"AT+UART_CUR?\r\n", b"AT+UART_CUR?\r\n+UART_CUR:115200,8,1,0,0\r\n\r\nOK\r\n")
    c.echo_off()
    c.transact(b"AT+UART_DEF?\r\n", b"+UART_DEF:115200,8,1,0,0\r\n\r\nOK\r\n")
    c.transact(b"AT+UART?\r\n", b"+UART:115200,8,1,0,0\r\n\r\nOK\r\n")


UART_BAD = [
    b"115200,8,1,0", b"115200,8,1,0,0,0", b"115200", b"", b"115200,8,1,,0",
    b"79,8,1,0,0", b"5000001,8,1,0,0", b"115200,4,1,0,0", b"115200,9,1,0,0",
    b"115200,8,0,0,0", b"115200,8,4,0,0", b"115200,8,1,3,0", b"115200,8,1,0,4",
    b"-115200,8,1,0,0", b'"115200",8,1,0,0',
]


def test_uart_bad_params(c):
    # exactly 5 parameters, each in range (at_uart_cmd.c)
    c.echo_off()
    failures = []
    for name in (b"UART_CUR", b"UART_DEF", b"UART"):
        for params in UART_BAD:
            c.check(b"AT+" + name + b"=" + params + b"\r\n", b"\r\nERROR\r\n", failures)
    c.check(b"AT+UART_CUR?\r\n", b"+UART_CUR:115200,8,1,0,0\r\n\r\nOK\r\n", failures)
    c.check(b"AT+UART_DEF?\r\n", b"+UART_DEF:115200,8,1,0,0\r\n\r\nOK\r\n", failures)
    assert not failures, "\n".join(failures)


def test_uart_cur_set(espatd):
    c = espatd().client
    c.echo_off()
    c.transact(b"AT+UART_CUR=921600,8,1,0,0\r\n", b"\r\nOK\r\n")
    c.transact(b"AT+UART_CUR?\r\n", b"+UART_CUR:921600,8,1,0,0\r\n\r\nOK\r\n")
    c.transact(b"AT+UART?\r\n", b"+UART:921600,8,1,0,0\r\n\r\nOK\r\n")
    c.transact(b"AT+UART_DEF?\r\n", b"+UART_DEF:115200,8,1,0,0\r\n\r\nOK\r\n")
    c.transact(b"AT+UART_CUR=80,5,3,2,3\r\n", b"\r\nOK\r\n")
    c.transact(b"AT+UART_CUR?\r\n", b"+UART_CUR:80,5,3,2,3\r\n\r\nOK\r\n")
    c.transact(b"AT+UART_CUR=5000000,7,2,1,1\r\n", b"\r\nOK\r\n")
    c.transact(b"AT+UART_CUR?\r\n", b"+UART_CUR:5000000,7,2,1,1\r\n\r\nOK\r\n")
    c.transact(b"AT+UART_DEF?\r\n", b"+UART_DEF:115200,8,1,0,0\r\n\r\nOK\r\n")


def test_uart_def_set_applies_now(c):
    c.echo_off()
    c.transact(b"AT+UART_DEF=230400,8,1,0,0\r\n", b"\r\nOK\r\n")
    c.transact(b"AT+UART_DEF?\r\n", b"+UART_DEF:230400,8,1,0,0\r\n\r\nOK\r\n")
    c.transact(b"AT+UART_CUR?\r\n", b"+UART_CUR:230400,8,1,0,0\r\n\r\nOK\r\n")
    # the undocumented AT+UART= sets like UART_DEF
    c.transact(b"AT+UART=38400,8,1,0,0\r\n", b"\r\nOK\r\n")
    c.transact(b"AT+UART_DEF?\r\n", b"+UART_DEF:38400,8,1,0,0\r\n\r\nOK\r\n")
    c.transact(b"AT+UART?\r\n", b"+UART:38400,8,1,0,0\r\n\r\nOK\r\n")


def test_uart_def_persists_cur_does_not(espatd):
    d = espatd()
    c = d.client
    c.echo_off()
    c.transact(b"AT+SYSSTORE=0\r\n", b"\r\nOK\r\n")  # UART_DEF is saved anyway (§6.2)
    c.transact(b"AT+UART_DEF=57600,8,1,0,0\r\n", b"\r\nOK\r\n")
    c.transact(b"AT+UART_CUR=9600,8,1,0,0\r\n", b"\r\nOK\r\n")
    c = d.restart()
    c.echo_off()
    c.transact(b"AT+UART_DEF?\r\n", b"+UART_DEF:57600,8,1,0,0\r\n\r\nOK\r\n")
    c.transact(b"AT+UART_CUR?\r\n", b"+UART_CUR:57600,8,1,0,0\r\n\r\nOK\r\n")
    c.transact(b"AT+UART_CUR=9600,8,1,0,0\r\n", b"\r\nOK\r\n")
    c.transact(b"AT+RST\r\n", b"\r\nOK\r\n\r\nready\r\n", timeout=2 * SCALE)
    c.echo_off()
    c.transact(b"AT+UART_CUR?\r\n", b"+UART_CUR:57600,8,1,0,0\r\n\r\nOK\r\n")


# ---- AT+RFPOWER -------------------------------------------------------------------------------

RF_ESP32 = [(40, 34), (43, 34), (44, 44), (51, 44), (52, 52), (55, 52), (56, 56), (59, 56),
            (60, 60), (65, 60), (66, 66), (71, 66), (72, 72), (77, 72), (78, 78), (84, 78)]
RF_ESP8266 = [(40, 33), (48, 33), (49, 49), (55, 49), (56, 56), (63, 56), (64, 64), (67, 64),
              (68, 68), (73, 68), (74, 74), (77, 74), (78, 78), (81, 78), (82, 82)]


def test_rfpower_esp32(espatd):
    c = espatd(profile="esp32").client
    c.transact(b"AT+RFPOWER?\r\n", b"AT+RFPOWER?\r\n+RFPOWER:78,5,5,5\r\n\r\nOK\r\n")
    c.echo_off()
    for set_, eff in RF_ESP32:
        c.transact(b"AT+RFPOWER=%d\r\n" % set_, b"\r\nOK\r\n")
        c.transact(b"AT+RFPOWER?\r\n", b"+RFPOWER:%d,5,5,5\r\n\r\nOK\r\n" % eff)
    c.transact(b"AT+RFPOWER=60,1,2,3\r\n", b"\r\nOK\r\n")
    c.transact(b"AT+RFPOWER?\r\n", b"+RFPOWER:60,1,2,3\r\n\r\nOK\r\n")
    c.transact(b"AT+RFPOWER=66,7\r\n", b"\r\nOK\r\n")
    c.transact(b"AT+RFPOWER?\r\n", b"+RFPOWER:66,7,2,3\r\n\r\nOK\r\n")
    for bad in (b"39", b"85", b"-1", b"60,8", b"60,1,2,3,4", b"", b'"60"', b"60,-1"):
        c.transact(b"AT+RFPOWER=" + bad + b"\r\n", b"\r\nERROR\r\n")
    c.transact(b"AT+RFPOWER?\r\n", b"+RFPOWER:66,7,2,3\r\n\r\nOK\r\n")
    # not saved: default after a reset
    c.transact(b"AT+RST\r\n", b"\r\nOK\r\n\r\nready\r\n", timeout=2 * SCALE)
    c.transact(b"AT+RFPOWER?\r\n", b"AT+RFPOWER?\r\n+RFPOWER:78,5,5,5\r\n\r\nOK\r\n")


def test_rfpower_esp8266(espatd):
    c = espatd(profile="esp8266").client
    # ESP8266 has no BLE: a single field
    c.transact(b"AT+RFPOWER?\r\n", b"AT+RFPOWER?\r\n+RFPOWER:78\r\n\r\nOK\r\n")
    c.echo_off()
    for set_, eff in RF_ESP8266:
        c.transact(b"AT+RFPOWER=%d\r\n" % set_, b"\r\nOK\r\n")
        c.transact(b"AT+RFPOWER?\r\n", b"+RFPOWER:%d\r\n\r\nOK\r\n" % eff)
    for bad in (b"39", b"83", b"60,1", b"60,1,2,3", b""):
        c.transact(b"AT+RFPOWER=" + bad + b"\r\n", b"\r\nERROR\r\n")
    c.transact(b"AT+RFPOWER?\r\n", b"+RFPOWER:82\r\n\r\nOK\r\n")


# ---- AT+SYSTIMESTAMP ------------------------------------------------------------------------


def test_systimestamp(c):
    c.echo_off()
    c.write(b"AT+SYSTIMESTAMP?\r\n")
    out = c.read_result()
    c.assert_quiet()
    m = re.fullmatch(rb"\+SYSTIMESTAMP:(\d+)\r\n\r\nOK\r\n", out)
    assert m, out
    c.transact(b"AT+SYSTIMESTAMP=1700000000\r\n", b"\r\nOK\r\n")
    c.write(b"AT+SYSTIMESTAMP?\r\n")
    out = c.read_result()
    c.assert_quiet()
    m = re.fullmatch(rb"\+SYSTIMESTAMP:(\d+)\r\n\r\nOK\r\n", out)
    assert m, out
    assert 1700000000 <= int(m.group(1)) <= 1700000002
    for bad in (b"-1", b"x", b'"1700000000"', b"", b"1,2", b"4294967296"):
        c.transact(b"AT+SYSTIMESTAMP=" + bad + b"\r\n", b"\r\nERROR\r\n")
    c.transact(b"AT+SYSTIMESTAMP\r\n", b"\r\nERROR\r\n")


# ---- AT+TRANSINTVL ------------------------------------------------------------------------------


def test_transintvl(espatd):
    d = espatd()
    c = d.client
    c.transact(b"AT+TRANSINTVL?\r\n", b"AT+TRANSINTVL?\r\n+TRANSINTVL:20\r\n\r\nOK\r\n")
    c.echo_off()
    for v in (b"0", b"1000", b"100"):
        c.transact(b"AT+TRANSINTVL=" + v + b"\r\n", b"\r\nOK\r\n")
        c.transact(b"AT+TRANSINTVL?\r\n", b"+TRANSINTVL:" + v + b"\r\n\r\nOK\r\n")
    for bad in (b"1001", b"-1", b"", b"a", b"1,2"):
        c.transact(b"AT+TRANSINTVL=" + bad + b"\r\n", b"\r\nERROR\r\n")
    c.transact(b"AT+TRANSINTVL\r\n", b"\r\nERROR\r\n")
    c.transact(b"AT+TRANSINTVL?\r\n", b"+TRANSINTVL:100\r\n\r\nOK\r\n")
    # never saved (§6.4)
    c = d.restart()
    c.echo_off()
    c.transact(b"AT+TRANSINTVL?\r\n", b"+TRANSINTVL:20\r\n\r\nOK\r\n")


# ---- commands the module does not have -------------------------------------------------------


MISSING = [b"AT+CIPSSLSIZE=4096", b'AT+CWJAP_CUR="a","b"', b'AT+CWJAP_DEF="a","b"',
           b"AT+CWMODE_DEF=1", b"AT+CWMODE_CUR=1", b"AT+CWMODE_CUR?", b"AT+CIPCLOSEMODE=1",
           b"AT+CWDHCP_CUR=1,1", b'AT+CIPSTA_DEF="1.2.3.4"', b"AT+SYSMSG_CUR=1",
           b"AT+CIPBUFRESET", b"AT+SNTPTIME?", b"AT+CWMODE_DEF?"]
TEST_FORMS = [b"AT+CWMODE=?", b"AT+GMR=?", b"AT=?", b"AT+CWJAP=?", b"AT+CWLAP=?",
              b"AT+UART_CUR=?", b"AT+SYSSTORE=?", b"AT+CIPSTA=?", b"ATE0=?",
              b"AT+CWSTATE=?"]


def test_missing_command_error(c):
    failures = []
    for cmd in MISSING + TEST_FORMS:
        c.check(cmd + b"\r\n", cmd + b"\r\n\r\nERROR\r\n", failures)
        c.check(b"AT\r\n", b"AT\r\n\r\nOK\r\n", failures)
    assert not failures, "\n".join(failures)


def test_missing_command_errcode(c):
    c.echo_off()
    c.transact(b"AT+SYSLOG=1\r\n", b"\r\nOK\r\n")
    for cmd in MISSING:
        c.transact(cmd + b"\r\n", b"ERR CODE:0x01090000\r\n\r\nERROR\r\n")


def test_busy_rest_of_a_fragmented_line(c):
    # the chunk that completes a line also carries the next command: busy
    c.write(b"AT\r")
    c.expect(b"AT\r", quiet=0.05)
    c.write(b"\nAT\r\n")
    c.expect_any([b"\n\r\nOK\r\n\r\nbusy p...\r\n", b"\n\r\nbusy p...\r\n\r\nOK\r\n"])
    c.transact(b"AT\r\n", b"AT\r\n\r\nOK\r\n")


def test_sleep_query(c):
    c.echo_off()
    c.write(b"AT+SLEEP?\r\n")
    out = c.read_result()
    assert re.fullmatch(rb"\+SLEEP:[0-3]\r\n\r\nOK\r\n", out), out


def test_sleep_set(c):
    c.echo_off()
    for mode in (0, 2, 3, 1):
        c.transact(b"AT+SLEEP=%d\r\n" % mode, b"\r\nOK\r\n")
        c.transact(b"AT+SLEEP?\r\n", b"+SLEEP:%d\r\n\r\nOK\r\n" % mode)
    for bad in (b"AT+SLEEP=4\r\n", b"AT+SLEEP=-1\r\n", b"AT+SLEEP\r\n", b"AT+SLEEP=?\r\n"):
        c.transact(bad, b"\r\nERROR\r\n")
