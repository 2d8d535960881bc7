#!/usr/bin/python3
"""espatd benchmark (`make bench`): every figure beside a baseline measured in
the same run on the same machine.

Baselines
  throughput  socat bridging a pty to the same loopback TCP peer, driven by
              the same code with the same sizes (socat's defaults: 8 KiB
              blocks);
  latency     bench/at_responder.c, the least a program can do to answer
              "AT\\r\\n" with "\\r\\nOK\\r\\n" on a pty (compiled at run time).

Figures (docs/performance.md explains each one and how to reproduce it)
  1  passthrough, serial -> network and network -> serial
  2  normal-mode upload: AT+CIPSEND of 8192-byte blocks, AT+CIPSENDL
  3  download: active (+IPD) and passive (AT+CIPRECVDATA of 8192)
  4  five links at once, both directions: aggregate and fairness
  5  AT -> OK latency, p50 and p99 over 20,000 round trips
  6  link set-up and tear-down rate (AT+CIPSTART + AT+CIPCLOSE)
  7  resources: RSS idle and with 5 busy links, CPU per GiB, idle CPU
  P  --pace: paced throughput against baud/10 at 115200 and 921600

The harness sets every transfer up in Python (start the program, join, open
the link, accept the peer's socket); the timed part of the bulk figures 1-3
is bench/mcu.c, a C program that plays the MCU on the pty and the peer on the
socket (compiled at run time, like the responder). Figures 4-7 and P are
driven by the harness's own poll() loop. Only the standard library is used;
run it with /usr/bin/python3.

Usage: bench.py [--bin PATH] [--json FILE] [--size MIB] [--repeat N]
                [--only LIST] [--pin same|split|none] [--awake on|off]
                [--pty-worker same|any] [--driver c|python] [--quick]
The binary defaults to $ESPATD_BIN, then build/espatd.
"""

import argparse
import atexit
import datetime
import json
import os
import platform
import select
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import tty
import zlib

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
MIB = 1 << 20
GIB = 1 << 30

# ---------------------------------------------------------------------------
# process accounting


def cpu_ns(pid):
    """CPU time (ns) of all threads of pid, from schedstat (exact, unlike the
    10 ms ticks of /proc/pid/stat)."""
    total = 0
    tasks = "/proc/%d/task" % pid
    for t in os.listdir(tasks):
        try:
            with open("%s/%s/schedstat" % (tasks, t)) as f:
                total += int(f.read().split()[0])
        except OSError:
            pass
    return total


def wakeups(pid):
    """Times the process was scheduled in (schedstat field 3)."""
    total = 0
    tasks = "/proc/%d/task" % pid
    for t in os.listdir(tasks):
        try:
            with open("%s/%s/schedstat" % (tasks, t)) as f:
                total += int(f.read().split()[2])
        except OSError:
            pass
    return total


SPIN = ("import os\n"
        "os.sched_setscheduler(0, os.SCHED_IDLE, os.sched_param(0))\n"
        "while True:\n    pass\n")


def keep_awake(cpus):
    """One busy loop per CPU under SCHED_IDLE: it runs only when nothing else
    wants the CPU and gives way at once, but the CPU never goes idle. On a VM
    whose idle CPUs halt at once (cpuidle haltpoll, guest_halt_poll_ns=0),
    waking a halted vCPU costs ~100 us, and a pty round trip (two wakeups or
    more) then costs ~200 us instead of ~30 us, for espatd and the baselines
    alike; round-trip figures (AT+CIPSEND, AT+CIPRECVDATA, latency) would
    measure the hypervisor. CPU time and wakeups are counted per process, so
    the spinners do not enter the figures."""
    procs = []
    for cpu in cpus:
        procs.append(subprocess.Popen([sys.executable, "-c", SPIN], preexec_fn=pinned(cpu)))
    return procs


def stop_spinners(procs):
    for p in procs:
        p.kill()
    for p in procs:
        p.wait()


WQ_CPUMASK = "/sys/devices/virtual/workqueue/cpumask"


def cpumask_hex(cpus):
    """A CPU set in the kernel's mask format: hex, 32 bits a group."""
    bits = sum(1 << c for c in cpus)
    groups = []
    while True:
        groups.append("%08x" % (bits & 0xFFFFFFFF))
        bits >>= 32
        if not bits:
            break
    return ",".join(reversed(groups))


def pin_pty_worker(cpu):
    """Run the kernel's unbound workqueues, and with them the pty's
    flip-buffer worker (flush_to_ldisc, queued on system_unbound_wq at every
    write to either end of a pty), on `cpu` for the rest of the run; the old
    mask is restored at exit. With --pin same the harness and the program
    share a CPU, but each pty write would still wake a worker on another
    CPU and that worker wake the reader back across CPUs: on this VM that
    hop is ~70 us of a ~95 us round trip, whoever answers. Returns None, or
    why it could not be done (needs root)."""
    try:
        with open(WQ_CPUMASK) as f:
            old = f.read().strip()
        with open(WQ_CPUMASK, "w") as f:
            f.write(cpumask_hex([cpu]))
    except OSError as e:
        return "%s: %s" % (WQ_CPUMASK, e.strerror or e)

    def restore():
        try:
            with open(WQ_CPUMASK, "w") as f:
                f.write(old)
        except OSError as e:
            print("bench: could not restore %s to %s: %s" % (WQ_CPUMASK, old, e),
                  file=sys.stderr)
    atexit.register(restore)
    return None


def cpu_steal():
    """(steal, total) jiffies of all CPUs from /proc/stat: on a VM, the time
    the hypervisor gave to others. Figures of a run with much of it are
    noise, however the baseline moved."""
    with open("/proc/stat") as f:
        fields = [int(x) for x in f.readline().split()[1:]]
    return (fields[7] if len(fields) > 7 else 0), sum(fields)


def steal_share(before, after):
    total = after[1] - before[1]
    return (after[0] - before[0]) / total if total > 0 else 0.0


def mem_kib(pid, field="VmRSS"):
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    return 0


class CpuMeter:
    """CPU time and wakeups of a process since the meter was made."""

    def __init__(self, pid):
        self.pid = pid
        self.start = cpu_ns(pid)
        self.wake0 = wakeups(pid)

    def ns(self):
        return cpu_ns(self.pid) - self.start

    def wakeups(self):
        return wakeups(self.pid) - self.wake0


# ---------------------------------------------------------------------------
# the serial side


def open_pty(path):
    fd = os.open(path, os.O_RDWR | os.O_NOCTTY | os.O_NONBLOCK)
    tty.setraw(fd)
    return fd


