"""Malformed input (protocol.md §1.2-§1.5, §1.9): the exact error, and the
daemon still answers afterwards."""

import random
import re

import pytest

OK = b"\r\nOK\r\n"
ERROR = b"\r\nERROR\r\n"


def still_alive(c, echo=False):
    c.transact(b"AT\r\n", (b"AT\r\n" if echo else b"") + OK)


def test_empty_line(espatd, frag):
    c = espatd(mode=frag).client
    c.transact(b"\r\n", b"\r\n" + ERROR)   # echo on: the CR LF comes back first
    still_alive(c, echo=True)
    c.echo_off()
    c.transact(b"\r\n", ERROR)
    c.transact(b"\r\n", ERROR)
    still_alive(c)


@pytest.mark.parametrize("length", [300, 1000, 4096, 8197])
def test_overlong_line(c, length):
    # more than 255 bytes without a terminator are dropped; what is left
    # when the CR LF comes is no command: one ERROR (§1.5)
    line = b"AT+" + b"X" * (length - 5) + b"\r\n"
    assert len(line) == length
    c.echo_off()
    c.transact(line, ERROR, timeout=5)
    still_alive(c)


def test_overlong_line_echo(c):
    line = b"AT+CWMODE=" + b"1" * 288 + b"\r\n"
    assert len(line) == 300
    c.transact(line, line + ERROR)
    still_alive(c, echo=True)


def test_line_length_boundary(c):
    # §1.5: a complete line of up to 256 bytes (CR LF included) is parsed;
    # a longer one is an error 0x01030000. Told apart by the ERR CODE.
    c.echo_off()
    c.transact(b"AT+SYSLOG=1\r\n", OK)
    line = b"AT+" + b"X" * 251 + b"\r\n"
    assert len(line) == 256
    c.transact(line, b"ERR CODE:0x01090000\r\n" + ERROR)   # parsed: unknown command
    line = b"AT+" + b"X" * 252 + b"\r\n"
    c.transact(line, b"ERR CODE:0x01030000\r\n" + ERROR)   # too long
    still_alive(c)


def test_unterminated_garbage_then_crlf(c):
    c.echo_off()
    c.write(b"Y" * 1000)
    c.assert_quiet(0.1)
    c.transact(b"\r\n", ERROR)
    still_alive(c)


def test_lone_cr_or_lf_does_not_end_a_line(c):
    c.echo_off()
    c.write(b"AT\r")
    c.assert_quiet(0.1)
    c.transact(b"\n", OK)
    c.write(b"AT\n")
    c.assert_quiet(0.1)
    c.write(b"\r\n")
    c.read_result()   # what "AT\n" gives is UNCONFIRMED (§1.2); only: an answer
    still_alive(c)


@pytest.mark.parametrize("chunking", ["whole", "random"])
def test_random_binary(c, chunking):
    c.echo_off()
    rng = random.Random(0x5eed)
    junk = rng.randbytes(10 * 1024)
    c.write(junk, chunking)
    out = c.drain(0.2)
    # only error results (a line of junk) and busy (the rest of a chunk that
    # carried a line) may come back
    assert re.fullmatch(rb"(\r\nERROR\r\n|\r\nbusy p\.\.\.\r\n)*", out), out[:500]
    c.transact(b"\r\n", ERROR)   # ends whatever junk is still buffered
    still_alive(c)
    c.transact(b"AT+GMR\r\n", b"", quiet=0)
    assert c.read_result().endswith(OK)


def test_rest_of_chunk_after_a_command_is_discarded(c):
    # the bytes after the terminator arrive while the command runs: busy,
    # and they are gone (not the start of the next line) (§1.9)
    c.echo_off()
    c.write(b"AT\r\nXYZ")
    c.expect_any([OK + b"\r\nbusy p...\r\n", b"\r\nbusy p...\r\n" + OK])
    still_alive(c)


def test_lowercase_and_mixed_case(espatd, frag):
    c = espatd(mode=frag).client
    c.echo_off()
    c.transact(b"at+cwmode?\r\n", b"+CWMODE:1\r\n\r\nOK\r\n")
    c.transact(b"At+CwMoDe=2\r\n", OK)
    c.transact(b"aT+cWmOdE?\r\n", b"+CWMODE:2\r\n\r\nOK\r\n")
    c.transact(b"ate1\r\n", OK)
    c.transact(b"at+sysmsg?\r\n", b"at+sysmsg?\r\n+SYSMSG:0\r\nOK\r\n")


