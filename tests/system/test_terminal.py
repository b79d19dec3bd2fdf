"""Terminals: the pty master handed over a console socket, the window size, /dev/console, and the
runtime proxying a terminal itself for run and exec in the foreground."""

import errno
import fcntl
import os
import select
import socket
import subprocess
import termios
import time

import pytest

from conftest import RUNTIME, wait_for


def I(name):
    """A container id unique to this run: ids name cgroups under the machine-wide /kiste."""
    return f"{name}-{os.getpid()}"


class ConsoleSocket:
    """A unix socket server receiving the pty master over SCM_RIGHTS, as conmon and containerd
    do."""

    def __init__(self, path):
        self.path = str(path)
        self.srv = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.srv.bind(self.path)
        self.srv.listen(4)

    def receive_master(self, timeout=10):
        self.srv.settimeout(timeout)
        conn, _ = self.srv.accept()
        with conn:
            conn.settimeout(timeout)
            _, fds, _, _ = socket.recv_fds(conn, 1024, 4)
        assert len(fds) == 1
        return fds[0]

    def close(self):
        self.srv.close()


@pytest.fixture
def console(tmp_path):
    c = ConsoleSocket(tmp_path / "console.sock")
    yield c
    c.close()


def read_until_closed(fd, timeout=20, proc=None):
    """Reads a pty master until the other side is gone (EIO) or timeout."""
    out = b""
    end = time.time() + timeout
    while time.time() < end:
        r, _, _ = select.select([fd], [], [], 0.2)
        if fd in r:
            try:
                data = os.read(fd, 4096)
            except OSError as e:
                if e.errno == errno.EIO:
                    break
                raise
            if not data:
                break
            out += data
        elif proc is not None and proc.poll() is not None:
            # Drain what is left, then stop.
            r, _, _ = select.select([fd], [], [], 0.2)
            if fd not in r:
                break
    return out.decode(errors="replace")


def test_console_socket_gets_the_pty(bundle, console):
    bundle.config["process"]["terminal"] = True
    bundle.config["process"]["consoleSize"] = {"height": 37, "width": 123}
    bundle.config["process"]["args"] = [
        "sh", "-c", "tty; [ -t 0 ] && [ -t 1 ] && [ -t 2 ] && echo all-ttys; stty size; "
                    "stat -c %t:%T /dev/console $(tty); echo $TERM; echo done"]
    bundle.config["process"]["env"].append("TERM=xterm")
    bundle.write()
    bundle.rt("create", "--console-socket", console.path, "--bundle", bundle.path, I("t1"))
    master = console.receive_master()
    try:
        assert os.isatty(master)
        bundle.rt("start", I("t1"))
        out = read_until_closed(master)
    finally:
        os.close(master)
    lines = [l.strip() for l in out.splitlines()]
    assert lines[0].startswith("/dev/pts/")
    assert "all-ttys" in lines
    assert "37 123" in lines
    # /dev/console is the container's own terminal.
    dev_console, dev_tty = lines[lines.index("37 123") + 1:lines.index("37 123") + 3]
    assert dev_console == dev_tty
    assert "xterm" in lines
    assert lines[-1] == "done"
    assert wait_for(lambda: bundle.state(I("t1"))["status"] == "stopped")
    bundle.rt("delete", I("t1"))


def test_console_is_controlling_terminal(bundle, console):
    bundle.config["process"]["terminal"] = True
    # Field 7 of stat is tty_nr: nonzero when the process has a controlling terminal; the
    # process leads its own session.
    bundle.config["process"]["args"] = ["sh", "-c", "cut -d' ' -f6,7 /proc/self/stat; echo $$"]
    bundle.write()
    bundle.rt("create", "--console-socket", console.path, "--bundle", bundle.path, I("t2"))
    master = console.receive_master()
    try:
        bundle.rt("start", I("t2"))
        out = read_until_closed(master)
    finally:
        os.close(master)
    first, pid = out.split()[0:2], out.split()[2]
    sid, tty_nr = first
    assert int(tty_nr) != 0
    assert sid == pid == "1"
    bundle.rt("delete", "--force", I("t2"))


def test_no_terminal_means_no_tty(bundle):
    p = bundle.run(["sh", "-c", "[ -t 0 ] || echo stdin-not-tty; [ -e /dev/console ] || "
                    "echo no-console"])
    assert p.returncode == 0, p.stderr
    assert "stdin-not-tty" in p.stdout


