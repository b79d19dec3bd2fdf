"""Hooks: each kind runs at its point of the lifecycle, in its namespaces, with the state on its
standard input and its own args and env; failures and time limits are reported."""

import json
import os
from pathlib import Path

import pytest

from conftest import pid_alive, wait_for


def I(name):
    """A container id unique to this run: ids name cgroups under the machine-wide /kiste."""
    return f"{name}-{os.getpid()}"

RUNTIME_NS_KINDS = ("prestart", "createRuntime", "poststart", "poststop")


def host_script(path: Path, body: str) -> str:
    path.write_text("#!/bin/sh\n" + body)
    path.chmod(0o755)
    return str(path)


def logging_hook(tmp_path, kind):
    """A host hook that appends its kind to log and keeps its stdin in kind.json."""
    return {"path": host_script(tmp_path / f"{kind}.sh",
                                f"cat > {tmp_path}/{kind}.json\n"
                                f"echo {kind} >> {tmp_path}/log\n")}


def read_state(tmp_path, kind):
    return json.loads((tmp_path / f"{kind}.json").read_text())


def process_gone_by_cmdline(needle: bytes):
    for pid in os.listdir("/proc"):
        if not pid.isdigit():
            continue
        try:
            with open(f"/proc/{pid}/cmdline", "rb") as f:
                if needle in f.read():
                    return False
        except OSError:
            pass
    return True


def test_all_hooks_run_with_state(bundle, tmp_path):
    hookdir = tmp_path / "inside"
    hookdir.mkdir()
    # startContainer runs in the container after pivot_root: its program must be there.
    host_script(hookdir / "start.sh",
                "cat > /hooks/startContainer.json\n"
                "hostname > /hooks/startContainer.hostname\n"
                "echo startContainer >> /hooks/log\n")
    bundle.config["hostname"] = "hooked"
    bundle.config["mounts"].append({"destination": "/hooks", "type": "bind",
                                    "source": str(hookdir), "options": ["rbind", "rw"]})
    hooks = {k: [logging_hook(tmp_path, k)] for k in RUNTIME_NS_KINDS}
    # createContainer runs in the container's namespaces, before pivot_root: host paths work,
    # the hostname is already the container's.
    hooks["createContainer"] = [{"path": host_script(
        tmp_path / "cc.sh",
        f"cat > {tmp_path}/createContainer.json\n"
        f"hostname > {tmp_path}/createContainer.hostname\n"
        f"echo createContainer >> {tmp_path}/log\n")}]
    hooks["startContainer"] = [{"path": "/hooks/start.sh"}]
    bundle.config["hooks"] = hooks
    bundle.config["annotations"] = {"org.example.k": "v"}
    bundle.config["process"]["args"] = ["sleep", "100"]
    bundle.write()

    bundle.rt("create", "--bundle", bundle.path, I("h1"))
    pid = bundle.state(I("h1"))["pid"]
    log = (tmp_path / "log").read_text().split()
    assert log == ["prestart", "createRuntime", "createContainer"]
    for kind in ("prestart", "createRuntime"):
        st = read_state(tmp_path, kind)
        assert st["id"] == I("h1") and st["status"] == "created"
        assert st["pid"] == pid
        assert st["bundle"] == str(bundle.path)
        assert st["annotations"] == {"org.example.k": "v"}
        assert st["ociVersion"]
    # createRuntime runs after the cgroup is made and the init is in it.
    with open(f"/proc/{pid}/cgroup") as f:
        assert I("h1") in f.read()
    st = read_state(tmp_path, "createContainer")
    assert st["id"] == I("h1") and st["status"] == "created" and st["bundle"] == str(bundle.path)
    assert (tmp_path / "createContainer.hostname").read_text().strip() == "hooked"

    bundle.rt("start", I("h1"))
    # startContainer runs in the container between start and the program; wait for it.
    assert wait_for(lambda: (hookdir / "log").exists() and "startContainer" in
                    (hookdir / "log").read_text(), timeout=10)
    st = json.loads((hookdir / "startContainer.json").read_text())
    assert st["id"] == I("h1") and st["status"] == "created" and st["bundle"] == str(bundle.path)
    assert (hookdir / "startContainer.hostname").read_text().strip() == "hooked"
    st = read_state(tmp_path, "poststart")
    assert st["id"] == I("h1") and st["status"] == "running" and st["pid"] == pid
    assert "poststop" not in (tmp_path / "log").read_text()

    bundle.rt("kill", I("h1"), "KILL")
    assert wait_for(lambda: bundle.state(I("h1"))["status"] == "stopped")
    bundle.rt("delete", I("h1"))
    log = (tmp_path / "log").read_text().split()
    assert log[-1] == "poststop"
    assert log.count("poststop") == 1 and log.count("poststart") == 1
    st = read_state(tmp_path, "poststop")
    assert st["id"] == I("h1") and st["status"] == "stopped" and st["bundle"] == str(bundle.path)