BAD_NUMBERS = [
    b"AT+CWMODE=5", b'AT+CWMODE="1"', b"AT+CWMODE=-1", b"AT+CWMODE=--1", b"AT+CWMODE=1-",
    b"AT+CWMODE=4294967297", b"AT+CWMODE=99999999999999999999", b"AT+CWMODE=0x100000001",
    b"AT+CWMODE=1e0", b"AT+CWMODE=0b1", b"AT+CWMODE=1 ", b"AT+CWMODE=\t1",
    b"AT+SYSTIMESTAMP=4294967296", b"AT+SYSTIMESTAMP=-2147483649",
    b"AT+TRANSINTVL=-2147483648", b"AT+CWRECONNCFG=99999999999999999999,0",
    b"AT+CWLAPOPT=1,0xFFFFFFFFF", b"AT+CWLAPOPT=1,2047,-2147483649",
    b"AT+UART_CUR=-2147483648,8,1,0,0", b"AT+UART_CUR=4294967296,8,1,0,0",
    b"AT+RFPOWER=0x7FFFFFFF",
]
UNTERMINATED = [
    b'AT+CWJAP="abc', b'AT+CWJAP="abc,"def"', b'AT+CWJAP="abc","def',
    b'AT+CWHOSTNAME="', b'AT+CWHOSTNAME="\\', b'AT+CWHOSTNAME="abc\\"', b'AT+CWHOSTNAME=""abc"',
    b'AT+CWHOSTNAME=abc"', b"AT+CWHOSTNAME='abc'", b'AT+CIPSTA="1.2.3.4',
    b'AT+CIPSTAMAC="1a:fe:35:98:d3:7b', b'AT+CWLAP="', b'AT+CWJAP="a"b","c"',
]
TOO_MANY = [b"AT+CWJAP=" + b",".join([b"1"] * 17), b"AT+CWMODE=" + b"," * 20,
            b"AT+SYSMSG=1,"]


@pytest.mark.parametrize("group", ["numbers", "strings", "count"])
def test_bad_parameters(c, group):
    cmds = {"numbers": BAD_NUMBERS, "strings": UNTERMINATED, "count": TOO_MANY}[group]
    c.echo_off()
    failures = []
    for cmd in cmds:
        c.check(cmd + b"\r\n", ERROR, failures)
        c.check(b"AT\r\n", OK, failures)
    assert not failures, "\n".join(failures)
    # nothing was changed by them
    c.transact(b"AT+CWMODE?\r\n", b"+CWMODE:1\r\n\r\nOK\r\n")
    c.transact(b"AT+CWSTATE?\r\n", b'+CWSTATE:0,""\r\n\r\nOK\r\n')
    c.transact(b"AT+CWHOSTNAME?\r\n", b"+CWHOSTNAME:espressif\r\n\r\nOK\r\n")


def test_good_numbers(c):
    # accepted integer spellings (§1.4): decimal, 0x/0X hex, leading '-'
    c.echo_off()
    for cmd in (b"AT+CWLAPOPT=1,0x7FF,-100", b"AT+CWLAPOPT=0,0X7ff,-90",
                b"AT+SYSTIMESTAMP=4294967295", b"AT+CWMODE=0x03", b"AT+TRANSINTVL=0x3E8"):
        c.transact(cmd + b"\r\n", OK)
    c.transact(b"AT+CWMODE?\r\n", b"+CWMODE:3\r\n\r\nOK\r\n")
    c.transact(b"AT+TRANSINTVL?\r\n", b"+TRANSINTVL:1000\r\n\r\nOK\r\n")


def test_escaped_comma_and_quote_in_string(c):
    c.echo_off()
    c.transact(b'AT+CWHOSTNAME="a\\,b"\r\n', OK)
    c.transact(b"AT+CWHOSTNAME?\r\n", b"+CWHOSTNAME:a,b\r\n\r\nOK\r\n")
    c.transact(b'AT+CWHOSTNAME="q\\"\\\\x"\r\n', OK)
    c.transact(b"AT+CWHOSTNAME?\r\n", b'+CWHOSTNAME:q"\\x\r\n\r\nOK\r\n')


def test_nul_and_high_bytes(c):
    c.echo_off()
    for cmd in (b"AT+CW\x00MODE?\r\n", b"\x00\r\n", b"\xff\xfe\r\n", b"AT+\xc3\xa9\r\n",
                b'AT+CWHOSTNAME="a\\\x00b"\r\n'):
        c.transact(cmd, ERROR)
    still_alive(c)
    c.transact(b"AT+CWHOSTNAME?\r\n", b"+CWHOSTNAME:espressif\r\n\r\nOK\r\n")
