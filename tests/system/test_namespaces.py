"""Namespaces of a container: each kind made new, joined by path, the user namespace with its id
mappings, the time namespace with its offsets, sysctls inside them, and configs the runtime
must refuse."""

import ctypes
import os
import socket
import subprocess

import pytest


def sh(bundle, script, rc=0, **kw):
    p = bundle.run(["sh", "-c", script], **kw)
    assert p.returncode == rc, f"exit {p.returncode}\nstdout:\n{p.stdout}\nstderr:\n{p.stderr}"
    return p.stdout


def host_ns(kind):
    return os.readlink(f"/proc/self/ns/{kind}")


def set_namespaces(bundle, *kinds):
    bundle.config["linux"]["namespaces"] = [{"type": k} for k in kinds]


def detached(bundle, id, args=("sleep", "100")):
    bundle.config["process"]["args"] = list(args)
    bundle.write()
    bundle.rt("run", "-d", "--bundle", bundle.path, id)
    return bundle.state(id)["pid"]


def test_pid_namespace(bundle):
    out = sh(bundle, "echo $$; ps -o pid,comm")
    lines = out.splitlines()
    assert lines[0] == "1"
    # Only the container's own processes: the shell (or ps that it became) and ps.
    procs = [line.split() for line in lines[2:]]
    assert 1 <= len(procs) <= 2
    assert ["1", "sh"] in procs or ["1", "ps"] in procs
    assert all(int(p) <= 2 for p, _ in procs)
    pid = detached(bundle, "pidns")
    try:
        with open(f"/proc/{pid}/status") as f:
            nspid = [line.split()[1:] for line in f if line.startswith("NSpid:")][0]
        assert nspid == [str(pid), "1"]
        assert os.readlink(f"/proc/{pid}/ns/pid") != host_ns("pid")
    finally:
        bundle.rt("delete", "--force", "pidns")


def test_uts_namespace(bundle):
    host_name = socket.gethostname()
    host_domain = open("/proc/sys/kernel/domainname").read()
    bundle.config["hostname"] = "kiste-box"
    bundle.config["domainname"] = "kiste.example"
    out = sh(bundle, "hostname; cat /proc/sys/kernel/domainname; readlink /proc/self/ns/uts")
    assert out.splitlines()[:2] == ["kiste-box", "kiste.example"]
    assert out.splitlines()[2] != host_ns("uts")
    assert socket.gethostname() == host_name
    assert open("/proc/sys/kernel/domainname").read() == host_domain


def test_ipc_namespace(bundle):
    libc = ctypes.CDLL(None, use_errno=True)
    # A System V shared memory segment of the host's that the container must not see.
    shmid = libc.shmget(0, 4096, 0o600 | 0o1000)  # IPC_PRIVATE, IPC_CREAT
    assert shmid >= 0, os.strerror(ctypes.get_errno())
    try:
        with open("/proc/sysvipc/shm") as f:
            assert any(line.split()[1] == str(shmid) for line in f.readlines()[1:])
        out = sh(bundle, "readlink /proc/self/ns/ipc; tail -n +2 /proc/sysvipc/shm | wc -l")
        ns, shm = out.splitlines()
        assert ns != host_ns("ipc")
        assert shm == "0"
    finally:
        libc.shmctl(shmid, 0, None)  # IPC_RMID


def test_net_namespace_only_loopback(bundle):
    out = sh(bundle, "readlink /proc/self/ns/net; ls /sys/class/net; echo ---; "
                     "tail -n +3 /proc/net/dev | cut -d: -f1")
    first, rest = out.split("---\n")
    ns, *links = first.split()
    assert ns != host_ns("net")
    assert links == ["lo"]
    assert rest.split() == ["lo"]


def test_without_net_namespace_sees_host_links(bundle):
    set_namespaces(bundle, "pid", "ipc", "uts", "mount")
    out = sh(bundle, "readlink /proc/self/ns/net; ls /sys/class/net")
    ns, *links = out.split()
    assert ns == host_ns("net")
    assert sorted(links) == sorted(os.listdir("/sys/class/net"))


