"""The effect of every container command and flag that test_containers.py does not already show:
each test looks inside the container (id, ulimit, /proc, mounts) or on the host (cgroup files,
log files, inspect) for what the flag must change, so that it fails when the flag is ignored.
Same fixtures as test_containers.py: a private --root and a short --runroot under /run."""

import hashlib
import io
import json
import os
import pwd
import re
import subprocess
import tarfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from conftest import wait_for
from test_containers import _pty_run, _read_until, busybox_tar, kiste  # noqa: F401 (fixtures)


# ---------------------------------------------------------------------------------------------
# Helpers

def cgroup_file(pid, v1_controller, v1_name, v2_name):
    """The text of a cgroup control file of the process: the v1 file in the controller's
    hierarchy when there is one (this host), else the v2 file in the unified hierarchy."""
    for line in Path(f"/proc/{pid}/cgroup").read_text().splitlines():
        _, ctrls, path = line.split(":", 2)
        if v1_controller in ctrls.split(","):
            for mount in (ctrls, v1_controller):
                f = Path(f"/sys/fs/cgroup/{mount}{path}/{v1_name}")
                if f.exists():
                    return f.read_text().strip()
    for line in Path(f"/proc/{pid}/cgroup").read_text().splitlines():
        _, ctrls, path = line.split(":", 2)
        if ctrls == "":
            for base in ("/sys/fs/cgroup", "/sys/fs/cgroup/unified"):
                f = Path(f"{base}{path}/{v2_name}")
                if f.exists():
                    return f.read_text().strip()
    return None


def running(kiste, name):
    return kiste("inspect", "-f", "{{.State.Status}}", name, check=False).stdout == "running\n"


def wait_pty_exit(pid, timeout=10):
    end = time.time() + timeout
    while time.time() < end:
        w, status = os.waitpid(pid, os.WNOHANG)
        if w == pid:
            return os.WEXITSTATUS(status) if os.WIFEXITED(status) else 128 + os.WTERMSIG(status)
        time.sleep(0.02)
    return None


def close_pty(pid, fd):
    if pid:
        try:
            os.kill(pid, 9)
            os.waitpid(pid, 0)
        except (ProcessLookupError, ChildProcessError):
            pass
    os.close(fd)


def save_archive(path, rootfs_tar, config, tag):
    """A `docker save` archive of one layer (the busybox tree) and the given image config."""
    layer = Path(rootfs_tar).read_bytes()
    diff_id = "sha256:" + hashlib.sha256(layer).hexdigest()
    cfg = {"architecture": "amd64", "os": "linux", "config": config,
           "rootfs": {"type": "layers", "diff_ids": [diff_id]}, "history": [{}]}
    cfg_bytes = json.dumps(cfg).encode()
    cfg_name = hashlib.sha256(cfg_bytes).hexdigest() + ".json"
    manifest = json.dumps([{"Config": cfg_name, "RepoTags": [tag],
                            "Layers": ["layer/layer.tar"]}]).encode()
    with tarfile.open(path, "w") as t:
        for name, data in ((cfg_name, cfg_bytes), ("layer/layer.tar", layer),
                           ("manifest.json", manifest)):
            info = tarfile.TarInfo(name)
            info.size = len(data)
            t.addfile(info, io.BytesIO(data))


# ---------------------------------------------------------------------------------------------
# run / create: process, environment, labels

def test_group_add(kiste):
    out = kiste("run", "--group-add", "4321", "--group-add", "user", "-u", "nobody", "busybox",
                "id", "-G").stdout.split()
    assert out[0] == "65534" and "4321" in out and "1000" in out
    assert kiste("run", "busybox", "id", "-G").stdout.split() == ["0"]
    p = kiste("run", "--group-add", "nosuchgroup", "busybox", "true", check=False)
    assert p.returncode != 0 and "nosuchgroup" in p.stderr
    cid = kiste("create", "--group-add", "4321", "busybox", "true").stdout.strip()
    assert kiste.inspect(cid)["HostConfig"]["GroupAdd"] == ["4321"]


