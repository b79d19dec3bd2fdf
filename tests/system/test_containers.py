"""Containers through the command line: run, create, start, stop, kill, rm, ps, inspect, logs,
exec, pause, rename, restart policies, security defaults and resource limits, terminals and
detaching. Every test has a private --root and a short private --runroot under /run (the attach
socket's path must fit in 108 bytes) and removes every container it made."""

import json
import os
import pty
import re
import select
import shutil
import subprocess
import tarfile
import tempfile
import time
from pathlib import Path

import pytest

from conftest import KISTE, run_captured, wait_for, KisteCli, busybox_tar  # noqa: F401 (busybox_tar: a fixture)

NAME_RE = re.compile(r"^[a-z]+_[a-z]+[0-9]?$")




Kiste = KisteCli


@pytest.fixture
def kiste(tmp_path, busybox_tar):
    runroot = Path(tempfile.mkdtemp(prefix="kt-", dir="/run"))
    k = Kiste(tmp_path / "root", runroot)
    k("import", busybox_tar, "busybox")
    yield k
    ids = k("ps", "-aq", "--no-trunc", check=False).stdout.split()
    if ids:
        k("rm", "-f", *ids, check=False)
    leftover = k("ps", "-aq", check=False).stdout.split()
    mounts = [line.split()[4] for line in open("/proc/self/mountinfo")
              if str(k.root) in line.split()[4]]
    shutil.rmtree(runroot, ignore_errors=True)
    assert not leftover, f"containers left: {leftover}"
    assert not mounts, f"mounts left: {mounts}"


def test_run_foreground_exit_status_and_output(kiste):
    p = kiste("run", "busybox", "sh", "-c", "echo out; echo err >&2; exit 3", check=False)
    assert p.returncode == 3
    assert p.stdout == "out\n"
    assert p.stderr == "err\n"
    assert kiste("run", "busybox", "true").returncode == 0
    p = kiste("run", "busybox", "no-such-command", check=False)
    assert p.returncode == 127, p.stderr
    p = kiste("run", "busybox", "/etc/passwd", check=False)
    assert p.returncode == 126, p.stderr
    # pid 1 ignores signals it has no handler for; behind --init the command is pid 2
    p = kiste("run", "--init", "busybox", "sh", "-c", "kill -9 $$", check=False)
    assert p.returncode == 137
    p = kiste("run", "no-such-image", check=False)
    assert p.returncode == 125
    assert "Unable to find image 'no-such-image" in p.stderr
    p = kiste("run", "--pull", "never", "no-such-image", check=False)
    assert p.returncode == 125 and "No such image" in p.stderr
    p = kiste("run", "--bogus-flag", "busybox", check=False)
    assert p.returncode == 125


def test_detached_ps_inspect_logs_stop_rm(kiste):
    cid = kiste("run", "-d", "--name", "web", "busybox", "sh", "-c",
                "echo started; trap 'echo bye; exit 0' TERM; while :; do sleep 0.1; done"
                ).stdout.strip()
    assert re.fullmatch(r"[0-9a-f]{64}", cid)
    assert wait_for(lambda: "started" in kiste("logs", "web").stdout)
    ps = kiste("ps").stdout.splitlines()
    assert ps[0].split() == ["CONTAINER", "ID", "IMAGE", "COMMAND", "CREATED", "STATUS",
                             "PORTS", "NAMES"]
    assert len(ps) == 2 and ps[1].startswith(cid[:12]) and ps[1].endswith("web")
    assert re.search(r"Up (Less than a second|\d+ seconds?)", ps[1])
    info = kiste.inspect("web")
    assert info["Id"] == cid and info["Name"] == "/web"
    assert info["State"]["Status"] == "running" and info["State"]["Running"] is True
    assert info["State"]["Pid"] > 0
    assert info["Path"] == "sh" and info["Args"][0] == "-c"
    assert info["Config"]["Hostname"] == cid[:12]
    assert info["HostConfig"]["LogConfig"]["Type"] == "json-file"
    assert Path(info["LogPath"]).exists()
    assert kiste("inspect", "-f", "{{.State.Status}} {{.Name}}", "web").stdout == "running /web\n"
    assert kiste("stop", "web").stdout == "web\n"
    st = kiste.state("web")
    assert st["Status"] == "exited" and st["ExitCode"] == 0 and st["Running"] is False
    assert "bye" in kiste("logs", "web").stdout
    ps = kiste("ps", "-a").stdout.splitlines()
    assert re.search(r"Exited \(0\) ", ps[1])
    assert kiste("ps", "-q").stdout == ""
    assert kiste("ps", "-aq").stdout == cid[:12] + "\n"
    assert kiste("rm", "web").stdout == "web\n"
    assert kiste("ps", "-aq").stdout == ""
    assert not (kiste.root / "containers" / cid).exists()


