"""Fixtures for the espatd integration suite.

  espatd   factory: espatd(*extra_args, mode=..., profile=..., join_ms=...,
           boot_ms=..., state=True, connect=True) starts a daemon on a pty in
           its own tmp dir and returns a Daemon (espat.py); d.client is the
           open pyserial client, d.restart() restarts it on the same state
           dir. Every daemon still running at teardown gets SIGTERM and must
           exit 0 with no sanitizer report on stderr (and, under
           ESPATD_WRAPPER=valgrind, a clean memcheck log).
  dut      one default daemon (esp32 profile, lab-mode Wi-Fi), whole writes.
  c        dut.client
  frag     parametrizes a test over the write fragmentation modes.
"""

import os
import sys
import zlib

import pytest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import espat  # noqa: E402


def pytest_report_header(config):
    how = ""
    if espat.WRAPPER:
        how = " under %s (timeouts x%g)" % (
            "valgrind memcheck" if espat.VALGRIND else espat.WRAPPER, espat.SCALE)
    elif espat.SANITIZED:
        how = " (sanitized: timeouts x%g)" % espat.SCALE
    return "espatd binary: %s%s" % (espat.espatd_bin(), how)


def pytest_sessionstart(session):
    path = espat.espatd_bin()
    if not os.access(path, os.X_OK):
        raise pytest.UsageError("espatd binary %s not found: build it first "
                                "(cmake -S . -B build && cmake --build build) or set ESPATD_BIN"
                                % path)


@pytest.hookimpl(hookwrapper=True, tryfirst=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    rep = outcome.get_result()
    setattr(item, "rep_" + rep.when, rep)


@pytest.fixture
def espatd(tmp_path, request):
    made = []
    seed = zlib.crc32(request.node.nodeid.encode())

    def factory(*extra, mode="whole", profile=None, state=True, connect=True,
                join_ms=espat.JOIN_MS, boot_ms=espat.BOOT_MS, name=None, netns=None):
        args = list(extra)
        if profile:
            args = ["--profile", profile] + args
        d = espat.Daemon(tmp_path / (name or "d%d" % len(made)), args, mode=mode,
                         seed=seed + len(made), state=state, join_ms=join_ms,
                         boot_ms=boot_ms, netns=netns)
        made.append(d)
        d.start(connect=connect)
        return d

    yield factory

    # a passing test must also leave the line silent (nothing unread, nothing
    # late); a failing one is reported as it is
    espat.stop_all(request, made)


@pytest.fixture
def dut(espatd):
    return espatd()


@pytest.fixture
def c(dut):
    return dut.client


@pytest.fixture(params=espat.MODES)
def frag(request):
    return request.param
