"""Fixtures for Kiste's system tests: built binaries, a busybox rootfs made from Debian's
busybox-static, OCI bundles in private temporary directories, and a leak check that fails the
suite when a test leaves mounts, cgroups, processes or state behind."""

import copy
import json
import os
import shutil
import subprocess
import sys
import tarfile
import tempfile
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
BUILD = Path(os.environ.get("KISTE_BUILD", ROOT / "build"))
RUNTIME = BUILD / "src" / "runtime" / "kiste-runtime"
KISTE = BUILD / "src" / "cli" / "kiste"
FIXTURES = BUILD / "test-fixtures"
BUSYBOX = shutil.which("busybox", path="/bin:/usr/bin") or "/bin/busybox"


def pytest_configure(config):
    config.addinivalue_line("markers", "peer: needs a peer program (podman, containerd, ...)")


def make_busybox_rootfs(dest: Path) -> Path:
    """A rootfs of one static busybox binary, its applet links, /etc/passwd and /etc/group.
    Built once and cached under the build directory."""
    stamp = dest / ".complete"
    if stamp.exists():
        return dest
    if dest.exists():
        shutil.rmtree(dest)
    tmp = dest.with_name(dest.name + ".tmp")
    if tmp.exists():
        shutil.rmtree(tmp)
    for d in ("bin", "etc", "proc", "sys", "dev", "tmp", "root", "var", "home/user"):
        (tmp / d).mkdir(parents=True, exist_ok=True)
    (tmp / "tmp").chmod(0o1777)
    shutil.copy2(BUSYBOX, tmp / "bin" / "busybox")
    applets = subprocess.run([str(tmp / "bin" / "busybox"), "--list"], check=True,
                             capture_output=True, text=True).stdout.split()
    for a in applets:
        if a != "busybox":
            os.symlink("busybox", tmp / "bin" / a)
    (tmp / "etc" / "passwd").write_text(
        "root:x:0:0:root:/root:/bin/sh\nuser:x:1000:1000:user:/home/user:/bin/sh\n"
        "nobody:x:65534:65534:nobody:/nonexistent:/bin/false\n")
    (tmp / "etc" / "group").write_text("root:x:0:\nuser:x:1000:\nnogroup:x:65534:\n")
    (tmp / ".complete").write_text("")
    tmp.rename(dest)
    return dest


@pytest.fixture(scope="session")
def busybox_rootfs():
    FIXTURES.mkdir(parents=True, exist_ok=True)
    return make_busybox_rootfs(FIXTURES / "busybox-rootfs")


def runtime_spec(rootless=False):
    out = tempfile.mkdtemp(prefix="kiste-spec-")
    try:
        args = [str(RUNTIME), "spec", "--bundle", out]
        if rootless:
            args.insert(2, "--rootless")
        subprocess.run(args, check=True)
        return json.loads((Path(out) / "config.json").read_text())
    finally:
        shutil.rmtree(out)


def run_captured(cmd, input=None, timeout=60, **kw):
    """subprocess.run with output captured in files rather than pipes: a container started in
    the background keeps the command's stdout and stderr, and a pipe would never see EOF."""
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        p = subprocess.run(cmd, stdout=out, stderr=err, input=input,
                           stdin=None if input is not None else subprocess.DEVNULL,
                           timeout=timeout, text=True, **kw)
        out.seek(0)
        err.seek(0)
        p.stdout = out.read().decode(errors="replace")
        p.stderr = err.read().decode(errors="replace")
        return p


@pytest.fixture(scope="session")
def busybox_tar(busybox_rootfs, tmp_path_factory):
    """The busybox tree as a tarball, for `kiste import`."""
    out = tmp_path_factory.mktemp("images") / "busybox.tar"
    with tarfile.open(out, "w", format=tarfile.PAX_FORMAT) as t:
        for p in sorted(busybox_rootfs.iterdir()):
            if p.name != ".complete":
                t.add(p, arcname=p.name)
    return out


class KisteCli:
    """kiste with a private storage root and, when given, run root and environment:
    k("run", ...) returns the finished process and raises unless it succeeded (check=False
    lets the caller look)."""

    timeout = 60

    def __init__(self, root: Path, runroot: Path = None, env: dict = None):
        self.root, self.runroot, self.env = root, runroot, env

    def argv(self, *args):
        cmd = [str(KISTE), "--root", str(self.root)]
        if self.runroot is not None:
            cmd += ["--runroot", str(self.runroot)]
        return cmd + [str(a) for a in args]

    def __call__(self, *args, check=True, input=None, timeout=None, env=None):
        e = None
        if self.env is not None or env is not None:
            e = dict(self.env if self.env is not None else os.environ)
            e.update(env or {})
        p = run_captured(self.argv(*args), input=input, timeout=timeout or self.timeout, env=e)
        if check and p.returncode != 0:
            raise AssertionError(f"{args} failed ({p.returncode}):\n{p.stdout}\n{p.stderr}")
        return p

    def inspect(self, name):
        return json.loads(self("inspect", name).stdout)[0]

    def state(self, name):
        return self.inspect(name)["State"]