def test_env_file_and_label_file(kiste, tmp_path):
    (tmp_path / "env").write_text("# comment\n\nA=from-file\nB=b\n")
    (tmp_path / "labels").write_text("# comment\ntier=db\n\nowner=ops team\n")
    os.environ["KISTE_TEST_PASSED"] = "from-host"
    try:
        out = kiste("run", "--env-file", tmp_path / "env", "-e", "B=override", "-e",
                    "KISTE_TEST_PASSED", "-e", "KISTE_TEST_UNSET_VAR", "busybox", "sh", "-c",
                    "echo $A $B $KISTE_TEST_PASSED ${KISTE_TEST_UNSET_VAR-unset}").stdout
    finally:
        del os.environ["KISTE_TEST_PASSED"]
    assert out == "from-file override from-host unset\n"
    kiste("create", "--name", "lab", "--label-file", tmp_path / "labels", "-l", "x=1",
          "busybox", "true")
    assert kiste.inspect("lab")["Config"]["Labels"] == {"tier": "db", "owner": "ops team",
                                                        "x": "1"}
    assert kiste("ps", "-a", "--filter", "label=tier=db", "--format", "{{.Names}}"
                 ).stdout == "lab\n"
    p = kiste("create", "--env-file", tmp_path / "missing", "busybox", "true", check=False)
    assert p.returncode == 125


# ---------------------------------------------------------------------------------------------
# Resources

def test_memory_swap_reservation_cpuset_pids(kiste):
    kiste("run", "-d", "--name", "res", "-m", "64m", "--memory-swap", "128m",
          "--memory-reservation", "32m", "--cpuset-cpus", "0", "--pids-limit", "50",
          "busybox", "sleep", "100")
    pid = kiste.state("res")["Pid"]
    assert int(cgroup_file(pid, "memory", "memory.soft_limit_in_bytes", "memory.low")) == 32 << 20
    swap = cgroup_file(pid, "memory", "memory.memsw.limit_in_bytes", "memory.swap.max")
    if swap is not None:  # v1 without swap accounting has no memsw file
        # v1 counts memory+swap, v2 swap alone
        assert int(swap) in (128 << 20, 64 << 20)
    assert cgroup_file(pid, "cpuset", "cpuset.cpus", "cpuset.cpus") == "0"
    assert cgroup_file(pid, "pids", "pids.max", "pids.max") == "50"
    hc = kiste.inspect("res")["HostConfig"]
    assert (hc["MemorySwap"], hc["MemoryReservation"], hc["CpusetCpus"], hc["PidsLimit"]) == (
        128 << 20, 32 << 20, "0", 50)
    # the limit is real: the 51st process cannot be made
    out = kiste("exec", "res", "sh", "-c",
                "i=0; while [ $i -lt 60 ]; do sleep 5 & i=$((i+1)); done 2>&1; echo done",
                check=False)
    assert "fork" in (out.stdout + out.stderr).lower() or "resource" in (
        out.stdout + out.stderr).lower(), out
    kiste("run", "-d", "--name", "cpus", "--cpuset-cpus", "1", "busybox", "sleep", "100")
    out = kiste("exec", "cpus", "grep", "Cpus_allowed_list", "/proc/self/status").stdout
    assert out.split()[1] == "1"


def test_update_cpus_restart_and_limits(kiste):
    kiste("run", "-d", "--name", "up", "busybox", "sh", "-c",
          "trap 'exit 3' USR1; while :; do sleep 0.1; done")
    pid = kiste.state("up")["Pid"]
    kiste("update", "--cpus", "0.25", "--cpu-shares", "256", "--memory-reservation", "16m",
          "--restart", "on-failure:3", "up")
    assert cgroup_file(pid, "cpu", "cpu.cfs_quota_us", "cpu.max").split()[0] == "25000"
    assert int(cgroup_file(pid, "cpu", "cpu.shares", "cpu.weight")) in (256, 10)
    assert int(cgroup_file(pid, "memory", "memory.soft_limit_in_bytes", "memory.low")) == 16 << 20
    hc = kiste.inspect("up")["HostConfig"]
    assert hc["NanoCpus"] == 250000000 and hc["CpuShares"] == 256
    assert hc["RestartPolicy"] == {"Name": "on-failure", "MaximumRetryCount": 3}
    # the new policy applies to the running container: a failure restarts it
    # (the exec'd shell may be killed with the namespace's init before it reports: 137)
    kiste("exec", "up", "sh", "-c", "kill -USR1 1", check=False)
    assert wait_for(lambda: kiste.inspect("up")["RestartCount"] >= 1 and running(kiste, "up"),
                    timeout=15), kiste.inspect("up")["State"]
    assert kiste.state("up")["Pid"] != pid
    p = kiste("update", "--restart", "sometimes", "up", check=False)
    assert p.returncode != 0


