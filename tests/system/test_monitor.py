"""kiste-monitor driven directly, as the engine starts it: the sync reply, state.json, the
json-file log with Docker's line splitting and rotation, the attach socket (output, stdin, EOF,
resize, exit message), restart policies with the stopping marker, health checks, OOM kills, the
cleanup at the end, and the monitor's own memory. Containers run on the real kiste-runtime with
a busybox root file system."""

import json
import os
import re
import select
import signal
import socket
import subprocess
import time
from pathlib import Path

import pytest

from conftest import BUILD, RUNTIME, pid_alive, wait_for

MONITOR = BUILD / "src" / "monitor" / "kiste-monitor"
TIME_RE = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{9}Z$")


class Monitor:
    """One kiste-monitor for one container, with the descriptors the engine would hand it."""

    def __init__(self, tmp_path, bundle, name):
        self.bundle = bundle
        self.id = f"mon-{name}-{os.getpid()}"
        self.state_dir = tmp_path / "state-dir" / self.id
        self.run_dir = tmp_path / "run" / self.id
        self.log = self.state_dir / f"{self.id}-json.log"
        self.proc = None
        self.cwd = None
        self.sync = None
        self.attach = None

    def start(self, args, terminal=False, stdin=False, stdin_once=False, attach=True,
              log=True, max_size=None, max_files=None, restart=None, health=None,
              rootfs_mount=None, cleanup=None, env=None):
        cfg = self.bundle.config
        cfg["process"]["args"] = args
        cfg["process"]["terminal"] = terminal
        if env:
            cfg["process"]["env"] = cfg["process"].get("env", []) + env
        self.bundle.write()
        sync_ours, sync_theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
        fds = [sync_theirs.fileno()]
        cmd = [str(MONITOR), "--id", self.id, "--runtime", str(RUNTIME),
               "--runtime-root", str(self.bundle.state_root), "--bundle", str(self.bundle.path),
               "--state-dir", str(self.state_dir), "--run-dir", str(self.run_dir),
               "--sync-fd", str(sync_theirs.fileno())]
        if log:
            cmd += ["--log-path", str(self.log)]
            if max_size is not None:
                cmd += ["--log-max-size", str(max_size), "--log-max-files", str(max_files)]
        theirs = None
        if attach:
            self.attach, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
            fds.append(theirs.fileno())
            cmd += ["--attach-fd", str(theirs.fileno())]
        if terminal:
            cmd.append("--terminal")
        if stdin:
            cmd.append("--stdin")
        if stdin_once:
            cmd.append("--stdin-once")
        if restart:
            cmd += ["--restart", restart]
        if health:
            cmd += ["--health-cmd", json.dumps(health["cmd"])]
            for k in ("interval", "timeout", "retries", "start-period"):
                if k in health:
                    cmd += [f"--health-{k}", str(health[k])]
        if rootfs_mount:
            cmd += ["--rootfs-mount", str(rootfs_mount)]
        if cleanup:
            cmd += ["--"] + cleanup
        self.proc = subprocess.Popen(cmd, pass_fds=fds, start_new_session=True, cwd=self.cwd,
                                     stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                     stderr=subprocess.PIPE)
        sync_theirs.close()
        if theirs:
            theirs.close()
        self.sync = sync_ours
        return self

    def reply(self, timeout=30):
        self.sync.settimeout(timeout)
        data = b""
        while not data.endswith(b"\n"):
            chunk = self.sync.recv(4096)
            if not chunk:
                break
            data += chunk
        self.sync.close()
        return json.loads(data)

    def state(self):
        return json.loads((self.state_dir / "state.json").read_text())

    def wait(self, timeout=30):
        rc = self.proc.wait(timeout=timeout)
        self.proc.stderr.close()
        return rc

    def read_attach(self, sock=None, timeout=30):
        """Reads messages until the exit message; returns (stdout, stderr, exit code)."""
        sock = sock or self.attach
        out, err, code = bytearray(), bytearray(), None
        end = time.time() + timeout
        while time.time() < end:
            r, _, _ = select.select([sock], [], [], 0.5)
            if not r:
                continue
            msg = sock.recv(65536)
            if not msg:
                break
            if msg[0] == 1:
                out += msg[1:]
            elif msg[0] == 2:
                err += msg[1:]
            elif msg[0] == 3:
                code = int(msg[1:])
        return bytes(out), bytes(err), code

    def records(self, path=None):
        lines = Path(path or self.log).read_text().splitlines()
        return [json.loads(line) for line in lines]

    def cleanup(self):
        if self.proc and self.proc.poll() is None:
            subprocess.run([str(RUNTIME), "--root", str(self.bundle.state_root), "delete",
                            "--force", self.id], capture_output=True)
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        for s in (self.sync, self.attach):
            if s:
                s.close()

    def assert_clean(self):
        """Nothing of the container is left: runtime state, run-dir files, processes."""
        assert not (self.bundle.state_root / self.id).exists()
        left = sorted(p.name for p in self.run_dir.iterdir()) if self.run_dir.exists() else []
        assert left == [], left
        assert not pid_alive(self.proc.pid)