def test_rm_refuses_running_unless_forced(kiste):
    kiste("run", "-d", "--name", "busy", "busybox", "sleep", "100")
    p = kiste("rm", "busy", check=False)
    assert p.returncode == 1 and "cannot remove a running container" in p.stderr
    kiste("rm", "-f", "busy")
    assert kiste("ps", "-aq").stdout == ""


def test_generated_names_unique_and_conflicts(kiste):
    names = set()
    for _ in range(5):
        cid = kiste("create", "busybox", "true").stdout.strip()
        name = kiste.inspect(cid)["Name"].lstrip("/")
        assert NAME_RE.match(name), name
        names.add(name)
    assert len(names) == 5
    kiste("create", "--name", "one", "busybox", "true")
    p = kiste("create", "--name", "one", "busybox", "true", check=False)
    assert p.returncode == 125
    assert 'The container name "/one" is already in use' in p.stderr
    p = kiste("create", "--name", "x", "busybox", "true", check=False)
    assert p.returncode == 125 and "Invalid container name" in p.stderr
    p = kiste("create", "--name", "bad name!", "busybox", "true", check=False)
    assert p.returncode == 125 and "Invalid container name" in p.stderr
    kiste("rename", "one", "two")
    assert kiste.inspect("two")["Name"] == "/two"
    assert kiste("inspect", "one", check=False).returncode == 1


def test_lookup_by_prefix_and_ambiguity(kiste):
    ids = []
    by_first = {}
    while True:
        cid = kiste("create", "busybox", "true").stdout.strip()
        ids.append(cid)
        by_first.setdefault(cid[0], []).append(cid)
        if len(by_first[cid[0]]) == 2:
            break
        assert len(ids) < 40
    a, b = by_first[cid[0]]
    common = os.path.commonprefix([a, b])
    assert kiste.inspect(a[:len(common) + 1])["Id"] == a
    assert kiste.inspect(b[:12])["Id"] == b
    p = kiste("inspect", "--type", "container", common, check=False)
    assert p.returncode == 1 and "multiple IDs found with provided prefix" in p.stderr
    p = kiste("rm", "f" * 20, check=False)
    assert p.returncode == 1 and "No such container" in p.stderr


def test_rm_flag_leaves_nothing(kiste):
    p = kiste("run", "--rm", "--name", "gone", "busybox", "sh", "-c", "echo x > /tmp/f; exit 4",
              check=False)
    assert p.returncode == 4
    assert kiste("ps", "-aq").stdout == ""
    assert list((kiste.root / "containers").iterdir()) == []
    cid = kiste("run", "-d", "--rm", "busybox", "true").stdout.strip()
    assert wait_for(lambda: kiste("ps", "-aq").stdout == "", timeout=10)
    assert not (kiste.root / "containers" / cid).exists()
    # only the image's layer directory is left in the overlay store
    layers = [d for d in (kiste.root / "overlay").iterdir() if d.name != "l"]
    assert len(layers) == 1


def test_restart_policy_on_failure_counts(kiste):
    kiste("run", "-d", "--name", "flaky", "--restart", "on-failure:2", "busybox",
          "sh", "-c", "exit 1")

    def done():
        st = kiste.inspect("flaky")
        return st["State"]["Status"] == "exited" and st["RestartCount"] == 2
    assert wait_for(done, timeout=20), kiste.inspect("flaky")
    info = kiste.inspect("flaky")
    assert info["HostConfig"]["RestartPolicy"] == {"Name": "on-failure", "MaximumRetryCount": 2}
    assert info["State"]["ExitCode"] == 1


def test_exec_output_exit_status_and_options(kiste):
    kiste("run", "-d", "--name", "box", "-e", "FOO=image", "busybox", "sleep", "100")
    p = kiste("exec", "box", "sh", "-c", "echo $FOO; exit 5", check=False)
    assert p.returncode == 5 and p.stdout == "image\n"
    p = kiste("exec", "-e", "FOO=exec", "-w", "/tmp", "-u", "user", "box", "sh", "-c",
              "echo $FOO $(pwd) $(id -u):$(id -g) $HOME")
    assert p.stdout == "exec /tmp 1000:1000 /home/user\n"
    assert kiste("exec", "box", "nope", check=False).returncode == 127
    assert kiste("exec", "-i", "box", "cat", input="piped\n").stdout == "piped\n"
    kiste("stop", "-t", "0", "box")
    p = kiste("exec", "box", "true", check=False)
    assert p.returncode != 0 and "is not running" in p.stderr


def test_env_workdir_user_entrypoint(kiste):
    env_file = kiste.root.parent / "env"
    env_file.write_text("# comment\nFROMFILE=yes\n\n")
    out = kiste("run", "-e", "A=1", "--env-file", env_file, "-w", "/tmp/work", "-u", "1000:1000",
                "-h", "myhost", "busybox", "sh", "-c",
                "echo $A $FROMFILE $(pwd) $(id -u):$(id -g) $(hostname) $HOSTNAME $HOME").stdout
    assert out == "1 yes /tmp/work 1000:1000 myhost myhost /home/user\n"
    out = kiste("run", "--entrypoint", "echo", "busybox", "a", "b").stdout
    assert out == "a b\n"
    out = kiste("run", "-u", "nobody", "busybox", "id").stdout
    assert "uid=65534(nobody) gid=65534(nogroup)" in out
    p = kiste("run", "-u", "ghost", "busybox", "id", check=False)
    assert p.returncode != 0 and "unable to find user ghost" in p.stderr
    out = kiste("run", "-t", "busybox", "sh", "-c", "echo $TERM").stdout
    assert out.strip() == "xterm"