def test_device_permissions_and_tmpfs_options(kiste):
    # /dev/loop-control (10:237) is outside Docker's default device rules, unlike /dev/null:
    # opening it is up to the --device permissions alone
    check = ("stat -c '%t:%T %F' /dev/lc; (: < /dev/lc) && echo read-ok; "
             "(: > /dev/lc) && echo write-ok")
    out = kiste("run", "--device", "/dev/loop-control:/dev/lc:r", "busybox", "sh", "-c", check,
                check=False)
    assert "a:ed character special file" in out.stdout
    assert "read-ok" in out.stdout and "write-ok" not in out.stdout
    assert "Operation not permitted" in out.stderr
    out = kiste("run", "--device", "/dev/loop-control:/dev/lc", "busybox", "sh", "-c", check)
    assert "read-ok\nwrite-ok\n" in out.stdout
    p = kiste("run", "busybox", "test", "-e", "/dev/loop-control", check=False)
    assert p.returncode == 1
    out = kiste("run", "--tmpfs", "/scratch:size=1m,mode=1770", "--tmpfs", "/plain", "busybox",
                "sh", "-c", "grep -E ' /(scratch|plain) ' /proc/mounts; stat -c %a /scratch; "
                "dd if=/dev/zero of=/scratch/f bs=1024 count=2048 2>&1", check=False).stdout
    lines = out.splitlines()
    scratch = next(l.split() for l in lines if " /scratch " in l)
    plain = next(l.split() for l in lines if " /plain " in l)
    assert scratch[2] == "tmpfs" and "size=1024k" in scratch[3] and "mode=1770" in scratch[3]
    for opt in ("nosuid", "nodev", "noexec"):
        assert opt in plain[3].split(","), plain
    assert "1770" in lines
    assert "No space left on device" in out


def test_security_opt_no_new_privileges_and_seccomp_file(kiste, tmp_path):
    nnp = kiste("run", "--security-opt", "no-new-privileges", "busybox", "grep", "NoNewPrivs",
                "/proc/self/status").stdout.split()[1]
    assert nnp == "1"
    assert kiste("run", "busybox", "grep", "NoNewPrivs", "/proc/self/status").stdout.split()[1] \
        == "0"
    profile = tmp_path / "deny-mkdir.json"
    profile.write_text(json.dumps({
        "defaultAction": "SCMP_ACT_ALLOW",
        "syscalls": [{"names": ["mkdir", "mkdirat"], "action": "SCMP_ACT_ERRNO"}]}))
    p = kiste("run", "--security-opt", f"seccomp={profile}", "busybox", "mkdir", "/tmp/d",
              check=False)
    assert p.returncode != 0 and "Operation not permitted" in p.stderr
    # the default profile allows mkdir and refuses unshare; this one the other way round
    p = kiste("run", "--security-opt", f"seccomp={profile}", "busybox", "unshare", "-U", "true",
              check=False)
    assert p.returncode == 0, p.stderr


# ---------------------------------------------------------------------------------------------
# Stopping

def test_stop_timeout_flag(kiste):
    kiste("run", "-d", "--name", "st", "--stop-timeout", "1", "busybox", "sh", "-c",
          "trap 'echo ignored' TERM; while :; do sleep 0.1; done")
    assert kiste.inspect("st")["Config"]["StopTimeout"] == 1
    t = time.time()
    kiste("stop", "st")
    took = time.time() - t
    assert 0.8 < took < 6, took  # Docker's default would be 10 s
    assert kiste.state("st")["ExitCode"] == 137
    assert "ignored" in kiste("logs", "st").stdout
    # -t overrides the container's own value
    kiste("start", "st")
    assert running(kiste, "st")
    t = time.time()
    kiste("stop", "-t", "0", "st")
    assert time.time() - t < 3


# ---------------------------------------------------------------------------------------------
# Logs

def test_log_driver_none_writes_nothing(kiste):
    assert kiste("run", "--log-driver", "none", "busybox", "echo", "shown").stdout == "shown\n"
    cid = kiste("ps", "-aq", "--no-trunc").stdout.strip()
    d = kiste.root / "containers" / cid
    assert not any(p.name.endswith(".log") or ".log." in p.name for p in d.iterdir())
    assert kiste.inspect(cid)["HostConfig"]["LogConfig"]["Type"] == "none"
    p = kiste("logs", cid, check=False)
    assert p.returncode == 1
    assert p.stderr == "Error: configured logging driver does not support reading\n"