@pytest.fixture
def mon(tmp_path, bundle):
    made = []

    def make(name):
        m = Monitor(tmp_path, bundle, name)
        made.append(m)
        return m

    yield make
    for m in made:
        m.cleanup()


def test_exit_code_everywhere(mon):
    m = mon("exit3").start(["sh", "-c", "exit 3"])
    reply = m.reply()
    assert reply["pid"] > 0
    out, err, code = m.read_attach()
    assert code == 3
    assert m.wait() == 0
    st = m.state()
    assert st["Status"] == "exited"
    assert st["ExitCode"] == 3
    assert st["Pid"] == 0
    assert st["MonitorPid"] == m.proc.pid
    assert st["RestartCount"] == 0
    assert st["OOMKilled"] is False
    assert st["Error"] == ""
    assert st["Health"] is None
    assert TIME_RE.match(st["StartedAt"]) and TIME_RE.match(st["FinishedAt"])
    assert st["FinishedAt"] >= st["StartedAt"]
    m.assert_clean()


def test_signal_death_is_128_plus_signal(mon):
    m = mon("kill").start(["sleep", "100"])
    pid = m.reply()["pid"]
    st = m.state()
    assert st["Status"] == "running" and st["Pid"] == pid
    assert st["FinishedAt"] == "0001-01-01T00:00:00Z"
    os.kill(pid, signal.SIGKILL)
    _, _, code = m.read_attach()
    assert code == 137
    assert m.wait() == 0
    assert m.state()["ExitCode"] == 137
    m.assert_clean()


def test_log_streams_and_times(mon):
    m = mon("streams").start(["sh", "-c", "echo out; echo err >&2; printf 'tail \"q\"\\t'"])
    m.reply()
    out, err, code = m.read_attach()
    assert (out, err, code) == (b'out\ntail "q"\t', b"err\n", 0)
    m.wait()
    recs = m.records()
    by = {r["stream"]: [] for r in recs}
    for r in recs:
        assert set(r) == {"log", "stream", "time"}
        assert TIME_RE.match(r["time"])
        by[r["stream"]].append(r["log"])
    assert by["stdout"] == ["out\n", 'tail "q"\t']
    assert by["stderr"] == ["err\n"]
    times = [r["time"] for r in recs]
    assert times == sorted(times) or len({r["stream"] for r in recs}) == 2
    raw = m.log.read_text()
    assert '"log":"tail \\"q\\"\\t"' in raw


def test_long_line_split_at_16k(mon):
    m = mon("long").start(["sh", "-c", "head -c 40960 /dev/zero | tr '\\0' a; echo; echo next"])
    m.reply()
    m.read_attach()
    m.wait()
    logs = [r["log"] for r in m.records()]
    assert [len(x) for x in logs] == [16384, 16384, 8193, 5]
    assert logs[0] == "a" * 16384 and logs[2] == "a" * 8192 + "\n" and logs[3] == "next\n"