def test_terminal_needs_console_socket_for_create(bundle, state_root):
    bundle.config["process"]["terminal"] = True
    bundle.config["process"]["args"] = ["true"]
    bundle.write()
    p = bundle.rt("create", "--bundle", bundle.path, I("t3"), check=False)
    assert p.returncode == 1
    assert "console" in p.stderr
    assert list(state_root.iterdir()) == []


def drive_pty(cmd, script, timeout=30):
    """Runs cmd with a new pty as its stdin/stdout/stderr and controlling terminal, types script
    into it, and returns (output, exit status)."""
    master, slave = os.openpty()
    try:
        proc = subprocess.Popen(cmd, stdin=slave, stdout=slave, stderr=slave,
                                start_new_session=True,
                                preexec_fn=lambda: fcntl.ioctl(0, termios.TIOCSCTTY, 0))
        os.close(slave)
        slave = -1
        try:
            os.write(master, script.encode())
            out = read_until_closed(master, timeout=timeout, proc=proc)
            rc = proc.wait(timeout=timeout)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
        return out, rc
    finally:
        os.close(master)
        if slave >= 0:
            os.close(slave)


def test_run_in_foreground_with_terminal(bundle):
    bundle.config["process"]["terminal"] = True
    bundle.config["process"]["args"] = ["sh"]
    bundle.write()
    out, rc = drive_pty([str(RUNTIME), "--root", str(bundle.state_root), "run", "--bundle",
                         str(bundle.path), I("fg1")],
                        "tty; echo h''i; exit 3\n")
    assert rc == 3, out
    assert "hi" in out.replace("h''i", "")
    assert "/dev/pts/" in out
    assert list(bundle.state_root.iterdir()) == []


def test_run_in_foreground_with_terminal_from_pipe(bundle):
    """stdin not a terminal: the runtime still proxies, and the end of input is an EOF."""
    bundle.config["process"]["terminal"] = True
    bundle.config["process"]["args"] = ["sh", "-c", "read line; echo got-$line; [ -t 0 ] && echo tty"]
    bundle.write()
    p = bundle.rt("run", "--bundle", bundle.path, I("fg2"), input="abc\n")
    assert "got-abc" in p.stdout
    assert "tty" in p.stdout.replace("got-abc", "")


def test_window_size_follows_the_outer_terminal(bundle):
    bundle.config["process"]["terminal"] = True
    bundle.config["process"]["args"] = ["sh"]
    bundle.write()
    # The outer terminal gets its size first; the runtime copies it to the container's pty.
    out, rc = drive_pty(["/bin/sh", "-c", f"stty rows 21 cols 77; exec {RUNTIME} --root "
                         f"{bundle.state_root} run --bundle {bundle.path} {I('ws1')}"],
                        "stty size; exit 0\n")
    assert rc == 0, out
    assert "21 77" in out


def test_exec_tty(bundle):
    bundle.config["process"]["args"] = ["sleep", "100"]
    bundle.write()
    bundle.rt("run", "-d", "--bundle", bundle.path, I("xt"))
    try:
        out, rc = drive_pty([str(RUNTIME), "--root", str(bundle.state_root), "exec", "--tty",
                             I("xt"), "sh"], "tty; [ -t 1 ] && echo o''k; exit 5\n")
        assert rc == 5, out
        assert "/dev/pts/" in out
        assert "ok" in out.replace("o''k", "")
        # Without --tty the exec'd process gets no pty of its own: it has no controlling
        # terminal (tty_nr, field 7 of stat, is 0).
        p = bundle.rt("exec", I("xt"), "cut", "-d ", "-f7", "/proc/self/stat")
        assert p.stdout.strip() == "0"
    finally:
        bundle.rt("delete", "--force", I("xt"))


def test_exec_tty_with_console_socket_detached(bundle, console):
    bundle.config["process"]["args"] = ["sleep", "100"]
    bundle.write()
    bundle.rt("run", "-d", "--bundle", bundle.path, I("xd"))
    try:
        bundle.rt("exec", "--tty", "--detach", "--console-socket", console.path, I("xd"), "sh", "-c",
                  "tty; stty size")
        master = console.receive_master()
        try:
            out = read_until_closed(master)
        finally:
            os.close(master)
        assert "/dev/pts/" in out
    finally:
        bundle.rt("delete", "--force", I("xd"))


def test_exec_tty_detach_without_socket_refused(bundle):
    bundle.config["process"]["args"] = ["sleep", "100"]
    bundle.write()
    bundle.rt("run", "-d", "--bundle", bundle.path, I("xr"))
    p = bundle.rt("exec", "--tty", "--detach", I("xr"), "true", check=False)
    assert p.returncode == 1 and "console-socket" in p.stderr
    bundle.rt("delete", "--force", I("xr"))
