"""The benchmark keeps working: bench/mcu.c (the MCU and peer of the bulk
figures) checks every byte and fails on corruption, and a tiny `make bench`
run of the bulk figures completes. Speed itself is never asserted here."""

import json
import os
import socket
import subprocess

import pytest

import espat

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


@pytest.fixture(scope="module")
def mcu(tmp_path_factory):
    exe = str(tmp_path_factory.mktemp("mcu") / "mcu")
    subprocess.run([os.environ.get("CC", "cc"), "-O2", "-Wall", "-Wextra", "-Werror", "-o", exe,
                    os.path.join(REPO, "bench", "mcu.c")], check=True)
    return exe


def run_as_module(mcu, mode, total, answer, block=8192):
    """Run mcu with socketpairs standing in for the pty and the peer; the
    test plays the module: answer(serial, peer, total) talks to mcu."""
    pty_mcu, pty_mod = socket.socketpair()
    peer_mcu, peer_mod = socket.socketpair()
    p = subprocess.Popen([mcu, mode, str(pty_mcu.fileno()), str(peer_mcu.fileno()), str(total),
                          str(block)], pass_fds=(pty_mcu.fileno(), peer_mcu.fileno()),
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    pty_mcu.close()
    peer_mcu.close()
    try:
        pty_mod.settimeout(10)
        peer_mod.settimeout(10)
        answer(pty_mod, peer_mod, total)
        out, err = p.communicate(timeout=10)
    finally:
        if p.poll() is None:
            p.kill()
            p.wait()
        pty_mod.close()
        peer_mod.close()
    return p.returncode, out, err


def recv_exact(s, n):
    b = bytearray()
    while len(b) < n:
        chunk = s.recv(n - len(b))
        if not chunk:
            break
        b += chunk
    return bytes(b)


def ipd_module(corrupt_at=None, frame=1000):
    """Relays what the peer sends as +IPD frames, corrupting one byte."""
    def answer(serial, peer, total):
        data = bytearray(recv_exact(peer, total))
        assert len(data) == total and b"+" not in data
        if corrupt_at is not None:
            data[corrupt_at] ^= 0x01
        for off in range(0, total, frame):
            chunk = bytes(data[off:off + frame])
            serial.sendall(b"\r\n+IPD,0,%d:" % len(chunk) + chunk)
    return answer


def test_mcu_accepts_the_payload_in_frames(mcu):
    rc, out, err = run_as_module(mcu, "ipd", 5000, ipd_module())
    assert rc == 0, err
    res = json.loads(out)
    assert res["bytes"] == 5000 and res["frames"] == 5


def test_mcu_fails_on_one_wrong_byte(mcu):
    rc, out, err = run_as_module(mcu, "ipd", 5000, ipd_module(corrupt_at=4321))
    assert rc == 1 and "corrupted" in err, (rc, out, err)


def test_mcu_cipsend_exchange(mcu):
    """Two blocks: command, prompt, data, SEND OK, in the module's bytes."""
    def answer(serial, peer, total):
        for n in (4096, 904):
            assert recv_exact(serial, 19) == b"AT+CIPSEND=0,4096\r\n"
            serial.sendall(b"\r\nOK\r\n\r\n>")
            data = recv_exact(serial, n)
            peer.sendall(data)
            serial.sendall(b"\r\nRecv %d bytes\r\n\r\nSEND OK\r\n" % n)
    rc, out, err = run_as_module(mcu, "cipsend", 5000, answer, block=4096)
    assert rc == 0, err


def test_mcu_reports_error(mcu):
    def answer(serial, peer, total):
        recv_exact(serial, 19)
        serial.sendall(b"\r\nERROR\r\n")
    rc, out, err = run_as_module(mcu, "cipsend", 5000, answer, block=4096)
    assert rc == 1 and "ERROR" in err


@pytest.mark.skipif(bool(espat.WRAPPER) or espat.SANITIZED,
                    reason="the bench measures the plain build; its errors would not be seen")
def test_bench_bulk_figures_run(tmp_path):
    out = tmp_path / "bench.json"
    p = subprocess.run(["/usr/bin/python3", os.path.join(REPO, "bench", "bench.py"),
                        "--bin", espat.espatd_bin(), "--json", str(out), "--size", "1",
                        "--repeat", "1", "--only", "1,2,3", "--pin", "none", "--awake", "off"],
                       capture_output=True, text=True, timeout=120)
    assert p.returncode == 0, p.stderr
    doc = json.loads(out.read_text())
    assert not doc["failures"]
    rows = [r for r in doc["results"] if r.get("ratio") is not None]
    assert len(rows) == 6, doc["results"]
    assert all(r["value"] > 0 for r in rows)