def test_log_rotation_keeps_max_file(kiste):
    kiste("run", "--name", "rot", "--log-opt", "max-size=1k", "--log-opt", "max-file=3",
          "busybox", "sh", "-c", "i=0; while [ $i -lt 300 ]; do echo line $i; i=$((i+1)); done")
    log = Path(kiste.inspect("rot")["LogPath"])
    files = sorted(p.name for p in log.parent.iterdir() if p.name.startswith(log.name))
    assert files == [log.name, log.name + ".1", log.name + ".2"], files
    for f in files:
        assert (log.parent / f).stat().st_size <= 1024
    # the newest lines are all there, in order, across the files
    out = kiste("logs", "rot").stdout.splitlines()
    assert out[-1] == "line 299"
    nums = [int(l.split()[1]) for l in out]
    assert nums == list(range(nums[0], 300)) and nums[0] > 0
    p = kiste("run", "--log-opt", "max-size=lots", "busybox", "true", check=False)
    assert p.returncode == 125
    p = kiste("run", "--log-driver", "syslog", "busybox", "true", check=False)
    assert p.returncode == 125


def test_logs_since_until_tail_checks(kiste):
    kiste("run", "--name", "tm", "busybox", "sh", "-c", "echo one; sleep 1.2; echo two")
    lines = kiste("logs", "-t", "tm").stdout.splitlines()
    assert [l.split(" ", 1)[1] for l in lines] == ["one", "two"]
    t_one, t_two = (l.split(" ", 1)[0] for l in lines)
    assert kiste("logs", "--since", t_two, "tm").stdout == "two\n"
    assert kiste("logs", "--until", t_one, "tm").stdout == "one\n"
    assert kiste("logs", "--since", t_one, "--until", t_one, "tm").stdout == "one\n"
    assert kiste("logs", "--since", "1h", "tm").stdout == "one\ntwo\n"
    assert kiste("logs", "--until", "1h", "tm").stdout == ""
    future = int(time.time()) + 3600
    assert kiste("logs", "--since", str(future), "tm").stdout == ""
    assert kiste("logs", "--tail", "0", "tm").stdout == ""
    assert kiste("logs", "--tail", "all", "tm").stdout == "one\ntwo\n"
    assert kiste("logs", "-n", "1", "tm").stdout == "two\n"
    for bad in ("abc", "1x", ""):
        p = kiste("logs", "--tail", bad, "tm", check=False)
        assert p.returncode != 0 and p.stdout == "", bad
    p = kiste("logs", "--since", "yesterday", "tm", check=False)
    assert p.returncode != 0


def test_logs_follow_stops_at_until_and_sees_new_lines(kiste):
    kiste("run", "-d", "--name", "fo", "busybox", "sh", "-c",
          "i=0; while [ $i -lt 30 ]; do echo tick $i; i=$((i+1)); sleep 0.1; done")
    p = kiste("logs", "-f", "--tail", "2", "fo", timeout=30)
    lines = p.stdout.splitlines()
    assert lines[-1] == "tick 29" and len(lines) <= 31
    # --until in the past: follow ends at once
    t = time.time()
    kiste("run", "-d", "--name", "fo2", "busybox", "sleep", "30")
    kiste("logs", "-f", "--until", "1s", "fo2", timeout=10)
    assert time.time() - t < 8


# ---------------------------------------------------------------------------------------------
# Health

def test_health_timeout_and_start_period(kiste):
    kiste("run", "-d", "--name", "slow", "--health-cmd", "sleep 5", "--health-interval", "300ms",
          "--health-timeout", "200ms", "--health-retries", "1", "busybox", "sleep", "100")
    assert wait_for(lambda: (kiste.state("slow")["Health"] or {}).get("Status") == "unhealthy",
                    timeout=10), kiste.state("slow")
    log = kiste.state("slow")["Health"]["Log"][-1]
    assert log["ExitCode"] != 0
    assert "(unhealthy)" in kiste("ps", "--filter", "name=slow").stdout
    kiste("run", "-d", "--name", "grace", "--health-cmd", "false", "--health-interval", "200ms",
          "--health-retries", "1", "--health-start-period", "30s", "busybox", "sleep", "100")
    time.sleep(2)
    st = kiste.state("grace")["Health"]
    assert st["Status"] == "starting" and st["FailingStreak"] == 0, st
    assert "(health: starting)" in kiste("ps", "--filter", "name=grace").stdout
    hc = kiste.inspect("grace")["Config"]["Healthcheck"]
    assert hc["StartPeriod"] == 30 * 10**9 and hc["Interval"] == 200 * 10**6
    assert hc["Test"] == ["CMD-SHELL", "false"] and hc["Retries"] == 1
    # health filters in ps
    fmt = ["--format", "{{.Names}}"]
    assert kiste("ps", "--filter", "health=unhealthy", *fmt).stdout == "slow\n"
    assert kiste("ps", "--filter", "health=starting", *fmt).stdout == "grace\n"
    kiste("run", "-d", "--name", "plain", "busybox", "sleep", "100")
    assert kiste("ps", "--filter", "health=none", *fmt).stdout == "plain\n"