def wait_path(path, proc, timeout=5.0):
    deadline = time.monotonic() + timeout
    while not os.path.exists(path):
        if proc.poll() is not None:
            raise RuntimeError("%s exited with %s at start" % (proc.args[0], proc.returncode))
        if time.monotonic() > deadline:
            raise RuntimeError("no pty at %s" % path)
        time.sleep(0.002)


class Failed(Exception):
    pass


class AtStream:
    """Incremental splitter of what the module writes: +IPD frames (payload
    handed to on_data by length, never scanned), passive notices,
    +CIPRECVDATA frames, the '>' prompt and text lines."""

    def __init__(self, on_data):
        self.buf = bytearray()
        self.pos = 0
        self.on_data = on_data  # (link, memoryview)
        self.recvdata_link = 0

    def feed(self, b):
        self.buf += b

    def events(self):
        buf, pos, n, ev = self.buf, self.pos, len(self.buf), []
        mv = memoryview(buf)
        try:
            while pos < n:
                c = buf[pos]
                if c == 13 or c == 10:
                    pos += 1
                    continue
                if c == 62:  # '>'
                    ev.append((">", None))
                    pos += 1
                    continue
                if c == 43 and buf.startswith(b"+IPD,", pos):
                    colon = buf.find(b":", pos, pos + 48)
                    cr = buf.find(b"\r", pos, pos + 48)
                    if colon < 0 and cr < 0:
                        if n - pos < 48:
                            break
                        raise Failed("bad +IPD: %r" % bytes(buf[pos:pos + 48]))
                    if colon >= 0 and (cr < 0 or colon < cr):
                        f = bytes(buf[pos + 5:colon]).split(b",")
                        link, ln = (int(f[0]), int(f[1])) if len(f) >= 2 else (0, int(f[0]))
                        if n < colon + 1 + ln:
                            break
                        self.on_data(link, mv[colon + 1:colon + 1 + ln])
                        pos = colon + 1 + ln
                        ev.append(("ipd", (link, ln)))
                    else:
                        f = bytes(buf[pos + 5:cr]).split(b",")
                        link, ln = (int(f[0]), int(f[1])) if len(f) >= 2 else (0, int(f[0]))
                        pos = cr
                        ev.append(("notice", (link, ln)))
                    continue
                if c == 43 and buf.startswith(b"+CIPRECVDATA:", pos):
                    comma = buf.find(b",", pos, pos + 32)
                    if comma < 0:
                        if n - pos < 32:
                            break
                        raise Failed("bad +CIPRECVDATA")
                    ln = int(buf[pos + 13:comma])
                    if n < comma + 1 + ln:
                        break
                    self.on_data(self.recvdata_link, mv[comma + 1:comma + 1 + ln])
                    pos = comma + 1 + ln
                    ev.append(("recvdata", (self.recvdata_link, ln)))
                    continue
                e = buf.find(b"\r\n", pos)
                if e < 0:
                    break
                ev.append(("line", bytes(buf[pos:e])))
                pos = e + 2
        finally:
            mv.release()
        if pos > MIB or pos == n:
            del buf[:pos]
            pos = 0
        self.pos = pos
        return ev


class Conn:
    """One peer-side TCP connection: sends `src` (memoryview) once started,
    counts and checksums what arrives."""

    def __init__(self, sock):
        sock.setblocking(False)
        self.sock = sock
        self.fd = sock.fileno()
        self.src = None
        self.off = 0
        self.limit = 0
        self.got = 0
        self.crc = 0
        self.check = True

    def send_from(self, src, limit=None):
        self.src = src
        self.off = 0
        self.limit = len(src) if limit is None else limit

    def sending(self):
        return self.src is not None and self.off < self.limit


class Driver:
    """poll() over the pty and the peer connections. The pty's output (what
    the harness sends as the MCU) is a queue of memoryviews."""

    def __init__(self, ptyfd, on_data=None):
        self.fd = ptyfd
        self.out = []
        self.out_off = 0
        self.conns = []
        self.raw = on_data is None
        self.stream = AtStream(on_data) if on_data else None
        self.raw_got = 0
        self.raw_crc = 0
        self.check_raw = True
        self.rbuf = bytearray(1 << 18)
        self.rbuf_mv = memoryview(self.rbuf)
        self.first_rx = None
        self.last_rx = None
        self.po = select.poll()
        self.masks = {}

    def add(self, conn):
        self.conns.append(conn)
        return conn

    def write(self, data):
        """Queue data and write what the pty takes now: a reply to a prompt
        leaves at once, as an MCU's would, not one poll() round later."""
        self.out.append(memoryview(data))
        self._flush_pty()

    def pending_out(self):
        return bool(self.out)

    def _flush_pty(self):
        while self.out:
            head = self.out[0]
            try:
                k = os.write(self.fd, head[self.out_off:self.out_off + 65536])
            except BlockingIOError:
                return
            self.out_off += k
            if self.out_off >= len(head):
                self.out.pop(0)
                self.out_off = 0

    def _want(self, fd, mask):
        if self.masks.get(fd) != mask:
            self.po.register(fd, mask)  # (re-)registering updates the mask
            self.masks[fd] = mask

    def step(self, timeout=1.0):
        # one poll object for the driver's life: a round trip of the
        # harness costs one poll(), not a new object and a register per fd
        self._want(self.fd, select.POLLIN | (select.POLLOUT if self.out else 0))
        for c in self.conns:
            self._want(c.fd, select.POLLIN | (select.POLLOUT if c.sending() else 0))
        events = []
        for fd, ev in self.po.poll(timeout * 1000):
            if fd == self.fd:
                if ev & select.POLLOUT:
                    self._flush_pty()
                if ev & (select.POLLIN | select.POLLHUP | select.POLLERR):
                    try:
                        data = os.read(self.fd, 65536)
                    except BlockingIOError:
                        data = b""
                    if data:
                        now = time.perf_counter()
                        if self.first_rx is None:
                            self.first_rx = (now, len(data))
                        self.last_rx = now
                        if self.raw:
                            self.raw_got += len(data)
                            if self.check_raw:
                                self.raw_crc = zlib.crc32(data, self.raw_crc)
                        else:
                            self.stream.feed(data)
                            events += self.stream.events()
                continue
            for c in self.conns:
                if c.fd != fd:
                    continue
                if ev & select.POLLOUT and c.sending():
                    try:
                        c.off += c.sock.send(c.src[c.off:min(c.limit, c.off + 262144)])
                    except BlockingIOError:
                        pass
                if ev & (select.POLLIN | select.POLLHUP | select.POLLERR):
                    try:
                        k = c.sock.recv_into(self.rbuf)
                    except BlockingIOError:
                        k = 0
                    except ConnectionResetError:
                        k = 0
                    c.got += k
                    if k and c.check:
                        c.crc = zlib.crc32(self.rbuf_mv[:k], c.crc)
        if self.out:
            self._flush_pty()
        return events

    # synchronous helpers for set-up (not timed)
    def command(self, cmd, until=(b"OK",), timeout=10.0):
        """Send a command line; return the events up to a line in `until`
        (or '>' if '>' is in until). ERROR raises."""
        self.write(cmd + b"\r\n")
        got = []
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for kind, val in self.step(0.2):
                got.append((kind, val))
                if kind == "line" and val in until:
                    return got
                if kind == ">" and b">" in until:
                    return got
                if kind == "line" and val in (b"ERROR", b"SEND FAIL", b"busy p..."):
                    raise Failed("%r answered %r (after %r)" % (cmd, val, got))
        raise Failed("%r: no %r within %.0f s (got %r)" % (cmd, until, timeout, got[-5:]))