def test_escaping_of_control_and_invalid_utf8(mon):
    m = mon("esc").start(["sh", "-c", "printf 'a\\001b<&>\\377\\303\\251\\n'"])
    m.reply()
    m.read_attach()
    m.wait()
    raw = m.log.read_text()
    assert '"log":"a\\u0001b\\u003c\\u0026\\u003e\\ufffd\u00e9\\n"' in raw
    assert m.records()[0]["log"] == "a\x01b<&>\ufffd\u00e9\n"


def test_rotation_keeps_max_files(mon):
    script = "i=0; while [ $i -lt 300 ]; do echo line-$i-xxxxxxxxxxxxxxxxxxxxxxxx; i=$((i+1)); done"
    m = mon("rot").start(["sh", "-c", script], max_size=2000, max_files=3)
    m.reply()
    m.read_attach()
    m.wait()
    files = sorted(p.name for p in m.state_dir.iterdir() if p.name.startswith(m.log.name))
    assert files == [m.log.name, m.log.name + ".1", m.log.name + ".2"]
    seq = []
    for suffix in (".2", ".1", ""):
        p = Path(str(m.log) + suffix)
        assert p.stat().st_size <= 2000
        seq += [int(r["log"].split("-")[1]) for r in m.records(p)]
    # The newest lines survive, in order, without a gap.
    assert seq[-1] == 299
    assert seq == list(range(seq[0], 300))
    assert seq[0] > 0


def test_no_log_driver(mon):
    m = mon("nolog").start(["sh", "-c", "echo hi"], log=False)
    m.reply()
    assert m.read_attach()[0] == b"hi\n"
    m.wait()
    assert not m.log.exists()


def test_stdin_and_eof_through_attach(mon):
    m = mon("stdin").start(["sh", "-c", "cat; echo done"], stdin=True)
    m.reply()
    m.attach.send(b"\x00hello ")
    m.attach.send(b"\x00world\n")
    m.attach.send(b"\x01")
    out, _, code = m.read_attach()
    assert (out, code) == (b"hello world\ndone\n", 0)
    m.wait()
    assert [r["log"] for r in m.records()] == ["hello world\n", "done\n"]


def test_stdin_once_closes_with_the_client(mon):
    m = mon("once").start(["sh", "-c", "cat >/dev/null; echo eof"], stdin=True, stdin_once=True)
    m.reply()
    m.attach.send(b"\x00data\n")
    m.attach.close()
    m.attach = None
    m.wait()
    assert m.state()["ExitCode"] == 0
    assert [r["log"] for r in m.records()] == ["eof\n"]


def test_second_client_on_the_attach_socket(mon):
    m = mon("clients").start(["sh", "-c", "read x; echo got $x"], stdin=True)
    m.reply()
    c = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    c.connect(str(m.run_dir / "attach"))
    time.sleep(0.2)
    c.send(b"\x00one\n")
    out1, _, code1 = m.read_attach()
    out2, _, code2 = m.read_attach(c)
    c.close()
    assert out1 == out2 == b"got one\n"
    assert code1 == code2 == 0
    m.wait()


def test_slow_client_does_not_stall_the_container(mon):
    """A client that never reads loses output; the container, the log and other clients go
    on."""
    m = mon("slow").start(["sh", "-c", "read x; head -c 8000000 /dev/zero | tr '\\0' x; echo"],
                          stdin=True)
    m.reply()
    lazy = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    lazy.connect(str(m.run_dir / "attach"))
    time.sleep(0.2)
    m.attach.send(b"\x00go\n")
    out, _, code = m.read_attach(timeout=60)
    assert code == 0
    # The reading client keeps up in general, but it is not waited for either.
    assert 0 < len(out) <= 8000001 and set(out) <= {ord("x"), ord("\n")}
    assert m.wait() == 0
    total = sum(len(r["log"]) for r in m.records())
    assert total == 8000001
    lazy.close()


def test_terminal_resize_and_output(mon):
    m = mon("tty").start(["sh", "-c", "read x; stty size; exit 4"], terminal=True, stdin=True)
    m.reply()
    m.attach.send(b"\x0233 97")
    m.attach.send(b"\x00go\n")
    out, err, code = m.read_attach()
    assert code == 4
    assert err == b""
    assert b"33 97\r\n" in out
    m.wait()
    recs = m.records()
    assert {r["stream"] for r in recs} == {"stdout"}
    assert any(r["log"] == "33 97\r\n" for r in recs)
    m.assert_clean()