def test_image_healthcheck_and_no_healthcheck(kiste, busybox_tar, tmp_path):
    archive = tmp_path / "hc.tar"
    save_archive(archive, busybox_tar, {
        "Cmd": ["sleep", "100"],
        "Env": ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"],
        "Healthcheck": {"Test": ["CMD", "true"], "Interval": 200 * 10**6, "Retries": 1}},
        "hcimage:1")
    kiste("load", "-i", archive)
    kiste("run", "-d", "--name", "withhc", "hcimage:1")
    assert wait_for(lambda: "(healthy)" in kiste("ps", "--filter", "name=withhc").stdout,
                    timeout=10)
    kiste("run", "-d", "--name", "nohc", "--no-healthcheck", "hcimage:1")
    time.sleep(1)
    assert kiste.state("nohc").get("Health") is None
    assert "health" not in kiste("ps", "--filter", "name=nohc").stdout
    assert kiste.inspect("nohc")["Config"]["Healthcheck"]["Test"] == ["NONE"]


# ---------------------------------------------------------------------------------------------
# Restart policies

def test_restart_unless_stopped(kiste):
    kiste("run", "-d", "--name", "us", "--restart", "unless-stopped", "busybox", "sh", "-c",
          "sleep 0.3; exit 5")
    assert wait_for(lambda: kiste.inspect("us")["RestartCount"] >= 2, timeout=20)
    assert kiste.inspect("us")["HostConfig"]["RestartPolicy"]["Name"] == "unless-stopped"
    kiste("stop", "-t", "1", "us")
    count = kiste.inspect("us")["RestartCount"]
    time.sleep(1.5)
    info = kiste.inspect("us")
    assert info["State"]["Status"] == "exited" and info["RestartCount"] == count
    # a stopped unless-stopped container starts again by hand, and restarts again by policy
    kiste("start", "us")
    assert wait_for(lambda: kiste.inspect("us")["RestartCount"] > count, timeout=20)


def test_restart_always_restarts_after_success(kiste):
    kiste("run", "-d", "--name", "al", "--restart", "always", "busybox", "sh", "-c",
          "echo run; sleep 0.2; exit 0")
    assert wait_for(lambda: kiste.inspect("al")["RestartCount"] >= 2, timeout=20)
    assert kiste("logs", "al").stdout.count("run\n") >= 2
    kiste("stop", "-t", "1", "al")
    assert kiste.state("al")["Status"] == "exited"


# ---------------------------------------------------------------------------------------------
# Terminals, attach, detach keys

def test_custom_detach_keys_and_attach_keys(kiste):
    pid, fd = _pty_run(kiste.argv("run", "-ti", "--detach-keys", "ctrl-a,x", "--name", "dk",
                                  "busybox", "sh"))
    try:
        assert b"/ # " in _read_until(fd, b"/ # ")
        os.write(fd, b"\x10\x11")  # the default keys are ordinary input now
        os.write(fd, b"echo still$((1+1))\r")
        assert b"still2" in _read_until(fd, b"still2")
        assert wait_pty_exit(pid, timeout=0.5) is None
        os.write(fd, b"\x01x")
        status = wait_pty_exit(pid)
        pid = 0 if status is not None else pid
        assert status == 0
    finally:
        close_pty(pid, fd)
    assert running(kiste, "dk")
    pid, fd = _pty_run(kiste.argv("attach", "--detach-keys", "ctrl-b", "dk"))
    try:
        os.write(fd, b"echo again$((2+2))\r")
        assert b"again4" in _read_until(fd, b"again4")
        os.write(fd, b"\x02")
        status = wait_pty_exit(pid)
        pid = 0 if status is not None else pid
        assert status == 0
    finally:
        close_pty(pid, fd)
    assert running(kiste, "dk")
    p = kiste("run", "--detach-keys", "ctrl-", "busybox", "true", check=False)
    assert p.returncode == 125


