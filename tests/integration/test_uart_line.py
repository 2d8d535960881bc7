"""--serial on a real tty: AT+UART_CUR / AT+UART_DEF change the line itself
(protocol.md §5.5). A pty pair stands in for the UART: the daemon opens the
slave as its "device", the test talks through the master and reads the
slave's termios to see what the daemon set."""

import os
import subprocess
import termios
import time

import pytest

import espat


class MasterClient(espat.Link):
    def __init__(self, fd):
        super().__init__("whole", 0)
        self.fd = fd
        os.set_blocking(fd, False)

    def _raw_write(self, data):
        os.write(self.fd, data)

    def _raw_read(self, max_wait):
        deadline = time.monotonic() + max_wait
        while True:
            try:
                return os.read(self.fd, 65536)
            except BlockingIOError:
                if time.monotonic() >= deadline:
                    return b""
                time.sleep(0.002)


@pytest.fixture
def uart(tmp_path):
    master, slave = os.openpty()
    path = os.ttyname(slave)
    procs = []

    def start(*extra):
        argv = espat.command(["--serial", path, "--state-dir", str(tmp_path / "state"),
                              "--boot-time", "50"] + list(extra), tmp_path)
        log = open(str(tmp_path / ("log%d" % len(procs))), "wb")
        p = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                             stderr=log)
        log.close()
        procs.append(p)
        c = MasterClient(master)
        c.expect(b"\r\nready\r\n", timeout=5 * espat.SCALE)
        return p, c

    def stop(p):
        p.terminate()
        assert p.wait(timeout=5 * espat.SCALE) == 0

    yield start, stop, slave
    for p in procs:
        if p.poll() is None:
            p.kill()
            p.wait()
    for i in range(len(procs)):
        with open(str(tmp_path / ("log%d" % i))) as f:
            espat.check_stderr(f.read())
    espat.check_wrapper_logs(tmp_path)
    os.close(master)
    os.close(slave)


def speed_of(fd):
    return termios.tcgetattr(fd)[5]


def wait_for(pred, timeout=3.0):
    deadline = time.monotonic() + timeout * espat.SCALE
    while not pred():
        assert time.monotonic() < deadline
        time.sleep(0.01)


def test_uart_cur_changes_the_line(uart):
    start, stop, slave = uart
    p, c = start("--baud", "115200")
    assert speed_of(slave) == termios.B115200
    c.transact(b"ATE0\r\n", b"ATE0\r\n\r\nOK\r\n")
    c.transact(b"AT+UART_CUR=921600,8,1,0,3\r\n", b"\r\nOK\r\n")
    wait_for(lambda: speed_of(slave) == termios.B921600)
    assert termios.tcgetattr(slave)[2] & termios.CRTSCTS
    c.transact(b"AT+UART_CUR?\r\n", b"+UART_CUR:921600,8,1,0,3\r\n\r\nOK\r\n")
    # not saved: the next start is back at --baud
    stop(p)
    p, c = start("--baud", "115200")
    wait_for(lambda: speed_of(slave) == termios.B115200)
    c.transact(b"AT+UART_CUR?\r\n", b"AT+UART_CUR?\r\n+UART_CUR:115200,8,1,0,0\r\n\r\nOK\r\n")
    stop(p)


def test_uart_def_is_used_at_the_next_start(uart):
    start, stop, slave = uart
    p, c = start("--baud", "115200")
    c.transact(b"AT+UART_DEF=230400,8,1,0,0\r\n", b"AT+UART_DEF=230400,8,1,0,0\r\n\r\nOK\r\n")
    wait_for(lambda: speed_of(slave) == termios.B230400)
    stop(p)
    termios.tcsetattr(slave, termios.TCSANOW,
                      termios.tcgetattr(slave)[:4] + [termios.B9600, termios.B9600] +
                      [termios.tcgetattr(slave)[6]])
    p, c = start("--baud", "115200")
    wait_for(lambda: speed_of(slave) == termios.B230400)
    c.transact(b"AT+UART_DEF?\r\n", b"AT+UART_DEF?\r\n+UART_DEF:230400,8,1,0,0\r\n\r\nOK\r\n")
    # AT+RESTORE forgets it: the line returns to --baud after the restart
    c.write(b"AT+RESTORE\r\n")
    c.expect(b"AT+RESTORE\r\n\r\nOK\r\n\r\nready\r\n", timeout=3 * espat.SCALE)
    wait_for(lambda: speed_of(slave) == termios.B115200)
    stop(p)
