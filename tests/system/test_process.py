"""The container's process as config.json describes it: environment, user, umask, capabilities,
limits, scheduling, seccomp, file descriptors, exit status and signals, and the sealed copy of
the runtime that protects its binary while it works inside a container."""

import fcntl
import os
import signal
import subprocess

import pytest

from conftest import RUNTIME, run_captured, wait_for


def I(name):
    """A container id unique to this run: ids name cgroups under the machine-wide /kiste."""
    return f"{name}-{os.getpid()}"

CAPS = {
    "CAP_CHOWN": 0, "CAP_DAC_OVERRIDE": 1, "CAP_FOWNER": 3, "CAP_KILL": 5, "CAP_SETGID": 6,
    "CAP_SETUID": 7, "CAP_NET_BIND_SERVICE": 10, "CAP_NET_RAW": 13, "CAP_SYS_CHROOT": 18,
    "CAP_SYS_ADMIN": 21, "CAP_AUDIT_WRITE": 29,
}


def mask(names):
    m = 0
    for n in names:
        m |= 1 << CAPS[n]
    return m


def status_fields(text):
    out = {}
    for line in text.splitlines():
        k, _, v = line.partition(":")
        out[k.strip()] = v.strip()
    return out


def add_tmpfs(bundle, dest="/tmp"):
    bundle.config["mounts"].append({"destination": dest, "type": "tmpfs", "source": "tmpfs",
                                    "options": ["nosuid", "nodev", "mode=1777"]})


def test_env_and_cwd(bundle):
    bundle.config["process"]["env"] = ["PATH=/bin", "FOO=bar baz", "EMPTY="]
    bundle.config["process"]["cwd"] = "/etc"
    p = bundle.run(["sh", "-c", "pwd; env | sort"])
    assert p.returncode == 0, p.stderr
    lines = p.stdout.splitlines()
    assert lines[0] == "/etc"
    env = lines[1:]
    assert "FOO=bar baz" in env and "EMPTY=" in env and "PATH=/bin" in env
    # Nothing of the runtime's own environment leaks in.
    assert not any(e.startswith("KISTE") for e in env)


def test_user_and_additional_gids(bundle):
    bundle.config["process"]["user"] = {"uid": 1000, "gid": 1000, "additionalGids": [10, 20, 65534]}
    p = bundle.run(["sh", "-c", "id -u; id -g; id -G; grep -E '^(Uid|Gid|Groups):' /proc/self/status"])
    assert p.returncode == 0, p.stderr
    lines = p.stdout.splitlines()
    assert lines[0] == "1000" and lines[1] == "1000"
    assert set(lines[2].split()) == {"1000", "10", "20", "65534"}
    st = status_fields("\n".join(lines[3:]))
    assert st["Uid"].split() == ["1000"] * 4
    assert st["Gid"].split() == ["1000"] * 4
    assert sorted(int(g) for g in st["Groups"].split()) == [10, 20, 65534]


def test_root_without_additional_gids_has_no_groups(bundle):
    p = bundle.run(["sh", "-c", "grep -E '^Groups:' /proc/self/status"])
    assert p.returncode == 0, p.stderr
    assert p.stdout.split() == ["Groups:"]


@pytest.mark.parametrize("umask,file_mode,dir_mode", [(0o077, "600", "700"), (0o027, "640", "750"),
                                                      (None, "644", "755")])
def test_umask(bundle, umask, file_mode, dir_mode):
    add_tmpfs(bundle)
    if umask is not None:
        bundle.config["process"]["user"]["umask"] = umask
    p = bundle.run(["sh", "-c", "touch /tmp/f; mkdir /tmp/d; stat -c %a /tmp/f /tmp/d"])
    assert p.returncode == 0, p.stderr
    assert p.stdout.split() == [file_mode, dir_mode]


def read_caps(bundle):
    p = bundle.run(["grep", "^Cap", "/proc/self/status"])
    assert p.returncode == 0, p.stderr
    st = status_fields(p.stdout)
    return {k: int(st[k], 16) for k in ("CapInh", "CapPrm", "CapEff", "CapBnd", "CapAmb")}