def test_read_only_root(kiste):
    p = kiste("run", "--read-only", "busybox", "sh", "-c", "touch /x", check=False)
    assert p.returncode != 0 and "Read-only file system" in p.stderr
    out = kiste("run", "--read-only", "--tmpfs", "/scratch", "busybox", "sh", "-c",
                "touch /scratch/x && echo ok").stdout
    assert out == "ok\n"
    assert kiste("run", "busybox", "sh", "-c", "touch /x && echo ok").stdout == "ok\n"


def test_capabilities(kiste):
    assert kiste("run", "busybox", "chown", "1000", "/tmp").returncode == 0
    p = kiste("run", "--cap-drop", "ALL", "busybox", "chown", "1000", "/tmp", check=False)
    assert p.returncode != 0 and "Operation not permitted" in p.stderr
    p = kiste("run", "--cap-drop", "ALL", "--cap-add", "CHOWN", "busybox", "chown", "1000",
              "/tmp", check=False)
    assert p.returncode == 0, p.stderr
    status = kiste("run", "busybox", "grep", "CapBnd", "/proc/self/status").stdout.split()[1]
    assert int(status, 16) == 0xa80425fb  # Docker's default set
    status = kiste("run", "--privileged", "busybox", "grep", "CapBnd",
                   "/proc/self/status").stdout.split()[1]
    assert int(status, 16) > 0xa80425fb


def test_default_seccomp_refuses_unshare(kiste):
    p = kiste("run", "busybox", "unshare", "-U", "true", check=False)
    assert p.returncode != 0 and "Operation not permitted" in p.stderr
    p = kiste("run", "--security-opt", "seccomp=unconfined", "busybox", "unshare", "-U", "true",
              check=False)
    assert p.returncode == 0, p.stderr
    seccomp = kiste("run", "busybox", "grep", "Seccomp:", "/proc/self/status").stdout.split()[1]
    assert seccomp == "2"


def test_masked_paths_and_mounts(kiste):
    out = kiste("run", "busybox", "sh", "-c",
                "cat /proc/kcore | wc -c; grep -E ' /(sys|dev/shm|dev/mqueue|dev/pts) ' "
                "/proc/mounts").stdout
    lines = out.splitlines()
    assert lines[0].strip() == "0"
    mounts = {l.split()[1]: l.split() for l in lines[1:]}
    assert "ro" in mounts["/sys"][3].split(",")
    assert "size=65536k" in mounts["/dev/shm"][3]
    assert "/dev/mqueue" in mounts and "/dev/pts" in mounts


def test_memory_limit_in_cgroup(kiste):
    kiste("run", "-d", "--name", "mem", "-m", "64m", "--pids-limit", "50", "busybox", "sleep", "100")
    pid = kiste.state("mem")["Pid"]
    cg = Path(f"/proc/{pid}/cgroup").read_text().splitlines()
    limit = None
    for line in cg:
        _, ctrls, path = line.split(":", 2)
        if "memory" in ctrls.split(","):
            limit = Path(f"/sys/fs/cgroup/memory{path}/memory.limit_in_bytes").read_text()
        elif ctrls == "" and Path(f"/sys/fs/cgroup{path}/memory.max").exists():
            limit = Path(f"/sys/fs/cgroup{path}/memory.max").read_text()
    assert limit is not None and int(limit) == 64 << 20
    assert kiste.inspect("mem")["HostConfig"]["Memory"] == 64 << 20


def test_rmi_refused_while_container_uses_image(kiste):
    cid = kiste("create", "--name", "user", "busybox", "true").stdout.strip()
    p = kiste("rmi", "busybox", check=False)
    assert p.returncode != 0
    assert cid[:12] in p.stderr and "being used by" in p.stderr
    kiste("rm", "user")
    kiste("rmi", "busybox")


def test_pause_unpause_kill_wait(kiste):
    kiste("run", "-d", "--name", "pz", "busybox", "sh", "-c",
          "trap 'exit 42' USR1; while :; do sleep 0.1; done")
    kiste("pause", "pz")
    assert kiste.state("pz")["Status"] == "paused"
    assert "(Paused)" in kiste("ps").stdout
    kiste("unpause", "pz")
    assert kiste.state("pz")["Status"] == "running"
    kiste("kill", "-s", "USR1", "pz")
    assert kiste("wait", "pz").stdout == "42\n"
    assert kiste.state("pz")["ExitCode"] == 42
    # behind --init a signal without a handler kills the command: 128 + the signal
    kiste("run", "-d", "--init", "--name", "ki", "busybox", "sleep", "100")
    kiste("kill", "ki")
    assert kiste("wait", "ki").stdout == "137\n"


