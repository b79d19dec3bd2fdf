"""The container's root file system: mounts of every kind with their options, propagation,
confinement of mount destinations to the rootfs, read-only root, masked and read-only paths,
and /dev with its device nodes and device cgroup."""

import os
import subprocess

import pytest


def sh(bundle, script, rc=0, **kw):
    """Runs script with the container's sh; checks the exit status and returns stdout."""
    p = bundle.run(["sh", "-c", script], **kw)
    assert p.returncode == rc, f"exit {p.returncode}\nstdout:\n{p.stdout}\nstderr:\n{p.stderr}"
    return p.stdout


def add_mount(bundle, dest, type_, source, options=None):
    m = {"destination": dest, "type": type_, "source": str(source)}
    if options is not None:
        m["options"] = options
    bundle.config["mounts"].append(m)


def mountinfo(text):
    """Parses mountinfo text into {mount point: (options, optional fields, fstype, super
    options)}; the last mount on a point wins, as it is the visible one."""
    out = {}
    for line in text.splitlines():
        pre, post = line.split(" - ")
        f = pre.split()
        fstype, _src, sopts = post.split()
        out[f[4]] = (f[5].split(","), f[6:], fstype, sopts.split(","))
    return out


def proc_mounts(text):
    out = {}
    for line in text.splitlines():
        _src, mp, fstype, opts = line.split()[:4]
        out[mp] = (fstype, opts.split(","))
    return out


@pytest.fixture
def own_rootfs(bundle, tmp_path, busybox_rootfs):
    """A private copy of the busybox rootfs that a test may change (the cached one is shared)."""
    dest = tmp_path / "rootfs"
    subprocess.run(["cp", "-a", str(busybox_rootfs), str(dest)], check=True)
    bundle.config["root"]["path"] = str(dest)
    return dest


@pytest.fixture
def host_mounts():
    """Mounts the test makes on the host; all unmounted at the end, deepest first."""
    made = []

    def mount(*args):
        subprocess.run(["mount"] + [str(a) for a in args], check=True)
        made.append(str(args[-1]))

    yield mount
    for mp in reversed(made):
        subprocess.run(["umount", "-l", mp], capture_output=True)


def tmp_on(bundle, dest="/tmp"):
    add_mount(bundle, dest, "tmpfs", "tmpfs", ["nosuid", "nodev", "size=1m"])


# ---------------------------------------------------------------------------------------------
# bind mounts


def test_bind_file_and_directory_relative_source(bundle):
    (bundle.path / "data").mkdir()
    (bundle.path / "data" / "inside.txt").write_text("from a directory\n")
    (bundle.path / "single.txt").write_text("a single file\n")
    tmp_on(bundle)
    # Relative sources resolve from the bundle directory.
    add_mount(bundle, "/tmp/dir", "bind", "data", ["bind"])
    add_mount(bundle, "/tmp/file.txt", "bind", "single.txt", ["bind"])
    out = sh(bundle, "cat /tmp/dir/inside.txt; cat /tmp/file.txt; test -f /tmp/file.txt && "
                     "echo isfile; echo new > /tmp/dir/written")
    assert out == "from a directory\na single file\nisfile\n"
    # A read-write bind writes through to the host directory.
    assert (bundle.path / "data" / "written").read_text() == "new\n"


def test_bind_missing_source_fails(bundle, state_root):
    tmp_on(bundle)
    add_mount(bundle, "/tmp/x", "bind", "no-such-dir", ["bind"])
    p = bundle.run(["true"])
    assert p.returncode == 1
    assert "mounts[" in p.stderr and "no-such-dir" in p.stderr
    assert list(state_root.iterdir()) == []


def test_rbind_shows_submounts_and_bind_does_not(bundle, tmp_path, host_mounts):
    src = tmp_path / "tree"
    (src / "sub").mkdir(parents=True)
    host_mounts("-t", "tmpfs", "-o", "size=1m", "tmpfs", src / "sub")
    (src / "sub" / "marker").write_text("submount\n")
    tmp_on(bundle)
    add_mount(bundle, "/tmp/r", "bind", src, ["rbind"])
    add_mount(bundle, "/tmp/nr", "bind", src, ["bind"])
    out = sh(bundle, "cat /tmp/r/sub/marker; ls -A /tmp/nr/sub | wc -l")
    assert out == "submount\n0\n"


