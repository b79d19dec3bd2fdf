"""The runtime's lifecycle commands against real containers."""

import json
import os
import signal
import subprocess
import time

import pytest

from conftest import pid_alive, wait_for


def test_run_prints_and_exits_with_status(bundle):
    p = bundle.run(["sh", "-c", "echo hello; exit 7"])
    assert p.returncode == 7
    assert p.stdout == "hello\n"


def test_create_start_state_delete(bundle):
    bundle.config["process"]["args"] = ["sleep", "100"]
    bundle.write()
    bundle.rt("create", "--bundle", bundle.path, "c1")
    st = bundle.state("c1")
    assert st["status"] == "created"
    assert st["pid"] > 0
    assert st["bundle"] == str(bundle.path)
    # The init waits for start: it is not yet running sleep.
    with open(f"/proc/{st['pid']}/cmdline", "rb") as f:
        assert b"sleep" not in f.read()
    bundle.rt("start", "c1")
    st = bundle.state("c1")
    assert st["status"] == "running"
    with open(f"/proc/{st['pid']}/cmdline", "rb") as f:
        assert f.read().split(b"\0")[0] == b"sleep"
    p = bundle.rt("delete", "c1", check=False)
    assert p.returncode == 1 and "running" in p.stderr
    bundle.rt("kill", "c1", "KILL")
    for _ in range(100):
        if bundle.state("c1")["status"] == "stopped":
            break
        time.sleep(0.02)
    assert bundle.state("c1")["status"] == "stopped"
    bundle.rt("delete", "c1")
    p = bundle.rt("state", "c1", check=False)
    assert p.returncode == 1 and "does not exist" in p.stderr


def test_duplicate_id_refused(bundle):
    bundle.config["process"]["args"] = ["sleep", "100"]
    bundle.write()
    bundle.rt("create", "--bundle", bundle.path, "dup")
    p = bundle.rt("create", "--bundle", bundle.path, "dup", check=False)
    assert p.returncode == 1 and "already exists" in p.stderr
    bundle.rt("delete", "--force", "dup")


def test_pid_file_and_list(bundle, tmp_path):
    bundle.config["process"]["args"] = ["sleep", "100"]
    bundle.write()
    pidfile = tmp_path / "pid"
    bundle.rt("run", "--detach", "--bundle", bundle.path, "--pid-file", pidfile, "l1")
    pid = int(pidfile.read_text())
    assert bundle.state("l1")["pid"] == pid
    out = bundle.rt("list", "-q").stdout.split()
    assert out == ["l1"]
    js = json.loads(bundle.rt("list", "--format", "json").stdout)
    assert js[0]["id"] == "l1" and js[0]["status"] == "running"
    table = bundle.rt("list").stdout.splitlines()
    assert table[0].split()[:3] == ["ID", "PID", "STATUS"]
    assert table[1].split()[:3] == ["l1", str(pid), "running"]
    bundle.rt("delete", "--force", "l1")
    assert not pid_alive(pid)


def test_kill_by_name_and_number(bundle):
    bundle.config["process"]["args"] = ["sh", "-c", "trap 'exit 42' USR1; while true; do sleep 0.05; done"]
    bundle.write()
    bundle.rt("run", "-d", "--bundle", bundle.path, "k1")
    time.sleep(0.2)
    bundle.rt("kill", "k1", "SIGUSR1")
    for _ in range(100):
        if bundle.state("k1")["status"] == "stopped":
            break
        time.sleep(0.02)
    assert bundle.state("k1")["status"] == "stopped"
    p = bundle.rt("kill", "k1", "9", check=False)
    assert p.returncode == 1 and "not running" in p.stderr
    p = bundle.rt("kill", "k1", "NOSUCHSIG", check=False)
    assert p.returncode == 1 and "unknown signal" in p.stderr
    bundle.rt("delete", "k1")


def test_kill_all(bundle):
    bundle.config["process"]["args"] = ["sh", "-c", "sleep 100 & sleep 100 & wait"]
    bundle.write()
    bundle.rt("run", "-d", "--bundle", bundle.path, "ka")
    time.sleep(0.2)
    pids = json.loads(bundle.rt("ps", "--format", "json", "ka").stdout)
    assert len(pids) == 3
    bundle.rt("kill", "--all", "ka", "KILL")
    assert wait_for(lambda: not any(pid_alive(p) for p in pids))
    bundle.rt("delete", "--force", "ka")