def test_stop_timeout_and_signal(kiste):
    kiste("run", "-d", "--name", "stubborn", "busybox", "sh", "-c",
          "trap '' TERM; while :; do sleep 0.1; done")
    t = time.time()
    kiste("stop", "-t", "1", "stubborn")
    assert time.time() - t < 8
    assert kiste.state("stubborn")["ExitCode"] == 137
    kiste("run", "-d", "--name", "sig", "--stop-signal", "USR1", "busybox", "sh", "-c",
          "trap 'exit 42' USR1; while :; do sleep 0.1; done")
    t = time.time()
    kiste("stop", "sig")
    assert time.time() - t < 5
    assert kiste.state("sig")["ExitCode"] == 42
    assert kiste.inspect("sig")["Config"]["StopSignal"] == "USR1"


def test_start_and_restart(kiste):
    kiste("create", "--name", "cc", "busybox", "sh", "-c", "echo run; exit 2")
    assert kiste.state("cc")["Status"] == "created"
    assert "Created" in kiste("ps", "-a").stdout
    p = kiste("start", "-a", "cc", check=False)
    assert p.returncode == 2 and p.stdout == "run\n"
    kiste("start", "cc")
    assert kiste("wait", "cc").stdout == "2\n"
    kiste("run", "-d", "--name", "rr", "busybox", "sleep", "100")
    pid = kiste.state("rr")["Pid"]
    kiste("restart", "-t", "0", "rr")
    st = kiste.state("rr")
    assert st["Status"] == "running" and st["Pid"] != pid


def test_init_is_pid_one(kiste):
    out = kiste("run", "--init", "busybox", "cat", "/proc/1/cmdline").stdout
    assert out.split("\0")[0] == "/dev/init"


def test_ps_filters_and_format(kiste):
    kiste("run", "-d", "--name", "alpha", "--label", "tier=web", "busybox", "sleep", "100")
    kiste("create", "--name", "beta", "busybox", "true")
    kiste("run", "--name", "gamma", "busybox", "sh", "-c", "exit 3", check=False)
    fmt = ["--format", "{{.Names}}"]
    assert kiste("ps", *fmt).stdout == "alpha\n"
    assert kiste("ps", "-a", *fmt).stdout.split() == ["gamma", "beta", "alpha"]
    assert kiste("ps", "-a", "--filter", "status=created", *fmt).stdout == "beta\n"
    assert kiste("ps", "-a", "--filter", "exited=3", *fmt).stdout == "gamma\n"
    assert kiste("ps", "-a", "--filter", "label=tier=web", *fmt).stdout == "alpha\n"
    assert kiste("ps", "-a", "--filter", "name=et", *fmt).stdout == "beta\n"
    assert kiste("ps", "-a", "--filter", "ancestor=busybox", *fmt).stdout.split() == [
        "gamma", "beta", "alpha"]
    assert kiste("ps", "-a", "--filter", "before=gamma", *fmt).stdout.split() == ["beta", "alpha"]
    assert kiste("ps", "-a", "--filter", "since=alpha", *fmt).stdout.split() == ["gamma", "beta"]
    assert kiste("ps", "-l", *fmt).stdout == "gamma\n"
    assert kiste("ps", "-n", "2", *fmt).stdout.split() == ["gamma", "beta"]
    out = kiste("ps", "-a", "--format", "table {{.Names}}\t{{.Status}}").stdout.splitlines()
    assert out[0].split() == ["NAMES", "STATUS"]
    assert kiste("ps", "-a", "--format", "{{json .Labels}}", "--filter", "name=alpha"
                 ).stdout == '"tier=web"\n'


def test_inspect_falls_back_to_image(kiste):
    info = json.loads(kiste("inspect", "busybox").stdout)[0]
    assert info["Id"].startswith("sha256:") and "RepoTags" in info
    p = kiste("inspect", "nothing-here", check=False)
    assert p.returncode == 1 and "No such object: nothing-here" in p.stderr


def test_log_driver_none_and_options(kiste):
    kiste("run", "--name", "quiet", "--log-driver", "none", "busybox", "echo", "x")
    p = kiste("logs", "quiet", check=False)
    assert p.returncode != 0 and "does not support reading" in p.stderr
    kiste("run", "--name", "small", "--log-opt", "max-size=1k", "--log-opt", "max-file=2",
          "busybox", "sh", "-c", "i=0; while [ $i -lt 200 ]; do echo line $i; i=$((i+1)); done")
    info = kiste.inspect("small")
    assert info["HostConfig"]["LogConfig"]["Config"] == {"max-size": "1k", "max-file": "2"}
    log = Path(info["LogPath"])
    assert log.stat().st_size <= 1024
    assert not Path(str(log) + ".2").exists()