def test_terminal_eof(mon):
    m = mon("ttyeof").start(["sh", "-c", "cat >/dev/null; echo end"], terminal=True, stdin=True)
    m.reply()
    m.attach.send(b"\x00abc\n")
    m.attach.send(b"\x01")
    out, _, code = m.read_attach()
    assert code == 0 and out.endswith(b"end\r\n")
    m.wait()


def test_restart_on_failure_count(mon):
    m = mon("onfail").start(["sh", "-c", "echo run; exit 2"], restart="on-failure:2")
    m.reply()
    seen = set()
    deadline = time.time() + 30
    while m.proc.poll() is None and time.time() < deadline:
        try:
            seen.add(m.state()["Status"])
        except (FileNotFoundError, json.JSONDecodeError):
            pass
        time.sleep(0.01)
    out, _, code = m.read_attach()
    assert code == 2
    assert out == b"run\n" * 3
    assert m.wait() == 0
    st = m.state()
    assert (st["Status"], st["RestartCount"], st["ExitCode"]) == ("exited", 2, 2)
    assert "restarting" in seen
    assert [r["log"] for r in m.records()] == ["run\n"] * 3
    m.assert_clean()


def test_on_failure_does_not_restart_success(mon):
    m = mon("onfail0").start(["true"], restart="on-failure")
    m.reply()
    m.wait()
    assert m.state()["RestartCount"] == 0


def test_always_stops_with_the_marker(mon):
    m = mon("always").start(["sh", "-c", "exit 0"], restart="always")
    m.reply()
    assert wait_for(lambda: m.state()["RestartCount"] >= 3, timeout=20)
    (m.run_dir / "stopping").touch()
    assert m.wait(timeout=30) == 0
    st = m.state()
    assert st["Status"] == "exited"
    n = st["RestartCount"]
    time.sleep(0.5)
    assert m.state()["RestartCount"] == n
    m.assert_clean()


def test_always_running_container_stopped_with_marker(mon):
    m = mon("always2").start(["sleep", "100"], restart="unless-stopped")
    pid = m.reply()["pid"]
    (m.run_dir / "stopping").touch()
    os.kill(pid, signal.SIGKILL)
    _, _, code = m.read_attach()
    assert code == 137
    m.wait()
    st = m.state()
    assert (st["Status"], st["RestartCount"], st["ExitCode"]) == ("exited", 0, 137)


def test_health_becomes_healthy(mon):
    m = mon("healthy").start(["sleep", "100"], health={
        "cmd": ["CMD-SHELL", "echo fine; exit 0"], "interval": 200_000_000,
        "timeout": 10_000_000_000, "retries": 2})
    pid = m.reply()["pid"]
    assert m.state()["Health"]["Status"] == "starting"
    assert wait_for(lambda: m.state()["Health"]["Status"] == "healthy", timeout=20)
    assert wait_for(lambda: len(m.state()["Health"]["Log"]) == 5, timeout=20)
    h = m.state()["Health"]
    assert h["FailingStreak"] == 0
    for e in h["Log"]:
        assert e["ExitCode"] == 0 and e["Output"] == "fine\n"
        assert TIME_RE.match(e["Start"]) and TIME_RE.match(e["End"]) and e["End"] >= e["Start"]
    os.kill(pid, signal.SIGKILL)
    m.wait()
    m.assert_clean()


def test_health_becomes_unhealthy(mon):
    m = mon("unhealthy").start(["sleep", "100"], health={
        "cmd": ["CMD", "false"], "interval": 100_000_000, "retries": 3})
    pid = m.reply()["pid"]
    assert wait_for(lambda: m.state()["Health"]["Status"] == "unhealthy", timeout=20)
    h = m.state()["Health"]
    assert h["FailingStreak"] >= 3
    assert all(e["ExitCode"] == 1 for e in h["Log"])
    os.kill(pid, signal.SIGKILL)
    m.wait()