@pytest.mark.parametrize("nnp", [True, False])
def test_capabilities_root(bundle, nnp):
    bnd = ["CAP_KILL", "CAP_NET_BIND_SERVICE", "CAP_CHOWN", "CAP_SYS_CHROOT"]
    prm = ["CAP_KILL", "CAP_CHOWN", "CAP_NET_BIND_SERVICE"]
    bundle.config["process"]["noNewPrivileges"] = nnp
    bundle.config["process"]["capabilities"] = {
        "bounding": bnd,
        "effective": ["CAP_KILL", "CAP_CHOWN"],
        "permitted": prm,
        "inheritable": ["CAP_NET_BIND_SERVICE"],
        "ambient": [],
    }
    c = read_caps(bundle)
    assert c["CapBnd"] == mask(bnd)
    assert c["CapInh"] == mask(["CAP_NET_BIND_SERVICE"])
    assert c["CapAmb"] == 0
    # execve as uid 0 grants the whole bounding set (the kernel's rule for root, as with runc),
    # unless no_new_privileges holds it to what the process already had.
    want = mask(prm) if nnp else mask(bnd)
    assert c["CapPrm"] == want
    assert c["CapEff"] == want


def test_capabilities_user_with_ambient(bundle):
    bundle.config["process"]["user"] = {"uid": 1000, "gid": 1000}
    bundle.config["process"]["capabilities"] = {
        "bounding": ["CAP_KILL", "CAP_NET_BIND_SERVICE", "CAP_CHOWN", "CAP_NET_RAW"],
        "effective": ["CAP_KILL", "CAP_NET_BIND_SERVICE", "CAP_NET_RAW"],
        "permitted": ["CAP_KILL", "CAP_NET_BIND_SERVICE", "CAP_NET_RAW"],
        "inheritable": ["CAP_NET_BIND_SERVICE", "CAP_NET_RAW"],
        "ambient": ["CAP_NET_BIND_SERVICE", "CAP_NET_RAW"],
    }
    c = read_caps(bundle)
    amb = mask(["CAP_NET_BIND_SERVICE", "CAP_NET_RAW"])
    assert c["CapBnd"] == mask(["CAP_KILL", "CAP_NET_BIND_SERVICE", "CAP_CHOWN", "CAP_NET_RAW"])
    assert c["CapInh"] == amb
    assert c["CapAmb"] == amb
    # A non-root program without file capabilities keeps exactly its ambient set.
    assert c["CapPrm"] == amb
    assert c["CapEff"] == amb


def test_capabilities_user_without_ambient_has_none(bundle):
    bundle.config["process"]["user"] = {"uid": 1000, "gid": 1000}
    bundle.config["process"]["capabilities"] = {
        "bounding": ["CAP_KILL"], "effective": ["CAP_KILL"], "permitted": ["CAP_KILL"]}
    c = read_caps(bundle)
    assert c == {"CapBnd": mask(["CAP_KILL"]), "CapInh": 0, "CapPrm": 0, "CapEff": 0, "CapAmb": 0}


def test_no_capabilities_at_all(bundle):
    bundle.config["process"]["capabilities"] = {
        "bounding": [], "effective": [], "permitted": [], "inheritable": [], "ambient": []}
    c = read_caps(bundle)
    assert c == {"CapBnd": 0, "CapInh": 0, "CapPrm": 0, "CapEff": 0, "CapAmb": 0}


def test_bad_capability_name(bundle, state_root):
    bundle.config["process"]["capabilities"]["bounding"].append("CAP_NO_SUCH_THING")
    p = bundle.run(["true"])
    assert p.returncode == 1
    assert "CAP_NO_SUCH_THING" in p.stderr
    assert "bounding" in p.stderr
    assert list(state_root.iterdir()) == []


def test_missing_cwd(bundle, state_root):
    bundle.config["process"]["cwd"] = "/no/such/dir"
    p = bundle.run(["true"])
    assert p.returncode == 1
    assert "/no/such/dir" in p.stderr and "cwd" in p.stderr
    assert "No such file" in p.stderr
    assert list(state_root.iterdir()) == []


def test_rlimit_nofile(bundle):
    bundle.config["process"]["rlimits"] = [
        {"type": "RLIMIT_NOFILE", "soft": 1024, "hard": 2048},
        {"type": "RLIMIT_CORE", "soft": 0, "hard": 0},
    ]
    p = bundle.run(["sh", "-c", "ulimit -n; ulimit -Hn; ulimit -c"])
    assert p.returncode == 0, p.stderr
    assert p.stdout.split() == ["1024", "2048", "0"]