class Bundle:
    """An OCI bundle whose rootfs is a bind of the cached busybox tree (read-only root by
    default, as `spec` writes it)."""

    def __init__(self, path: Path, rootfs_src: Path, state_root: Path):
        self.path = path
        self.state_root = state_root
        self.config = runtime_spec()
        self.config["process"]["terminal"] = False
        self.config["root"]["path"] = str(rootfs_src)
        self.ids = []

    def write(self):
        (self.path / "config.json").write_text(json.dumps(self.config, indent=1))

    def rt(self, *args, check=True, input=None, timeout=60, **kw):
        """Runs kiste-runtime with this test's private --root."""
        cmd = [str(RUNTIME), "--root", str(self.state_root)] + [str(a) for a in args]
        p = run_captured(cmd, input=input, timeout=timeout, **kw)
        if check and p.returncode != 0:
            raise AssertionError(f"{cmd} failed ({p.returncode}):\n{p.stdout}\n{p.stderr}")
        return p

    def run(self, args, id=None, check=False, **kw):
        """Writes config.json with process.args = args and runs the container to its end."""
        self.config["process"]["args"] = args
        self.write()
        id = id or f"t{len(self.ids)}-{os.getpid()}"
        self.ids.append(id)
        return self.rt("run", "--bundle", self.path, id, check=check, **kw)

    def state(self, id):
        return json.loads(self.rt("state", id).stdout)


@pytest.fixture
def state_root(tmp_path):
    root = tmp_path / "state"
    root.mkdir()
    yield root
    # Anything a test left running goes now, so one failure does not cascade.
    if root.exists():
        for d in root.iterdir():
            subprocess.run([str(RUNTIME), "--root", str(root), "delete", "--force", d.name],
                           capture_output=True)


@pytest.fixture
def bundle(tmp_path, busybox_rootfs, state_root):
    b = tmp_path / "bundle"
    b.mkdir()
    return Bundle(b, busybox_rootfs, state_root)


# ---------------------------------------------------------------------------------------------
# Leak check: what the suite made must be gone at its end.

def _mounts():
    with open("/proc/self/mountinfo") as f:
        return {line.split()[4] for line in f}


def _kiste_cgroups():
    found = []
    for base in Path("/sys/fs/cgroup").iterdir():
        if not base.is_dir():
            continue
        for name in ("kiste", "kiste-test"):
            p = base / name
            if p.exists():
                # Cgroups of containers that other tests remove meanwhile vanish under the walk.
                try:
                    for d in p.rglob("*"):
                        if d.is_dir():
                            found.append(str(d))
                except FileNotFoundError:
                    pass
    return found


def _test_cgroup_parents():
    return [p for p in Path("/sys/fs/cgroup").glob("*/kiste-test") if p.is_dir()]


def _netns():
    try:
        return set(os.listdir("/run/netns"))
    except FileNotFoundError:
        return set()


def _links():
    return set(os.listdir("/sys/class/net"))


def _kiste_nft_tables():
    """nftables tables kiste made: "kiste" and "kiste-<hash of the root>" (family ip)."""
    try:
        out = subprocess.run(["nft", "list", "tables"], capture_output=True, text=True,
                             timeout=30).stdout
    except (OSError, subprocess.SubprocessError):
        return set()
    return {line.strip() for line in out.splitlines()
            if line.split()[-1:] and line.split()[-1].startswith("kiste")}


def _kiste_run_network_state():
    """Per-network run-time state of kiste runroots directly under /run (hosts files, bridge
    markers)."""
    found = set()
    for d in Path("/run").glob("kiste*/networks/*"):
        found.add(str(d))
    return found


def _kiste_processes():
    me = os.getpid()
    out = []
    for pid in os.listdir("/proc"):
        if not pid.isdigit() or int(pid) == me:
            continue
        try:
            exe = os.readlink(f"/proc/{pid}/exe")
        except OSError:
            continue
        if "kiste" in exe:
            out.append((pid, exe))
    return out


@pytest.fixture(scope="session", autouse=True)
def leak_check():
    before = (_mounts(), _netns(), _links())
    nft_before, netstate_before = _kiste_nft_tables(), _kiste_run_network_state()
    cg_before = set(_kiste_cgroups())
    procs_before = set(_kiste_processes())
    parents_before = set(_test_cgroup_parents())
    yield
    # Tests place containers under "kiste-test/..." (cgroupsPath, containerd's namespace); the
    # runtime removes each container's cgroup, the parent the tests chose is theirs to remove.
    for parent in set(_test_cgroup_parents()) - parents_before:
        try:
            os.rmdir(parent)
        except OSError:
            pass  # not empty: the leak check below names what is inside
    time.sleep(0.2)
    after = (_mounts(), _netns(), _links())
    leaks = []
    if after[0] - before[0]:
        leaks.append(f"mounts: {sorted(after[0] - before[0])}")
    if after[1] - before[1]:
        leaks.append(f"network namespaces: {sorted(after[1] - before[1])}")
    if after[2] - before[2]:
        leaks.append(f"links: {sorted(after[2] - before[2])}")
    nft = sorted(_kiste_nft_tables() - nft_before)
    if nft:
        leaks.append(f"nftables tables: {nft}")
    netstate = sorted(_kiste_run_network_state() - netstate_before)
    if netstate:
        leaks.append(f"network state: {netstate}")
    cg = sorted(set(_kiste_cgroups()) - cg_before)
    if cg:
        leaks.append(f"cgroups: {cg}")
    procs = sorted(set(_kiste_processes()) - procs_before)
    if procs:
        leaks.append(f"processes: {procs}")
    if leaks:
        print("\nLEAK CHECK FAILED:\n  " + "\n  ".join(leaks), file=sys.stderr)
        pytest.fail("leak check: " + "; ".join(leaks), pytrace=False)


def pid_alive(pid):
    """True while pid exists and is not a zombie (exited processes that pid 1 has not yet reaped
    count as gone)."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            state = f.read().rsplit(")", 1)[1].split()[0]
    except (FileNotFoundError, ProcessLookupError, IndexError):
        return False
    return state not in ("Z", "X")


def wait_for(cond, timeout=5.0):
    end = time.time() + timeout
    while time.time() < end:
        if cond():
            return True
        time.sleep(0.02)
    return cond()