def test_attach_without_terminal_passes_stdin_and_exit_code(kiste):
    kiste("run", "-d", "-i", "--name", "ai", "busybox", "sh", "-c",
          "read x; echo got $x; echo err >&2; exit 3")
    p = kiste("attach", "ai", input="hello\n", timeout=20, check=False)
    assert p.returncode == 3 and p.stdout == "got hello\n" and p.stderr == "err\n"
    # --no-stdin: the input is not passed on
    kiste("run", "-d", "-i", "--name", "ai2", "busybox", "sh", "-c",
          "read -t 1 x; echo got=$x")
    p = kiste("attach", "--no-stdin", "ai2", input="nope\n", timeout=20, check=False)
    assert p.stdout == "got=\n"


def test_start_attach_interactive(kiste):
    kiste("create", "-i", "--name", "si", "busybox", "sh", "-c", "tr a-z A-Z; exit 4")
    p = kiste("start", "-a", "-i", "si", input="shout\n", timeout=20, check=False)
    assert p.returncode == 4 and p.stdout == "SHOUT\n"
    # without -i the container's stdin is not the client's
    kiste("create", "-i", "--name", "si2", "busybox", "sh", "-c", "read -t 1 x; echo x=$x")
    p = kiste("start", "-a", "si2", input="hidden\n", timeout=20, check=False)
    assert p.stdout == "x=\n"


def test_run_tty_sig_proxy_off(kiste):
    # with a terminal the client's signal is not proxied: it stays with the client's pty
    pid, fd = _pty_run(kiste.argv("run", "-ti", "--name", "tsig", "busybox", "sh"))
    try:
        assert b"/ # " in _read_until(fd, b"/ # ")
        os.write(fd, b"trap 'echo caught' INT; echo armed\r")
        assert b"armed" in _read_until(fd, b"armed")
        os.write(fd, b"\x03")  # ctrl-c through the terminal reaches the shell
        assert b"caught" in _read_until(fd, b"caught")
        os.write(fd, b"exit 6\r")
        status = wait_pty_exit(pid)
        pid = 0 if status is not None else pid
        assert status == 6
    finally:
        close_pty(pid, fd)


# ---------------------------------------------------------------------------------------------
# exec

def test_exec_detach_env_file_privileged(kiste, tmp_path):
    kiste("run", "-d", "--name", "ex", "busybox", "sleep", "100")
    t = time.time()
    assert kiste("exec", "-d", "ex", "sh", "-c", "sleep 1; echo done > /tmp/bg").stdout == ""
    assert time.time() - t < 1
    assert wait_for(lambda: kiste("exec", "ex", "cat", "/tmp/bg", check=False).stdout == "done\n",
                    timeout=10)
    # -dt: a terminal held for a detached process
    kiste("exec", "-dt", "ex", "sh", "-c", "tty > /tmp/tty; sleep 2")
    assert wait_for(lambda: "/dev/pts/" in kiste("exec", "ex", "cat", "/tmp/tty",
                                                 check=False).stdout, timeout=10)
    top = kiste("top", "ex").stdout
    assert "sleep 2" in top
    (tmp_path / "env").write_text("# c\nFROMFILE=yes\nBOTH=file\n")
    out = kiste("exec", "--env-file", tmp_path / "env", "-e", "BOTH=flag", "ex", "sh", "-c",
                "echo $FROMFILE $BOTH").stdout
    assert out == "yes flag\n"
    cap = kiste("exec", "ex", "grep", "CapEff", "/proc/self/status").stdout.split()[1]
    pcap = kiste("exec", "--privileged", "ex", "grep", "CapEff", "/proc/self/status"
                 ).stdout.split()[1]
    assert int(cap, 16) == 0xa80425fb and int(pcap, 16) > int(cap, 16)
    p = kiste("exec", "--detach-keys", "ctrl-", "ex", "true", check=False)
    assert p.returncode != 0
    assert kiste("exec", "--detach-keys", "ctrl-x", "ex", "echo", "ok").stdout == "ok\n"
    p = kiste("exec", "ex", "nope", check=False)
    assert p.returncode == 127


# ---------------------------------------------------------------------------------------------
# wait

def test_wait_conditions(kiste):
    kiste("create", "--name", "wc", "busybox", "sh", "-c", "sleep 0.5; exit 7")
    p = kiste("wait", "--condition", "bogus", "wc", check=False)
    assert p.returncode != 0
    with ThreadPoolExecutor(2) as ex:
        removed = ex.submit(kiste, "wait", "--condition", "removed", "wc", timeout=30)
        time.sleep(0.3)
        kiste("start", "wc")
        assert kiste("wait", "--condition", "not-running", "wc").stdout == "7\n"
        time.sleep(0.3)
        assert not removed.done()
        # next-exit waits for the next run, not the one that ended
        nxt = ex.submit(kiste, "wait", "--condition", "next-exit", "wc", timeout=30)
        time.sleep(0.5)
        assert not nxt.done()
        kiste("start", "wc")
        assert nxt.result(timeout=20).stdout == "7\n"
        kiste("rm", "wc")
        assert removed.result(timeout=20).stdout == "7\n"