class Peer:
    """The loopback TCP server every link and socat connect to."""

    def __init__(self):
        self.lsock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.lsock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.lsock.bind(("127.0.0.1", 0))
        self.lsock.listen(128)
        self.port = self.lsock.getsockname()[1]

    def accept(self, timeout=5.0):
        self.lsock.settimeout(timeout)
        s, _ = self.lsock.accept()
        return s

    def close(self):
        self.lsock.close()


# ---------------------------------------------------------------------------
# the programs under test


def pinned(cpu):
    """preexec_fn that pins a child to one CPU (None: no pinning)."""
    if cpu is None:
        return None
    return lambda: os.sched_setaffinity(0, {cpu})


class Program:
    proc = None
    fd = None

    def stop(self):
        if self.fd is not None:
            os.close(self.fd)
            self.fd = None
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.proc = None

    @property
    def pid(self):
        return self.proc.pid


class Espatd(Program):
    def __init__(self, cfg, extra=()):
        self.tty = os.path.join(cfg.work, "espatd-tty")
        if os.path.lexists(self.tty):
            os.unlink(self.tty)
        self.log = os.path.join(cfg.work, "espatd.log")
        argv = [cfg.bin, "--pty", self.tty, "--no-state", "--boot-time", "0",
                "--join-time", "0", "--log-level", "warn"] + list(extra)
        with open(self.log, "ab") as log:
            self.proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL,
                                         stdout=subprocess.DEVNULL, stderr=log,
                                         preexec_fn=pinned(cfg.prog_cpu))
        wait_path(self.tty, self.proc)
        self.fd = open_pty(self.tty)
        self.drv = Driver(self.fd, self._sink)
        self.sinks = {}
        # the power-up "ready" may or may not reach us: sync on ATE0's OK
        time.sleep(0.05)
        self.drv.command(b"ATE0")
        self.drv.step(0.02)

    def _sink(self, link, mv):
        s = self.sinks.get(link)
        if s is not None:
            s(mv)

    def join(self):
        self.drv.command(b"AT+CWMODE=1")
        self.drv.command(b'AT+CWJAP="bench","benchpass"', timeout=10)


class Socat(Program):
    def __init__(self, cfg, port):
        self.tty = os.path.join(cfg.work, "socat-tty")
        if os.path.lexists(self.tty):
            os.unlink(self.tty)
        argv = ["socat", "PTY,link=%s,raw,echo=0,wait-slave" % self.tty,
                "TCP:127.0.0.1:%d" % port]
        self.proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL,
                                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                                     preexec_fn=pinned(cfg.prog_cpu))
        wait_path(self.tty, self.proc)
        self.fd = open_pty(self.tty)


class Responder(Program):
    def __init__(self, cfg):
        self.tty = os.path.join(cfg.work, "responder-tty")
        if os.path.lexists(self.tty):
            os.unlink(self.tty)
        self.proc = subprocess.Popen([cfg.responder, self.tty], stdin=subprocess.DEVNULL,
                                     preexec_fn=pinned(cfg.prog_cpu))
        wait_path(self.tty, self.proc)
        self.fd = open_pty(self.tty)


# ---------------------------------------------------------------------------
# measurements