def test_rlimit_above_hard_limit_is_clamped(bundle):
    hard = open("/proc/self/limits").read()
    nproc_hard = None
    for line in hard.splitlines():
        if line.startswith("Max processes"):
            nproc_hard = line.split()[3]
    if nproc_hard == "unlimited":
        pytest.skip("the nproc hard limit of this machine is unlimited: nothing to clamp")
    bundle.config["process"]["rlimits"] = [
        {"type": "RLIMIT_NPROC", "soft": 4194304, "hard": 4194304},
        {"type": "RLIMIT_NOFILE", "soft": 1024, "hard": 1024},
    ]
    p = bundle.run(["sh", "-c", "ulimit -u; ulimit -Hu; ulimit -n"])
    assert p.returncode == 0, p.stderr
    assert p.stdout.split() == [nproc_hard, nproc_hard, "1024"]
    assert "RLIMIT_NPROC" in p.stderr and "clamped" in p.stderr


def test_unknown_rlimit(bundle, state_root):
    bundle.config["process"]["rlimits"] = [{"type": "RLIMIT_BOGUS", "soft": 1, "hard": 1}]
    p = bundle.run(["true"])
    assert p.returncode == 1 and "RLIMIT_BOGUS" in p.stderr
    assert list(state_root.iterdir()) == []


@pytest.mark.parametrize("nnp", [True, False])
def test_no_new_privileges(bundle, nnp):
    bundle.config["process"]["noNewPrivileges"] = nnp
    p = bundle.run(["grep", "^NoNewPrivs:", "/proc/self/status"])
    assert p.returncode == 0, p.stderr
    assert p.stdout.split() == ["NoNewPrivs:", "1" if nnp else "0"]


def test_oom_score_adj(bundle):
    bundle.config["process"]["oomScoreAdj"] = 555
    p = bundle.run(["cat", "/proc/self/oom_score_adj"])
    assert p.returncode == 0, p.stderr
    assert p.stdout.strip() == "555"


def test_scheduler_batch_with_nice(bundle):
    bundle.config["process"]["scheduler"] = {"policy": "SCHED_BATCH", "nice": 7}
    p = bundle.run(["cat", "/proc/self/stat"])
    assert p.returncode == 0, p.stderr
    fields = p.stdout.rsplit(")", 1)[1].split()
    # Fields after the command: state is field 3, so field N is fields[N - 3].
    assert fields[41 - 3] == "3"  # policy: SCHED_BATCH
    assert fields[19 - 3] == "7"  # nice


def test_scheduler_unknown_policy(bundle, state_root):
    bundle.config["process"]["scheduler"] = {"policy": "SCHED_FAST"}
    p = bundle.run(["true"])
    assert p.returncode == 1 and "SCHED_FAST" in p.stderr
    assert list(state_root.iterdir()) == []


def test_io_priority(bundle):
    bundle.config["process"]["ioPriority"] = {"class": "IOPRIO_CLASS_BE", "priority": 6}
    p = bundle.run(["ionice"])
    assert p.returncode == 0, p.stderr
    assert p.stdout.strip() == "best-effort: prio 6"


def test_io_priority_idle(bundle):
    bundle.config["process"]["ioPriority"] = {"class": "IOPRIO_CLASS_IDLE", "priority": 0}
    p = bundle.run(["ionice"])
    assert p.returncode == 0, p.stderr
    assert p.stdout.strip().startswith("idle")


def test_personality_linux32(bundle):
    if os.uname().machine != "x86_64":
        pytest.skip("LINUX32 is checked on x86_64 only")
    bundle.config["linux"]["personality"] = {"domain": "LINUX32"}
    p = bundle.run(["uname", "-m"])
    assert p.returncode == 0, p.stderr
    assert p.stdout.strip() == "i686"
    bundle.config["linux"]["personality"] = {"domain": "LINUX"}
    p = bundle.run(["uname", "-m"])
    assert p.stdout.strip() == "x86_64"


def seccomp_profile(errno_ret):
    return {
        "defaultAction": "SCMP_ACT_ALLOW",
        "architectures": ["SCMP_ARCH_X86_64", "SCMP_ARCH_X86", "SCMP_ARCH_X32"],
        "syscalls": [{"names": ["mkdir", "mkdirat"], "action": "SCMP_ACT_ERRNO",
                      "errnoRet": errno_ret}],
    }