def test_ro_bind_refuses_writes(bundle, tmp_path):
    d = tmp_path / "rodata"
    d.mkdir()
    (d / "f").write_text("keep\n")
    tmp_on(bundle)
    add_mount(bundle, "/tmp/ro", "bind", d, ["bind", "ro"])
    add_mount(bundle, "/tmp/rw", "bind", d, ["bind"])
    out = sh(bundle, "(echo x > /tmp/ro/new) 2>/tmp/err; echo $?; cat /tmp/err; "
                     "(echo changed > /tmp/ro/f) 2>/dev/null; cat /tmp/ro/f; touch /tmp/rw/ok && echo rw-ok")
    lines = out.splitlines()
    assert lines[0] != "0"
    assert "Read-only file system" in lines[1]
    assert "keep" in out and "rw-ok" in out
    assert not (d / "new").exists()
    assert (d / "f").read_text() == "keep\n"
    assert (d / "ok").exists()
    mi = mountinfo(sh(bundle, "cat /proc/self/mountinfo"))
    assert "ro" in mi["/tmp/ro"][0]
    assert "rw" in mi["/tmp/rw"][0]


def test_recursive_read_only(bundle, tmp_path, host_mounts):
    src = tmp_path / "tree"
    (src / "sub").mkdir(parents=True)
    host_mounts("-t", "tmpfs", "-o", "size=1m", "tmpfs", src / "sub")
    tmp_on(bundle)
    # "ro" makes only the top mount read-only; "rro" the submount as well.
    add_mount(bundle, "/tmp/ro", "bind", src, ["rbind", "ro"])
    add_mount(bundle, "/tmp/rro", "bind", src, ["rbind", "rro"])
    out = sh(bundle, "touch /tmp/ro/top 2>/dev/null; echo $?; "
                     "touch /tmp/ro/sub/from-ro && echo sub-writable; "
                     "touch /tmp/rro/top 2>/dev/null; echo $?; "
                     "touch /tmp/rro/sub/from-rro 2>/tmp/err; echo $?; cat /tmp/err")
    lines = out.splitlines()
    assert lines[0] != "0"
    assert lines[1] == "sub-writable"
    assert lines[2] != "0"
    assert lines[3] != "0" and "Read-only file system" in lines[4]
    assert (src / "sub" / "from-ro").exists()
    assert not (src / "sub" / "from-rro").exists()
    assert not (src / "top").exists()


def test_tmpfs_size_and_mode(bundle):
    add_mount(bundle, "/tmp", "tmpfs", "tmpfs", ["nosuid", "nodev", "size=2m", "mode=1730"])
    out = sh(bundle, "stat -c %a /tmp; grep ' /tmp ' /proc/mounts; "
                     "dd if=/dev/zero of=/tmp/big bs=1024 count=4096 2>/dev/null; echo $?; "
                     "wc -c < /tmp/big")
    lines = out.splitlines()
    assert lines[0] == "1730"
    assert "size=2048k" in lines[1] and "mode=1730" in lines[1] and lines[1].split()[2] == "tmpfs"
    # The size limit holds: the write stops at 2 MiB.
    assert lines[2] != "0"
    assert 1024 * 1024 < int(lines[3]) <= 2 * 1024 * 1024


def test_nosuid_nodev_noexec_flags(bundle):
    add_mount(bundle, "/tmp", "tmpfs", "tmpfs", ["nosuid", "nodev", "noexec", "size=4m"])
    add_mount(bundle, "/home/user", "tmpfs", "tmpfs", ["size=4m", "mode=755"])
    out = sh(bundle, "grep -E ' /tmp | /home/user ' /proc/mounts; echo ---; "
                     "cp /bin/busybox /tmp/true; cp /bin/busybox /home/user/true; "
                     "/tmp/true 2>/dev/null; echo noexec=$?; /home/user/true; echo exec=$?")
    mounts, out = out.split("---\n")
    m = proc_mounts(mounts)
    for flag in ("nosuid", "nodev", "noexec"):
        assert flag in m["/tmp"][1]
        assert flag not in m["/home/user"][1]
    assert out.split() == ["noexec=126", "exec=0"]