def test_health_timeout(mon):
    m = mon("htimeout").start(["sleep", "100"], health={
        "cmd": ["sleep", "30"], "interval": 100_000_000, "timeout": 300_000_000,
        "retries": 1})
    pid = m.reply()["pid"]
    assert wait_for(lambda: m.state()["Health"]["Status"] == "unhealthy", timeout=20)
    e = m.state()["Health"]["Log"][0]
    assert e["ExitCode"] == -1
    assert e["Output"] == "Health check exceeded timeout (300ms)"
    os.kill(pid, signal.SIGKILL)
    m.wait()


def test_health_start_period_does_not_count(mon):
    m = mon("hstart").start(["sleep", "100"], health={
        "cmd": ["CMD", "false"], "interval": 100_000_000, "retries": 1,
        "start-period": 60_000_000_000})
    pid = m.reply()["pid"]
    assert wait_for(lambda: len(m.state()["Health"]["Log"]) >= 3, timeout=20)
    h = m.state()["Health"]
    assert (h["Status"], h["FailingStreak"]) == ("starting", 0)
    os.kill(pid, signal.SIGKILL)
    m.wait()


def test_missing_command_is_127(mon):
    m = mon("enoent").start(["/bin/no-such-command"])
    reply = m.reply()
    assert reply["exit_code"] == 127
    assert "no-such-command" in reply["error"]
    assert "pid" not in reply
    assert m.wait() != 0
    st = m.state()
    assert st["Status"] == "exited" and st["ExitCode"] == 127
    assert "no-such-command" in st["Error"]
    assert m.read_attach(timeout=2)[2] is None
    m.assert_clean()


def test_not_executable_is_126(mon):
    m = mon("eacces").start(["/etc/passwd"])
    reply = m.reply()
    assert reply["exit_code"] == 126, reply
    m.wait()
    m.assert_clean()


def test_bad_command_line_replies_125(mon, tmp_path):
    a, b = socket.socketpair()
    p = subprocess.run([str(MONITOR), "--sync-fd", str(b.fileno()), "--id", "x"],
                       pass_fds=[b.fileno()], capture_output=True)
    b.close()
    assert p.returncode == 125
    reply = json.loads(a.recv(4096))
    a.close()
    assert reply["exit_code"] == 125 and "required" in reply["error"]


def test_memory_under_one_mib(mon):
    m = mon("mem").start(["sh", "-c", "i=0; while [ $i -lt 2000 ]; do echo line $i; "
                          "i=$((i+1)); done; exec sleep 100"], stdin=True)
    pid = m.reply()["pid"]
    assert wait_for(lambda: m.log.exists() and m.log.read_text().count("\n") >= 2000)
    m.attach.send(b"\x00" + b"x" * 1000)
    time.sleep(0.3)
    fields = {}
    with open(f"/proc/{m.proc.pid}/smaps_rollup") as f:
        for line in f:
            k, _, v = line.partition(":")
            if v.strip().endswith("kB"):
                fields[k] = int(v.split()[0])
    private = fields["Private_Clean"] + fields["Private_Dirty"]
    print(f"kiste-monitor private memory: {private} KiB "
          f"(clean {fields['Private_Clean']}, dirty {fields['Private_Dirty']}, "
          f"rss {fields['Rss']})")
    assert private < 1024
    os.kill(pid, signal.SIGKILL)
    m.wait()


def test_oom_killed(mon, bundle):
    bundle.config["linux"].setdefault("resources", {})["memory"] = {
        "limit": 32 * 1024 * 1024, "swap": 32 * 1024 * 1024}
    m = mon("oom").start(["sh", "-c", "x=aaaaaaaa; while true; do x=$x$x; done"])
    m.reply()
    _, _, code = m.read_attach(timeout=60)
    m.wait()
    st = m.state()
    assert st["OOMKilled"] is True, st
    assert code == st["ExitCode"] == 137