@pytest.mark.parametrize("nnp,errno_ret,message", [
    (True, 1, "Operation not permitted"),
    (False, 38, "Function not implemented"),
])
def test_seccomp_blocks_mkdir(bundle, nnp, errno_ret, message):
    add_tmpfs(bundle)
    bundle.config["process"]["noNewPrivileges"] = nnp
    # Without no_new_privileges the filter is loaded while CAP_SYS_ADMIN is still held; the
    # process itself must not need it.
    bundle.config["linux"]["seccomp"] = seccomp_profile(errno_ret)
    p = bundle.run(["sh", "-c", "grep -E '^(Seccomp|NoNewPrivs):' /proc/self/status; "
                    "touch /tmp/file && echo touched; mkdir /tmp/dir; echo rc=$?"])
    st = status_fields(p.stdout)
    assert st["Seccomp"] == "2"
    assert st["NoNewPrivs"] == ("1" if nnp else "0")
    assert "touched" in p.stdout  # everything else is allowed
    assert "rc=1" in p.stdout
    assert message in p.stderr


def test_seccomp_filter_applies_to_exec(bundle):
    add_tmpfs(bundle)
    bundle.config["linux"]["seccomp"] = seccomp_profile(1)
    bundle.config["process"]["args"] = ["sleep", "100"]
    bundle.write()
    bundle.rt("run", "-d", "--bundle", bundle.path, I("sx"))
    p = bundle.rt("exec", I("sx"), "sh", "-c", "grep ^Seccomp: /proc/self/status; mkdir /tmp/d",
                  check=False)
    assert p.returncode == 1
    assert "Seccomp:\t2" in p.stdout
    assert "Operation not permitted" in p.stderr
    bundle.rt("delete", "--force", I("sx"))


def test_seccomp_bad_syscall_action(bundle, state_root):
    prof = seccomp_profile(1)
    prof["syscalls"][0]["action"] = "SCMP_ACT_EXPLODE"
    bundle.config["linux"]["seccomp"] = prof
    p = bundle.run(["true"])
    assert p.returncode == 1 and "SCMP_ACT_EXPLODE" in p.stderr
    assert list(state_root.iterdir()) == []


def fds_of(out):
    return sorted(int(x) for x in out.split())


def test_no_runtime_fd_leaks_into_container(bundle, tmp_path):
    # An inheritable fd of the caller must not reach the container either.
    with open(tmp_path / "extra", "w") as extra:
        os.set_inheritable(extra.fileno(), True)
        bundle.config["process"]["args"] = ["ls", "/proc/self/fd"]
        bundle.write()
        p = run_captured([str(RUNTIME), "--root", str(bundle.state_root), "run", "--bundle",
                          str(bundle.path), I("fd1")], pass_fds=(extra.fileno(),))
    assert p.returncode == 0, p.stderr
    # 0-2, and the directory ls itself opened.
    assert fds_of(p.stdout) == [0, 1, 2, 3]


def test_no_runtime_fd_leaks_into_exec(bundle):
    bundle.config["process"]["args"] = ["sleep", "100"]
    bundle.write()
    bundle.rt("run", "-d", "--bundle", bundle.path, I("fd2"))
    p = bundle.rt("exec", I("fd2"), "ls", "/proc/self/fd")
    assert fds_of(p.stdout) == [0, 1, 2, 3]
    bundle.rt("delete", "--force", I("fd2"))


def test_init_of_created_container_has_no_extra_fds(bundle):
    """The process start runs: what it holds after start is only what it was given."""
    bundle.config["process"]["args"] = ["sleep", "100"]
    bundle.write()
    bundle.rt("create", "--bundle", bundle.path, I("fd3"))
    bundle.rt("start", I("fd3"))
    pid = bundle.state(I("fd3"))["pid"]
    assert wait_for(lambda: open(f"/proc/{pid}/cmdline", "rb").read().startswith(b"sleep"))
    assert sorted(int(f) for f in os.listdir(f"/proc/{pid}/fd")) == [0, 1, 2]
    bundle.rt("delete", "--force", I("fd3"))


def test_preserve_fds(bundle, tmp_path):
    (tmp_path / "three").write_text("from fd three\n")
    (tmp_path / "four").write_text("from fd four\n")
    bundle.config["process"]["args"] = ["sh", "-c", "cat <&3; ls /proc/self/fd; cat <&4"]
    bundle.write()
    # fd 3 and 4 of the runtime are files; only one is preserved.
    cmd = ["/bin/sh", "-c", 'exec "$@" 3<"$F3" 4<"$F4"', "sh", str(RUNTIME), "--root",
           str(bundle.state_root), "run", "--preserve-fds", "1", "--bundle", str(bundle.path), I("pf")]
    env = dict(os.environ, F3=str(tmp_path / "three"), F4=str(tmp_path / "four"))
    p = run_captured(cmd, env=env)
    lines = p.stdout.splitlines()
    assert lines[0] == "from fd three"
    # ls sees 0-3 and its own directory fd (4, taking the place of the unpreserved one).
    assert fds_of(" ".join(lines[1:])) == [0, 1, 2, 3, 4]
    assert "from fd four" not in p.stdout
    assert p.returncode != 0  # cat <&4 reads a directory fd or fails: fd 4 was not passed


