"""kiste-init as a container's process 1 (what `kiste run --init` sets up): it reaps orphaned
zombies, forwards signals to its child and passes the child's exit status through."""

import os
import subprocess
import tempfile
import time
from pathlib import Path

from conftest import BUILD, RUNTIME, wait_for

INIT = BUILD / "src" / "init" / "kiste-init"


def I(name):
    """A container id unique to this run: ids name cgroups under the machine-wide /kiste."""
    return f"{name}-{os.getpid()}"


def with_init(bundle, args):
    """The bundle runs args under kiste-init, bind-mounted read-only at /dev/init as the engine
    does for --init."""
    bundle.config["mounts"].append({"destination": "/dev/init", "type": "bind",
                                    "source": str(INIT), "options": ["bind", "ro"]})
    return ["/dev/init", "--"] + args


def proc_state(pid):
    """(state, ppid) of a host pid, or None when it is gone."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
    except (FileNotFoundError, ProcessLookupError):
        return None
    return fields[0], int(fields[1])


def zombie_children(pid):
    """Host pids of the zombies whose parent is pid."""
    out = []
    for d in os.listdir("/proc"):
        if d.isdigit():
            st = proc_state(int(d))
            if st and st[1] == pid and st[0] == "Z":
                out.append(int(d))
    return out


def test_static_binary():
    out = subprocess.run(["file", "-L", str(INIT)], capture_output=True, text=True).stdout
    assert "static-pie linked" in out or "statically linked" in out, out


def test_usage_errors():
    p = subprocess.run([str(INIT)], capture_output=True, text=True)
    assert p.returncode == 1 and "usage" in p.stderr
    p = subprocess.run([str(INIT), "--", "/nonexistent/cmd"], capture_output=True, text=True)
    assert p.returncode == 127 and "/nonexistent/cmd" in p.stderr


def test_exit_code_passed_through(bundle):
    p = bundle.run(with_init(bundle, ["sh", "-c", "echo hello; exit 7"]))
    assert p.returncode == 7, p.stderr
    assert p.stdout == "hello\n"
    # Killed by a signal: 128 + the signal, as a shell reports it.
    p = bundle.run(with_init(bundle, ["sh", "-c", "kill -KILL $$"]))
    assert p.returncode == 137, p.stderr
    p = bundle.run(with_init(bundle, ["true"]))
    assert p.returncode == 0, p.stderr
    # The command runs as process 2 under init, in a process group of its own.
    p = bundle.run(with_init(bundle, ["sh", "-c", "echo $$ $(cut -d' ' -f5 /proc/$$/stat)"]))
    assert p.returncode == 0, p.stderr
    pid, pgrp = p.stdout.split()
    assert pid == "2" and pgrp == "2", p.stdout


def _orphans_become_zombies(bundle, use_init):
    """Starts a container whose command leaves two orphans that exit shortly after, and returns
    the zombies left under the container's process 1 a moment later (seen from the host). They
    outlive the shell that reparents them, so that no shell waiting for its own child reaps them
    by chance."""
    cmd = ["sh", "-c", "sh -c 'sleep 0.2 & sleep 0.2 &'; exec sleep 30"]
    bundle.config["process"]["args"] = with_init(bundle, cmd) if use_init else cmd
    bundle.write()
    id = I("init-zombies" if use_init else "noinit-zombies")
    bundle.ids.append(id)
    bundle.rt("create", "--bundle", bundle.path, id)
    try:
        bundle.rt("start", id)
        pid = bundle.state(id)["pid"]
        time.sleep(0.8)
        assert wait_for(lambda: proc_state(pid) is not None)
        zombies = zombie_children(pid)
        if use_init:
            # The inner sh and its two sleeps were reparented to init and reaped; allow a
            # late one a moment to go.
            wait_for(lambda: not zombie_children(pid), timeout=2)
            zombies = zombie_children(pid)
        return zombies
    finally:
        bundle.rt("delete", "--force", id, check=False)


def test_reaps_orphaned_zombies(bundle):
    # Without an init, `sleep` as process 1 never waits: the orphans stay zombies. This shows
    # that the scenario really makes zombies.
    assert len(_orphans_become_zombies(bundle, use_init=False)) >= 2
    assert _orphans_become_zombies(bundle, use_init=True) == []


def _run_in_background(bundle, args, id):
    bundle.config["process"]["args"] = args
    bundle.write()
    bundle.ids.append(id)
    out = tempfile.NamedTemporaryFile(prefix="kiste-init-out-", delete=False)
    p = subprocess.Popen([str(RUNTIME), "--root", str(bundle.state_root), "run", "--bundle",
                          str(bundle.path), id], stdin=subprocess.DEVNULL, stdout=out,
                         stderr=subprocess.STDOUT)
    return p, Path(out.name)


def test_sigterm_forwarded_to_trapping_shell(bundle):
    id = I("init-trap")
    script = 'trap "echo got-term; exit 42" TERM; echo ready; while :; do sleep 0.05; done'
    p, out = _run_in_background(bundle, with_init(bundle, ["sh", "-c", script]), id)
    try:
        assert wait_for(lambda: "ready" in out.read_text(), timeout=10), out.read_text()
        bundle.rt("kill", id, "TERM")
        assert p.wait(timeout=10) == 42, out.read_text()
        assert "got-term" in out.read_text()
    finally:
        if p.poll() is None:
            p.kill()
            p.wait()
        out.unlink()


def test_sigterm_reaches_a_program_that_is_not_an_init(bundle):
    # `sleep` as process 1 would ignore SIGTERM (no default actions for process 1); under init
    # it is process 2 and dies of it.
    id = I("init-term")
    p, out = _run_in_background(bundle, with_init(bundle, ["sleep", "30"]), id)
    try:
        state = lambda: bundle.rt("state", id, check=False).stdout
        assert wait_for(lambda: '"running"' in state(), timeout=10), out.read_text()
        # The init has forked its child once that child is sleeping.
        pid = bundle.state(id)["pid"]
        assert wait_for(lambda: any(proc_state(int(d)) and proc_state(int(d))[1] == pid
                                    for d in os.listdir("/proc") if d.isdigit()), timeout=5)
        bundle.rt("kill", id, "TERM")
        assert p.wait(timeout=10) == 128 + 15, out.read_text()
    finally:
        if p.poll() is None:
            p.kill()
            p.wait()
        out.unlink()


def test_signals_other_than_term(bundle):
    id = I("init-usr1")
    script = ('trap "echo got-usr1" USR1; trap "echo got-hup; exit 3" HUP; echo ready; '
              'while :; do sleep 0.05; done')
    p, out = _run_in_background(bundle, with_init(bundle, ["sh", "-c", script]), id)
    try:
        assert wait_for(lambda: "ready" in out.read_text(), timeout=10), out.read_text()
        bundle.rt("kill", id, "USR1")
        assert wait_for(lambda: "got-usr1" in out.read_text(), timeout=10), out.read_text()
        bundle.rt("kill", id, "HUP")
        assert p.wait(timeout=10) == 3, out.read_text()
    finally:
        if p.poll() is None:
            p.kill()
            p.wait()
        out.unlink()


def test_private_memory_is_small(bundle):
    """kiste-init writes to a few pages only. Its clean pages are the binary's text in the page
    cache, shared by every container that runs the same file (they show as private while one
    process maps them), so the check is on the dirty ones, with a bound on the whole."""
    id = I("init-mem")
    p, out = _run_in_background(bundle, with_init(bundle, ["sleep", "30"]), id)
    try:
        state = lambda: bundle.rt("state", id, check=False).stdout
        assert wait_for(lambda: '"running"' in state(), timeout=10), out.read_text()
        pid = bundle.state(id)["pid"]
        kb = {}
        with open(f"/proc/{pid}/smaps_rollup") as f:
            for line in f:
                k, _, v = line.partition(":")
                if v.strip().endswith(" kB"):
                    kb[k] = int(v.split()[0])
        assert kb["Private_Dirty"] <= 128, kb
        assert kb["Rss"] <= 1024, kb
        bundle.rt("kill", id, "KILL")
        p.wait(timeout=10)
    finally:
        if p.poll() is None:
            p.kill()
            p.wait()
        out.unlink()
