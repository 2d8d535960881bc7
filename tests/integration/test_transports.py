"""The other ways to reach the module: --stdio, --tcp; and --trace."""

import re
import signal
import socket
import subprocess
import tempfile
import time

import pytest

from espat import (BOOT_MS, JOIN_MS, SCALE, PipeClient, SocketClient, check_stderr,
                   check_wrapper_logs, command, free_tcp_port)

OK = b"\r\nOK\r\n"
JOINED = b"WIFI CONNECTED\r\nWIFI GOT IP\r\n\r\nOK\r\n"


def base_args(join_ms=JOIN_MS):
    return ["--join-time", str(join_ms), "--boot-time", str(BOOT_MS)]


# ---- --stdio --------------------------------------------------------------------


def run_stdio(data, *args, join_ms=JOIN_MS):
    with tempfile.TemporaryDirectory(prefix="espatd-stdio-") as logdir:
        p = subprocess.run(command(["--stdio", "--no-state"] + base_args(join_ms) + list(args),
                                   logdir), input=data, capture_output=True, timeout=20 * SCALE)
        err = p.stderr.decode("utf-8", "replace")
        check_stderr(err)
        check_wrapper_logs(logdir)
    assert p.returncode == 0, err
    return p.stdout


def test_stdio_one_command():
    assert run_stdio(b"AT\r\n") == b"\r\nready\r\nAT\r\n" + OK


def test_stdio_script():
    # from a pipe, lines are handed on one at a time, as a script expects
    out = run_stdio(b'AT\r\nATE0\r\nAT\r\nAT+CWJAP="lab","pw"\r\nAT+CWSTATE?\r\nAT+FOO\r\n'
                    b"AT+SYSMSG?\r\n")
    assert out == (b"\r\nready\r\nAT\r\n" + OK + b"ATE0\r\n" + OK + OK + JOINED +
                   b'+CWSTATE:2,"lab"\r\n' + OK + b"\r\nERROR\r\n" + b"+SYSMSG:0\r\nOK\r\n")


def test_stdio_eof_waits_for_the_running_command():
    out = run_stdio(b'ATE0\r\nAT+CWJAP="lab","pw"\r\n', join_ms=300)
    assert out == b"\r\nready\r\nATE0\r\n" + OK + JOINED


def test_stdio_empty_input():
    assert run_stdio(b"") == b"\r\nready\r\n"


def test_stdio_interactive(tmp_path):
    state = str(tmp_path / "state")
    argv = command(["--stdio", "--state-dir", state] + base_args(), tmp_path)
    for run in range(2):
        proc = subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE)
        c = PipeClient(proc)
        try:
            c.expect(b"\r\nready\r\n")
            # in the second run the saved join starts at power-up: its
            # URCs may follow the OK at any moment
            c.transact(b"ATE0\r\n", b"ATE0\r\n" + OK, quiet=0 if run else None)
            if run == 0:
                c.transact(b"AT+CWMODE=3\r\n", OK)
                c.transact(b'AT+CWJAP="lab","pw"\r\n', JOINED)
            else:   # saved by the first run; joins at power-up
                c.transact(b"AT+CWMODE?\r\n", b"+CWMODE:3\r\n" + OK, quiet=0)
                c.expect(b"WIFI CONNECTED\r\nWIFI GOT IP\r\n", timeout=2 * SCALE)
            c.close_input()
            c.expect(b"", quiet=0.05)
            rc = proc.wait(timeout=5 * SCALE)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
        err = proc.stderr.read().decode("utf-8", "replace")
        check_stderr(err)
        check_wrapper_logs(tmp_path)
        assert rc == 0, err


# ---- --tcp ------------------------------------------------------------------------


def tcp_connect(port, proc, deadline=5.0):
    end = time.monotonic() + deadline * SCALE
    while True:
        try:
            s = socket.create_connection(("127.0.0.1", port), timeout=1)
            s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            return s
        except OSError:
            assert proc.poll() is None, "espatd exited with %s" % proc.returncode
            assert time.monotonic() < end, "cannot connect to 127.0.0.1:%d" % port
            time.sleep(0.01)


