"""kiste-runtime driven by real peers: podman (through conmon) and containerd (through
containerd-shim-runc-v2), each with private storage and state under the test's temporary
directories. Each peer is first run with runc, so that a failure of the harness on this machine is
not blamed on kiste. Tests skip only when the peer is not installed."""

import gzip
import hashlib
import io
import json
import os
import pty
import resource
import select
import shutil
import signal
import subprocess
import tarfile
import time
from pathlib import Path

import pytest

from conftest import RUNTIME, pid_alive, run_captured, wait_for

pytestmark = pytest.mark.peer

PODMAN = shutil.which("podman")
CONMON = shutil.which("conmon") or shutil.which("conmon", path="/usr/libexec/podman")
CONTAINERD = shutil.which("containerd")
CTR = shutil.which("ctr")
SHIM = shutil.which("containerd-shim-runc-v2")
RUNC = shutil.which("runc", path="/usr/sbin:/usr/bin:/sbin:/bin")

IMAGE = "localhost/kiste-busybox:latest"
CTR_NS = "kiste-test"  # containerd's namespace is also the cgroup parent: the leak check sees it


def rootfs_layer(rootfs: Path) -> bytes:
    """The busybox rootfs as an uncompressed tar layer."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as t:
        for p in sorted(rootfs.rglob("*")):
            if p.name == ".complete" and p.parent == rootfs:
                continue
            t.add(p, arcname=str(p.relative_to(rootfs)), recursive=False)
    return buf.getvalue()


def oci_archive(rootfs: Path, dest: Path, name: str):
    """A one-layer OCI image layout in a tar, as `ctr image import` takes it."""
    def digest(b):
        return "sha256:" + hashlib.sha256(b).hexdigest()
    layer = rootfs_layer(rootfs)
    gz = gzip.compress(layer, mtime=0)
    config = json.dumps({
        "architecture": "amd64", "os": "linux",
        "config": {"Env": ["PATH=/usr/sbin:/usr/bin:/sbin:/bin"], "Cmd": ["sh"],
                   "WorkingDir": "/"},
        "rootfs": {"type": "layers", "diff_ids": [digest(layer)]},
    }).encode()
    manifest = json.dumps({
        "schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json",
                   "digest": digest(config), "size": len(config)},
        "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip",
                    "digest": digest(gz), "size": len(gz)}],
    }).encode()
    index = json.dumps({"schemaVersion": 2, "manifests": [{
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "digest": digest(manifest), "size": len(manifest),
        "annotations": {"io.containerd.image.name": name,
                        "org.opencontainers.image.ref.name": name.rsplit(":", 1)[1]},
    }]}).encode()
    with tarfile.open(dest, "w") as t:
        def add(n, data):
            ti = tarfile.TarInfo(n)
            ti.size = len(data)
            t.addfile(ti, io.BytesIO(data))
        add("oci-layout", b'{"imageLayoutVersion":"1.0.0"}')
        add("index.json", index)
        for blob in (config, manifest, gz):
            add("blobs/sha256/" + digest(blob)[7:], blob)


def drive_pty(argv, line: bytes, env=None, timeout=30):
    """Runs argv on a new pseudo-terminal, types `line` once a shell prompt shows, and returns
    (everything read, exit status)."""
    pid, fd = pty.fork()
    if pid == 0:
        try:
            os.execvpe(argv[0], argv, env or os.environ)
        finally:
            os._exit(127)
    out = b""
    sent = False
    started = time.time()
    try:
        while time.time() - started < timeout:
            r, _, _ = select.select([fd], [], [], 0.2)
            if r:
                try:
                    d = os.read(fd, 4096)
                except OSError:  # EIO: the other side closed
                    break
                if not d:
                    break
                out += d
            if not sent and (b"# " in out or time.time() - started > 5):
                os.write(fd, line)
                sent = True
    finally:
        os.close(fd)
    end = time.time() + 10
    while True:
        w, status = os.waitpid(pid, os.WNOHANG)
        if w == pid:
            return out, os.waitstatus_to_exitcode(status)
        if time.time() > end:
            os.kill(pid, signal.SIGKILL)
            os.waitpid(pid, 0)
            raise AssertionError(f"{argv} did not exit; output: {out!r}")
        time.sleep(0.05)


def unmount_under(base: Path):
    """Lazily unmounts whatever is still mounted below base, deepest first."""
    prefix = str(base.resolve()) + "/"
    with open("/proc/self/mountinfo") as f:
        mps = [line.split()[4] for line in f]
    for mp in sorted({m for m in mps if m.startswith(prefix)}, key=len, reverse=True):
        subprocess.run(["umount", "-l", mp], capture_output=True)


class CreatedPaths:
    """Global paths a peer creates whatever its options (containers/image's blob-info cache for
    root, containerd 1.6's shim socket directory): those that did not exist before are removed
    afterwards, deepest first; files are unlinked, directories only when empty."""

    def __init__(self, paths):
        self.new = [Path(p) for p in paths if not os.path.lexists(p)]

    def remove(self):
        for p in sorted(self.new, key=lambda p: len(str(p)), reverse=True):
            try:
                if p.is_dir() and not p.is_symlink():
                    p.rmdir()
                elif os.path.lexists(p):
                    p.unlink()
            except OSError:
                pass


def peer_cgroup_dirs(name):
    return [p / name for p in Path("/sys/fs/cgroup").iterdir() if p.is_dir()]


# ---------------------------------------------------------------------------------------------
# podman

class Podman:
    """podman with private storage, run and temporary directories, its own containers.conf,
    storage.conf and registries.conf, and the machine's required limits."""

    def __init__(self, base: Path):
        self.base = base
        for d in ("root", "runroot", "tmp", "net"):
            (base / d).mkdir(parents=True, exist_ok=True)
        (base / "containers.conf").write_text(
            '[containers]\nnetns = "none"\n'
            '[engine]\ncgroup_manager = "cgroupfs"\nevents_logger = "file"\n'
            f'tmp_dir = "{base / "tmp"}"\n[network]\nnetwork_config_dir = "{base / "net"}"\n')
        (base / "storage.conf").write_text(
            f'[storage]\ndriver = "vfs"\ngraphroot = "{base / "root"}"\n'
            f'runroot = "{base / "runroot"}"\n')
        (base / "registries.conf").write_text("unqualified-search-registries = []\n")
        self.env = dict(os.environ,
                        CONTAINERS_CONF=str(base / "containers.conf"),
                        CONTAINERS_STORAGE_CONF=str(base / "storage.conf"),
                        CONTAINERS_REGISTRIES_CONF=str(base / "registries.conf"))

    def argv(self, *args, runtime=RUNTIME):
        b = self.base
        return [PODMAN, "--root", str(b / "root"), "--runroot", str(b / "runroot"),
                "--tmpdir", str(b / "tmp"), "--network-config-dir", str(b / "net"),
                "--storage-driver", "vfs", "--cgroup-manager", "cgroupfs",
                "--events-backend", "file", "--runtime", str(runtime)] + [str(a) for a in args]

    def __call__(self, *args, runtime=RUNTIME, check=True, timeout=60, input=None):
        cmd = self.argv(*args, runtime=runtime)
        p = run_captured(cmd, input=input, timeout=timeout, env=self.env)
        if check and p.returncode != 0:
            raise AssertionError(f"{cmd} failed ({p.returncode}):\n{p.stdout}\n{p.stderr}")
        return p

    RUN = ("--network", "none", "--ulimit", "nproc=1000:1000", "--ulimit", "nofile=1024:1024")

    def run(self, *args, **kw):
        return self("run", *self.RUN, *args, **kw)

    def status(self, cid):
        return self("inspect", "--format", "{{.State.Status}}", cid).stdout.strip()


@pytest.fixture(scope="session")
def podman(tmp_path_factory, busybox_rootfs):
    if not PODMAN or not CONMON:
        pytest.skip("podman or conmon not installed")
    base = tmp_path_factory.mktemp("podman")
    created = CreatedPaths(["/var/lib/containers", "/var/lib/containers/cache",
                            "/var/lib/containers/cache/blob-info-cache-v1.boltdb"]
                           + [str(d) for d in peer_cgroup_dirs("libpod_parent")]
                           + [str(d / "conmon") for d in peer_cgroup_dirs("libpod_parent")])
    pm = Podman(base)
    try:
        tarball = base / "busybox.tar"
        tarball.write_bytes(rootfs_layer(busybox_rootfs))
        pm("import", tarball, IMAGE)
        tarball.unlink()
        yield pm
    finally:
        pm("rm", "--all", "--force", "--time", "0", check=False)
        pm("rmi", "--all", "--force", check=False)
        unmount_under(base)
        created.remove()
        shutil.rmtree(base, ignore_errors=True)


@pytest.fixture
def podman_ctr(podman):
    """Container ids a test started; removed with force afterwards."""
    ids = []
    yield ids
    for cid in ids:
        podman("rm", "--force", "--time", "0", cid, check=False)


@pytest.mark.skipif(not RUNC, reason="runc not installed")
def test_podman_harness_with_runc(podman):
    """The harness itself works on this machine with the reference runtime."""
    p = podman.run("--rm", IMAGE, "echo", "hi", runtime=RUNC)
    assert p.stdout == "hi\n"


def test_podman_run_echo(podman):
    p = podman.run("--rm", IMAGE, "echo", "hi")
    assert p.returncode == 0
    assert p.stdout == "hi\n"


def test_podman_exit_status_and_missing_command(podman):
    p = podman.run("--rm", IMAGE, "sh", "-c", "exit 42", check=False)
    assert p.returncode == 42
    p = podman.run("--rm", IMAGE, "/nonexistent", check=False)
    # podman maps the runtime's "not found" to 127 after reading the runtime's error.
    assert p.returncode == 127, p.stderr
    assert "/nonexistent" in p.stderr


def test_podman_detach_exec_stop(podman, podman_ctr):
    cid = podman.run("-d", IMAGE, "sleep", "100").stdout.strip()
    podman_ctr.append(cid)
    assert podman.status(cid) == "running"
    pid = int(podman("inspect", "--format", "{{.State.Pid}}", cid).stdout)
    assert pid_alive(pid)
    p = podman("exec", cid, "cat", "/etc/hostname")
    assert p.stdout.strip() == cid[:12]
    p = podman("exec", cid, "sh", "-c", "echo $$; exit 9", check=False)
    assert p.returncode == 9
    assert p.stdout.strip().isdigit() and p.stdout.strip() != "1"
    podman("stop", "-t", "1", cid)
    assert podman.status(cid) == "exited"
    assert wait_for(lambda: not pid_alive(pid))
    # sleep as pid 1 ignores SIGTERM: stop had to use SIGKILL.
    assert podman("inspect", "--format", "{{.State.ExitCode}}", cid).stdout.strip() == "137"


def test_podman_kill_signal_and_stop_exit_code(podman, podman_ctr):
    script = ("trap 'echo got-usr1' USR1; trap 'exit 7' TERM; echo started; "
              "while true; do sleep 0.1; done")
    cid = podman.run("-d", IMAGE, "sh", "-c", script).stdout.strip()
    podman_ctr.append(cid)
    assert wait_for(lambda: "started" in podman("logs", cid).stdout)
    podman("kill", "--signal", "USR1", cid)
    assert wait_for(lambda: "got-usr1" in podman("logs", cid).stdout)
    assert podman.status(cid) == "running"
    podman("stop", "-t", "10", cid)
    assert podman("inspect", "--format", "{{.State.ExitCode}}", cid).stdout.strip() == "7"


def test_podman_pause_unpause(podman, podman_ctr):
    cid = podman.run("-d", IMAGE, "sleep", "100").stdout.strip()
    podman_ctr.append(cid)
    pid = int(podman("inspect", "--format", "{{.State.Pid}}", cid).stdout)
    podman("pause", cid)
    assert podman.status(cid) == "paused"
    # Frozen by the cgroup freezer: the task sleeps in the refrigerator, it has not exited.
    assert pid_alive(pid)
    podman("unpause", cid)
    assert podman.status(cid) == "running"
    assert podman("exec", cid, "echo", "awake").stdout == "awake\n"
    podman("rm", "--force", "--time", "0", cid)
    assert wait_for(lambda: not pid_alive(pid))


def test_podman_run_interactive_terminal(podman):
    """`run -it` on a real terminal: conmon passes --console-socket and proxies the pty. The
    quotes keep the typed line's echo from matching the command's output."""
    out, code = drive_pty(podman.argv("run", "--rm", "-it", *Podman.RUN, IMAGE, "sh"),
                          b"tty; echo h''i; exit 3\n", env=podman.env)
    assert code == 3, out
    assert b"\nhi\r\n" in out
    assert b"/dev/pts/" in out


def test_podman_exec_interactive_terminal(podman, podman_ctr):
    cid = podman.run("-d", IMAGE, "sleep", "100").stdout.strip()
    podman_ctr.append(cid)
    out, code = drive_pty(podman.argv("exec", "-it", cid, "sh"),
                          b"echo h''i $$; exit 4\n", env=podman.env)
    assert code == 4, out
    assert b"\nhi " in out


def test_podman_stdin_pipe(podman):
    p = podman.run("--rm", "-i", IMAGE, "cat", input="piped\n")
    assert p.stdout == "piped\n"


def test_podman_sees_own_cgroup_limits(podman):
    """Without a cgroup namespace (podman's default on v1) the container must see its own
    cgroup, with its limits, at /sys/fs/cgroup, not the host's root of the hierarchy."""
    script = ("cat /sys/fs/cgroup/memory/memory.limit_in_bytes 2>/dev/null || "
              "cat /sys/fs/cgroup/memory.max; "
              "cat /sys/fs/cgroup/pids/pids.max 2>/dev/null || cat /sys/fs/cgroup/pids.max")
    p = podman.run("--rm", "--memory", "64m", "--pids-limit", "50", IMAGE, "sh", "-c", script)
    assert p.stdout.split() == ["67108864", "50"]


def test_podman_default_ulimits_clamped(podman):
    """podman's default limits (nofile 1048576 for root) exceed this machine's hard limits;
    kiste clamps them to the hard limit where runc fails."""
    hard_nofile = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
    hard_nproc = resource.getrlimit(resource.RLIMIT_NPROC)[1]
    p = podman("run", "--rm", "--network", "none", IMAGE, "sh", "-c", "ulimit -n; ulimit -u")
    nofile, nproc = p.stdout.split()
    assert 0 < int(nofile) <= hard_nofile
    assert nproc == "unlimited" or 0 < int(nproc) <= hard_nproc


def test_podman_user_workdir_env(podman):
    p = podman.run("--rm", "-u", "1000:1000", "-w", "/tmp", "-e", "FOO=bar", IMAGE,
                   "sh", "-c", "id -u; id -g; pwd; echo $FOO; ulimit -n")
    assert p.stdout.split() == ["1000", "1000", "/tmp", "bar", "1024"]


# ---------------------------------------------------------------------------------------------
# containerd

class Containerd:
    def __init__(self, base: Path):
        self.base = base
        self.address = str(base / "containerd.sock")
        self.proc = None

    def start(self):
        b = self.base
        disabled = ["io.containerd.grpc.v1.cri", "io.containerd.snapshotter.v1.btrfs",
                    "io.containerd.snapshotter.v1.zfs", "io.containerd.snapshotter.v1.devmapper",
                    "io.containerd.snapshotter.v1.aufs",
                    "io.containerd.tracing.processor.v1.otlp",
                    "io.containerd.internal.v1.tracing"]
        (b / "config.toml").write_text(
            "version = 2\n"
            f'root = "{b / "root"}"\nstate = "{b / "state"}"\n'
            f"disabled_plugins = {json.dumps(disabled)}\n"
            f'[grpc]\n  address = "{self.address}"\n'
            f'[ttrpc]\n  address = "{self.address}.ttrpc"\n'
            '[debug]\n  address = ""\n  level = "debug"\n'
            '[metrics]\n  address = ""\n'
            '[plugins."io.containerd.internal.v1.opt"]\n'
            f'  path = "{b / "opt"}"\n'
            '[plugins."io.containerd.gc.v1.scheduler"]\n  startup_delay = "0s"\n')
        self.log = open(b / "containerd.log", "wb")
        self.proc = subprocess.Popen([CONTAINERD, "--config", str(b / "config.toml")],
                                     stdin=subprocess.DEVNULL, stdout=self.log,
                                     stderr=subprocess.STDOUT, start_new_session=True)
        ok = wait_for(lambda: self.proc.poll() is None and os.path.exists(self.address)
                      and self("version", check=False).returncode == 0, timeout=20)
        if not ok:
            raise AssertionError("containerd did not start:\n"
                                 + (b / "containerd.log").read_text(errors="replace")[-3000:])

    def argv(self, *args):
        return [CTR, "--address", self.address, "--namespace", CTR_NS] + [str(a) for a in args]

    def __call__(self, *args, check=True, timeout=60, input=None):
        cmd = self.argv(*args)
        p = run_captured(cmd, input=input, timeout=timeout)
        if check and p.returncode != 0:
            raise AssertionError(f"{cmd} failed ({p.returncode}):\n{p.stdout}\n{p.stderr}")
        return p

    def run_opts(self, runtime=RUNTIME):
        return ["--runc-binary", str(runtime), "--runc-root", str(self.base / "runc"),
                "--fifo-dir", str(self.base / "fifo")]

    def task_status(self, id):
        p = self("task", "ls", check=False)
        assert p.returncode == 0, p.stderr
        for line in p.stdout.splitlines()[1:]:
            f = line.split()
            if f and f[0] == id:
                return f[2]
        return None

    def cleanup_containers(self):
        for id in self("container", "ls", "-q", check=False).stdout.split():
            self("task", "kill", "--signal", "KILL", id, check=False)
            wait_for(lambda: self.task_status(id) in (None, "STOPPED"), timeout=5)
            self("task", "delete", "--force", id, check=False)
            self("container", "delete", id, check=False)

    def stop(self):
        if self.proc is None:
            return
        try:
            self.cleanup_containers()
            for ref in self("image", "ls", "-q", check=False).stdout.split():
                self("image", "remove", ref, check=False)
            self("namespaces", "remove", CTR_NS, check=False)
        finally:
            if self.proc.poll() is None:
                self.proc.terminate()
                try:
                    self.proc.wait(timeout=10)
                except subprocess.TimeoutExpired:
                    self.proc.kill()
                    self.proc.wait()
            self.log.close()
            # Shims outlive containerd when a task was left: end those of this instance.
            for pid in os.listdir("/proc"):
                if not pid.isdigit():
                    continue
                try:
                    cmd = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
                except OSError:
                    continue
                if (cmd and cmd[0].endswith(b"containerd-shim-runc-v2")
                        and self.address.encode() in cmd):
                    try:
                        os.kill(int(pid), signal.SIGKILL)
                    except ProcessLookupError:
                        pass


@pytest.fixture(scope="session")
def containerd(tmp_path_factory, busybox_rootfs):
    if not (CONTAINERD and CTR and SHIM):
        pytest.skip("containerd, ctr or containerd-shim-runc-v2 not installed")
    base = tmp_path_factory.mktemp("containerd")
    # containerd 1.6 keeps shim sockets in /run/containerd/s whatever its state directory;
    # ctr's fifos go under --fifo-dir.
    created = CreatedPaths(["/run/containerd", "/run/containerd/s", "/run/containerd/fifo"])
    cd = Containerd(base)
    try:
        cd.start()
        archive = base / "busybox-oci.tar"
        oci_archive(busybox_rootfs, archive, IMAGE)
        cd("image", "import", archive)
        archive.unlink()
        yield cd
    finally:
        cd.stop()
        unmount_under(base)
        created.remove()
        shutil.rmtree(base, ignore_errors=True)


@pytest.fixture
def ctr_ids(containerd):
    ids = []
    yield ids
    for id in ids:
        containerd("task", "kill", "--signal", "KILL", id, check=False)
        wait_for(lambda: containerd.task_status(id) in (None, "STOPPED"), timeout=5)
        containerd("task", "delete", "--force", id, check=False)
        containerd("container", "delete", id, check=False)


def _id(name):
    return f"{name}-{os.getpid()}"


@pytest.mark.skipif(not RUNC, reason="runc not installed")
def test_ctr_harness_with_runc(containerd, ctr_ids):
    id = _id("runc-echo")
    ctr_ids.append(id)
    p = containerd("run", "--rm", *containerd.run_opts(RUNC), IMAGE, id, "echo", "hi")
    assert p.stdout == "hi\n"


def test_ctr_run_echo(containerd, ctr_ids):
    id = _id("echo")
    ctr_ids.append(id)
    p = containerd("run", "--rm", *containerd.run_opts(), IMAGE, id, "echo", "hi")
    assert p.stdout == "hi\n"
    id2 = _id("status")
    ctr_ids.append(id2)
    p = containerd("run", "--rm", *containerd.run_opts(), IMAGE, id2, "sh", "-c", "exit 4",
                   check=False)
    assert p.returncode == 4


def test_ctr_create_error_reaches_client(containerd, ctr_ids):
    """The shim reads the runtime's --log (json) for the error of a failed create."""
    id = _id("missing")
    ctr_ids.append(id)
    p = containerd("run", "--rm", *containerd.run_opts(), IMAGE, id, "/nonexistent",
                   check=False)
    assert p.returncode != 0
    assert "/nonexistent" in p.stderr


def test_ctr_detached_exec_pause_kill_delete(containerd, ctr_ids):
    id = _id("detached")
    ctr_ids.append(id)
    containerd("run", "-d", *containerd.run_opts(), IMAGE, id, "sleep", "100")
    assert containerd.task_status(id) == "RUNNING"
    pid = int(containerd("task", "ls").stdout.split(id, 1)[1].split()[0])
    assert pid_alive(pid)
    p = containerd("task", "exec", "--fifo-dir", containerd.base / "fifo", "--exec-id", "e1",
                   id, "cat", "/proc/1/cmdline")
    assert p.stdout == "sleep\x00100\x00"
    p = containerd("task", "exec", "--fifo-dir", containerd.base / "fifo", "--exec-id", "e2",
                   id, "sh", "-c", "exit 5", check=False)
    assert p.returncode == 5
    # `ps --format json` of the runtime, through the shim.
    assert str(pid) in containerd("task", "ps", id).stdout.split()
    containerd("task", "pause", id)
    assert containerd.task_status(id) == "PAUSED"
    containerd("task", "resume", id)
    assert containerd.task_status(id) == "RUNNING"
    containerd("task", "kill", "--signal", "KILL", id)
    assert wait_for(lambda: containerd.task_status(id) == "STOPPED", timeout=10)
    assert not pid_alive(pid)
    containerd("task", "delete", id)
    assert containerd.task_status(id) is None
    containerd("container", "delete", id)
    assert id not in containerd("container", "ls", "-q").stdout.split()
    # The runtime's state under --runc-root is gone with the task.
    assert not (containerd.base / "runc" / CTR_NS / id).exists()


def test_ctr_run_terminal(containerd, ctr_ids):
    id = _id("tty")
    ctr_ids.append(id)
    out, code = drive_pty(containerd.argv("run", "--rm", "-t", *containerd.run_opts(), IMAGE,
                                          id, "sh"),
                          b"tty; echo h''i; exit 3\n")
    assert code == 3, out
    assert b"\nhi\r" in out
    assert b"/dev/pts/" in out
