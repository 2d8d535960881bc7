"""Helpers for the espatd integration tests: start the daemon, talk to it over
its pty (or TCP / stdio), compare transcripts byte for byte.

Only the standard library and pyserial are used.

Environment:
  ESPATD_BIN        path of the espatd binary (default: <repo>/build/espatd)
  ESPATD_SANITIZED  "1" when the binary is an ASan/UBSan build: every timeout
                    and quiet period is stretched.
  ESPATD_WRAPPER    run every espatd under this command. "valgrind" means
                    memcheck with full leak checking, one log per process
                    (<workdir>/valgrind-<pid>.log), checked when the daemon
                    stops: any error or definitely/indirectly/possibly lost
                    block fails the test. Timeouts are stretched more than
                    for a sanitized build. Anything else is a command line
                    (split like a shell would) put in front of espatd as is.
"""

import os
import glob
import random
import re
import shlex
import signal
import socket
import subprocess
import time

import serial

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

SANITIZED = os.environ.get("ESPATD_SANITIZED", "") not in ("", "0")
WRAPPER = os.environ.get("ESPATD_WRAPPER", "").strip()
#: espatd runs under valgrind memcheck (ESPATD_WRAPPER=valgrind)
VALGRIND = WRAPPER == "valgrind"
#: multiply every time limit by this. Under valgrind the daemon's CPU work is
#: 20-50 times slower, but it mostly waits on sockets and timers; its start
#: (loading and instrumenting OpenSSL, curl, c-ares) and the leak check at
#: exit take seconds.
SCALE = 10.0 if VALGRIND else 4.0 if SANITIZED else 1.0
#: how long "nothing more arrives" is observed after an expected reply. The
#: daemon is single-threaded and writes a whole reply in one loop iteration,
#: so a short period catches extra bytes; late asynchronous extras are caught
#: by the next exchange (nothing may be pending when a command is sent) and by
#: FINAL_QUIET when the test ends.
QUIET = 0.01 * (4.0 if SANITIZED or VALGRIND else 1.0)
FINAL_QUIET = 0.02 * SCALE
#: default time limit for an expected reply
TIMEOUT = 3.0 * SCALE

#: the daemon options every pty test uses (short timings keep the suite fast)
JOIN_MS = 100
BOOT_MS = 50

SANITIZER_MARKERS = ("AddressSanitizer", "LeakSanitizer", "runtime error",
                     "UndefinedBehaviorSanitizer")

MODES = ("whole", "bytes", "random")

FINAL_RE = re.compile(rb"\r\n(?:OK|ERROR|busy p\.\.\.|SEND OK|SEND FAIL)\r\n")


def espatd_bin():
    path = os.environ.get("ESPATD_BIN")
    if not path:
        path = os.path.join(REPO, "build", "espatd")
    return path


#: valgrind memcheck in front of espatd; %p in the log name is the pid
VALGRIND_ARGS = ("valgrind", "--tool=memcheck", "--leak-check=full",
                 "--show-leak-kinds=definite,indirect,possible",
                 "--errors-for-leak-kinds=definite,indirect,possible",
                 "--error-exitcode=99", "--track-fds=no", "--num-callers=30")
VALGRIND_SUPP = os.path.join(REPO, "tests", "valgrind.supp")


def wrapper_argv(logdir):
    """What goes in front of espatd's path (ESPATD_WRAPPER); [] without a
    wrapper. valgrind, like ip netns exec and setpriv, execs in place: the
    pid it starts with is espatd's, and signals reach espatd."""
    if not WRAPPER:
        return []
    if not VALGRIND:
        return shlex.split(WRAPPER)
    argv = list(VALGRIND_ARGS)
    if os.path.exists(VALGRIND_SUPP):
        argv.append("--suppressions=" + VALGRIND_SUPP)
    return argv + ["--log-file=" + os.path.join(str(logdir), "valgrind-%p.log")]


def command(args, logdir):
    """argv of an espatd with these arguments, under ESPATD_WRAPPER; valgrind
    logs go to logdir (check them with check_wrapper_logs(logdir))."""
    return wrapper_argv(logdir) + [espatd_bin()] + list(args)


_LOST_RE = re.compile(r"(definitely|indirectly|possibly) lost: ([\d,]+) bytes in ([\d,]+) blocks")
_ERRORS_RE = re.compile(r"ERROR SUMMARY: ([\d,]+) errors")