# ---------------------------------------------------------------------------------------------
# ps

def test_ps_size_no_trunc_quiet_and_filters(kiste):
    a = kiste("run", "-d", "--name", "big", "busybox", "sh", "-c",
              "dd if=/dev/zero of=/blob bs=1024 count=300 2>/dev/null; "
              "touch /ready; sleep 100").stdout.strip()
    assert wait_for(lambda: kiste("exec", "big", "test", "-e", "/ready", check=False
                                  ).returncode == 0)
    b = kiste("create", "--name", "idle", "busybox", "echo", "a long command line here").stdout \
        .strip()
    table = kiste("ps", "-s").stdout.splitlines()
    assert table[0].split()[-1] == "SIZE"
    row = next(l for l in table if l.startswith(a[:12]))
    m = re.search(r"(\d+(?:\.\d+)?)kB \(virtual (\d+(?:\.\d+)?)MB\)", row)
    assert m and 300 <= float(m.group(1)) < 400, row
    assert kiste("ps", "-a", "-q", "--no-trunc").stdout.split() == [b, a]
    assert kiste("ps", "-aq").stdout.split() == [b[:12], a[:12]]
    full = kiste("ps", "-a", "--no-trunc", "--filter", "name=idle").stdout.splitlines()[1]
    assert full.startswith(b) and '"echo a long command line here"' in full
    short = kiste("ps", "-a", "--filter", "name=idle").stdout.splitlines()[1]
    assert b not in short and "a long command line here" not in short
    fmt = ["--format", "{{.Names}}"]
    assert kiste("ps", "-a", "--filter", f"id={a[:5]}", *fmt).stdout == "big\n"
    assert kiste("ps", "-a", "--filter", "status=running", *fmt).stdout == "big\n"
    assert kiste("ps", "-a", "--filter", "name=big", "--filter", "name=idle", *fmt
                 ).stdout.split() == ["idle", "big"]
    assert kiste("ps", "-a", "--filter", "name=big", "--filter", "status=created", *fmt
                 ).stdout == ""
    kiste("pause", "big")
    assert kiste("ps", "--filter", "status=paused", *fmt).stdout == "big\n"
    kiste("unpause", "big")
    assert kiste("ps", "-lq").stdout.strip() == b[:12]
    p = kiste("ps", "--filter", "status=sleeping", check=False)
    assert p.returncode != 0
    p = kiste("ps", "--filter", "colour=red", check=False)
    assert p.returncode != 0


# ---------------------------------------------------------------------------------------------
# top, port, rename, prune

def test_top_ps_options_port_rename(kiste):
    kiste("run", "-d", "--name", "tp", "-u", "1000", "busybox", "sleep", "321")
    out = kiste("top", "tp", "-o", "pid,user,comm").stdout.splitlines()
    assert out[0].split() == ["PID", "USER", "COMMAND"]
    # the host's ps names the user as the host knows uid 1000
    try:
        user = pwd.getpwuid(1000).pw_name
    except KeyError:
        user = "1000"
    assert len(out) == 2 and out[1].split()[1:] == [user, "sleep"]
    assert int(out[1].split()[0]) == kiste.state("tp")["Pid"]
    out = kiste("top", "tp", "aux").stdout.splitlines()
    assert "%CPU" in out[0] and "sleep 321" in out[1]
    p = kiste("top", "tp", "-o", "pid;reboot", check=False)
    assert p.returncode != 0
    assert kiste("port", "tp").stdout == ""
    p = kiste("port", "tp", "80/tcp", check=False)
    assert p.returncode != 0 and "No public port" in p.stderr
    kiste("create", "--name", "other", "busybox", "true")
    p = kiste("rename", "tp", "other", check=False)
    assert p.returncode != 0 and "already in use" in p.stderr
    kiste("rename", "tp", "renamed")
    assert running(kiste, "renamed")
    assert kiste("ps", "--format", "{{.Names}}").stdout == "renamed\n"