def test_proc_sysfs_mqueue_devpts(bundle):
    out = sh(bundle, "cat /proc/mounts; echo ---; cat /proc/1/cmdline | tr '\\0' ' '; echo; "
                     "ls /sys/class/net; echo ---; touch /dev/mqueue/kq && cat /dev/mqueue/kq; "
                     "echo ---; exec 3<>/dev/ptmx; ls /dev/pts; stat -c '%a %t:%T' /dev/pts/ptmx")
    mounts, cmd, mq, pts = out.split("---\n")
    m = proc_mounts(mounts)
    assert m["/proc"][0] == "proc"
    assert m["/sys"][0] == "sysfs" and "ro" in m["/sys"][1]
    assert m["/dev/mqueue"][0] == "mqueue"
    assert m["/dev/pts"][0] == "devpts" and "ptmxmode=666" in m["/dev/pts"][1]
    first, rest = cmd.split("\n", 1)
    assert first.startswith("sh -c")
    # sysfs of the container's own network namespace: only its loopback.
    assert rest.split() == ["lo"]
    # A message queue made by creating a file on the container's own mqueue instance.
    assert mq.startswith("QSIZE:0")
    # A new devpts instance: the first pty is 0 and ptmx is usable by everyone.
    assert pts.split() == ["0", "ptmx", "666", "5:2"]


def test_cgroup_mount_hybrid_with_cgroup_namespace(bundle):
    bundle.config["linux"].setdefault("resources", {})["pids"] = {"limit": 77}
    out = sh(bundle, "ls /sys/fs/cgroup; echo ---; cat /proc/self/cgroup; echo ---; "
                     "cat /sys/fs/cgroup/pids/pids.max; grep ' /sys/fs/cgroup/pids ' /proc/mounts; "
                     "mkdir /sys/fs/cgroup/pids/x 2>&1; echo $?")
    ls, cg, rest = out.split("---\n")
    if not os.path.isdir("/sys/fs/cgroup/pids") or not os.path.isdir("/sys/fs/cgroup/unified"):
        pytest.skip("this test expects the machine's hybrid layout")
    names = ls.split()
    for c in ("cpu", "memory", "pids", "devices", "freezer", "unified"):
        assert c in names
    # With a cgroup namespace the container's own cgroup is its root ...
    assert all(line.endswith(":/") for line in cg.splitlines())
    lines = rest.splitlines()
    # ... and the mounted hierarchy starts there: the root of v1 has no pids.max.
    assert lines[0] == "77"
    assert lines[1].split()[2] == "cgroup" and "ro" in lines[1].split()[3].split(",")
    assert "Read-only file system" in lines[2] and lines[3] != "0"


def test_cgroup_without_namespace_shows_path(bundle):
    bundle.config["linux"]["namespaces"] = [
        n for n in bundle.config["linux"]["namespaces"] if n["type"] != "cgroup"]
    p = bundle.run(["sh", "-c", "grep pids /proc/self/cgroup"], id=f"nocgns-{os.getpid()}")
    assert p.returncode == 0, p.stderr
    # Without a cgroup namespace the container sees where its cgroup is in the hierarchy.
    path = p.stdout.strip().split(":", 2)[2]
    assert path != "/" and path.endswith(f"nocgns-{os.getpid()}")


# ---------------------------------------------------------------------------------------------
# propagation