def valgrind_problem(text):
    """None if a finished memcheck log is clean, else why it is not."""
    m = _ERRORS_RE.search(text)
    if not m:
        return "no ERROR SUMMARY (valgrind did not finish: killed?)"
    if m.group(1) != "0":
        return "ERROR SUMMARY: %s errors" % m.group(1)
    for kind, nbytes, blocks in _LOST_RE.findall(text):
        if nbytes != "0" or blocks != "0":
            return "%s lost: %s bytes in %s blocks" % (kind, nbytes, blocks)
    return None


def check_wrapper_logs(logdir, seen=None):
    """Under valgrind: every log in logdir not in `seen` (a set, updated)
    must be clean; fails with the log text otherwise."""
    if not VALGRIND:
        return
    seen = set() if seen is None else seen
    problems = []
    for path in sorted(glob.glob(os.path.join(str(logdir), "valgrind-*.log"))):
        if path in seen:
            continue
        seen.add(path)
        with open(path, "rb") as f:
            text = f.read().decode("utf-8", "replace")
        why = valgrind_problem(text)
        if why:
            problems.append("valgrind: %s in %s:\n%s" % (why, path, text))
    assert not problems, "\n\n".join(problems)


def check_stderr(text, what="espatd"):
    for marker in SANITIZER_MARKERS:
        assert marker not in text, "%s reported a sanitizer error:\n%s" % (what, text)


def ok(cmd, echo=False):
    """The transcript of a command that only answers OK."""
    return (cmd if echo else b"") + b"\r\nOK\r\n"


def err(cmd, echo=False):
    return (cmd if echo else b"") + b"\r\nERROR\r\n"