@pytest.fixture
def tcp_daemon(tmp_path):
    port = free_tcp_port()
    log_path = tmp_path / "espatd.log"
    with open(log_path, "wb") as log:
        proc = subprocess.Popen(command(["--tcp", "127.0.0.1:%d" % port, "--no-state"] +
                                        base_args(), tmp_path), stdin=subprocess.DEVNULL,
                                stdout=subprocess.DEVNULL, stderr=log)
    yield port, proc
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
    try:
        rc = proc.wait(timeout=5 * SCALE)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
        raise AssertionError("espatd did not stop on SIGTERM")
    text = log_path.read_text("utf-8", "replace")
    check_stderr(text)
    check_wrapper_logs(tmp_path)
    assert rc == 0, text


def test_tcp(tcp_daemon, frag):
    port, proc = tcp_daemon
    c = SocketClient(tcp_connect(port, proc), mode=frag)
    c.transact(b"AT\r\n", b"AT\r\n" + OK)
    # one client at a time: a second one is disconnected at once
    second = socket.create_connection(("127.0.0.1", port), timeout=2 * SCALE)
    second.settimeout(2 * SCALE)
    try:
        assert second.recv(100) == b""
    except ConnectionResetError:
        pass
    second.close()
    # the first one is still served
    c.transact(b"ATE0\r\n", b"ATE0\r\n" + OK)
    c.transact(b'AT+CWJAP="lab","pw"\r\n', JOINED)
    c.transact(b"AT+GMR\r\n", b"", quiet=0)
    assert c.read_result().endswith(OK)
    c.close()
    # the module keeps its state for the next client (echo still off)
    c = SocketClient(tcp_connect(port, proc), mode=frag)
    c.transact(b"AT\r\n", OK)
    c.transact(b"AT+CWSTATE?\r\n", b'+CWSTATE:2,"lab"\r\n' + OK)
    c.close()


# ---- --trace -------------------------------------------------------------------------

RECORD = re.compile(r'^(\d\d:\d\d:\d\d\.\d{6}) (mcu>|<esp) +(\d+) (".*")$')
CONT = re.compile(r'^ +(".*")$')


def c_unescape(lit):
    assert lit[0] == '"' and lit[-1] == '"', lit
    out = bytearray()
    i, s = 0, lit[1:-1]
    while i < len(s):
        ch = s[i]
        if ch != "\\":
            out.append(ord(ch))
            i += 1
            continue
        e = s[i + 1]
        if e == "x":
            out.append(int(s[i + 2:i + 4], 16))
            i += 4
            continue
        out.append({"r": 13, "n": 10, "t": 9, "\\": 92, '"': 34}[e])
        i += 2
    return bytes(out)


def parse_trace(text):
    records = []
    for line in text.splitlines():
        m = RECORD.match(line)
        if m:
            records.append([m.group(2), int(m.group(3)), c_unescape(m.group(4))])
            continue
        m = CONT.match(line)
        if m and records:
            records[-1][2] += c_unescape(m.group(1))
            continue
        assert re.match(r"^\d\d:\d\d:\d\d\.\d{6} ---- ", line), "unreadable trace line %r" % line
    for direction, n, data in records:
        assert n == len(data), (direction, n, data)
    return records


def test_trace(espatd, tmp_path):
    trace = tmp_path / "trace.txt"
    d = espatd("--trace", str(trace))
    c = d.client
    sent = [b"AT\r\n", b'AT+X\x01\xff"\\\t\r\n', b"ATE0\r\n", b"AT+GMR\r\n"]
    c.transact(sent[0], b"AT\r\n" + OK)
    c.transact(sent[1], sent[1] + b"\r\nERROR\r\n")
    c.transact(sent[2], b"ATE0\r\n" + OK)
    c.transact(sent[3], b"", quiet=0)
    received = b"AT\r\n" + OK + sent[1] + b"\r\nERROR\r\n" + b"ATE0\r\n" + OK + c.read_result()
    d.stop()
    text = trace.read_text("ascii")
    # readable: one timestamped record per chunk, bytes as a C string
    assert re.search(r'^\d\d:\d\d:\d\d\.\d{6} mcu> +4 "AT\\r\\n"$', text, re.M), text
    assert '"AT+X\\x01\\xff\\"\\\\\\t\\r\\n"' in text, text
    assert re.search(r'^\d\d:\d\d:\d\d\.\d{6} <esp +\d+ "\\r\\n"\n +"OK\\r\\n"$', text, re.M), text
    records = parse_trace(text)
    mcu = b"".join(r[2] for r in records if r[0] == "mcu>")
    esp = b"".join(r[2] for r in records if r[0] == "<esp")
    assert mcu == b"".join(sent)
    # the power-up "ready" went to nobody but is in the trace
    assert esp in (received, b"\r\nready\r\n" + received), esp