def test_hooks_with_run(bundle, tmp_path):
    bundle.config["hooks"] = {k: [logging_hook(tmp_path, k)] for k in RUNTIME_NS_KINDS}
    p = bundle.run(["sh", "-c", "echo body"])
    assert p.returncode == 0, p.stderr
    assert p.stdout == "body\n"
    assert (tmp_path / "log").read_text().split() == list(RUNTIME_NS_KINDS)


def test_hook_args_and_env(bundle, tmp_path):
    out = tmp_path / "out"
    bundle.config["hooks"] = {"prestart": [{
        "path": "/bin/sh",
        "args": ["my-hook", "-c", f'echo "$0|$1|$2|$FOO|$BAR" > {out}; env > {out}.env; '
                 f'tr "\\0" "\\n" < /proc/$$/cmdline | head -n 1 > {out}.argv0',
                 "zero", "first", "second arg"],
        "env": ["FOO=foo value", "BAR=bar"],
    }]}
    p = bundle.run(["true"])
    assert p.returncode == 0, p.stderr
    assert out.read_text() == "zero|first|second arg|foo value|bar\n"
    assert (tmp_path / "out.argv0").read_text() == "my-hook\n"
    # Only the hook's own env (and what the shell itself adds).
    env = {line.split("=", 1)[0] for line in (tmp_path / "out.env").read_text().splitlines()}
    assert env - {"PWD", "SHLVL", "_"} == {"FOO", "BAR"}


def test_hook_without_args_gets_its_path_as_argv0(bundle, tmp_path):
    out = tmp_path / "out"
    path = host_script(tmp_path / "noargs.sh", f'echo "$#" > {out}\n')
    bundle.config["hooks"] = {"createRuntime": [{"path": path}]}
    assert bundle.run(["true"]).returncode == 0
    assert out.read_text() == "0\n"


def test_hooks_of_a_kind_run_in_order(bundle, tmp_path):
    log = tmp_path / "log"
    bundle.config["hooks"] = {"prestart": [
        {"path": "/bin/sh", "args": ["sh", "-c", f"echo {i} >> {log}"]} for i in range(5)]}
    assert bundle.run(["true"]).returncode == 0
    assert log.read_text().split() == ["0", "1", "2", "3", "4"]


@pytest.mark.parametrize("kind", ["prestart", "createRuntime", "createContainer"])
def test_failing_create_hook_fails_create_and_leaves_nothing(bundle, tmp_path, state_root, kind):
    path = host_script(tmp_path / "fail.sh", f"cat > {tmp_path}/state.json\nexit 3\n")
    later = tmp_path / "later"
    bundle.config["hooks"] = {kind: [{"path": path},
                                     {"path": "/bin/sh", "args": ["sh", "-c", f"touch {later}"]}]}
    bundle.config["process"]["args"] = ["sleep", "100"]
    bundle.write()
    p = bundle.rt("create", "--bundle", bundle.path, I("hf"), check=False)
    assert p.returncode == 1
    assert f"hooks.{kind}[0]" in p.stderr
    assert path in p.stderr and "status 3" in p.stderr
    assert not later.exists()  # the hooks after a failed one do not run
    assert list(state_root.iterdir()) == []
    pid = json.loads((tmp_path / "state.json").read_text())["pid"]
    if kind != "createContainer":  # that hook sees the pid in the container's namespace
        assert wait_for(lambda: not pid_alive(pid))
    for ctl in ("memory", "pids", "cpu", "devices", "freezer"):
        assert not Path(f"/sys/fs/cgroup/{ctl}/kiste/{I('hf')}").exists()


def test_missing_hook_program(bundle, state_root):
    bundle.config["hooks"] = {"prestart": [{"path": "/no/such/hook"}]}
    p = bundle.run(["true"])
    assert p.returncode == 1
    assert "hooks.prestart[0]" in p.stderr and "/no/such/hook" in p.stderr
    assert "No such file" in p.stderr
    assert list(state_root.iterdir()) == []


def test_hook_timeout_kills_it(bundle, tmp_path, state_root):
    bundle.config["hooks"] = {"createRuntime": [
        {"path": "/bin/sleep", "args": ["sleep", "9.87"], "timeout": 1}]}
    p = bundle.run(["true"])
    assert p.returncode == 1
    assert "hooks.createRuntime[0]" in p.stderr and "timed out" in p.stderr
    # The hook was killed, not waited for.
    assert process_gone_by_cmdline(b"sleep\x009.87")
    assert list(state_root.iterdir()) == []


