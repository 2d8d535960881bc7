"""Saved settings (protocol.md §6): set, SIGTERM, restart on the same state
dir, query. With AT+SYSSTORE=0 only the always-saved ones survive."""

import os

import pytest

from espat import SCALE

OK = b"\r\nOK\r\n"
JOINED = b"WIFI CONNECTED\r\nWIFI GOT IP\r\n\r\nOK\r\n"
STATIC = (b'+CIPSTA:ip:"192.168.5.7"\r\n+CIPSTA:gateway:"192.168.5.1"\r\n'
          b'+CIPSTA:netmask:"255.255.255.0"\r\n\r\nOK\r\n')
ZERO_CIPSTA = (b'+CIPSTA:ip:"0.0.0.0"\r\n+CIPSTA:gateway:"0.0.0.0"\r\n'
               b'+CIPSTA:netmask:"0.0.0.0"\r\n\r\nOK\r\n')
AP_DEFAULT = (b'+CIPAP:ip:"192.168.4.1"\r\n+CIPAP:gateway:"192.168.4.1"\r\n'
              b'+CIPAP:netmask:"255.255.255.0"\r\n\r\nOK\r\n')
AP_SET = (b'+CIPAP:ip:"10.9.8.1"\r\n+CIPAP:gateway:"10.9.8.1"\r\n'
          b'+CIPAP:netmask:"255.255.255.0"\r\n\r\nOK\r\n')

# name: (set commands, commands run after the restart before the queries,
#        [(query, value when saved, default)], always saved)
# A default of None means "whatever the query gave before the set".
SETTINGS = {
    "SYSMSG": ([b"AT+SYSMSG=3"], [],
               [(b"AT+SYSMSG?", b"+SYSMSG:3\r\nOK\r\n", b"+SYSMSG:0\r\nOK\r\n")], False),
    "CWMODE": ([b"AT+CWMODE=3"], [],
               [(b"AT+CWMODE?", b"+CWMODE:3\r\n\r\nOK\r\n", b"+CWMODE:1\r\n\r\nOK\r\n")], False),
    "CWAUTOCONN": ([b"AT+CWAUTOCONN=0"], [],
                   [(b"AT+CWAUTOCONN?", b"+CWAUTOCONN:0\r\nOK\r\n", b"+CWAUTOCONN:1\r\nOK\r\n")],
                   True),
    "CWDHCP": ([b"AT+CWDHCP=0,1"], [],
               [(b"AT+CWDHCP?", b"+CWDHCP:2\r\nOK\r\n", b"+CWDHCP:3\r\nOK\r\n")], False),
    "CIPSTA": ([b'AT+CIPSTA="192.168.5.7","192.168.5.1","255.255.255.0"'], [],
               [(b"AT+CIPSTA?", STATIC, ZERO_CIPSTA),
                (b"AT+CWDHCP?", b"+CWDHCP:2\r\nOK\r\n", b"+CWDHCP:3\r\nOK\r\n")], False),
    "CIPAP": ([b"AT+CWMODE=2", b'AT+CIPAP="10.9.8.1","10.9.8.1","255.255.255.0"'],
              [b"AT+CWMODE=2"],
              [(b"AT+CIPAP?", AP_SET, AP_DEFAULT),
               (b"AT+CWDHCP?", b"+CWDHCP:1\r\nOK\r\n", b"+CWDHCP:3\r\nOK\r\n")], False),
    "CIPSTAMAC": ([b"AT+CWMODE=3", b'AT+CIPSTAMAC="1a:fe:35:98:d3:7b"'], [b"AT+CWMODE=3"],
                  [(b"AT+CIPSTAMAC?", b'+CIPSTAMAC:"1a:fe:35:98:d3:7b"\r\n\r\nOK\r\n', None)],
                  False),
    "CIPAPMAC": ([b"AT+CWMODE=3", b'AT+CIPAPMAC="1a:fe:35:98:d3:7d"'], [b"AT+CWMODE=3"],
                 [(b"AT+CIPAPMAC?", b'+CIPAPMAC:"1a:fe:35:98:d3:7d"\r\n\r\nOK\r\n', None)],
                 False),
    "CWRECONNCFG": ([b"AT+CWRECONNCFG=5,100"], [],
                    [(b"AT+CWRECONNCFG?", b"+CWRECONNCFG:5,100\r\n\r\nOK\r\n",
                      b"+CWRECONNCFG:0,0\r\n\r\nOK\r\n")], False),
    "UART_DEF": ([b"AT+UART_DEF=9600,8,1,0,0"], [],
                 [(b"AT+UART_DEF?", b"+UART_DEF:9600,8,1,0,0\r\n\r\nOK\r\n",
                   b"+UART_DEF:115200,8,1,0,0\r\n\r\nOK\r\n"),
                  (b"AT+UART_CUR?", b"+UART_CUR:9600,8,1,0,0\r\n\r\nOK\r\n",
                   b"+UART_CUR:115200,8,1,0,0\r\n\r\nOK\r\n")], True),
    "UART": ([b"AT+UART=19200,8,1,0,0"], [],
             [(b"AT+UART_DEF?", b"+UART_DEF:19200,8,1,0,0\r\n\r\nOK\r\n",
               b"+UART_DEF:115200,8,1,0,0\r\n\r\nOK\r\n")], True),
}


