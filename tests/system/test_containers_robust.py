"""Robustness of the container engine: many commands at once on one storage root, a kill -9 of
any kiste process at any moment (the next command repairs what it left), resource limits above
the host's hard limits, and kiste running inside a privileged kiste container."""

import os
import random
import re
import resource
import shutil
import signal
import subprocess
import tarfile
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from conftest import KISTE, pid_alive, wait_for
from test_containers import Kiste, busybox_tar, kiste  # noqa: F401 (fixtures)

LOCKED = re.compile(r"locked|busy", re.I)


def run_ps_ids(k):
    return k("ps", "-aq", "--no-trunc").stdout.split()


def monitor_pid(k, cid):
    return int((k.runroot / "containers" / cid / "monitor.pid").read_text())


def mounts_under(path):
    with open("/proc/self/mountinfo") as f:
        return [line.split()[4] for line in f if str(path) in line.split()[4]]


def container_cgroups(ids):
    found = []
    for base in Path("/sys/fs/cgroup").iterdir():
        for cid in ids:
            p = base / "kiste" / cid
            if p.is_dir():
                found.append(str(p))
    return found


def processes_of(root):
    """Processes whose command line names this test's storage root (monitors, rm of --rm)."""
    out = []
    for pid in os.listdir("/proc"):
        if not pid.isdigit():
            continue
        try:
            cmd = Path(f"/proc/{pid}/cmdline").read_bytes()
        except OSError:
            continue
        if str(root).encode() in cmd and pid_alive(int(pid)):
            out.append((pid, cmd.replace(b"\0", b" ").decode(errors="replace")))
    return out


def assert_nothing_left(k, ids):
    assert k("ps", "-aq").stdout == ""
    assert mounts_under(k.root) == []
    assert container_cgroups(ids) == []
    assert wait_for(lambda: processes_of(k.root) == [], timeout=10), processes_of(k.root)


# --- 1. concurrency -----------------------------------------------------------------------------

def test_parallel_runs_and_removes(kiste):
    n = 100
    with ThreadPoolExecutor(max_workers=n) as pool:
        results = list(pool.map(
            lambda i: kiste("run", "-d", "busybox", "sleep", "60", check=False, timeout=180),
            range(n)))
    for p in results:
        assert p.returncode == 0, p.stderr
        assert not LOCKED.search(p.stdout + p.stderr), p.stderr
    ids = [p.stdout.strip() for p in results]
    assert len(set(ids)) == n
    lines = kiste("ps", "--no-trunc", "--format", "{{.ID}} {{.Names}} {{.Status}}").stdout
    rows = [line.split(None, 2) for line in lines.splitlines()]
    assert sorted(r[0] for r in rows) == sorted(ids)
    names = [r[1] for r in rows]
    assert len(set(names)) == n, "names not unique"
    assert all(r[2].startswith("Up") for r in rows), lines

    groups = [ids[i::20] for i in range(20)]
    with ThreadPoolExecutor(max_workers=20) as pool:
        results = list(pool.map(lambda g: kiste("rm", "-f", *g, check=False, timeout=180),
                                groups))
    for p in results:
        assert p.returncode == 0, p.stderr
        assert not LOCKED.search(p.stderr), p.stderr
    assert_nothing_left(kiste, ids)


# --- 2. crash consistency -----------------------------------------------------------------------