def test_exit_status(bundle):
    assert bundle.run(["sh", "-c", "exit 0"]).returncode == 0
    assert bundle.run(["sh", "-c", "exit 123"]).returncode == 123
    assert bundle.run(["false"]).returncode == 1


def test_exit_status_of_init_killed_by_signal(bundle, tmp_path):
    """The init cannot kill itself with a signal (it is pid 1 of its namespace); kill it from
    outside: run exits as a shell would, with 128 + the signal's number."""
    bundle.config["process"]["args"] = ["sh", "-c", "echo ready; sleep 100"]
    bundle.write()
    out = tmp_path / "out"
    with open(out, "w") as f:
        proc = subprocess.Popen([str(RUNTIME), "--root", str(bundle.state_root), "run",
                                 "--bundle", str(bundle.path), I("sk")],
                                stdin=subprocess.DEVNULL, stdout=f, stderr=subprocess.DEVNULL)
        try:
            assert wait_for(lambda: "ready" in out.read_text(), timeout=10)
            bundle.rt("kill", I("sk"), "KILL")
            rc = proc.wait(timeout=20)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
    assert rc == 128 + 9
    assert list(bundle.state_root.iterdir()) == []


def test_signals_forwarded_by_run(bundle, tmp_path):
    bundle.config["process"]["args"] = [
        "sh", "-c", "trap 'echo got-term; exit 42' TERM; echo ready; "
                    "while true; do sleep 0.05; done"]
    bundle.write()
    out = tmp_path / "out"
    with open(out, "w") as f:
        proc = subprocess.Popen([str(RUNTIME), "--root", str(bundle.state_root), "run",
                                 "--bundle", str(bundle.path), I("sig")],
                                stdin=subprocess.DEVNULL, stdout=f, stderr=subprocess.PIPE)
        try:
            assert wait_for(lambda: "ready" in out.read_text(), timeout=10)
            proc.send_signal(signal.SIGTERM)
            rc = proc.wait(timeout=20)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
    assert rc == 42, proc.stderr.read()
    assert "got-term" in out.read_text()
    # run deleted the container on its way out.
    assert list(bundle.state_root.iterdir()) == []


def test_signals_forwarded_by_exec(bundle, tmp_path):
    bundle.config["process"]["args"] = ["sleep", "100"]
    bundle.write()
    bundle.rt("run", "-d", "--bundle", bundle.path, I("sige"))
    out = tmp_path / "out"
    with open(out, "w") as f:
        proc = subprocess.Popen([str(RUNTIME), "--root", str(bundle.state_root), "exec", I("sige"),
                                 "sh", "-c", "trap 'exit 43' USR1; echo ready; "
                                 "while true; do sleep 0.05; done"],
                                stdin=subprocess.DEVNULL, stdout=f, stderr=subprocess.DEVNULL)
        try:
            assert wait_for(lambda: "ready" in out.read_text(), timeout=10)
            proc.send_signal(signal.SIGUSR1)
            rc = proc.wait(timeout=20)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
    assert rc == 43
    bundle.rt("delete", "--force", I("sige"))


def is_sealed_memfd(pid):
    link = os.readlink(f"/proc/{pid}/exe")
    if not link.startswith("/memfd:kiste-runtime"):
        return False
    fd = os.open(f"/proc/{pid}/exe", os.O_RDONLY)
    try:
        seals = fcntl.fcntl(fd, fcntl.F_GET_SEALS)
    finally:
        os.close(fd)
    return bool(seals & fcntl.F_SEAL_WRITE) and bool(seals & fcntl.F_SEAL_SEAL)