def test_mount_propagation_options(bundle, tmp_path, host_mounts):
    src = tmp_path / "shared"
    src.mkdir()
    host_mounts("-t", "tmpfs", "-o", "size=1m", "tmpfs", src)
    subprocess.run(["mount", "--make-shared", str(src)], check=True)
    tmp_on(bundle)
    add_mount(bundle, "/tmp/slave", "bind", src, ["rbind", "rslave"])
    add_mount(bundle, "/tmp/private", "bind", src, ["rbind", "rprivate"])
    add_mount(bundle, "/tmp/shared", "bind", src, ["rbind", "rshared"])
    add_mount(bundle, "/tmp/unbind", "bind", src, ["rbind", "runbindable"])
    bundle.config["process"]["args"] = ["sleep", "100"]
    bundle.write()
    bundle.rt("run", "-d", "--bundle", bundle.path, "prop")
    try:
        mi = mountinfo(bundle.rt("exec", "prop", "cat", "/proc/self/mountinfo").stdout)
        assert any(f.startswith("master:") for f in mi["/tmp/slave"][1])
        assert not any(f.startswith("shared:") for f in mi["/tmp/slave"][1])
        assert mi["/tmp/private"][1] == []
        assert any(f.startswith("shared:") for f in mi["/tmp/shared"][1])
        assert "unbindable" in mi["/tmp/unbind"][1]
        # A mount made on the host afterwards reaches the slave, not the private one.
        (src / "late").mkdir()
        host_mounts("-t", "tmpfs", "-o", "size=1m", "tmpfs", src / "late")
        (src / "late" / "marker").write_text("late\n")
        out = bundle.rt("exec", "prop", "sh", "-c",
                        "cat /tmp/slave/late/marker; ls -A /tmp/private/late | wc -l").stdout
        assert out == "late\n0\n"
    finally:
        bundle.rt("delete", "--force", "prop")


def test_rootfs_propagation(bundle):
    mi = mountinfo(sh(bundle, "cat /proc/self/mountinfo"))
    assert not any(f.startswith("shared:") for f in mi["/"][1])
    bundle.config["linux"]["rootfsPropagation"] = "shared"
    mi = mountinfo(sh(bundle, "cat /proc/self/mountinfo"))
    assert any(f.startswith("shared:") for f in mi["/"][1])
    bundle.config["linux"]["rootfsPropagation"] = "unbindable"
    mi = mountinfo(sh(bundle, "cat /proc/self/mountinfo"))
    assert "unbindable" in mi["/"][1]
    bundle.config["linux"]["rootfsPropagation"] = "private"
    mi = mountinfo(sh(bundle, "cat /proc/self/mountinfo"))
    assert mi["/"][1] == []


# ---------------------------------------------------------------------------------------------
# confinement of destinations


def test_destination_through_absolute_symlink_stays_inside(bundle, own_rootfs, tmp_path):
    name = f"kiste-escape-{os.getpid()}"
    host_victim = tmp_path / "victim"
    host_victim.mkdir()
    (own_rootfs / "evil").symlink_to("/etc")
    (own_rootfs / "evil-host").symlink_to(str(host_victim))
    (own_rootfs / "evil-rel").symlink_to("../../../../../../../../../../etc")
    add_mount(bundle, f"/evil/{name}", "tmpfs", "tmpfs", ["size=1m"])
    add_mount(bundle, f"/evil-rel/{name}-rel", "tmpfs", "tmpfs", ["size=1m"])
    try:
        out = sh(bundle, f"grep -c '/etc/{name}' /proc/mounts; ls -d /etc/{name} /etc/{name}-rel")
        assert out.splitlines()[0] == "2"
        assert not os.path.exists(f"/etc/{name}")
        assert not os.path.exists(f"/etc/{name}-rel")
        assert (own_rootfs / "etc" / name).is_dir()
        assert (own_rootfs / "etc" / f"{name}-rel").is_dir()
        # A link to a host path that is not in the rootfs must not reach the host either.
        bundle.config["mounts"] = [m for m in bundle.config["mounts"]
                                   if not m["destination"].startswith("/evil")]
        add_mount(bundle, "/evil-host/sub", "tmpfs", "tmpfs", ["size=1m"])
        p = bundle.run(["sh", "-c", "grep -c /sub /proc/mounts"])
        assert list(host_victim.iterdir()) == []
        if p.returncode == 0:
            assert (own_rootfs / str(host_victim).lstrip("/") / "sub").is_dir()
        else:
            assert p.returncode == 1 and "mounts[" in p.stderr
    finally:
        for n in (name, f"{name}-rel"):
            if os.path.isdir(f"/etc/{n}"):
                os.rmdir(f"/etc/{n}")