def test_pause_resume(bundle):
    bundle.config["process"]["args"] = ["sleep", "100"]
    bundle.write()
    bundle.rt("run", "-d", "--bundle", bundle.path, "p1")
    bundle.rt("pause", "p1")
    st = bundle.state("p1")
    assert st["status"] == "paused"
    p = bundle.rt("pause", "p1", check=False)
    assert p.returncode == 1
    bundle.rt("resume", "p1")
    assert bundle.state("p1")["status"] == "running"
    bundle.rt("delete", "--force", "p1")


def test_ps_table(bundle):
    bundle.config["process"]["args"] = ["sleep", "100"]
    bundle.write()
    bundle.rt("run", "-d", "--bundle", bundle.path, "ps1")
    out = bundle.rt("ps", "ps1").stdout.splitlines()
    assert "PID" in out[0]
    assert len(out) == 2 and "sleep 100" in out[1]
    bundle.rt("delete", "--force", "ps1")


def test_exec_runs_in_container(bundle):
    bundle.config["process"]["args"] = ["sleep", "100"]
    bundle.config["hostname"] = "exectest"
    bundle.write()
    bundle.rt("run", "-d", "--bundle", bundle.path, "e1")
    p = bundle.rt("exec", "e1", "sh", "-c", "hostname; echo $$; cat /proc/1/cmdline | tr '\\0' ' '")
    host, pid, cmd = p.stdout.splitlines()
    assert host == "exectest"
    assert int(pid) > 1
    assert cmd.strip() == "sleep 100"
    p = bundle.rt("exec", "e1", "sh", "-c", "exit 3", check=False)
    assert p.returncode == 3
    p = bundle.rt("exec", "--cwd", "/tmp", "--env", "FOO=bar", "--user", "1000:1000", "e1",
                  "sh", "-c", "pwd; echo $FOO; id -u; id -g")
    assert p.stdout.split() == ["/tmp", "bar", "1000", "1000"]
    p = bundle.rt("exec", "e1", "nonexistent-binary", check=False)
    assert p.returncode == 1 and "nonexistent-binary" in p.stderr
    bundle.rt("delete", "--force", "e1")


def test_exec_process_file_and_detach(bundle, tmp_path):
    bundle.config["process"]["args"] = ["sleep", "100"]
    bundle.config["mounts"].append({"destination": "/tmp", "type": "tmpfs", "source": "tmpfs",
                                    "options": ["nosuid", "nodev"]})
    bundle.write()
    bundle.rt("run", "-d", "--bundle", bundle.path, "e2")
    proc = {"args": ["sh", "-c", "echo $X > /tmp/o; mv /tmp/o /tmp/out; sleep 100"], "cwd": "/", "env": ["X=42"],
            "user": {"uid": 0, "gid": 0}}
    pf = tmp_path / "process.json"
    pf.write_text(json.dumps(proc))
    pidf = tmp_path / "exec.pid"
    bundle.rt("exec", "--process", pf, "--detach", "--pid-file", pidf, "e2")
    pid = int(pidf.read_text())
    assert os.path.exists(f"/proc/{pid}")
    for _ in range(100):
        p = bundle.rt("exec", "e2", "cat", "/tmp/out", check=False)
        if p.returncode == 0:
            break
        time.sleep(0.02)
    assert p.stdout == "42\n"
    bundle.rt("delete", "--force", "e2")
    assert not pid_alive(pid)


def test_invalid_config_names_field_and_leaves_nothing(bundle, state_root):
    bundle.config["process"]["args"] = "not-a-list"
    bundle.write()
    p = bundle.rt("create", "--bundle", bundle.path, "bad", check=False)
    assert p.returncode == 1
    assert "process.args" in p.stderr
    assert list(state_root.iterdir()) == []


def test_missing_binary_reported_at_create(bundle, state_root):
    bundle.config["process"]["args"] = ["/no/such/program"]
    bundle.write()
    p = bundle.rt("create", "--bundle", bundle.path, "nb", check=False)
    assert p.returncode == 1
    assert "/no/such/program" in p.stderr and "No such file" in p.stderr
    assert list(state_root.iterdir()) == []


def test_start_twice_refused(bundle):
    bundle.config["process"]["args"] = ["sleep", "100"]
    bundle.write()
    bundle.rt("run", "-d", "--bundle", bundle.path, "s2")
    p = bundle.rt("start", "s2", check=False)
    assert p.returncode == 1 and "running" in p.stderr
    bundle.rt("delete", "--force", "s2")


def test_version_and_features(bundle):
    p = bundle.rt("--version")
    assert "kiste-runtime version" in p.stdout
    f = json.loads(bundle.rt("features").stdout)
    assert f["ociVersionMin"] == "1.0.0"
    assert f["ociVersionMax"] == "1.3.0"
    assert "CAP_SYS_ADMIN" in f["linux"]["capabilities"]
    assert "time" in f["linux"]["namespaces"]