def test_runtime_runs_from_sealed_memfd_during_run_and_exec(bundle, tmp_path):
    """The CVE-2019-5736 class: while the runtime works inside a container, its /proc/PID/exe
    must not be the binary on disk, which a container process could open and overwrite."""
    bundle.config["process"]["args"] = ["sh", "-c", "echo ready; sleep 100"]
    bundle.write()
    out = tmp_path / "out"
    procs = []
    try:
        with open(out, "w") as f:
            run = subprocess.Popen([str(RUNTIME), "--root", str(bundle.state_root), "run",
                                    "--bundle", str(bundle.path), I("cve")],
                                   stdin=subprocess.DEVNULL, stdout=f, stderr=subprocess.DEVNULL)
            procs.append(run)
            assert wait_for(lambda: "ready" in out.read_text(), timeout=10)
            assert is_sealed_memfd(run.pid)
            ex = subprocess.Popen([str(RUNTIME), "--root", str(bundle.state_root), "exec", I("cve"),
                                   "sh", "-c", "echo exec-ready; sleep 100"],
                                  stdin=subprocess.DEVNULL, stdout=f, stderr=subprocess.DEVNULL)
            procs.append(ex)
            assert wait_for(lambda: "exec-ready" in out.read_text(), timeout=10)
            assert is_sealed_memfd(ex.pid)
            # Writing to the runtime through /proc/PID/exe fails.
            with pytest.raises(OSError):
                fd = os.open(f"/proc/{ex.pid}/exe", os.O_WRONLY)
                try:
                    os.write(fd, b"x")
                finally:
                    os.close(fd)
            # The binary on disk is untouched and is not what the process runs.
            assert os.readlink(f"/proc/{ex.pid}/exe") != str(RUNTIME)
    finally:
        bundle.rt("delete", "--force", I("cve"), check=False)
        for p in procs:
            try:
                p.wait(timeout=20)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()


def test_container_process_cannot_see_runtime_binary(bundle, tmp_path):
    """A process in the container that looks at /proc/<pid>/exe of a process exec joins while
    it is still the runtime sees no path on the host's disk: it sees the memfd or nothing."""
    add_tmpfs(bundle)
    bundle.config["process"]["args"] = [
        "sh", "-c", "while true; do for p in /proc/[0-9]*; do "
                    "l=$(readlink $p/exe 2>/dev/null) && echo \"$l\" >> /tmp/seen; done; "
                    "done"]
    bundle.write()
    bundle.rt("run", "-d", "--bundle", bundle.path, I("cve2"))
    for _ in range(10):
        bundle.rt("exec", I("cve2"), "true")
    p = bundle.rt("exec", I("cve2"), "sh", "-c", "sort -u /tmp/seen")
    seen = set(p.stdout.split())
    assert str(RUNTIME) not in seen
    assert not any("kiste-runtime" in s and not s.startswith("/memfd:") for s in seen)
    bundle.rt("delete", "--force", I("cve2"))


def test_exec_preserve_fds(bundle, tmp_path):
    (tmp_path / "three").write_text("exec fd three\n")
    bundle.config["process"]["args"] = ["sleep", "100"]
    bundle.write()
    bundle.rt("run", "-d", "--bundle", bundle.path, I("xpf"))
    cmd = ["/bin/sh", "-c", 'exec "$@" 3<"$F3"', "sh", str(RUNTIME), "--root",
           str(bundle.state_root), "exec", "--preserve-fds", "1", I("xpf"), "sh", "-c",
           "cat <&3; ls /proc/self/fd"]
    p = run_captured(cmd, env=dict(os.environ, F3=str(tmp_path / "three")))
    assert p.returncode == 0, p.stderr
    lines = p.stdout.splitlines()
    assert lines[0] == "exec fd three"
    assert fds_of(" ".join(lines[1:])) == [0, 1, 2, 3, 4]
    bundle.rt("delete", "--force", I("xpf"))


def test_exec_cwd_and_env_errors(bundle):
    bundle.config["process"]["args"] = ["sleep", "100"]
    bundle.write()
    bundle.rt("run", "-d", "--bundle", bundle.path, I("xce"))
    p = bundle.rt("exec", "--cwd", "/no/such/dir", I("xce"), "true", check=False)
    assert p.returncode == 1 and "/no/such/dir" in p.stderr
    # The exec'd process starts from the container's process: its env and rlimits.
    p = bundle.rt("exec", "--env", "EXTRA=1", I("xce"), "sh", "-c", "echo $PATH $EXTRA; ulimit -n")
    assert p.stdout.split() == [bundle.config["process"]["env"][0].split("=", 1)[1], "1", "1024"]
    bundle.rt("delete", "--force", I("xce"))