def query(c, cmd):
    c.write(cmd + b"\r\n")
    out = c.read_result()
    c.assert_quiet()
    return out


@pytest.mark.parametrize("sysstore", [1, 0])
@pytest.mark.parametrize("name", list(SETTINGS))
def test_setting_across_restart(espatd, name, sysstore):
    sets, prep, queries, always = SETTINGS[name]
    d = espatd()
    c = d.client
    c.echo_off()
    defaults = {}
    for cmd, _, default in queries:
        defaults[cmd] = default if default is not None else query(c, cmd)
    if not sysstore:
        c.transact(b"AT+SYSSTORE=0\r\n", OK)
    for cmd in sets:
        c.transact(cmd + b"\r\n", OK)
    # the RAM value changes either way
    for cmd, saved, _ in queries:
        c.transact(cmd + b"\r\n", saved)
    c = d.restart()
    c.echo_off()
    for cmd in prep:
        c.transact(cmd + b"\r\n", OK)
    kept = sysstore or always
    for cmd, saved, _ in queries:
        c.transact(cmd + b"\r\n", saved if kept else defaults[cmd])
    # AT+SYSSTORE itself is never saved
    c.transact(b"AT+SYSSTORE?\r\n", b"+SYSSTORE:1\r\n\r\nOK\r\n")


def test_sysstore0_keeps_the_old_saved_value(espatd):
    d = espatd()
    c = d.client
    c.echo_off()
    c.transact(b"AT+CWMODE=2\r\n", OK)
    c.transact(b"AT+SYSMSG=1\r\n", OK)
    c.transact(b"AT+SYSSTORE=0\r\n", OK)
    c.transact(b"AT+CWMODE=3\r\n", OK)
    c.transact(b"AT+SYSMSG=6\r\n", OK)
    c.transact(b"AT+CWMODE?\r\n", b"+CWMODE:3\r\n\r\nOK\r\n")
    c = d.restart()
    c.echo_off()
    c.transact(b"AT+CWMODE?\r\n", b"+CWMODE:2\r\n\r\nOK\r\n")
    c.transact(b"AT+SYSMSG?\r\n", b"+SYSMSG:1\r\nOK\r\n")


def test_sysstore0_lost_on_at_rst(c):
    # a module reset loses RAM values just like a power cycle
    c.echo_off()
    c.transact(b"AT+SYSSTORE=0\r\n", OK)
    c.transact(b"AT+CWMODE=2\r\n", OK)
    c.transact(b"AT+SYSMSG=2\r\n", OK)
    c.transact(b"AT+RST\r\n", b"\r\nOK\r\n\r\nready\r\n", timeout=2 * SCALE)
    c.echo_off()
    c.transact(b"AT+CWMODE?\r\n", b"+CWMODE:1\r\n\r\nOK\r\n")
    c.transact(b"AT+SYSMSG?\r\n", b"+SYSMSG:0\r\nOK\r\n")
    c.transact(b"AT+SYSSTORE=1\r\n", OK)
    c.transact(b"AT+CWMODE=3\r\n", OK)
    c.transact(b"AT+RST\r\n", b"\r\nOK\r\n\r\nready\r\n", timeout=2 * SCALE)
    c.echo_off()
    c.transact(b"AT+CWMODE?\r\n", b"+CWMODE:3\r\n\r\nOK\r\n")