class Link:
    """Byte I/O with exact-transcript assertions. Subclasses provide
    _raw_write(bytes) and _raw_read(max_wait) -> bytes."""

    def __init__(self, mode="whole", seed=0):
        assert mode in MODES, mode
        self.mode = mode
        self.rng = random.Random(seed)
        self.pending = b""  # read but not yet consumed

    # ---- writing -------------------------------------------------------
    def write(self, data, mode=None):
        """Write data the way the chosen mode fragments it:
        whole   one write;
        bytes   one byte per write with a tiny pause;
        random  cut at random places, with tiny pauses."""
        mode = mode or self.mode
        if mode == "whole" or len(data) <= 1:
            self._raw_write(data)
        elif mode == "bytes":
            for i in range(len(data)):
                self._raw_write(data[i:i + 1])
                time.sleep(0.0005)
        elif mode == "random":
            i = 0
            while i < len(data):
                n = self.rng.randint(1, max(1, len(data) - i))
                if self.rng.random() < 0.5:
                    n = min(n, self.rng.randint(1, 4))
                self._raw_write(data[i:i + n])
                i += n
                if i < len(data):
                    time.sleep(self.rng.choice((0.0005, 0.002, 0.005)))
        else:
            raise ValueError(mode)

    # ---- reading -------------------------------------------------------
    def _fill(self, deadline):
        """Read what is available (waiting until deadline for at least one
        byte); returns the number of new bytes."""
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            return 0
        data = self._raw_read(min(remaining, 0.05))
        self.pending += data
        return len(data)

    def read_for(self, seconds):
        """Everything that arrives within `seconds` (plus what is pending)."""
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            self._fill(deadline)
        out, self.pending = self.pending, b""
        return out

    def drain(self, quiet=None):
        """Read until the line has been silent for `quiet` seconds."""
        quiet = QUIET if quiet is None else quiet
        out = b""
        while True:
            got = self.read_for(quiet)
            if not got:
                return out
            out += got

    def expect(self, expected, timeout=None, quiet=None):
        """Read exactly `expected`; fail at the first differing byte, on
        timeout, or if anything more arrives within the quiet period
        (quiet=0 skips that check)."""
        timeout = TIMEOUT if timeout is None else timeout
        deadline = time.monotonic() + timeout
        while len(self.pending) < len(expected):
            n = len(self.pending)
            if self.pending != expected[:n]:
                break  # already differs: stop waiting
            if time.monotonic() >= deadline:
                break
            self._fill(deadline)
        got = self.pending[:len(expected)]
        if got != expected:
            # collect a little more context for the message
            got = self.drain(0.1)  # drain() starts with what is pending
            self.pending = b""
            if got != expected:
                e = AssertionError("transcript differs (timeout %.1fs):\n  expected %r\n"
                                   "  received %r" % (timeout, expected, got))
                e.got = got
                raise e
        self.pending = self.pending[len(expected):]
        if quiet != 0:
            self.assert_quiet(quiet)
        return got

    def expect_any(self, alternatives, timeout=None, quiet=None):
        """Read exactly one of several acceptable transcripts; returns it."""
        timeout = TIMEOUT if timeout is None else timeout
        deadline = time.monotonic() + timeout
        while True:
            full = [a for a in alternatives if self.pending.startswith(a)]
            growing = [a for a in alternatives
                       if len(a) > len(self.pending) and a.startswith(self.pending)]
            timed_out = time.monotonic() >= deadline
            if full and growing and not timed_out:
                # one alternative is a prefix of another: the longer one
                # wins only if its bytes come within the quiet period
                before = len(self.pending)
                self.pending = self.read_for(QUIET)
                if len(self.pending) > before:
                    continue
                timed_out = True
            if full and (not growing or timed_out):
                a = max(full, key=len)
                self.pending = self.pending[len(a):]
                if quiet != 0:
                    self.assert_quiet(quiet)
                return a
            if not growing or timed_out:
                break
            self._fill(deadline)
        got = self.drain(0.1)  # drain() starts with what is pending
        self.pending = b""
        raise AssertionError("none of the expected transcripts (timeout %.1fs):\n"
                             "  got      %r\n%s" % (timeout, got, "\n".join(
                                 "  expected %r" % a for a in alternatives)))

    def assert_quiet(self, quiet=None):
        quiet = QUIET if quiet is None else quiet
        extra = self.pending + self.read_for(quiet)
        if extra:
            e = AssertionError("unexpected extra bytes after the reply: %r" % extra)
            e.got = extra
            raise e

    def read_until(self, pattern, timeout=None):
        """Read up to and including the first match of `pattern` (bytes or a
        compiled regex); the rest stays pending. Returns the bytes."""
        timeout = TIMEOUT if timeout is None else timeout
        deadline = time.monotonic() + timeout
        if isinstance(pattern, bytes):
            pattern = re.compile(re.escape(pattern))
        while True:
            m = pattern.search(self.pending)
            if m:
                out = self.pending[:m.end()]
                self.pending = self.pending[m.end():]
                return out
            if time.monotonic() >= deadline:
                got, self.pending = self.pending, b""
                raise AssertionError("timeout waiting for %r; got %r" % (pattern.pattern, got))
            self._fill(deadline)

    def read_result(self, timeout=None):
        """Read up to and including the first final result (OK, ERROR,
        busy p...)."""
        return self.read_until(FINAL_RE, timeout)

    # ---- exchanges -----------------------------------------------------
    def assert_nothing_pending(self, before):
        """Nothing unread may be waiting when a new command goes out."""
        self.pending += self._raw_read(0)
        if self.pending:
            extra, self.pending = self.pending, b""
            e = AssertionError("unexpected bytes before %r was sent: %r" % (before, extra))
            e.got = extra
            raise e

    def transact(self, cmd, expected, mode=None, timeout=None, quiet=None):
        """Send cmd (fragmented per mode) and require exactly `expected`."""
        self.assert_nothing_pending(cmd)
        self.write(cmd, mode)
        return self.expect(expected, timeout=timeout, quiet=quiet)

    def check(self, cmd, expected, failures, mode=None, timeout=None):
        """Like transact, but a mismatch is appended to `failures` (a list)
        instead of raising, so one test can report every case that differs."""
        try:
            self.transact(cmd, expected, mode=mode, timeout=timeout)
        except AssertionError as e:
            self.pending = b""
            self.drain()
            failures.append("%r -> %s" % (cmd, e))

    def check_all(self, cmds, expected=b"\r\nERROR\r\n"):
        """Every command must answer exactly `expected` (ERROR by default);
        fails once, listing every command that did not."""
        failures = []
        for cmd in cmds:
            self.check(cmd, expected, failures)
        assert not failures, "\n".join(failures)

    def cmd(self, cmd, mode=None, timeout=None):
        """Send cmd and return everything up to its final result (the quiet
        period is checked too). For set-up steps whose text is tested
        elsewhere."""
        self.assert_nothing_pending(cmd)
        self.write(cmd, mode)
        out = self.read_result(timeout)
        self.assert_quiet()
        return out

    def must_ok(self, cmd, timeout=None):
        out = self.cmd(cmd, timeout=timeout)
        assert out.endswith(b"\r\nOK\r\n"), "%r answered %r" % (cmd, out)
        return out

    def echo_off(self):
        """ATE0 with exact bytes (echo state unknown: on after boot)."""
        self.write(b"ATE0\r\n", "whole")
        self.expect_any([b"ATE0\r\n\r\nOK\r\n", b"\r\nOK\r\n"])

    def close(self):
        pass