def test_file_destination_through_symlink_stays_inside(bundle, own_rootfs, tmp_path):
    host_file = tmp_path / "hostfile"
    host_file.write_text("host\n")
    (own_rootfs / "etc" / "link").symlink_to(str(host_file))
    (own_rootfs / str(host_file.parent).lstrip("/")).mkdir(parents=True)
    (own_rootfs / str(host_file).lstrip("/")).write_text("in rootfs\n")
    (bundle.path / "payload").write_text("payload\n")
    add_mount(bundle, "/etc/link", "bind", "payload", ["bind", "ro"])
    out = sh(bundle, f"cat /etc/link; cat {host_file}")
    assert out == "payload\npayload\n"
    assert host_file.read_text() == "host\n"


def test_destination_dotdot_confined(bundle, own_rootfs):
    name = f"kiste-dotdot-{os.getpid()}"
    add_mount(bundle, f"/../../../../../../etc/../etc/{name}", "tmpfs", "tmpfs", ["size=1m"])
    try:
        out = sh(bundle, f"grep ' /etc/{name} ' /proc/mounts | cut -d' ' -f3")
        assert out == "tmpfs\n"
        assert not os.path.exists(f"/etc/{name}")
        assert (own_rootfs / "etc" / name).is_dir()
    finally:
        if os.path.isdir(f"/etc/{name}"):
            os.rmdir(f"/etc/{name}")


# ---------------------------------------------------------------------------------------------
# the root itself


def test_root_readonly(bundle):
    assert bundle.config["root"]["readonly"] is True
    out = sh(bundle, "touch /newfile 2>&1; echo $?; grep '^[^ ]* / ' /proc/mounts")
    lines = out.splitlines()
    assert "Read-only file system" in lines[0] and lines[1] != "0"
    assert "ro" in lines[2].split()[3].split(",")


def test_root_writable(bundle, own_rootfs):
    bundle.config["root"]["readonly"] = False
    out = sh(bundle, "echo hi > /newfile && echo ok; grep '^[^ ]* / ' /proc/mounts")
    lines = out.splitlines()
    assert lines[0] == "ok"
    assert "rw" in lines[1].split()[3].split(",")
    assert (own_rootfs / "newfile").read_text() == "hi\n"


def test_no_pivot(bundle):
    bundle.config["process"]["args"] = ["sh", "-c", "ls /; cat /etc/passwd | head -1; "
                                        "test -e /usr || echo no-usr; echo $$"]
    bundle.write()
    p = bundle.rt("run", "--no-pivot", "--bundle", bundle.path, "np", check=False)
    assert p.returncode == 0, p.stderr
    lines = p.stdout.splitlines()
    assert lines[-3:] == ["root:x:0:0:root:/root:/bin/sh", "no-usr", "1"]
    assert "bin" in lines and "proc" in lines


def test_masked_paths(bundle, own_rootfs):
    (own_rootfs / "secret-dir").mkdir()
    (own_rootfs / "secret-dir" / "key").write_text("top secret\n")
    (own_rootfs / "secret-file").write_text("top secret\n")
    bundle.config["linux"]["maskedPaths"] += ["/secret-dir", "/secret-file", "/no/such/path"]
    bundle.config["root"]["readonly"] = False
    out = sh(bundle, "wc -c < /secret-file; ls -A /secret-dir | wc -l; wc -c < /proc/timer_list; "
                     "touch /secret-dir/x 2>/dev/null; echo $?; "
                     "echo x > /secret-file; echo $?; wc -c < /secret-file")
    assert out.split() == ["0", "0", "0", "1", "0", "0"]
    assert (own_rootfs / "secret-file").read_text() == "top secret\n"
    assert not (own_rootfs / "secret-dir" / "x").exists()
    if os.path.isdir("/sys/firmware") and os.listdir("/sys/firmware"):
        assert sh(bundle, "ls -A /sys/firmware | wc -l") == "0\n"


def test_readonly_paths(bundle, tmp_path):
    d = tmp_path / "data"
    d.mkdir()
    add_mount(bundle, "/home/user", "bind", d, ["bind"])
    bundle.config["linux"]["readonlyPaths"] += ["/home/user", "/no/such/path"]
    out = sh(bundle, "touch /home/user/x 2>&1; echo $?; "
                     "(echo 1 > /proc/sys/kernel/shm_rmid_forced) 2>&1; echo $?")
    lines = out.splitlines()
    assert "Read-only file system" in lines[0] and lines[1] != "0"
    assert "Read-only file system" in lines[2] and lines[3] != "0"
    assert not (d / "x").exists()
    # Without the entry the same bind is writable.
    bundle.config["linux"]["readonlyPaths"].remove("/home/user")
    sh(bundle, "touch /home/user/x")
    assert (d / "x").exists()