@pytest.mark.parametrize("first", ["ps", "start", "rm"])
def test_monitor_killed(kiste, first):
    cid = kiste("run", "-d", "--name", "victim", "busybox", "sleep", "60").stdout.strip()
    init = kiste.state("victim")["Pid"]
    assert pid_alive(init)
    os.kill(monitor_pid(kiste, cid), signal.SIGKILL)
    assert wait_for(lambda: not pid_alive(monitor_pid_or_0(kiste, cid)), timeout=5)
    if first == "ps":
        line = kiste("ps", "-a").stdout.splitlines()[1]
        assert re.search(r"Exited \(255\)", line), line
        st = kiste.state("victim")
        assert st["Status"] == "exited" and st["Error"] == "monitor died"
        # the command that saw it cleaned up: no process, no mount, no runtime state
        assert wait_for(lambda: not pid_alive(init), timeout=5)
        assert mounts_under(kiste.root) == []
        assert container_cgroups([cid]) == []
        assert not (kiste.runroot / "runtime" / cid).exists()
        # and the repair is recorded, not done again by every reader
        assert kiste.state("victim")["Error"] == "monitor died"
    if first in ("ps", "start"):
        kiste("start", "victim")
        assert not pid_alive(init)
        st = kiste.state("victim")
        assert st["Status"] == "running" and st["Error"] == ""
        assert st["Pid"] != init and pid_alive(st["Pid"])
        assert kiste("exec", "victim", "echo", "ok").stdout == "ok\n"
    kiste("rm", "-f", "victim")
    assert not pid_alive(init)
    assert_nothing_left(kiste, [cid])


def monitor_pid_or_0(k, cid):
    try:
        return monitor_pid(k, cid)
    except (OSError, ValueError):
        return 0


def test_monitor_killed_while_paused(kiste):
    cid = kiste("run", "-d", "--name", "frozen", "busybox", "sleep", "60").stdout.strip()
    init = kiste.state("frozen")["Pid"]
    kiste("pause", "frozen")
    os.kill(monitor_pid(kiste, cid), signal.SIGKILL)
    assert wait_for(lambda: kiste.state("frozen")["Status"] == "exited", timeout=5)
    assert wait_for(lambda: not pid_alive(init), timeout=10)
    kiste("start", "frozen")
    assert kiste.state("frozen")["Status"] == "running"
    kiste("rm", "-f", "frozen")
    assert_nothing_left(kiste, [cid])


def test_run_killed_during_start(kiste):
    """kill -9 of `run -d` after random short delays: before the record, between record and
    mount, while the monitor starts the container, after. Whatever is left must be listable,
    removable, startable, and leave nothing behind."""
    rng = random.Random(4)
    t0 = time.monotonic()
    kiste("rm", "-f", kiste("run", "-d", "busybox", "sleep", "60").stdout.strip())
    span = (time.monotonic() - t0) * 0.8  # the kills spread over a whole `run -d`
    for i in range(24):
        p = subprocess.Popen(kiste.argv("run", "-d", "--name", f"k{i}", "busybox", "sleep", "60"),
                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                             stdin=subprocess.DEVNULL)
        time.sleep(rng.uniform(0, span))
        p.send_signal(signal.SIGKILL)
        p.wait()
    ps = kiste("ps", "-a", "--no-trunc", "--format", "{{.ID}} {{.Names}} {{.Status}}", timeout=120)
    assert not LOCKED.search(ps.stderr), ps.stderr
    rows = [line.split(None, 2) for line in ps.stdout.splitlines()]
    print("after the kills:", [r[2] for r in rows])
    ids = [r[0] for r in rows]
    for r in rows:
        assert re.match(r"(Up|Created|Exited)", r[2]), r
    # every survivor can be started (a running one is left alone) and stopped again
    for r in rows:
        kiste("start", r[1], timeout=120)
        assert kiste.state(r[1])["Status"] == "running"
    if ids:
        kiste("rm", "-f", *ids, timeout=180)
    assert_nothing_left(kiste, ids)


def test_rm_killed_midway(kiste):
    rng = random.Random(7)
    ids = [kiste("run", "-d", "busybox", "sleep", "60").stdout.strip() for _ in range(12)]
    for cid in ids:
        p = subprocess.Popen(kiste.argv("rm", "-f", cid), stdout=subprocess.DEVNULL,
                             stderr=subprocess.DEVNULL, stdin=subprocess.DEVNULL)
        time.sleep(rng.uniform(0, 0.05))
        p.send_signal(signal.SIGKILL)
        p.wait()
    left = run_ps_ids(kiste)
    assert set(left) <= set(ids)
    if left:
        p = kiste("rm", "-f", *left, timeout=120)
        assert not LOCKED.search(p.stderr), p.stderr
    assert_nothing_left(kiste, ids)
    # the storage root is usable as before
    assert kiste("run", "--rm", "busybox", "echo", "fine").stdout == "fine\n"