def test_mount_namespace(bundle):
    out = sh(bundle, "readlink /proc/self/ns/mnt; cut -d' ' -f5 /proc/self/mountinfo")
    ns, *points = out.split()
    assert ns != host_ns("mnt")
    # Only the container's own mounts: none of the host's others is reachable.
    assert points[0] == "/"
    assert all(p.split("/")[1] in ("proc", "dev", "sys") for p in points[1:]), points


def test_cgroup_namespace(bundle):
    pid = detached(bundle, "cgns")
    try:
        inside = bundle.rt("exec", "cgns", "cat", "/proc/self/cgroup").stdout.splitlines()
        assert inside and all(line.endswith(":/") for line in inside)
        with open(f"/proc/{pid}/cgroup") as f:
            host_view = [line.strip() for line in f]
        pids = [line for line in host_view if ":pids:" in line][0]
        assert pids.endswith("/cgns") and not pids.endswith(":/")
        assert os.readlink(f"/proc/{pid}/ns/cgroup") != host_ns("cgroup")
    finally:
        bundle.rt("delete", "--force", "cgns")


# ---------------------------------------------------------------------------------------------
# user namespace


def userns_config(bundle):
    bundle.config["linux"]["namespaces"].append({"type": "user"})
    bundle.config["linux"]["uidMappings"] = [{"containerID": 0, "hostID": 100000, "size": 65536}]
    bundle.config["linux"]["gidMappings"] = [{"containerID": 0, "hostID": 100000, "size": 65536}]


def test_user_namespace_mappings(bundle):
    userns_config(bundle)
    # The bundle lies under pytest's 0700 directory, which the mapped root cannot walk: a
    # relative source must still resolve from the bundle.
    (bundle.path / "data").mkdir(mode=0o755)
    (bundle.path / "data" / "f").write_text("bundle data\n")
    bundle.config["mounts"].append({"destination": "/home/user", "type": "bind",
                                    "source": "data", "options": ["bind", "ro"]})
    out = sh(bundle, "cat /proc/self/uid_map /proc/self/gid_map; id -u; id -g; "
                     "stat -c '%u %g' /bin/busybox /etc/passwd; head -1 /etc/passwd; "
                     "readlink /proc/self/ns/user; echo x > /dev/null && echo null-ok; "
                     "cat /home/user/f")
    lines = out.splitlines()
    assert lines[0].split() == ["0", "100000", "65536"]
    assert lines[1].split() == ["0", "100000", "65536"]
    assert lines[2:4] == ["0", "0"]
    # The rootfs belongs to the host's root, which is not mapped: nobody inside.
    assert lines[4:6] == ["65534 65534", "65534 65534"]
    assert lines[6] == "root:x:0:0:root:/root:/bin/sh"
    assert lines[7] != host_ns("user")
    assert lines[8] == "null-ok"
    assert lines[9] == "bundle data"


def test_user_namespace_host_view(bundle):
    userns_config(bundle)
    pid = detached(bundle, "userns")
    try:
        with open(f"/proc/{pid}/status") as f:
            status = {k: v.split() for k, v in (line.split(":", 1) for line in f)}
        assert status["Uid"] == ["100000"] * 4
        assert status["Gid"] == ["100000"] * 4
        with open(f"/proc/{pid}/uid_map") as f:
            assert f.read().split() == ["0", "100000", "65536"]
        # Inside, root: the container's process runs as uid 0 of its namespace.
        out = bundle.rt("exec", "userns", "sh", "-c", "id -u; touch /dev/shm/f; stat -c %u "
                        "/dev/shm/f").stdout
        assert out.split() == ["0", "0"]
    finally:
        bundle.rt("delete", "--force", "userns")


def test_user_namespace_unmapped_root_refused(bundle, state_root):
    bundle.config["linux"]["namespaces"].append({"type": "user"})
    bundle.config["linux"]["uidMappings"] = [{"containerID": 1, "hostID": 100000, "size": 10}]
    bundle.config["linux"]["gidMappings"] = [{"containerID": 1, "hostID": 100000, "size": 10}]
    p = bundle.run(["true"])
    assert p.returncode == 1
    assert "uid 0" in p.stderr
    assert list(state_root.iterdir()) == []


# ---------------------------------------------------------------------------------------------
# time namespace