def test_rootfs_unmounted_and_cleanup_command(mon, bundle, tmp_path, busybox_rootfs):
    mnt = tmp_path / "merged"
    mnt.mkdir()
    subprocess.run(["mount", "--bind", str(busybox_rootfs), str(mnt)], check=True)
    try:
        bundle.config["root"]["path"] = str(mnt)
        marker = tmp_path / "cleaned"
        m = mon("rootfs").start(["true"], rootfs_mount=mnt,
                                cleanup=["/bin/sh", "-c", f"echo $$ > {marker}"])
        m.reply()
        assert m.wait() == 0
        assert not os.path.ismount(mnt)
        # The cleanup command ran in the monitor's process, after everything else.
        assert int(marker.read_text()) == m.proc.pid
        m.assert_clean()
    finally:
        if os.path.ismount(mnt):
            subprocess.run(["umount", "-l", str(mnt)])


def test_monitor_sigterm_stops_without_restart(mon):
    m = mon("term").start(["sh", "-c", "trap 'exit 7' TERM; while true; do sleep 0.1; done"],
                          restart="always")
    m.reply()
    time.sleep(0.3)
    m.proc.send_signal(signal.SIGTERM)
    _, _, code = m.read_attach()
    assert code == 7
    m.wait()
    assert (m.state()["Status"], m.state()["RestartCount"]) == ("exited", 0)


def test_container_writing_after_client_left(mon):
    """Clients that disconnect mid-stream are dropped; output keeps going to the log."""
    m = mon("gone").start(["sh", "-c", "read x; i=0; while [ $i -lt 3000 ]; do echo $i; "
                           "i=$((i+1)); done"], stdin=True)
    m.reply()
    c = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    c.connect(str(m.run_dir / "attach"))
    time.sleep(0.2)
    m.attach.send(b"\x00go\n")
    c.recv(10)
    c.close()
    m.attach.close()
    m.attach = None
    assert m.wait() == 0
    assert len(m.records()) == 3000


def test_output_after_the_init_exits_without_pid_namespace(mon, bundle):
    """Without a pid namespace the init's exit leaves its children holding stdout: the monitor
    takes what they wrote, has the runtime kill them, and ends without waiting for them."""
    ns = bundle.config["linux"]["namespaces"]
    bundle.config["linux"]["namespaces"] = [n for n in ns if n["type"] != "pid"]
    m = mon("nopidns").start(["sh", "-c", "(echo early; sleep 321; echo late) & sleep 0.3; "
                              "echo bye; exit 5"])
    m.reply()
    out, _, code = m.read_attach()
    assert code == 5
    assert out == b"early\nbye\n"
    assert m.wait(timeout=10) == 0
    assert [r["log"] for r in m.records()] == ["early\n", "bye\n"]
    # The background sleep went with the container.
    for pid in os.listdir("/proc"):
        if pid.isdigit():
            try:
                cmd = Path(f"/proc/{pid}/cmdline").read_bytes()
            except OSError:
                continue
            assert cmd != b"sleep\x00321\x00"
    m.assert_clean()


def test_stdin_waits_for_a_slow_reader(mon):
    """More stdin than a pipe holds, sent before the container reads: nothing is lost and the
    EOF comes after the last byte."""
    m = mon("stdinslow").start(["sh", "-c", "sleep 1; wc -c"], stdin=True)
    m.reply()
    for _ in range(100):
        m.attach.send(b"\x00" + b"y" * 2000)
    m.attach.send(b"\x01")
    out, _, code = m.read_attach()
    assert code == 0
    assert out.strip() == b"200000"
    m.wait()


def test_setup_failure_replies_125_and_touches_nothing(mon, tmp_path):
    """A state directory that cannot be made fails the start before the run directory is
    entered: the reply says so and no file of the caller's directory is removed."""
    (tmp_path / "blocker").write_text("")
    (tmp_path / "pid").write_text("keep")
    m = mon("setupfail")
    m.state_dir = tmp_path / "blocker" / "sub"
    m.run_dir = tmp_path / "run-setupfail"
    m.cwd = tmp_path
    m.start(["true"], log=False)
    reply = m.reply()
    assert reply["exit_code"] == 125 and "blocker" in reply["error"]
    assert m.wait() == 125
    assert (tmp_path / "pid").read_text() == "keep"