# --- 3. limits above the hard limits ------------------------------------------------------------

def test_ulimits_above_hard_limit_are_clamped(kiste):
    nofile = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
    nproc = resource.getrlimit(resource.RLIMIT_NPROC)[1]
    if nofile == resource.RLIM_INFINITY or nproc == resource.RLIM_INFINITY:
        pytest.skip("no finite hard limit to exceed here")
    p = kiste("run", "--rm", "--ulimit", "nofile=1048576:1048576", "--ulimit",
              "nproc=4194304:4194304", "busybox", "sh", "-c", "ulimit -n; ulimit -Hn; ulimit -u",
              check=False)
    assert p.returncode == 0, p.stderr
    assert p.stdout.split() == [str(nofile), str(nofile), str(nproc)]
    assert re.search(rf"WARNING: ulimit nofile=1048576:1048576 .*using nofile={nofile}:{nofile}",
                     p.stderr), p.stderr
    assert re.search(rf"WARNING: ulimit nproc=4194304:4194304 .*using nproc={nproc}:{nproc}",
                     p.stderr), p.stderr
    # a soft limit below the hard one stays as asked; the hard one is clamped
    p = kiste("run", "--rm", "--ulimit", "nofile=1024:1048576", "busybox", "sh", "-c",
              "ulimit -n; ulimit -Hn", check=False)
    assert p.returncode == 0 and p.stdout.split() == ["1024", str(nofile)], p.stderr
    assert f"using nofile=1024:{nofile}" in p.stderr
    # limits within the hard ones: no warning
    p = kiste("run", "--rm", "--ulimit", "nofile=512:1024", "busybox", "sh", "-c", "ulimit -n")
    assert p.stdout == "512\n" and "WARNING" not in p.stderr
    # create records the clamped values, so a later start does not fail either
    kiste("create", "--name", "later", "--ulimit", "nofile=1048576", "busybox", "true")
    ul = kiste.inspect("later")["HostConfig"]["Ulimits"]
    assert ul == [{"Name": "nofile", "Soft": nofile, "Hard": nofile}]
    kiste("start", "-a", "later")
    assert kiste.state("later")["ExitCode"] == 0


# --- 4. containers in containers ----------------------------------------------------------------

BUILD_DIR = KISTE.parents[2]
NESTED_BINARIES = [KISTE, BUILD_DIR / "src" / "runtime" / "kiste-runtime",
                   BUILD_DIR / "src" / "monitor" / "kiste-monitor",
                   BUILD_DIR / "src" / "init" / "kiste-init"]


def shared_libraries(binary):
    """The absolute paths ldd names for a dynamically linked binary (none for a static one)."""
    p = subprocess.run(["ldd", str(binary)], capture_output=True, text=True)
    return sorted(set(re.findall(r"(/\S+)\s+\(0x", p.stdout)))


# kiste loads these on first use (dlopen), so ldd does not name them.
DLOPENED = ["libarchive.so.13", "libnftables.so.1"]


def dlopened_libraries():
    """The files of DLOPENED and the libraries they need, from the loader's cache."""
    cache = subprocess.run(["ldconfig", "-p"], capture_output=True, text=True).stdout
    out = set()
    for name in DLOPENED:
        m = re.search(rf"^\s*{re.escape(name)} \(libc6,x86-64\) => (\S+)$", cache, re.M)
        if m:
            out.add(m.group(1))
            out.update(shared_libraries(m.group(1)))
    return sorted(out)


@pytest.fixture
def nested_image(kiste, busybox_rootfs, busybox_tar, tmp_path):  # noqa: F811
    """An image of busybox plus kiste's four binaries and the shared libraries they need or load,
    with the busybox image's tar at /busybox.tar for the inner kiste to import."""
    tree = tmp_path / "nested-rootfs"
    shutil.copytree(busybox_rootfs, tree, symlinks=True)
    (tree / ".complete").unlink()
    bindir = tree / "usr" / "local" / "bin"
    bindir.mkdir(parents=True)
    libs = dlopened_libraries()
    for b in NESTED_BINARIES:
        shutil.copy2(b, bindir / b.name)
        libs += shared_libraries(b)
    for lib in libs:
        dest = tree / lib.lstrip("/")
        if not dest.exists():
            dest.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(os.path.realpath(lib), dest)
    shutil.copy2(busybox_tar, tree / "busybox.tar")
    out = tmp_path / "nested.tar"
    with tarfile.open(out, "w", format=tarfile.PAX_FORMAT) as t:
        for p in sorted(tree.iterdir()):
            t.add(p, arcname=p.name)
    shutil.rmtree(tree)
    kiste("import", out, "nested")
    return "nested"