def uptime():
    with open("/proc/uptime") as f:
        return float(f.read().split()[0])


def test_time_namespace_offsets(bundle):
    offset = 10 * 86400
    bundle.config["linux"]["namespaces"].append({"type": "time"})
    bundle.config["linux"]["timeOffsets"] = {"boottime": {"secs": offset},
                                             "monotonic": {"secs": offset, "nanosecs": 0}}
    before = uptime()
    out = sh(bundle, "cat /proc/uptime; cat /proc/self/timens_offsets; readlink /proc/self/ns/time")
    after = uptime()
    lines = out.splitlines()
    inside = float(lines[0].split()[0])
    assert before + offset - 1 <= inside <= after + offset + 1
    assert sorted(line.split() for line in lines[1:3]) == [
        ["boottime", str(offset), "0"], ["monotonic", str(offset), "0"]]
    assert lines[3] != host_ns("time")
    # Without a time namespace the clocks are the host's.
    bundle.config["linux"]["namespaces"].pop()
    del bundle.config["linux"]["timeOffsets"]
    before = uptime()
    inside = float(sh(bundle, "cat /proc/uptime").split()[0])
    assert before - 1 <= inside <= uptime() + 1


# ---------------------------------------------------------------------------------------------
# joining namespaces by path


def test_join_namespaces_of_another_container(bundle):
    pid = detached(bundle, "owner")
    try:
        net = os.readlink(f"/proc/{pid}/ns/net")
        ipc = os.readlink(f"/proc/{pid}/ns/ipc")
        uts = os.readlink(f"/proc/{pid}/ns/uts")
        for n in bundle.config["linux"]["namespaces"]:
            if n["type"] in ("network", "ipc"):
                n["path"] = f"/proc/{pid}/ns/{'net' if n['type'] == 'network' else 'ipc'}"
        out = sh(bundle, "for n in net ipc uts; do readlink /proc/self/ns/$n; done")
        got_net, got_ipc, got_uts = out.split()
        assert got_net == net and got_ipc == ipc
        # The uts namespace was not joined: a new one.
        assert got_uts != uts and got_uts != host_ns("uts")
    finally:
        bundle.rt("delete", "--force", "owner")


def _netns_dir_mounted():
    with open("/proc/self/mountinfo") as f:
        return any(line.split()[4] == "/run/netns" for line in f)


@pytest.fixture
def netns():
    """A named network namespace; `ip netns add` may also mount /run/netns, undone here."""
    name = f"kiste-test-{os.getpid()}"
    existed = os.path.isdir("/run/netns")
    mounted = _netns_dir_mounted()
    subprocess.run(["ip", "netns", "add", name], check=True)
    try:
        yield name
    finally:
        subprocess.run(["ip", "netns", "del", name], check=True)
        if not mounted and _netns_dir_mounted() and not os.listdir("/run/netns"):
            subprocess.run(["umount", "/run/netns"], check=True)
        if not existed:
            try:
                os.rmdir("/run/netns")
            except OSError:
                pass


def test_join_named_netns(bundle, netns):
    subprocess.run(["ip", "netns", "exec", netns, "ip", "link", "add", "kveth0", "type",
                    "veth", "peer", "name", "kveth1"], check=True)
    for n in bundle.config["linux"]["namespaces"]:
        if n["type"] == "network":
            n["path"] = f"/run/netns/{netns}"
    out = sh(bundle, "readlink /proc/self/ns/net; ls /sys/class/net")
    ns, *links = out.split()
    assert ns == "net:[%d]" % os.stat(f"/run/netns/{netns}").st_ino
    assert sorted(links) == ["kveth0", "kveth1", "lo"]
    assert "kveth0" not in os.listdir("/sys/class/net")


def test_join_missing_namespace_path_fails(bundle, state_root):
    for n in bundle.config["linux"]["namespaces"]:
        if n["type"] == "network":
            n["path"] = "/run/netns/kiste-no-such-ns"
    p = bundle.run(["true"])
    assert p.returncode == 1
    assert "/run/netns/kiste-no-such-ns" in p.stderr
    assert list(state_root.iterdir()) == []


# ---------------------------------------------------------------------------------------------
# sysctl