class PtyClient(Link):
    def __init__(self, path, mode="whole", seed=0):
        super().__init__(mode, seed)
        self.path = path
        self.ser = serial.Serial(path, baudrate=115200, timeout=0.05, write_timeout=5 * SCALE,
                                 exclusive=False)

    def _raw_write(self, data):
        self.ser.write(data)
        self.ser.flush()

    def _raw_read(self, max_wait):
        n = self.ser.in_waiting
        if n == 0 and max_wait <= 0:
            return b""
        self.ser.timeout = max_wait
        return self.ser.read(n if n else 1)

    def close(self):
        if self.ser.is_open:
            self.ser.close()


class SocketClient(Link):
    def __init__(self, sock, mode="whole", seed=0):
        super().__init__(mode, seed)
        self.sock = sock
        self.eof = False

    def _raw_write(self, data):
        self.sock.sendall(data)

    def _raw_read(self, max_wait):
        if self.eof:
            time.sleep(max_wait)
            return b""
        self.sock.settimeout(max_wait if max_wait > 0 else 0.0)
        try:
            data = self.sock.recv(65536)
        except (socket.timeout, BlockingIOError):
            return b""
        if not data:
            self.eof = True
        return data

    def close(self):
        self.sock.close()


class Daemon:
    """One espatd on a pty in `workdir`; restartable on the same state dir."""

    def __init__(self, workdir, extra=(), mode="whole", seed=0, state=True,
                 join_ms=JOIN_MS, boot_ms=BOOT_MS, netns=None):
        self.workdir = str(workdir)
        os.makedirs(self.workdir, exist_ok=True)
        self.tty = os.path.join(self.workdir, "tty")
        self.state_dir = os.path.join(self.workdir, "state")
        self.extra = list(extra)
        self.mode = mode
        self.seed = seed
        self.state = state
        self.join_ms = join_ms
        self.boot_ms = boot_ms
        self.netns = netns  # run inside this network namespace
        self.proc = None
        self.client = None
        self.starts = 0
        self.log_path = None
        self.checked_logs = set()  # valgrind logs already checked

    def argv(self, extra=None):
        extra = self.extra if extra is None else list(extra)
        argv = command(["--pty", self.tty], self.workdir)
        if self.netns:
            # ip execs the daemon in place: the pid and SIGTERM stay the same
            argv = ["ip", "netns", "exec", self.netns] + argv
        argv += ["--state-dir", self.state_dir] if self.state else ["--no-state"]
        argv += ["--join-time", str(self.join_ms), "--boot-time", str(self.boot_ms)]
        return argv + extra

    def start(self, extra=None, connect=True, wait_ready=True):
        """Start the process; with connect, open the pty and return the client.
        wait_ready waits until the power-up "ready" has gone out (to nobody),
        so the client starts on a silent line."""
        assert self.proc is None, "already running"
        if extra is not None:
            self.extra = list(extra)
        self.starts += 1
        self.log_path = os.path.join(self.workdir, "espatd-%d.log" % self.starts)
        log = open(self.log_path, "wb")
        self.proc = subprocess.Popen(self.argv(), stdin=subprocess.DEVNULL,
                                     stdout=subprocess.DEVNULL, stderr=log)
        log.close()
        deadline = time.monotonic() + 5 * SCALE
        while not os.path.exists(self.tty):
            if self.proc.poll() is not None:
                raise AssertionError("espatd exited with %s at start:\n%s" % (
                    self.proc.returncode, self.log()))
            assert time.monotonic() < deadline, "no pty symlink:\n" + self.log()
            time.sleep(0.002)
        seen = False
        if wait_ready and "--log-level" not in self.extra:
            deadline = time.monotonic() + 1 * SCALE
            while not seen and time.monotonic() < deadline:
                seen = "module ready" in self.log()
                if not seen:
                    time.sleep(0.002)
        if not connect:
            return None
        client = self.connect()
        if wait_ready and not seen:
            # no log line to go by: the power-up "ready" may reach the new
            # client; take it off the line so tests start on silence
            client.pending = client.read_for(0.05 * SCALE)
            if client.pending.startswith(b"\r\nready\r\n"):
                client.pending = client.pending[len(b"\r\nready\r\n"):]
        return client

    def connect(self, mode=None):
        self.client = PtyClient(self.tty, mode or self.mode, self.seed + self.starts)
        return self.client

    def log(self):
        if not self.log_path or not os.path.exists(self.log_path):
            return ""
        with open(self.log_path, "rb") as f:
            return f.read().decode("utf-8", "replace")

    def running(self):
        return self.proc is not None and self.proc.poll() is None

    def stop(self, check=True, quiet_check=False):
        """SIGTERM; require exit status 0 and a clean stderr. quiet_check:
        first require that the client has nothing unread and that nothing
        more arrives for FINAL_QUIET."""
        late = b""
        if self.client:
            if quiet_check and self.proc is not None and self.proc.poll() is None:
                late = self.client.pending + self.client.read_for(FINAL_QUIET)
            self.client.close()
            self.client = None
        if self.proc is None:
            return
        proc, self.proc = self.proc, None
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
        try:
            rc = proc.wait(timeout=5 * SCALE)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
            raise AssertionError("espatd did not stop on SIGTERM:\n" + self.log())
        if check:
            text = self.log()
            check_stderr(text)
            check_wrapper_logs(self.workdir, self.checked_logs)
            assert rc == 0, "espatd exited with %s:\n%s" % (rc, text)
        assert late == b"", "unread bytes at the end of the test: %r" % late
        # the old symlink is gone once the process has exited
        deadline = time.monotonic() + 2 * SCALE
        while os.path.lexists(self.tty) and time.monotonic() < deadline:
            time.sleep(0.002)

    def restart(self, extra=None, connect=True):
        """SIGTERM and start again on the same state directory."""
        self.stop()
        return self.start(extra=extra, connect=connect)