# ---------------------------------------------------------------------------------------------
# /dev


def test_default_devices(bundle):
    out = sh(bundle, "for d in null zero full random urandom tty; do "
                     "stat -c '%n %F %a %t:%T' /dev/$d; done; "
                     "head -c 5 /dev/zero | wc -c; echo x > /dev/null && echo null-ok; "
                     "echo x > /dev/full 2>/dev/null; echo full=$?; head -c 4 /dev/urandom | wc -c")
    lines = out.splitlines()
    want = {"null": "1:3", "zero": "1:5", "full": "1:7", "random": "1:8", "urandom": "1:9",
            "tty": "5:0"}
    for line, (name, mm) in zip(lines, want.items()):
        path, rest = line.split(" ", 1)
        assert path == f"/dev/{name}"
        assert rest == f"character special file 666 {mm}"
    assert lines[6:] == ["5", "null-ok", "full=1", "4"]


def test_dev_symlinks(bundle):
    out = sh(bundle, "for l in fd stdin stdout stderr ptmx; do echo $l $(readlink /dev/$l); done; "
                     "echo via-stdout >> /dev/stdout")
    assert out.splitlines() == ["fd /proc/self/fd", "stdin /proc/self/fd/0",
                                "stdout /proc/self/fd/1", "stderr /proc/self/fd/2",
                                "ptmx pts/ptmx", "via-stdout"]


def test_linux_devices_created(bundle):
    bundle.config["linux"]["devices"] = [
        {"type": "c", "path": "/dev/mynull", "major": 1, "minor": 3, "fileMode": 0o640,
         "uid": 1000, "gid": 1000},
        {"type": "c", "path": "/dev/sub/dir/myzero", "major": 1, "minor": 5},
        {"type": "p", "path": "/dev/myfifo", "fileMode": 0o600},
    ]
    out = sh(bundle, "stat -c '%F %a %u %g %t:%T' /dev/mynull /dev/sub/dir/myzero; "
                     "stat -c '%F %a' /dev/myfifo; (echo x > /dev/mynull) 2>&1; "
                     "head -c 3 /dev/sub/dir/myzero | wc -c")
    assert out.splitlines() == [
        "character special file 640 1000 1000 1:3",
        "character special file 666 0 0 1:5",
        "fifo 600",
        # The container's root lacks CAP_DAC_OVERRIDE: the node's owner and mode hold.
        "sh: can't create /dev/mynull: Permission denied",
        "3",
    ]


def test_device_cgroup_denies(bundle):
    # /dev/mytun is made from linux.devices; the runtime allows it in the device cgroup ...
    bundle.config["linux"]["devices"] = [
        {"type": "c", "path": "/dev/mytun", "major": 10, "minor": 200, "fileMode": 0o666}]
    out = sh(bundle, "(exec 3<>/dev/mytun) 2>&1 && echo opened")
    assert out == "opened\n"
    # ... unless resources.devices has a word of its own on it.
    bundle.config["linux"]["resources"]["devices"].append(
        {"allow": False, "type": "c", "major": 10, "minor": 200, "access": "rwm"})
    # A host device bound in is not among the allowed ones at all.
    tmp_on(bundle)
    add_mount(bundle, "/tmp/loop-control", "bind", "/dev/loop-control", ["bind"])
    out = sh(bundle, "test -c /dev/mytun && echo exists; (exec 3<>/dev/mytun) 2>&1; echo $?; "
                     "(exec 3<>/tmp/loop-control) 2>&1; echo $?; echo x > /dev/null && echo null-ok")
    lines = out.splitlines()
    assert lines[0] == "exists"
    assert "Operation not permitted" in lines[1] and lines[2] != "0"
    assert "Operation not permitted" in lines[3] and lines[4] != "0"
    assert lines[5] == "null-ok"