def _pty_run(argv, timeout=10):
    pid, fd = pty.fork()
    if pid == 0:
        os.execv(argv[0], argv)
    return pid, fd


def _read_until(fd, want, timeout=10):
    out = b""
    end = time.time() + timeout
    while time.time() < end and want not in out:
        r, _, _ = select.select([fd], [], [], 0.1)
        if r:
            try:
                chunk = os.read(fd, 4096)
            except OSError:
                break
            if not chunk:
                break
            out += chunk
    return out


def test_tty_prompt_echo_and_detach(kiste):
    pid, fd = _pty_run(kiste.argv("run", "-ti", "--name", "tty", "busybox", "sh"))
    try:
        assert b"/ # " in _read_until(fd, b"/ # ")
        os.write(fd, b"echo hel''lo$((40+2))\r")
        out = _read_until(fd, b"hello42")
        assert b"echo hel''lo$((40+2))" in out  # the terminal echoes what we typed
        assert b"hello42" in out
        os.write(fd, b"\x10\x11")  # ctrl-p ctrl-q
        _read_until(fd, b"never", timeout=1)
        _, status = os.waitpid(pid, 0)
        pid = 0
        assert os.WEXITSTATUS(status) == 0
    finally:
        if pid:
            os.kill(pid, 9)
            os.waitpid(pid, 0)
        os.close(fd)
    assert kiste.state("tty")["Status"] == "running"
    # attach again, leave with exit: the exit status comes back
    pid, fd = _pty_run(kiste.argv("attach", "tty"))
    try:
        os.write(fd, b"exit 9\r")
        _read_until(fd, b"never", timeout=2)
        _, status = os.waitpid(pid, 0)
        pid = 0
        assert os.WEXITSTATUS(status) == 9
    finally:
        if pid:
            os.kill(pid, 9)
            os.waitpid(pid, 0)
        os.close(fd)
    assert kiste.state("tty")["ExitCode"] == 9


def test_rm_tty_detach_keeps_running_and_removes_on_exit(kiste):
    """run --rm -ti: a detach returns at once and leaves the container running; when it exits
    later, its monitor removes it."""
    pid, fd = _pty_run(kiste.argv("run", "--rm", "-ti", "--name", "rmtty", "busybox", "sh"))
    try:
        assert b"/ # " in _read_until(fd, b"/ # ")
        t0 = time.monotonic()
        os.write(fd, b"\x10\x11")  # ctrl-p ctrl-q
        _, status = os.waitpid(pid, 0)
        pid = 0
        assert os.WEXITSTATUS(status) == 0 and time.monotonic() - t0 < 10
    finally:
        if pid:
            os.kill(pid, 9)
            os.waitpid(pid, 0)
        os.close(fd)
    assert kiste.state("rmtty")["Status"] == "running"
    kiste("stop", "-t", "1", "rmtty")
    assert wait_for(lambda: "rmtty" not in kiste("ps", "-a", "--format", "{{.Names}}").stdout,
                    timeout=10)


def test_interactive_stdin_pipe(kiste):
    p = kiste("run", "-i", "--rm", "busybox", "sh", "-c", "tr a-z A-Z", input="hello\n")
    assert p.returncode == 0 and p.stdout == "HELLO\n"
    # without -i the container's stdin is empty
    p = kiste("run", "--rm", "busybox", "cat", input="ignored\n")
    assert p.stdout == ""


def test_top_and_container_group(kiste):
    kiste("container", "run", "-d", "--name", "tt", "busybox", "sleep", "123")
    out = kiste("top", "tt").stdout.splitlines()
    assert "PID" in out[0] and any("sleep 123" in l for l in out[1:])
    assert kiste("container", "ls", "--format", "{{.Names}}").stdout == "tt\n"
    kiste("container", "rm", "-f", "tt")
    kiste("create", "--name", "old", "busybox", "true")
    out = kiste("container", "prune", "-f").stdout
    assert "Deleted Containers" in out
    assert kiste("ps", "-aq").stdout == ""


def test_network_namespace_has_only_loopback(kiste):
    out = kiste("run", "--network", "none", "busybox", "sh", "-c",
                "ip -o link | cut -d: -f2; ping -c1 -W2 127.0.0.1 >/dev/null && echo ping-ok"
                ).stdout.split()
    assert out == ["lo", "ping-ok"]
    kiste("run", "-d", "--name", "net", "busybox", "sleep", "100")
    pid = kiste.state("net")["Pid"]
    assert os.readlink(f"/proc/{pid}/ns/net") != os.readlink("/proc/self/ns/net")