def test_never_saved(espatd):
    d = espatd()
    c = d.client
    c.transact(b"AT+SYSLOG=1\r\n", b"AT+SYSLOG=1\r\n\r\nOK\r\n")
    c.echo_off()
    for cmd in (b"AT+SYSSTORE=0", b"AT+TRANSINTVL=500", b"AT+RFPOWER=44",
                b"AT+UART_CUR=9600,8,1,0,0", b'AT+CWHOSTNAME="kept-nowhere"',
                b"AT+CWLAPOPT=1,2", b"AT+SYSTIMESTAMP=1700000000"):
        c.transact(cmd + b"\r\n", OK)
    c.transact(b"AT+SYSSTORE=1\r\n", OK)
    c = d.restart()
    # echo is on again
    c.transact(b"AT+SYSLOG?\r\n", b"AT+SYSLOG?\r\n+SYSLOG:0\r\n\r\nOK\r\n")
    c.echo_off()
    for cmd, want in ((b"AT+SYSSTORE?", b"+SYSSTORE:1\r\n\r\nOK\r\n"),
                      (b"AT+TRANSINTVL?", b"+TRANSINTVL:20\r\n\r\nOK\r\n"),
                      (b"AT+RFPOWER?", b"+RFPOWER:78,5,5,5\r\n\r\nOK\r\n"),
                      (b"AT+UART_CUR?", b"+UART_CUR:115200,8,1,0,0\r\n\r\nOK\r\n"),
                      (b"AT+CWHOSTNAME?", b"+CWHOSTNAME:espressif\r\n\r\nOK\r\n")):
        c.transact(cmd + b"\r\n", want)
    out = query(c, b"AT+SYSTIMESTAMP?")
    assert not out.startswith(b"+SYSTIMESTAMP:17"), out


# ---- AT+CWJAP: auto-join at the next start ----------------------------------------------


def autojoin_urcs(c, timeout):
    # the client opened the pty after the daemon started: the power-up
    # "ready" may or may not have reached it
    c.expect_any([b"WIFI CONNECTED\r\nWIFI GOT IP\r\n",
                  b"\r\nready\r\nWIFI CONNECTED\r\nWIFI GOT IP\r\n"], timeout=timeout)


def test_cwjap_autojoin_at_next_start(espatd):
    d = espatd()
    c = d.client
    c.echo_off()
    c.transact(b'AT+CWJAP="home","pw12345678","02:12:34:56:78:9a"\r\n', JOINED)
    d.join_ms = 800   # long enough to open the pty before the URCs
    c = d.restart()
    # the join runs without a command: state 3 (connecting), not busy
    c.transact(b"AT+CWSTATE?\r\n", b'AT+CWSTATE?\r\n+CWSTATE:3,"home"\r\n\r\nOK\r\n')
    autojoin_urcs(c, 3 * SCALE)
    c.echo_off()
    c.transact(b"AT+CWJAP?\r\n",
               b'+CWJAP:"home","02:12:34:56:78:9a",6,-45,0,1,3,0,1\r\n\r\nOK\r\n')
    c.transact(b"AT+CWSTATE?\r\n", b'+CWSTATE:2,"home"\r\n\r\nOK\r\n')


def test_cwjap_autojoin_after_at_rst(c):
    c.echo_off()
    c.transact(b'AT+CWJAP="home","pw12345678"\r\n', JOINED)
    # the module resets without WIFI DISCONNECT, then joins again
    c.transact(b"AT+RST\r\n", b"\r\nOK\r\n\r\nready\r\nWIFI CONNECTED\r\nWIFI GOT IP\r\n",
               timeout=2 * SCALE)
    c.transact(b"AT+CWSTATE?\r\n", b'AT+CWSTATE?\r\n+CWSTATE:2,"home"\r\n\r\nOK\r\n')


def test_cwjap_autojoin_with_configured_ap(espatd):
    ap = ["--ap", "home:pw12345678:-55:3:aa:bb:cc:00:00:01"]
    d = espatd(*ap)
    c = d.client
    c.echo_off()
    c.transact(b'AT+CWJAP="home","pw12345678"\r\n', JOINED)
    d.join_ms = 800
    c = d.restart()
    autojoin_urcs(c, 3 * SCALE)
    c.echo_off()
    c.transact(b"AT+CWJAP?\r\n",
               b'+CWJAP:"home","aa:bb:cc:00:00:01",3,-55,0,1,3,0,1\r\n\r\nOK\r\n')