def test_container_prune_keeps_running(kiste):
    keep = kiste("run", "-d", "--name", "keep", "busybox", "sleep", "100").stdout.strip()
    gone1 = kiste("create", "--name", "c1", "busybox", "true").stdout.strip()
    kiste("run", "--name", "c2", "busybox", "true")
    out = kiste("container", "prune", "-f").stdout
    assert gone1 in out and keep not in out
    assert kiste("ps", "-a", "--format", "{{.Names}}").stdout == "keep\n"


# ---------------------------------------------------------------------------------------------
# cp with archives, export, commit

def test_cp_archives_through_stdio(kiste, tmp_path):
    kiste("run", "-d", "--name", "ar", "busybox", "sh", "-c",
          "mkdir -p /data; echo hi > /data/f; touch /ready; sleep 100")
    assert wait_for(lambda: kiste("exec", "ar", "test", "-e", "/ready", check=False
                                  ).returncode == 0)
    with open(tmp_path / "out.tar", "wb") as f:
        p = subprocess.run(kiste.argv("cp", "ar:/data", "-"), stdout=f, timeout=30)
    assert p.returncode == 0
    with tarfile.open(tmp_path / "out.tar") as t:
        names = t.getnames()
        assert "data/f" in names
        assert t.extractfile("data/f").read() == b"hi\n"
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as t:
        data = b"from stdin\n"
        info = tarfile.TarInfo("sub/in.txt")
        info.size = len(data)
        t.addfile(info, io.BytesIO(data))
    p = subprocess.run(kiste.argv("cp", "-", "ar:/data"), input=buf.getvalue(),
                       capture_output=True, timeout=30)
    assert p.returncode == 0, p.stderr
    assert kiste("exec", "ar", "cat", "/data/sub/in.txt").stdout == "from stdin\n"
    p = subprocess.run(kiste.argv("cp", "-", "ar:/data/f"), input=buf.getvalue(),
                       capture_output=True, timeout=30)
    assert p.returncode != 0  # the destination of an archive must be a directory


def test_export_to_stdout(kiste, tmp_path):
    kiste("run", "--name", "exo", "busybox", "sh", "-c", "echo x > /marker")
    with open(tmp_path / "fs.tar", "wb") as f:
        assert subprocess.run(kiste.argv("export", "exo"), stdout=f, timeout=30).returncode == 0
    with tarfile.open(tmp_path / "fs.tar") as t:
        assert t.extractfile("./marker").read() == b"x\n"


def test_commit_message_author_change_pause(kiste):
    kiste("run", "-d", "--name", "cmt", "busybox", "sh", "-c",
          "echo v1 > /version; trap 'exit 0' TERM; while :; do sleep 0.1; done")
    assert wait_for(lambda: kiste("exec", "cmt", "cat", "/version", check=False).stdout
                    == "v1\n")
    kiste("commit", "-m", "the message", "-a", "Jane <jane@example.com>", "-c", "ENV MODE=prod",
          "-c", 'CMD ["cat", "/version"]', "cmt", "img:v1")
    info = json.loads(kiste("image", "inspect", "img:v1").stdout)[0]
    assert info["Comment"] == "the message"
    assert info["Author"] == "Jane <jane@example.com>"
    assert "MODE=prod" in info["Config"]["Env"] and info["Config"]["Cmd"] == ["cat", "/version"]
    assert kiste("run", "--rm", "img:v1").stdout == "v1\n"
    # the container was paused for the copy and runs again after it
    assert running(kiste, "cmt")
    kiste("commit", "--pause=false", "cmt", "img:v2")
    assert running(kiste, "cmt")
    assert kiste("run", "--rm", "img:v2", "cat", "/version").stdout == "v1\n"
    kiste("rm", "-f", "cmt")
    kiste("rmi", "img:v1", "img:v2")


# ---------------------------------------------------------------------------------------------
# Pulling and platforms

def test_pull_policies_without_registry(kiste):
    # missing (the default) and never use the local image
    assert kiste("run", "--pull", "missing", "busybox", "echo", "m").stdout == "m\n"
    assert kiste("run", "--pull", "never", "busybox", "echo", "n").stdout == "n\n"
    # always must ask the registry, which is not there: the local copy is not used silently
    p = kiste("run", "--pull", "always", "busybox", "echo", "a", check=False)
    assert p.returncode == 125 and p.stdout == ""
    p = kiste("run", "--pull", "sometimes", "busybox", "true", check=False)
    assert p.returncode == 125 and "invalid pull option" in p.stderr
    p = kiste("create", "--platform", "linux/arm64", "busybox", "true", check=False)
    assert p.returncode == 125 and "platform" in p.stderr