def payload(cfg):
    """Pseudo-random bytes, no '+' (so no passthrough exit can ever form)."""
    if cfg.data is None:
        block = os.urandom(MIB).replace(b"+", b"-")
        cfg.data = block * (cfg.size // MIB)
        cfg.crc = zlib.crc32(cfg.data)
    return cfg.data


def mcu_transfer(cfg, mode, prog, conn, total, block=8192, timeout=300):
    """Run one timed transfer with bench/mcu.c as the MCU (on the program's
    pty) and the peer (on conn's socket). Returns dict(seconds, bytes,
    cpu_ns, wakeups, frames, reads, reports)."""
    cpu = CpuMeter(prog.pid)
    try:
        p = subprocess.run([cfg.mcu, mode, str(prog.fd), str(conn.fd), str(total), str(block)],
                           pass_fds=(prog.fd, conn.fd), stdin=subprocess.DEVNULL,
                           capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        raise Failed("%s: no result within %d s" % (mode, timeout))
    if p.returncode != 0:
        raise Failed(p.stderr.strip() or "mcu %s exited with %d" % (mode, p.returncode))
    res = json.loads(p.stdout)
    res["cpu_ns"], res["wakeups"] = cpu.ns(), cpu.wakeups()
    return res


def raw_transfer(cfg, drv, conn, direction, data, prog, timeout=120):
    """Move `data` raw through a bridge (socat, espatd passthrough) in one
    direction. Returns dict(seconds, bytes, cpu_ns)."""
    if cfg.driver == "c":
        return mcu_transfer(cfg, direction, prog, conn, len(data))
    prog_pid = prog.pid
    total = len(data)
    src = memoryview(data)
    cpu = CpuMeter(prog_pid)
    drv.raw_got, drv.raw_crc = 0, 0
    conn.got, conn.crc = 0, 0
    t0 = time.perf_counter()
    if direction == "up":
        drv.write(src)
    else:
        conn.send_from(src)
    deadline = time.monotonic() + timeout
    while True:
        drv.step(0.5)
        got = conn.got if direction == "up" else drv.raw_got
        if got >= total:
            break
        if time.monotonic() > deadline:
            raise Failed("%s transfer stalled at %d of %d bytes" % (direction, got, total))
    dt = time.perf_counter() - t0
    crc = conn.crc if direction == "up" else drv.raw_crc
    if got != total or crc != zlib.crc32(data):
        raise Failed("%s transfer corrupted (%d bytes)" % (direction, got))
    conn.src = None
    return {"seconds": dt, "bytes": total, "cpu_ns": cpu.ns(), "wakeups": cpu.wakeups()}


def bench_socat(cfg, peer, data, directions=("up", "down")):
    prog = Socat(cfg, peer.port)
    try:
        conn = Conn(peer.accept())
        drv = Driver(prog.fd)
        drv.add(conn)
        out = {}
        for d in directions:
            out[d] = raw_transfer(cfg, drv, conn, d, data, prog)
        return out
    finally:
        prog.stop()
        conn.sock.close()


def bench_socat_both(cfg, peer, data, seconds):
    """Both directions at once over one socat pty for `seconds`."""
    prog = Socat(cfg, peer.port)
    try:
        conn = Conn(peer.accept())
        conn.check = False
        drv = Driver(prog.fd)
        drv.check_raw = False
        drv.add(conn)
        cpu = CpuMeter(prog.pid)
        src = memoryview(data)
        conn.send_from(src)
        drv.write(src)
        t0 = time.perf_counter()
        while time.perf_counter() - t0 < seconds:
            drv.step(0.2)
        dt = time.perf_counter() - t0
        return {"seconds": dt, "up": conn.got, "down": drv.raw_got, "cpu_ns": cpu.ns(), "wakeups": cpu.wakeups()}
    finally:
        prog.stop()
        conn.sock.close()


def enter_passthrough(prog, peer):
    """Join, open the link to the peer and enter passthrough; returns the
    driver, now raw (bytes are counted, not parsed), and the peer's Conn."""
    prog.join()
    drv = prog.drv
    drv.command(b"AT+CIPMODE=1")
    drv.command(b'AT+CIPSTART="TCP","127.0.0.1",%d' % peer.port)
    conn = drv.add(Conn(peer.accept()))
    drv.command(b"AT+CIPSEND", until=(b">",))
    drv.raw = True
    return drv, conn


def bench_passthrough(cfg, peer, data):
    prog = Espatd(cfg)
    conn = None
    try:
        drv, conn = enter_passthrough(prog, peer)
        out = {}
        for d in ("up", "down"):
            out[d] = raw_transfer(cfg, drv, conn, d, data, prog)
        return out
    finally:
        prog.stop()
        if conn:
            conn.sock.close()


def start_links(prog, peer, n):
    drv = prog.drv
    prog.join()
    drv.command(b"AT+CIPMUX=1")
    conns = []
    for i in range(n):
        drv.command(b'AT+CIPSTART=%d,"TCP","127.0.0.1",%d' % (i, peer.port))
        conns.append(drv.add(Conn(peer.accept())))
    return conns


def bench_cipsend(cfg, peer, data, block=8192, timeout=120):
    """AT+CIPSEND=0,8192 + prompt + data + SEND OK, again and again."""
    prog = Espatd(cfg)
    conns = []
    try:
        conns = start_links(prog, peer, 1)
        conn, drv = conns[0], prog.drv
        if cfg.driver == "c":
            return mcu_transfer(cfg, "cipsend", prog, conn, len(data), block)
        total, src = len(data), memoryview(data)
        cpu = CpuMeter(prog.pid)
        t0 = time.perf_counter()
        off, done_ok = 0, 0
        deadline = time.monotonic() + timeout
        head = b"AT+CIPSEND=0,%d\r\n" % block
        drv.write(head)
        while conn.got < total or done_ok * block < total:
            for kind, val in drv.step(0.5):
                if kind == ">":
                    drv.write(src[off:off + block])
                    off += block
                elif kind == "line":
                    if val == b"SEND OK":
                        done_ok += 1
                        if off < total:
                            drv.write(head)
                    elif val in (b"ERROR", b"SEND FAIL", b"busy p..."):
                        raise Failed("CIPSEND: %r" % val)
            if time.monotonic() > deadline:
                raise Failed("CIPSEND stalled at %d of %d bytes" % (conn.got, total))
        dt = time.perf_counter() - t0
        if conn.crc != zlib.crc32(data):
            raise Failed("CIPSEND: data corrupted")
        return {"seconds": dt, "bytes": total, "cpu_ns": cpu.ns(), "wakeups": cpu.wakeups()}
    finally:
        prog.stop()
        for c in conns:
            c.sock.close()


def bench_cipsendl(cfg, peer, data, timeout=120):
    prog = Espatd(cfg)
    conns = []
    try:
        conns = start_links(prog, peer, 1)
        conn, drv = conns[0], prog.drv
        if cfg.driver == "c":
            return mcu_transfer(cfg, "cipsendl", prog, conn, len(data))
        total = len(data)
        cpu = CpuMeter(prog.pid)
        t0 = time.perf_counter()
        drv.write(b"AT+CIPSENDL=0,%d\r\n" % total)
        sent = False
        ok = False
        reports = 0
        deadline = time.monotonic() + timeout
        while conn.got < total or not ok:
            for kind, val in drv.step(0.5):
                if kind == ">" and not sent:
                    drv.write(memoryview(data))
                    sent = True
                elif kind == "line":
                    if val == b"SEND OK":
                        ok = True
                    elif val.startswith(b"+CIPSENDL:"):
                        reports += 1
                    elif val in (b"ERROR", b"SEND FAIL", b"busy p..."):
                        raise Failed("CIPSENDL: %r" % val)
            if time.monotonic() > deadline:
                raise Failed("CIPSENDL stalled at %d of %d bytes" % (conn.got, total))
        dt = time.perf_counter() - t0
        if conn.crc != zlib.crc32(data):
            raise Failed("CIPSENDL: data corrupted")
        return {"seconds": dt, "bytes": total, "cpu_ns": cpu.ns(), "wakeups": cpu.wakeups(), "reports": reports}
    finally:
        prog.stop()
        for c in conns:
            c.sock.close()


class Counter:
    def __init__(self):
        self.got = 0
        self.crc = 0

    def __call__(self, mv):
        self.got += len(mv)
        self.crc = zlib.crc32(mv, self.crc)


def bench_download(cfg, peer, data, passive, chunk=8192, timeout=120):
    prog = Espatd(cfg)
    conns = []
    try:
        conns = start_links(prog, peer, 1)
        conn, drv = conns[0], prog.drv
        if passive:
            drv.command(b"AT+CIPRECVTYPE=0,1")
        if cfg.driver == "c":
            return mcu_transfer(cfg, "recvdata" if passive else "ipd", prog, conn, len(data),
                                chunk)
        total = len(data)
        sink = prog.sinks[0] = Counter()
        cpu = CpuMeter(prog.pid)
        t0 = time.perf_counter()
        conn.send_from(memoryview(data))
        reads = frames = 0
        want = inflight = False
        req = b"AT+CIPRECVDATA=0,%d\r\n" % chunk
        deadline = time.monotonic() + timeout
        while sink.got < total:
            for kind, val in drv.step(0.5):
                if kind == "ipd":
                    frames += 1
                elif kind == "notice":
                    want = True
                elif kind == "recvdata":
                    reads += 1
                elif kind == "line":
                    if val == b"OK" and inflight:
                        inflight = False
                    elif val in (b"ERROR", b"busy p..."):
                        raise Failed("download: %r" % val)
                if passive and want and not inflight:
                    drv.write(req)
                    want, inflight = False, True
            if time.monotonic() > deadline:
                raise Failed("download stalled at %d of %d bytes" % (sink.got, total))
        dt = time.perf_counter() - t0
        if sink.crc != zlib.crc32(data):
            raise Failed("download: data corrupted")
        return {"seconds": dt, "bytes": total, "cpu_ns": cpu.ns(), "wakeups": cpu.wakeups(),
                "frames": frames, "reads": reads}
    finally:
        prog.stop()
        for c in conns:
            c.sock.close()


def bench_five(cfg, peer, data, seconds, block=8192):
    """Five links, each downloading (+IPD) and uploading (CIPSEND of 8192,
    links served in turn) at once for `seconds`."""
    n = 5
    prog = Espatd(cfg)
    conns = []
    try:
        conns = start_links(prog, peer, n)
        drv = prog.drv
        sinks = []
        for i in range(n):
            s = prog.sinks[i] = Counter()
            sinks.append(s)
        for c in conns:
            c.check = False
        src = memoryview(data)
        cpu = CpuMeter(prog.pid)
        rss_max = 0
        link = 0
        offs = [0] * n
        for c in conns:
            c.send_from(src)
        t0 = time.perf_counter()
        drv.write(b"AT+CIPSEND=%d,%d\r\n" % (link, block))
        last_sample = 0
        stop = False
        while True:
            now = time.perf_counter()
            if now - t0 >= seconds:
                stop = True
            if now - last_sample > 0.1:
                rss_max = max(rss_max, mem_kib(prog.pid))
                last_sample = now
            for kind, val in drv.step(0.2):
                if kind == ">":
                    o = offs[link]
                    drv.write(src[o:o + block])
                    offs[link] = (o + block) % (len(data) - block)
                elif kind == "line":
                    if val == b"SEND OK":
                        link = (link + 1) % n
                        if not stop:
                            drv.write(b"AT+CIPSEND=%d,%d\r\n" % (link, block))
                    elif val in (b"ERROR", b"SEND FAIL", b"busy p..."):
                        raise Failed("five links: %r" % val)
            if stop:
                break
        dt = time.perf_counter() - t0
        # the up count is what the peers got within the window
        up = [c.got for c in conns]
        down = [s.got for s in sinks]
        for c in conns:
            c.src = None
        res = {"seconds": dt, "up": up, "down": down, "cpu_ns": cpu.ns(), "wakeups": cpu.wakeups(),
               "rss_kib": max(rss_max, mem_kib(prog.pid)),
               "hwm_kib": mem_kib(prog.pid, "VmHWM")}
        return res
    finally:
        prog.stop()
        for c in conns:
            c.sock.close()


def round_trips(fd, count, warmup=500):
    """AT -> OK round trips; returns the latencies in microseconds."""
    po = select.poll()
    po.register(fd, select.POLLIN)
    lat = []
    cmd = b"AT\r\n"
    for i in range(warmup + count):
        t0 = time.perf_counter_ns()
        os.write(fd, cmd)
        got = b""
        while not got.endswith(b"OK\r\n"):
            if not po.poll(5000):
                raise Failed("no OK within 5 s (got %r)" % got)
            got += os.read(fd, 256)
        t1 = time.perf_counter_ns()
        if got != b"\r\nOK\r\n":
            raise Failed("AT answered %r" % got)
        if i >= warmup:
            lat.append((t1 - t0) / 1000.0)
    return lat


def pct(values, p):
    v = sorted(values)
    return v[min(len(v) - 1, int(round(p / 100.0 * (len(v) - 1))))]


def bench_latency(cfg, count, block=500):
    """Both programs run side by side; blocks of round trips alternate
    between them so that both meet the same machine."""
    out = {"responder": [], "espatd": []}
    r = e = None
    try:
        r = Responder(cfg)
        e = Espatd(cfg)
        round_trips(r.fd, 0)
        round_trips(e.fd, 0)
        while len(out["espatd"]) < count:
            n = min(block, count - len(out["espatd"]))
            out["responder"] += round_trips(r.fd, n, warmup=0)
            out["espatd"] += round_trips(e.fd, n, warmup=0)
        return out
    finally:
        for p in (r, e):
            if p:
                p.stop()


def bench_cycles(cfg, peer, seconds):
    """AT+CIPSTART + AT+CIPCLOSE against the loopback peer for `seconds`."""
    prog = Espatd(cfg)
    held = []
    try:
        prog.join()
        drv = prog.drv
        drv.command(b"AT+CIPMUX=1")
        peer.lsock.setblocking(False)
        start = b'AT+CIPSTART=0,"TCP","127.0.0.1",%d\r\n' % peer.port
        cpu = CpuMeter(prog.pid)
        cycles = 0
        t0 = time.perf_counter()
        drv.write(start)
        phase = "start"
        deadline = time.monotonic() + seconds + 10
        while True:
            for kind, val in drv.step(0.5):
                if kind != "line":
                    continue
                if val in (b"ERROR", b"busy p..."):
                    raise Failed("cycle: %r" % val)
                if val == b"OK" and phase == "start":
                    phase = "close"
                    drv.write(b"AT+CIPCLOSE=0\r\n")
                elif val == b"OK" and phase == "close":
                    cycles += 1
                    while True:  # the closed link's socket, before the next opens
                        try:
                            s, _ = peer.lsock.accept()
                            held.append(s)
                        except BlockingIOError:
                            break
                    while held:
                        held.pop().close()
                    if time.perf_counter() - t0 >= seconds:
                        phase = "end"
                    else:
                        phase = "start"
                        drv.write(start)
            while True:  # accept what the daemon opened; close it after CIPCLOSE
                try:
                    s, _ = peer.lsock.accept()
                    held.append(s)
                except BlockingIOError:
                    break
            if phase == "end":
                break
            if time.monotonic() > deadline:
                raise Failed("cycles stalled in %s" % phase)
        dt = time.perf_counter() - t0
        return {"seconds": dt, "cycles": cycles, "cpu_ns": cpu.ns(), "wakeups": cpu.wakeups()}
    finally:
        peer.lsock.setblocking(True)
        prog.stop()
        for s in held:
            s.close()


def bench_idle(cfg, peer, seconds):
    """RSS and CPU of a daemon doing nothing: client attached, joined, one
    idle TCP link open."""
    prog = Espatd(cfg)
    conn = None
    try:
        rss_boot = mem_kib(prog.pid)
        conns = start_links(prog, peer, 1)
        conn = conns[0]
        prog.drv.step(0.1)
        rss = mem_kib(prog.pid)
        c0, w0 = cpu_ns(prog.pid), wakeups(prog.pid)
        time.sleep(seconds)
        c1, w1 = cpu_ns(prog.pid), wakeups(prog.pid)
        return {"seconds": seconds, "cpu_ns": c1 - c0, "wakeups": w1 - w0,
                "rss_kib": rss, "rss_boot_kib": rss_boot}
    finally:
        prog.stop()
        if conn:
            conn.sock.close()


def bench_paced(cfg, peer, baud, seconds):
    """Passthrough download on a --pace line: the rate the MCU sees,
    first byte to last byte."""
    prog = Espatd(cfg, ["--pace", "--baud", str(baud)])
    conn = None
    try:
        drv, conn = enter_passthrough(prog, peer)
        drv.step(0.05)
        total = int(baud / 10 * seconds)
        data = os.urandom(total)
        drv.raw_got, drv.raw_crc = 0, 0
        drv.first_rx = None
        conn.send_from(memoryview(data))
        deadline = time.monotonic() + seconds * 3 + 10
        while drv.raw_got < total:
            drv.step(0.5)
            if time.monotonic() > deadline:
                raise Failed("paced transfer stalled at %d of %d" % (drv.raw_got, total))
        t_first, n_first = drv.first_rx
        rate = (total - n_first) / (drv.last_rx - t_first)
        if drv.raw_crc != zlib.crc32(data):
            raise Failed("paced transfer corrupted")
        return {"baud": baud, "bytes": total, "rate": rate, "expected": baud / 10.0}
    finally:
        prog.stop()
        if conn:
            conn.sock.close()


# ---------------------------------------------------------------------------
# the report


def machine():
    cpu = "unknown"
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    mem = 0
    with open("/proc/meminfo") as f:
        for line in f:
            if line.startswith("MemTotal:"):
                mem = int(line.split()[1]) // 1024
    distro = platform.platform()
    try:
        with open("/etc/os-release") as f:
            for line in f:
                if line.startswith("PRETTY_NAME="):
                    distro = line.split("=", 1)[1].strip().strip('"')
    except OSError:
        pass
    socat_v = subprocess.run(["socat", "-V"], capture_output=True, text=True).stdout
    socat_v = next((l.split("version", 1)[1].split()[0] for l in socat_v.splitlines()
                    if "socat version" in l), "?")
    return {"cpu": cpu, "cpus": os.cpu_count(), "mem_mib": mem, "kernel": platform.release(),
            "os": distro, "python": platform.python_version(), "socat": socat_v}


class Report:
    def __init__(self):
        self.rows = []

    def add(self, fid, figure, value, unit, baseline=None, baseline_what="", ratio=None,
            target=None, met=None, note=""):
        self.rows.append({"id": fid, "figure": figure, "value": value, "unit": unit,
                          "baseline": baseline, "baseline_what": baseline_what,
                          "ratio": ratio, "target": target, "met": met, "note": note})

    def fail(self, fid, figure, why):
        self.rows.append({"id": fid, "figure": figure, "value": None, "unit": "",
                          "baseline": None, "baseline_what": "", "ratio": None,
                          "target": None, "met": False, "note": "FAILED: %s" % why})

    @staticmethod
    def _num(v, unit):
        if v is None:
            return "—"
        if isinstance(v, float):
            if abs(v) >= 100:
                s = "%.0f" % v
            elif abs(v) >= 10:
                s = "%.1f" % v
            else:
                s = "%.2f" % v
        else:
            s = str(v)
        return "%s %s" % (s, unit) if unit else s

    def table(self):
        out = ["| # | figure | espatd | baseline | ratio | target | met |",
               "|---|---|---:|---:|---:|---|---|"]
        for r in self.rows:
            if r["value"] is None:
                out.append("| %s | %s | — | — | — | — | **no** (%s) |" % (
                    r["id"], r["figure"], r["note"]))
                continue
            base = "—"
            if r["baseline"] is not None:
                base = self._num(r["baseline"], r["unit"])
                if r["baseline_what"]:
                    base += " (%s)" % r["baseline_what"]
            ratio = "—"
            if r["ratio"] is not None:
                close = r["target"] and "%" in r["target"]
                ratio = ("%.3fx" if close else "%.2fx") % r["ratio"]
            met = {True: "yes", False: "**no**", None: "—"}[r["met"]]
            if r["note"]:
                met = r["note"] if r["met"] is None else "%s (%s)" % (met, r["note"])
            out.append("| %s | %s | %s | %s | %s | %s | %s |" % (
                r["id"], r["figure"], self._num(r["value"], r["unit"]), base, ratio,
                r["target"] or "—", met))
        return "\n".join(out)


def mbps(res):
    return res["bytes"] / res["seconds"] / 1e6


def cpu_per_gib(res):
    return res["cpu_ns"] / 1e9 / (res["bytes"] / GIB) if res["bytes"] else 0.0


def median(values):
    return statistics.median(values) if values else None


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--bin", default=os.environ.get("ESPATD_BIN") or
                    os.path.join(REPO, "build", "espatd"))
    ap.add_argument("--json", default=None, help="write the results here (default: "
                    "bench.json beside the binary)")
    ap.add_argument("--size", type=int, default=64, help="MiB per bulk transfer (64)")
    ap.add_argument("--repeat", type=int, default=3,
                    help="rounds of the throughput figures, each with its own socat "
                    "baseline; medians are reported (3)")
    ap.add_argument("--round-trips", type=int, default=20000)
    ap.add_argument("--multi-seconds", type=float, default=4.0)
    ap.add_argument("--idle-seconds", type=float, default=10.0)
    ap.add_argument("--pin", choices=("same", "split", "none"), default="same",
                    help="same (default): the harness and the program under test share "
                    "CPU 0; split: harness on CPU 0, program on CPU 1; none: the "
                    "scheduler decides (see docs/performance.md)")
    ap.add_argument("--awake", choices=("on", "off"), default="on",
                    help="on (default): a SCHED_IDLE spinner on every CPU keeps idle CPUs "
                    "from halting, so a wakeup costs what it costs the programs, not a "
                    "VM exit (see docs/performance.md); off: leave the CPUs alone")
    ap.add_argument("--pty-worker", choices=("same", "any"), default="same",
                    help="same (default, with --pin same, as root): the kernel's pty worker "
                    "runs on the CPU the harness and the program share, for the run; any: "
                    "wherever the kernel puts it (see docs/performance.md)")
    ap.add_argument("--driver", choices=("c", "python"), default="c",
                    help="c (default): bench/mcu.c plays the MCU and the peer of the bulk "
                    "figures 1-3; python: the harness's own poll() loop does (slower, and "
                    "slower on AT framing than on raw bytes; see docs/performance.md)")
    ap.add_argument("--only", default="1,2,3,4,5,6,7,P",
                    help="comma-separated figure groups to run (1..7, P)")
    ap.add_argument("--quick", action="store_true",
                    help="16 MiB, one round, 2000 round trips, 2 s idle: a smoke test")
    cfg = ap.parse_args()
    if cfg.quick:
        cfg.size, cfg.repeat, cfg.round_trips = 16, 1, 2000
        cfg.idle_seconds, cfg.multi_seconds = 2.0, 2.0
    cfg.size *= MIB
    cfg.data = None
    all_cpus = sorted(os.sched_getaffinity(0))
    ncpu = len(all_cpus)
    if cfg.pin == "split" and ncpu < 2:
        cfg.pin = "same"
    cfg.prog_cpu = None
    if cfg.pin != "none":
        cpus = sorted(os.sched_getaffinity(0))
        os.sched_setaffinity(0, {cpus[0]})
        cfg.prog_cpu = cpus[0] if cfg.pin == "same" else cpus[1]
    only = set(x.strip() for x in cfg.only.split(","))
    if not os.access(cfg.bin, os.X_OK):
        sys.exit("bench: no espatd binary at %s (make build, or --bin / ESPATD_BIN)" % cfg.bin)
    if not shutil.which("socat"):
        sys.exit("bench: socat is missing (sh scripts/deps.sh installs it)")
    cfg.bin = os.path.abspath(cfg.bin)
    if cfg.json is None:
        cfg.json = os.path.join(os.path.dirname(cfg.bin), "bench.json")
    cfg.work = tempfile.mkdtemp(prefix="espatd-bench-")
    cfg.responder = os.path.join(cfg.work, "at_responder")
    cfg.mcu = os.path.join(cfg.work, "mcu")
    cc = os.environ.get("CC", "cc")
    for exe, src in ((cfg.responder, "at_responder.c"), (cfg.mcu, "mcu.c")):
        subprocess.run([cc, "-O2", "-Wall", "-Wextra", "-Werror", "-o", exe,
                        os.path.join(REPO, "bench", src)], check=True)

    mach = machine()
    # atexit handlers (spinners, workqueue mask) must also run on SIGTERM
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    worker = "any CPU"
    if cfg.pty_worker == "same" and cfg.pin == "same":
        why = pin_pty_worker(cfg.prog_cpu)
        if why:
            print("bench: the pty worker stays on any CPU (%s); round trips include "
                  "a cross-CPU hop" % why, file=sys.stderr)
        else:
            worker = "CPU %d" % cfg.prog_cpu
    cfg.worker = worker
    if cfg.awake == "on":
        atexit.register(stop_spinners, keep_awake(all_cpus))
    started = time.time()
    steal0 = cpu_steal()
    rep = Report()
    raw = {}
    peer = Peer()
    data = payload(cfg)
    size_mib = cfg.size // MIB
    failed = []

    def log(msg):
        print("bench: " + msg, file=sys.stderr, flush=True)

    def guarded(what, fn):
        try:
            return fn()
        except (Failed, RuntimeError, OSError, ValueError, socket.timeout) as e:
            log("%s failed: %s" % (what, e))
            failed.append("%s: %s" % (what, e))
            return None

    # ---- 1-3: bulk transfers, in rounds, each round with its own socat run
    # so that whatever else the machine does hits baseline and daemon alike
    bulk = [  # key, group, figure, direction, target, function
        ("pt_up", "1", "passthrough serial -> network (%d MiB)" % size_mib, "up", 0.9, None),
        ("pt_down", "1", "passthrough network -> serial (%d MiB)" % size_mib, "down", 0.9, None),
        ("cipsend", "2", "upload AT+CIPSEND, 8192-byte blocks", "up", 0.5,
         lambda: bench_cipsend(cfg, peer, data)),
        ("cipsendl", "2", "upload AT+CIPSENDL (%d MiB in one)" % size_mib, "up", 0.8,
         lambda: bench_cipsendl(cfg, peer, data)),
        ("ipd", "3", "download active mode (+IPD)", "down", 0.8,
         lambda: bench_download(cfg, peer, data, False)),
        ("recvdata", "3", "download passive mode (AT+CIPRECVDATA=0,8192)", "down", 0.5,
         lambda: bench_download(cfg, peer, data, True)),
    ]
    bulk = [b for b in bulk if b[1] in only]
    runs = {"socat_up": [], "socat_down": []}
    for b in bulk:
        runs[b[0]] = []
    if bulk or "7" in only:
        for rnd in range(cfg.repeat):
            log("round %d of %d: socat, then espatd, %d MiB per transfer" %
                (rnd + 1, cfg.repeat, size_mib))
            s = guarded("socat", lambda: bench_socat(cfg, peer, data))
            runs["socat_up"].append(s and s["up"])
            runs["socat_down"].append(s and s["down"])
            if "1" in only:
                r = guarded("passthrough", lambda: bench_passthrough(cfg, peer, data))
                runs["pt_up"].append(r and r["up"])
                runs["pt_down"].append(r and r["down"])
            for key, group, figure, d, target, fn in bulk:
                if fn:
                    runs[key].append(guarded(figure, fn))
    raw["bulk"] = runs
    socat_tp = {d: median([mbps(r) for r in runs["socat_" + d] if r]) for d in ("up", "down")}
    socat_cpu = {d: median([cpu_per_gib(r) for r in runs["socat_" + d] if r])
                 for d in ("up", "down")}
    for key, group, figure, d, target, fn in bulk:
        pairs = [(r, s) for r, s in zip(runs[key], runs["socat_" + d]) if r and s]
        if not pairs:
            rep.fail(group, figure, "no successful run")
            continue
        v = median([mbps(r) for r, s in pairs])
        ratio = median([mbps(r) / mbps(s) for r, s in pairs])
        rep.add(group, figure, v, "MB/s", socat_tp[d], "socat", ratio,
                ">= %.1fx" % target, ratio >= target)

    # ---- 4: five links both ways
    five = None
    if "4" in only or "7" in only:
        secs = cfg.multi_seconds
        log("4: five links, both directions, %.0f s; socat both ways on one pty" % secs)
        base = guarded("socat both ways", lambda: bench_socat_both(cfg, peer, data, secs))
        five = guarded("five links", lambda: bench_five(cfg, peer, data, secs))
        raw["five"], raw["socat_both"] = five, base
        if "4" in only and not five:
            rep.fail("4", "5 links, both directions", "see the log")
        elif "4" in only:
            tot = sum(five["up"]) + sum(five["down"])
            agg = tot / five["seconds"] / 1e6
            b = (base["up"] + base["down"]) / base["seconds"] / 1e6 if base else None
            rep.add("4", "5 links, both directions: aggregate", agg, "MB/s", b,
                    "socat, one pty, both ways", agg / b if b else None)
            per = [u + d for u, d in zip(five["up"], five["down"])]
            share = min(per) / tot if tot else 0.0
            rep.add("4", "5 links: the slowest link's share", share, "", 0.2,
                    "equal shares", share / 0.2)
            up_share = min(five["up"]) / max(1, sum(five["up"]))
            down_share = min(five["down"]) / max(1, sum(five["down"]))
            rep.add("4", "5 links: slowest share of upload / of download",
                    "%.3f / %.3f" % (up_share, down_share), "", 0.2, "equal shares")

    # ---- 5: latency
    if "5" in only:
        log("5: AT -> OK latency, %d round trips each" % cfg.round_trips)
        lat = guarded("latency", lambda: bench_latency(cfg, cfg.round_trips))
        if not lat:
            rep.fail("5", "AT -> OK latency", "see the log")
        else:
            e, b = lat["espatd"], lat["responder"]
            raw["latency_us"] = {k: {"p50": pct(v, 50), "p90": pct(v, 90), "p99": pct(v, 99),
                                     "mean": statistics.fmean(v), "n": len(v)}
                                 for k, v in lat.items()}
            r50 = pct(e, 50) / pct(b, 50)
            rep.add("5", "AT -> OK latency, p50", pct(e, 50), "µs", pct(b, 50),
                    "minimal responder", r50, "<= 1.3x", r50 <= 1.3)
            rep.add("5", "AT -> OK latency, p99", pct(e, 99), "µs", pct(b, 99),
                    "minimal responder", pct(e, 99) / pct(b, 99))

    # ---- 6: link set-up and tear-down
    if "6" in only:
        log("6: AT+CIPSTART + AT+CIPCLOSE cycles, 3 s")
        r = guarded("cycles", lambda: bench_cycles(cfg, peer, 3.0))
        raw["cycles"] = r
        if not r:
            rep.fail("6", "AT+CIPSTART + AT+CIPCLOSE cycles", "see the log")
        else:
            rep.add("6", "AT+CIPSTART + AT+CIPCLOSE cycles", r["cycles"] / r["seconds"],
                    "/s", note="%.0f µs of CPU each" % (r["cpu_ns"] / 1e3 / max(1, r["cycles"])))

    # ---- 7: resources
    if "7" in only:
        log("7: idle for %.0f s" % cfg.idle_seconds)
        idle = guarded("idle", lambda: bench_idle(cfg, peer, cfg.idle_seconds))
        raw["idle"] = idle
        if not idle:
            rep.fail("7", "resources while idle", "see the log")
        else:
            rep.add("7", "RSS idle (joined, one link open)", idle["rss_kib"] / 1024.0, "MiB",
                    target="< 8 MiB", met=idle["rss_kib"] < 8 * 1024)
        if five:
            rep.add("7", "RSS with 5 busy links (peak)", five["rss_kib"] / 1024.0, "MiB")
        for key, label, d in (("pt_up", "passthrough serial -> network", "up"),
                              ("pt_down", "passthrough network -> serial", "down"),
                              ("cipsend", "AT+CIPSEND", "up"), ("cipsendl", "AT+CIPSENDL", "up"),
                              ("ipd", "+IPD download", "down"),
                              ("recvdata", "AT+CIPRECVDATA download", "down")):
            rs = [r for r in runs.get(key, []) if r]
            if rs:
                v = median([cpu_per_gib(r) for r in rs])
                b = socat_cpu[d]
                rep.add("7", "CPU per GiB moved, " + label, v, "s", b, "socat",
                        v / b if b else None)
        if idle:
            quiet = idle["cpu_ns"] < 1e6 and idle["wakeups"] <= 2
            rep.add("7", "CPU while idle for %.0f s" % idle["seconds"], idle["cpu_ns"] / 1e6,
                    "ms", target="none measurable", met=quiet,
                    note="%d wakeups" % idle["wakeups"])

    # ---- P: --pace
    if "P" in only:
        for baud in (115200, 921600):
            log("P: --pace at %d baud, passthrough download, 3 s" % baud)
            r = guarded("paced %d" % baud, lambda: bench_paced(cfg, peer, baud, 3.0))
            raw.setdefault("paced", []).append(r)
            if not r:
                rep.fail("P", "--pace %d baud" % baud, "see the log")
                continue
            ratio = r["rate"] / r["expected"]
            rep.add("P", "--pace %d baud: network -> serial" % baud, r["rate"] / 1e3,
                    "kB/s", r["expected"] / 1e3, "baud/10", ratio, "within 2%",
                    abs(ratio - 1) <= 0.02)

    peer.close()
    shutil.rmtree(cfg.work, ignore_errors=True)
    elapsed = time.time() - started
    steal = steal_share(steal0, cpu_steal())
    when = datetime.datetime.now().astimezone().strftime("%Y-%m-%d %H:%M %Z")
    head = ("espatd bench, %s, %.0f s: %s, %d CPUs, %d MiB RAM; %s, kernel %s; "
            "Python %s, socat %s; %d MiB per transfer, median of %d rounds; --pin %s; --awake %s; "
            "--driver %s; pty worker on %s; "
            "CPU time stolen by the hypervisor during the run: %.1f%%" % (
                when, elapsed, mach["cpu"], mach["cpus"], mach["mem_mib"], mach["os"],
                mach["kernel"], mach["python"], mach["socat"], size_mib, cfg.repeat, cfg.pin,
                cfg.awake, cfg.driver, cfg.worker, 100 * steal))
    mach["steal"] = steal
    print(head)
    print()
    print(rep.table())
    doc = {"when": when, "seconds": elapsed, "machine": mach, "binary": cfg.bin,
           "size_bytes": cfg.size, "repeat": cfg.repeat, "pin": cfg.pin,
           "awake": cfg.awake, "driver": cfg.driver, "pty_worker": cfg.worker, "results": rep.rows,
           "failures": failed, "raw": raw}
    with open(cfg.json, "w") as f:
        json.dump(doc, f, indent=1, default=str)
    print("\n(JSON: %s)" % cfg.json)
    if failed:
        print("bench: %d measurement(s) failed: %s" % (len(failed), "; ".join(failed)),
              file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