def test_healthcheck_status(kiste):
    kiste("run", "-d", "--name", "hc", "--health-cmd", "test -e /tmp/ok", "--health-interval",
          "200ms", "--health-retries", "1", "busybox", "sh", "-c",
          "touch /tmp/ok; while :; do sleep 0.1; done")
    assert wait_for(lambda: "(healthy)" in kiste("ps").stdout, timeout=15)
    assert kiste.state("hc")["Health"]["Status"] == "healthy"
    kiste("exec", "hc", "rm", "/tmp/ok")
    assert wait_for(lambda: kiste.state("hc")["Health"]["Status"] == "unhealthy", timeout=15)
    assert "(unhealthy)" in kiste("ps").stdout
    cid = kiste("create", "--no-healthcheck", "busybox", "true").stdout.strip()
    assert kiste.inspect(cid)["Config"]["Healthcheck"]["Test"] == ["NONE"]


def test_restart_always_stops_when_told(kiste):
    kiste("run", "-d", "--name", "loop", "--restart", "always", "busybox", "sh", "-c",
          "sleep 0.2; exit 3")
    assert wait_for(lambda: kiste.inspect("loop")["RestartCount"] >= 1, timeout=15)
    kiste("stop", "-t", "1", "loop")
    st = kiste.state("loop")
    assert st["Status"] == "exited"
    time.sleep(1)
    assert kiste.state("loop")["Status"] == "exited"


def test_exec_with_terminal(kiste):
    kiste("run", "-d", "--name", "ex", "busybox", "sleep", "100")
    pid, fd = _pty_run(kiste.argv("exec", "-ti", "ex", "sh"))
    try:
        assert b"/ # " in _read_until(fd, b"/ # ")
        os.write(fd, b"tty; echo T=$TERM; exit 4\r")
        out = _read_until(fd, b"T=xterm")
        assert b"/dev/pts/" in out and b"T=xterm" in out
        _, status = os.waitpid(pid, 0)
        pid = 0
        assert os.WEXITSTATUS(status) == 4
    finally:
        if pid:
            os.kill(pid, 9)
            os.waitpid(pid, 0)
        os.close(fd)


def test_diff_stats_update_export(kiste, tmp_path):
    kiste("run", "-d", "--name", "dd", "-m", "64m", "busybox", "sh", "-c",
          "echo x > /tmp/new; rm /etc/group; echo y >> /etc/passwd; touch /ready; sleep 100")
    assert wait_for(lambda: "A /ready" in kiste("diff", "dd").stdout)
    lines = kiste("diff", "dd").stdout.splitlines()
    for want in ("C /etc", "D /etc/group", "C /etc/passwd", "A /tmp/new", "C /tmp"):
        assert want in lines, lines
    out = kiste("stats", "--no-stream").stdout.splitlines()
    assert out[0].split()[:4] == ["CONTAINER", "ID", "NAME", "CPU"]
    assert "dd" in out[1] and "/ 64MiB" in out[1]
    kiste("update", "-m", "128m", "--pids-limit", "20", "dd")
    info = kiste.inspect("dd")
    assert info["HostConfig"]["Memory"] == 128 << 20 and info["HostConfig"]["PidsLimit"] == 20
    pid = info["State"]["Pid"]
    for line in Path(f"/proc/{pid}/cgroup").read_text().splitlines():
        _, ctrls, path = line.split(":", 2)
        if "memory" in ctrls.split(","):
            assert int(Path(f"/sys/fs/cgroup/memory{path}/memory.limit_in_bytes").read_text()) \
                == 128 << 20
    out = tmp_path / "fs.tar"
    kiste("export", "-o", out, "dd")
    with tarfile.open(out) as t:
        names = t.getnames()
    assert "./tmp/new" in names and "./bin/busybox" in names and "./etc/group" not in names
    kiste("stop", "-t", "0", "dd")
    kiste("export", "-o", out, "dd")  # a stopped container's file system is mounted for it
    with tarfile.open(out) as t:
        assert "./tmp/new" in t.getnames()


def test_cp_both_ways_stays_inside(kiste, tmp_path):
    kiste("run", "-d", "--name", "cpx", "busybox", "sh", "-c",
          "mkdir -p /data/sub; echo hi > /data/sub/f; ln -s /etc /data/evil; touch /ready; "
          "sleep 100")
    assert wait_for(lambda: kiste("exec", "cpx", "test", "-e", "/ready", check=False
                                  ).returncode == 0)
    out = tmp_path / "out"
    out.mkdir()
    kiste("cp", "cpx:/data", out)
    assert (out / "data" / "sub" / "f").read_text() == "hi\n"
    assert os.readlink(out / "data" / "evil") == "/etc"
    kiste("cp", "cpx:/data/sub/f", out / "renamed")
    assert (out / "renamed").read_text() == "hi\n"
    host = tmp_path / "hostfile"
    host.write_text("from host\n")
    kiste("cp", host, "cpx:/data/")
    assert kiste("exec", "cpx", "cat", "/data/hostfile").stdout == "from host\n"
    kiste("cp", host, "cpx:/newname")
    assert kiste("exec", "cpx", "cat", "/newname").stdout == "from host\n"
    # a symlink in the container resolves inside the container, never on the host
    marker = f"kiste-cp-test-{os.getpid()}"
    kiste("cp", host, f"cpx:/data/evil/{marker}")
    assert not Path("/etc", marker).exists()
    assert kiste("exec", "cpx", "cat", f"/etc/{marker}").stdout == "from host\n"
    p = kiste("cp", "cpx:/nonexistent", out, check=False)
    assert p.returncode != 0 and "Could not find the file /nonexistent" in p.stderr
    kiste("stop", "-t", "0", "cpx")
    kiste("cp", "cpx:/newname", out / "n2")  # a stopped container's file system works too
    assert (out / "n2").read_text() == "from host\n"