def stop_all(request, daemons):
    """Fixture teardown: stop every daemon; after a passing test each must
    also leave its line silent (nothing unread, nothing late). All are
    stopped before the problems are reported together."""
    rep = getattr(request.node, "rep_call", None)
    passed = rep is not None and rep.passed
    problems = []
    for d in daemons:
        try:
            d.stop(quiet_check=passed)
        except AssertionError as e:
            problems.append(str(e))
    assert not problems, "\n\n".join(problems)


def free_tcp_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


# ---- host network facts (what AT+CIPSTA? reports after a join) ----------

def _hex_le_ip(h):
    v = int(h, 16)
    return "%d.%d.%d.%d" % (v & 0xff, (v >> 8) & 0xff, (v >> 16) & 0xff, (v >> 24) & 0xff)


def host_default_route():
    """(interface, gateway) of the IPv4 default route, or None."""
    try:
        with open("/proc/net/route") as f:
            lines = f.read().splitlines()[1:]
    except OSError:
        return None
    for line in lines:
        f = line.split()
        if len(f) >= 4 and f[1] == "00000000" and int(f[3], 16) & 1:
            return f[0], _hex_le_ip(f[2])
    return None


def host_ipv4(ifname):
    """(address, netmask) of the first IPv4 address of ifname via `ip`, or None."""
    try:
        out = subprocess.run(["ip", "-4", "-o", "addr", "show", "dev", ifname],
                             capture_output=True, text=True, timeout=5).stdout
    except (OSError, subprocess.SubprocessError):
        return None
    m = re.search(r"inet (\d+\.\d+\.\d+\.\d+)/(\d+)", out)
    if not m:
        return None
    bits = int(m.group(2))
    mask = (0xffffffff << (32 - bits)) & 0xffffffff if bits else 0
    return m.group(1), "%d.%d.%d.%d" % (mask >> 24, (mask >> 16) & 0xff, (mask >> 8) & 0xff,
                                        mask & 0xff)


def host_mac(ifname):
    try:
        with open("/sys/class/net/%s/address" % ifname) as f:
            mac = f.read().strip().lower()
    except OSError:
        return None
    return None if mac == "00:00:00:00:00:00" else mac


class PipeClient(Link):
    """espatd --stdio: write its stdin, read its stdout."""

    def __init__(self, proc, mode="whole", seed=0):
        super().__init__(mode, seed)
        self.proc = proc
        os.set_blocking(proc.stdout.fileno(), False)
        self.eof = False

    def _raw_write(self, data):
        self.proc.stdin.write(data)
        self.proc.stdin.flush()

    def _raw_read(self, max_wait):
        import select
        if self.eof:
            if max_wait > 0:
                time.sleep(max_wait)
            return b""
        r, _, _ = select.select([self.proc.stdout], [], [], max(0.0, max_wait))
        if not r:
            return b""
        data = os.read(self.proc.stdout.fileno(), 65536)
        if not data:
            self.eof = True
        return data

    def close_input(self):
        self.proc.stdin.close()

    def close(self):
        if not self.proc.stdin.closed:
            self.proc.stdin.close()