def test_sysctl_in_net_and_ipc_namespaces(bundle):
    host_fwd = open("/proc/sys/net/ipv4/ip_forward").read()
    host_rmid = open("/proc/sys/kernel/shm_rmid_forced").read()
    want_fwd = "0" if host_fwd.strip() == "1" else "1"
    want_rmid = "0" if host_rmid.strip() == "1" else "1"
    bundle.config["linux"]["sysctl"] = {"net.ipv4.ip_forward": want_fwd,
                                        "kernel.shm_rmid_forced": want_rmid}
    out = sh(bundle, "cat /proc/sys/net/ipv4/ip_forward /proc/sys/kernel/shm_rmid_forced")
    assert out.split() == [want_fwd, want_rmid]
    assert open("/proc/sys/net/ipv4/ip_forward").read() == host_fwd
    assert open("/proc/sys/kernel/shm_rmid_forced").read() == host_rmid


@pytest.mark.parametrize("key,value,drop", [
    ("net.ipv4.ip_forward", None, "network"),
    ("kernel.shm_rmid_forced", None, "ipc"),
    ("vm.swappiness", "61", None),
])
def test_sysctl_outside_own_namespace_refused(bundle, state_root, key, value, drop):
    path = "/proc/sys/" + key.replace(".", "/")
    host = open(path).read()
    if value is None:
        value = "0" if host.strip() == "1" else "1"
    if drop:
        bundle.config["linux"]["namespaces"] = [
            n for n in bundle.config["linux"]["namespaces"] if n["type"] != drop]
    bundle.config["linux"]["sysctl"] = {key: value}
    try:
        p = bundle.run(["true"])
        assert p.returncode == 1
        assert "linux.sysctl" in p.stderr and key in p.stderr
        assert list(state_root.iterdir()) == []
    finally:
        if open(path).read() != host:
            with open(path, "w") as f:
                f.write(host)
            pytest.fail(f"the host's {key} was changed")


# ---------------------------------------------------------------------------------------------
# invalid configs


def set_path(cfg, path, value):
    keys = path.split(".")
    for k in keys[:-1]:
        cfg = cfg[int(k)] if isinstance(cfg, list) else cfg.setdefault(k, {})
    if value is DELETE:
        del cfg[keys[-1]]
    else:
        cfg[keys[-1]] = value


DELETE = object()


@pytest.mark.parametrize("path,value,field", [
    ("process.cwd", "relative/dir", "process.cwd"),
    ("linux.namespaces.0.type", "bogus", "linux.namespaces[0].type"),
    ("linux.uidMappings", [{"containerID": 0, "hostID": 100000, "size": 10}], "linux.uidMappings"),
    ("linux.timeOffsets", {"realtime": {"secs": 1}}, "linux.timeOffsets"),
    ("linux.rootfsPropagation", "sideways", "linux.rootfsPropagation"),
    ("linux.devices", [{"type": "c", "path": "dev/x", "major": 1, "minor": 3}],
     "linux.devices[0].path"),
    ("linux.resources.devices.0.access", "rwx", "linux.resources.devices[0].access"),
    ("ociVersion", "2.0.0", "ociVersion"),
    ("root.path", DELETE, "root.path"),
    ("mounts.0.destination", "", "mounts[0].destination"),
    ("process.rlimits", [{"type": "RLIMIT_BOGUS", "hard": 1, "soft": 1}],
     "process.rlimits[0].type"),
    ("hostname", "needs-uts", "hostname"),
])
def test_invalid_config_rejected(bundle, state_root, path, value, field):
    if path == "hostname":
        set_namespaces(bundle, "pid", "ipc", "network", "mount")
    host_name = socket.gethostname()
    set_path(bundle.config, path, value)
    p = bundle.run(["true"])
    assert p.returncode == 1, p.stderr
    assert field in p.stderr
    assert list(state_root.iterdir()) == []
    assert socket.gethostname() == host_name


def test_duplicate_namespace_rejected(bundle, state_root):
    bundle.config["linux"]["namespaces"].append({"type": "pid"})
    p = bundle.run(["true"])
    assert p.returncode == 1
    assert "linux.namespaces[" in p.stderr and "duplicate" in p.stderr
    assert list(state_root.iterdir()) == []