def test_cwjap_sysstore0_not_saved(espatd):
    d = espatd()
    c = d.client
    c.echo_off()
    c.transact(b"AT+SYSSTORE=0\r\n", OK)
    c.transact(b'AT+CWJAP="home","pw12345678"\r\n', JOINED)
    c = d.restart()
    c.assert_quiet(0.4)
    c.echo_off()
    c.transact(b"AT+CWSTATE?\r\n", b'+CWSTATE:0,""\r\n\r\nOK\r\n')
    c.transact(b"AT+CWJAP?\r\n", OK)
    c.transact(b"AT+CWJAP\r\n", b"\r\nERROR\r\n")   # no saved AP to join


def test_cwjap_autoconn_off_saved_but_no_autojoin(espatd):
    d = espatd()
    c = d.client
    c.echo_off()
    c.transact(b'AT+CWJAP="home","pw12345678"\r\n', JOINED)
    c.transact(b"AT+SYSSTORE=0\r\n", OK)
    c.transact(b"AT+CWAUTOCONN=0\r\n", OK)   # saved even with SYSSTORE=0
    c = d.restart()
    c.assert_quiet(0.4)
    c.echo_off()
    c.transact(b"AT+CWAUTOCONN?\r\n", b"+CWAUTOCONN:0\r\nOK\r\n")
    c.transact(b"AT+CWSTATE?\r\n", b'+CWSTATE:0,""\r\n\r\nOK\r\n')
    # the saved AP is still there for the execute form
    c.transact(b"AT+CWJAP\r\n", JOINED)
    c.transact(b"AT+CWSTATE?\r\n", b'+CWSTATE:2,"home"\r\n\r\nOK\r\n')


def test_restore_erases_saved_join(espatd):
    d = espatd()
    c = d.client
    c.echo_off()
    c.transact(b'AT+CWJAP="home","pw12345678"\r\n', JOINED)
    c.transact(b"AT+CWQAP\r\n", b"WIFI DISCONNECT\r\n\r\nOK\r\n")
    c.transact(b"AT+RESTORE\r\n", b"\r\nOK\r\n\r\nready\r\n", timeout=2 * SCALE)
    c.assert_quiet(0.3)
    c = d.restart()
    c.assert_quiet(0.3)
    c.echo_off()
    c.transact(b"AT+CWJAP\r\n", b"\r\nERROR\r\n")
    c.transact(b"AT+CWSTATE?\r\n", b'+CWSTATE:0,""\r\n\r\nOK\r\n')


def test_corrupt_state_file_starts_with_defaults(espatd):
    d = espatd()
    c = d.client
    c.echo_off()
    c.transact(b"AT+CWMODE=3\r\n", OK)
    d.stop()
    files = [f for f in os.listdir(d.state_dir)]
    assert files, "nothing saved in %s" % d.state_dir
    for f in files:
        with open(os.path.join(d.state_dir, f), "r+b") as fh:
            fh.write(b"\xffgarbage\x00" * 8)
    c = d.start()
    c.echo_off()
    c.transact(b"AT+CWMODE?\r\n", b"+CWMODE:1\r\n\r\nOK\r\n")
    c.transact(b"AT+CWMODE=2\r\n", OK)
    c = d.restart()
    c.echo_off()
    c.transact(b"AT+CWMODE?\r\n", b"+CWMODE:2\r\n\r\nOK\r\n")


def test_no_state_saves_nothing(espatd):
    d = espatd(state=False)
    c = d.client
    c.echo_off()
    c.transact(b"AT+CWMODE=3\r\n", OK)
    c.transact(b"AT+UART_DEF=9600,8,1,0,0\r\n", OK)
    c = d.restart()
    c.echo_off()
    c.transact(b"AT+CWMODE?\r\n", b"+CWMODE:1\r\n\r\nOK\r\n")
    c.transact(b"AT+UART_DEF?\r\n", b"+UART_DEF:115200,8,1,0,0\r\n\r\nOK\r\n")
    assert not os.path.exists(d.state_dir)


def test_dhcp_on_again_erases_saved_static_address(espatd):
    d = espatd()
    c = d.client
    c.echo_off()
    c.transact(b'AT+CIPSTA="192.168.5.7","192.168.5.1","255.255.255.0"\r\n', OK)
    c = d.restart()
    c.echo_off()
    c.transact(b"AT+CIPSTA?\r\n", STATIC)
    c.transact(b"AT+CWDHCP=1,1\r\n", OK)
    c = d.restart()
    c.echo_off()
    c.transact(b"AT+CIPSTA?\r\n", ZERO_CIPSTA)
    c.transact(b"AT+CWDHCP?\r\n", b"+CWDHCP:3\r\nOK\r\n")