def test_dead_monitor_reads_as_exited(kiste):
    cid = kiste("run", "-d", "--name", "md", "busybox", "sleep", "100").stdout.strip()
    pid = kiste.state("md")["Pid"]
    monitor = int((kiste.runroot / "containers" / cid / "monitor.pid").read_text())
    os.kill(monitor, 9)
    assert wait_for(lambda: kiste.state("md")["Status"] == "exited")
    st = kiste.state("md")
    assert st["Error"] == "monitor died" and st["Running"] is False
    assert "Exited (255)" in kiste("ps", "-a").stdout
    kiste("rm", "md")  # takes the orphaned container's processes down too
    from conftest import pid_alive
    assert wait_for(lambda: not pid_alive(pid))


def test_logs_follow_tail_timestamps(kiste):
    kiste("run", "-d", "--name", "lg", "busybox", "sh", "-c",
          "echo one; echo two >&2; sleep 1; echo three")
    p = kiste("logs", "-f", "lg", timeout=20)
    assert p.stdout == "one\nthree\n" and p.stderr == "two\n"
    assert kiste("logs", "--tail", "1", "lg").stdout == "three\n"
    line = kiste("logs", "-t", "--tail", "1", "lg").stdout
    assert re.match(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d+Z three\n", line)
    log = Path(kiste.inspect("lg")["LogPath"]).read_text().splitlines()
    first = json.loads(log[0])
    assert first["log"] == "one\n" and first["stream"] == "stdout" and first["time"].endswith("Z")


def test_platform_and_flag_errors(kiste):
    assert kiste("run", "--platform", "linux/amd64", "busybox", "true").returncode == 0
    p = kiste("run", "--platform", "linux/s390x", "busybox", "true", check=False)
    assert p.returncode == 125
    p = kiste("run", "--restart", "sometimes", "busybox", "true", check=False)
    assert p.returncode == 125 and "invalid restart policy" in p.stderr
    p = kiste("run", "--rm", "--restart", "always", "busybox", "true", check=False)
    assert p.returncode == 125 and "Conflicting options: --restart and --rm" in p.stderr
    p = kiste("run", "-m", "lots", "busybox", "true", check=False)
    assert p.returncode == 125
    p = kiste("run", "--cap-add", "CAP_NOPE", "busybox", "true", check=False)
    assert p.returncode == 125 and "unknown capability" in p.stderr
    # the first run and the container whose start failed stay, as with Docker
    assert kiste("ps", "-aq").stdout.count("\n") == 2


def test_ulimit_device_oom_score_cpus(kiste):
    out = kiste("run", "--ulimit", "nofile=100:200", "--device", "/dev/zero:/dev/myzero",
                "--oom-score-adj", "500", "busybox", "sh", "-c",
                "ulimit -n; ulimit -Hn; head -c 3 /dev/myzero | wc -c; cat /proc/self/oom_score_adj"
                ).stdout.split()
    assert out == ["100", "200", "3", "500"]
    kiste("run", "-d", "--name", "cpu", "--cpus", "0.5", "--cpu-shares", "512", "busybox",
          "sleep", "100")
    pid = kiste.state("cpu")["Pid"]
    for line in Path(f"/proc/{pid}/cgroup").read_text().splitlines():
        _, ctrls, path = line.split(":", 2)
        if "cpu" in ctrls.split(","):
            d = Path(f"/sys/fs/cgroup/{ctrls}{path}")
            if not d.exists():
                d = Path(f"/sys/fs/cgroup/cpu{path}")
            assert int((d / "cpu.cfs_quota_us").read_text()) == 50000
            assert int((d / "cpu.shares").read_text()) == 512


def _monitors_of(cid):
    found = []
    for pid in os.listdir("/proc"):
        if not pid.isdigit():
            continue
        try:
            cmd = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if cmd and cmd[0].endswith(b"kiste-monitor") and cid.encode() in cmd:
            found.append(pid)
    return found


def test_concurrent_starts_make_one_monitor(kiste):
    from concurrent.futures import ThreadPoolExecutor
    cid = kiste("create", "busybox", "sleep", "100").stdout.strip()
    with ThreadPoolExecutor(4) as ex:
        results = list(ex.map(lambda _: kiste("start", cid, check=False), range(4)))
    assert all(r.returncode == 0 for r in results), [r.stderr for r in results]
    assert kiste.state(cid)["Status"] == "running"
    assert len(_monitors_of(cid)) == 1
    names = set()
    with ThreadPoolExecutor(4) as ex:
        outs = list(ex.map(lambda _: kiste("create", "busybox", "true").stdout.strip(), range(8)))
    for o in outs:
        names.add(kiste.inspect(o)["Name"])
    assert len(names) == 8


def test_commit_makes_a_runnable_image(kiste):
    kiste("run", "--name", "cm", "-e", "GREETING=hello world", "-w", "/srv", "--label", "a=b",
          "busybox", "sh", "-c", "echo data > /srv/file")
    image = kiste("commit", "-m", "snapshot", "-c", "EXPOSE 80", "cm", "snap:v1").stdout.strip()
    assert re.fullmatch(r"sha256:[0-9a-f]{64}", image)
    out = kiste("run", "--rm", "snap:v1", "sh", "-c", "cat /srv/file; echo $GREETING; pwd").stdout
    assert out == "data\nhello world\n/srv\n"
    cfg = json.loads(kiste("image", "inspect", "snap:v1").stdout)[0]["Config"]
    assert cfg["Labels"] == {"a": "b"} and "80/tcp" in cfg["ExposedPorts"]
    kiste("rm", "cm")
    kiste("rmi", "snap:v1")


def test_sig_proxy_forwards_signals(kiste):
    with tempfile.TemporaryFile() as out:
        p = subprocess.Popen(kiste.argv("run", "--name", "sp", "busybox", "sh", "-c",
                                        "trap 'echo got; exit 7' TERM; echo ready; "
                                        "while :; do sleep 0.1; done"),
                             stdout=out, stderr=subprocess.DEVNULL, stdin=subprocess.DEVNULL)
        try:
            assert wait_for(lambda: "ready" in kiste("logs", "sp", check=False).stdout)
            p.send_signal(15)
            assert p.wait(timeout=10) == 7
        finally:
            if p.poll() is None:
                p.kill()
                p.wait()
        out.seek(0)
        assert out.read().decode() == "ready\ngot\n"
    # without the proxy the client's signal stays with the client
    p = subprocess.Popen(kiste.argv("run", "--sig-proxy=false", "--name", "np", "busybox",
                                    "sleep", "100"),
                         stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                         stdin=subprocess.DEVNULL)
    try:
        assert wait_for(lambda: kiste("inspect", "-f", "{{.State.Status}}", "np",
                                      check=False).stdout == "running\n")
        p.send_signal(15)
        p.wait(timeout=10)
    finally:
        if p.poll() is None:
            p.kill()
            p.wait()
    assert kiste.state("np")["Status"] == "running"


def test_wait_on_created_container_waits_for_its_run(kiste):
    from concurrent.futures import ThreadPoolExecutor
    cid = kiste("create", "busybox", "sh", "-c", "exit 6").stdout.strip()
    with ThreadPoolExecutor(1) as ex:
        fut = ex.submit(kiste, "wait", cid)
        time.sleep(0.5)
        assert not fut.done()
        kiste("start", cid)
        assert fut.result(timeout=20).stdout == "6\n"


def _df(kiste):
    rows = {}
    for line in kiste("system", "df", "--format",
                      "{{.Type}}|{{.TotalCount}}|{{.Active}}|{{.Size}}|{{.Reclaimable}}"
                      ).stdout.splitlines():
        t, total, active, size, recl = line.split("|")
        rows[t] = (int(total), int(active), size, recl)
    return rows


def test_system_df_counts_images_and_containers(kiste):
    table = kiste("system", "df").stdout.splitlines()
    assert table[0].split() == ["TYPE", "TOTAL", "ACTIVE", "SIZE", "RECLAIMABLE"]
    assert [r.split()[0] for r in table[1:]] == ["Images", "Containers", "Local", "Build"]
    df = _df(kiste)
    assert df["Images"][:2] == (1, 0) and df["Images"][3].endswith("(100%)")
    assert df["Containers"] == (0, 0, "0B", "0B")
    # A second tag is the same image; a running container makes it active.
    kiste("tag", "busybox", "other:tag")
    kiste("run", "-d", "--name", "big", "busybox", "sh", "-c",
          "dd if=/dev/zero of=/big bs=1024 count=2048 2>/dev/null; sleep 60")
    kiste("create", "--name", "idle", "busybox", "true")
    assert wait_for(lambda: _df(kiste)["Containers"][2] == "2.1MB", timeout=10)
    df = _df(kiste)
    assert df["Images"][:2] == (1, 1) and df["Images"][3] == "0B (0%)"
    assert df["Containers"][:2] == (2, 1)
    # The running container's 2 MiB are not reclaimable; the idle one wrote nothing.
    assert df["Containers"][3].startswith("0B")
    kiste("stop", "-t", "0", "big")
    df = _df(kiste)
    assert df["Containers"][:2] == (2, 0) and df["Containers"][3] == "2.1MB (100%)"