def test_hook_timeout_holds_while_state_is_unread(bundle, tmp_path, state_root):
    """A state larger than a pipe's buffer, given to a hook that never reads it: the time limit
    still ends the hook."""
    bundle.config["annotations"] = {f"k{i}": "x" * 1000 for i in range(300)}
    bundle.config["hooks"] = {"createRuntime": [
        {"path": "/bin/sleep", "args": ["sleep", "9.86"], "timeout": 1}]}
    p = bundle.run(["true"])
    assert p.returncode == 1
    assert "hooks.createRuntime[0]" in p.stderr and "timed out" in p.stderr
    assert process_gone_by_cmdline(b"sleep\x009.86")
    assert list(state_root.iterdir()) == []


def test_hook_within_timeout_is_fine(bundle, tmp_path):
    out = tmp_path / "out"
    bundle.config["hooks"] = {"prestart": [
        {"path": "/bin/sh", "args": ["sh", "-c", f"touch {out}"], "timeout": 30}]}
    assert bundle.run(["true"]).returncode == 0
    assert out.exists()


def test_hook_that_ignores_stdin(bundle, tmp_path):
    """A hook that exits without reading its state must not break the runtime (SIGPIPE)."""
    bundle.config["hooks"] = {"prestart": [{"path": "/bin/true"}],
                              "poststart": [{"path": "/bin/true"}]}
    bundle.config["annotations"] = {f"k{i}": "x" * 1000 for i in range(200)}
    p = bundle.run(["sh", "-c", "echo ok"])
    assert p.returncode == 0, p.stderr
    assert p.stdout == "ok\n"


def test_failing_poststart_and_poststop_only_warn(bundle, tmp_path):
    bundle.config["hooks"] = {
        "poststart": [{"path": "/bin/sh", "args": ["sh", "-c", "exit 4"]}],
        "poststop": [{"path": "/bin/sh", "args": ["sh", "-c", "exit 5"]}],
    }
    p = bundle.run(["sh", "-c", "echo ran"])
    assert p.returncode == 0, p.stderr
    assert p.stdout == "ran\n"
    assert "hooks.poststart[0]" in p.stderr and "status 4" in p.stderr
    assert "hooks.poststop[0]" in p.stderr and "status 5" in p.stderr
    assert list(bundle.state_root.iterdir()) == []


def test_failing_start_container_hook_stops_the_container(bundle, tmp_path):
    hookdir = tmp_path / "inside"
    hookdir.mkdir()
    host_script(hookdir / "start.sh", "exit 6\n")
    bundle.config["mounts"].append({"destination": "/hooks", "type": "bind",
                                    "source": str(hookdir), "options": ["rbind", "ro"]})
    bundle.config["hooks"] = {"startContainer": [{"path": "/hooks/start.sh"}]}
    p = bundle.run(["sh", "-c", "echo must-not-run"])
    assert p.returncode != 0
    assert "must-not-run" not in p.stdout
    assert "hooks.startContainer[0]" in p.stderr and "status 6" in p.stderr
    assert list(bundle.state_root.iterdir()) == []


def test_start_container_hook_must_exist_in_container(bundle, tmp_path):
    # A host path that is not in the rootfs: the hook runs after pivot_root and cannot see it.
    path = host_script(tmp_path / "host-only.sh", "exit 0\n")
    bundle.config["hooks"] = {"startContainer": [{"path": path}]}
    p = bundle.run(["sh", "-c", "echo must-not-run"])
    assert p.returncode != 0
    assert "must-not-run" not in p.stdout
    assert "hooks.startContainer[0]" in p.stderr and path in p.stderr


def sig_ign(status_text):
    for line in status_text.splitlines():
        if line.startswith("SigIgn:"):
            return int(line.split()[1], 16)
    raise AssertionError("no SigIgn in status")


def test_hooks_leave_signal_dispositions_alone(bundle, tmp_path):
    """Writing the state to a hook must not leave SIGPIPE ignored, neither for the next hook
    nor for the container's program (an ignored signal stays ignored across execve)."""
    hookdir = tmp_path / "inside"
    hookdir.mkdir()
    host_script(hookdir / "start.sh", "grep SigIgn /proc/self/status > /hooks/start.sigign\n")
    bundle.config["mounts"].append({"destination": "/hooks", "type": "bind",
                                    "source": str(hookdir), "options": ["rbind", "rw"]})
    second = tmp_path / "second.sigign"
    bundle.config["hooks"] = {
        "prestart": [{"path": "/bin/true"},
                     {"path": "/bin/sh", "args": ["sh", "-c", f"grep SigIgn /proc/self/status > {second}"]}],
        "createContainer": [{"path": "/bin/true"}],
        "startContainer": [{"path": "/hooks/start.sh"}],
    }
    p = bundle.run(["grep", "SigIgn", "/proc/self/status"])
    assert p.returncode == 0, p.stderr
    sigpipe = 1 << (13 - 1)
    assert sig_ign(p.stdout) & sigpipe == 0
    assert sig_ign(second.read_text()) & sigpipe == 0
    assert sig_ign((hookdir / "start.sigign").read_text()) & sigpipe == 0