INNER = "export PATH=/usr/local/bin:$PATH; k='kiste --root {root} --runroot /run/x'; "


def test_privileged_gives_devices_capabilities_and_writable_kernel_files(kiste):
    script = ("grep CapEff /proc/self/status; grep ' /sys ' /proc/self/mountinfo; "
              "grep ' /sys/fs/cgroup/' /proc/self/mountinfo; "
              "echo 1 > /proc/sys/net/ipv4/ip_forward && cat /proc/sys/net/ipv4/ip_forward; "
              "ls /dev")
    out = kiste("run", "--rm", "--privileged", "busybox", "sh", "-c", script).stdout
    with open("/proc/self/status") as f:
        host_caps = re.search(r"CapEff:\s+(\S+)", f.read()).group(1)
    assert f"CapEff:\t{host_caps}" in out
    sysfs = [line for line in out.splitlines() if " /sys " in line][0]
    assert " - sysfs " in sysfs and sysfs.split()[5].startswith("rw")
    cgroups = [line for line in out.splitlines() if " /sys/fs/cgroup/" in line]
    assert cgroups and all(line.split()[5].startswith("rw") for line in cgroups)
    assert "\n1\n" in out  # /proc/sys is writable (here: the container's own netns)
    devices = set(out.split())
    for d in ("loop-control", "kmsg", "null", "fuse"):
        if os.path.exists(f"/dev/{d}"):
            assert d in devices, d
    # without --privileged: Docker's masked and read-only paths, no host devices
    out = kiste("run", "--rm", "busybox", "sh", "-c",
                "echo 1 > /proc/sys/net/ipv4/ip_forward; ls /dev", check=False)
    assert "kmsg" not in out.stdout and "Read-only file system" in out.stderr


@pytest.mark.parametrize("cgroupns", ["private", "host"])
def test_kiste_in_kiste(kiste, nested_image, cgroupns):
    """The inner runtime finds its cgroups below the outer container's /sys/fs/cgroup, whether
    the outer container has a cgroup namespace of its own or the host's."""
    script = INNER.format(root="/var/lib/kiste/r") + (
        "$k import /busybox.tar busybox >/dev/null && "
        "$k run --rm busybox echo nested && "
        "$k run -d --name inner --memory 64m busybox sleep 30 >/dev/null && "
        "$k exec inner cat /sys/fs/cgroup/memory/memory.limit_in_bytes && "
        "$k rm -f inner >/dev/null && $k ps -aq | wc -l")
    p = kiste("run", "--rm", "--privileged", "--cgroupns", cgroupns, "--tmpfs", "/var/lib/kiste",
              nested_image, "sh", "-c", script, check=False, timeout=120)
    assert p.returncode == 0, p.stdout + p.stderr
    assert p.stdout.split() == ["nested", str(64 << 20), "0"], p.stdout + p.stderr


def test_kiste_in_kiste_needs_a_storage_root_that_is_not_overlay(kiste, nested_image):
    """The container's root file system is an overlay, and overlay refuses an upper directory
    on an overlay: the inner storage root needs a tmpfs (or a bind of a host directory)."""
    script = INNER.format(root="/tmp/r") + (
        "$k import /busybox.tar busybox >/dev/null && $k run --rm busybox echo nested")
    p = kiste("run", "--rm", "--privileged", nested_image, "sh", "-c", script, check=False,
              timeout=120)
    assert p.returncode == 125 and "nested" not in p.stdout
    assert "overlay" in p.stderr and "upper" in p.stderr, p.stderr
