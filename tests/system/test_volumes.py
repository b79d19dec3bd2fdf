"""Volumes through the command line: named, anonymous and bind mounts with -v and --mount,
--volumes-from, the image's VOLUME entries, copy-up, read-only enforcement, volumes of the local
driver with options (tmpfs, bind), propagation, the volume commands, ps --filter volume=,
system df, and concurrent use. Every test has a private --root and --runroot and removes what
it made, mounts included."""

import concurrent.futures
import json
import os
import re
import shutil
import subprocess
import tarfile
import tempfile
from pathlib import Path

import pytest

from conftest import KISTE, run_captured, wait_for, KisteCli, busybox_tar  # noqa: F401 (busybox_tar: a fixture)

HEX64 = re.compile(r"^[0-9a-f]{64}$")




class Kiste(KisteCli):
    def run(self, *args, check=True):
        """run --rm --network none: the network plays no part here."""
        return self("run", "--rm", "--network", "none", *args, check=check)

    def volumes(self):
        return set(self("volume", "ls", "-q").stdout.split())


def mounts_under(path):
    return [line.split()[4] for line in open("/proc/self/mountinfo")
            if line.split()[4].startswith(str(path))]


@pytest.fixture
def kiste(tmp_path, busybox_tar):
    runroot = Path(tempfile.mkdtemp(prefix="kv-", dir="/run"))
    k = Kiste(tmp_path / "root", runroot)
    k("import", busybox_tar, "busybox")
    yield k
    ids = k("ps", "-aq", "--no-trunc", check=False).stdout.split()
    if ids:
        k("rm", "-f", *ids, check=False)
    vols = k("volume", "ls", "-q", check=False).stdout.split()
    if vols:
        k("volume", "rm", "-f", *vols, check=False)
    mounts = mounts_under(k.root)
    shutil.rmtree(runroot, ignore_errors=True)
    assert not mounts, f"mounts left: {mounts}"


def test_named_volume_shared_between_containers(kiste):
    kiste.run("-v", "data:/data", "busybox", "sh", "-c", "echo hello > /data/f")
    assert kiste.run("-v", "data:/data", "busybox", "cat", "/data/f").stdout == "hello\n"
    assert "data" in kiste.volumes()
    info = json.loads(kiste("volume", "inspect", "data").stdout)[0]
    assert info["Name"] == "data" and info["Driver"] == "local" and info["Scope"] == "local"
    assert info["Mountpoint"] == str(kiste.root / "volumes" / "data" / "_data")
    assert (Path(info["Mountpoint"]) / "f").read_text() == "hello\n"
    assert re.match(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$", info["CreatedAt"])
    fmt = kiste("volume", "inspect", "--format", "{{.Driver}}:{{.Name}}", "data").stdout
    assert fmt == "local:data\n"
    # --mount names the same volume.
    p = kiste.run("--mount", "type=volume,source=data,target=/m", "busybox", "cat", "/m/f")
    assert p.stdout == "hello\n"


def test_volume_in_use_is_not_removed(kiste):
    kiste("create", "--name", "user", "--network", "none", "-v", "keep:/k", "busybox", "true")
    # Even a container that never ran holds it; -f does not override that (as Docker).
    for args in (("volume", "rm", "keep"), ("volume", "rm", "-f", "keep")):
        p = kiste(*args, check=False)
        assert p.returncode != 0
        assert "keep" in p.stderr and "volume is in use" in p.stderr
        assert kiste.inspect("user")["Id"] in p.stderr
    assert "keep" in kiste.volumes()
    kiste("rm", "user")
    assert kiste("volume", "rm", "keep").stdout == "keep\n"
    assert "keep" not in kiste.volumes()
    p = kiste("volume", "rm", "keep", check=False)
    assert p.returncode != 0 and "no such volume" in p.stderr
    assert kiste("volume", "rm", "-f", "keep").returncode == 0


def test_volumes_from(kiste):
    kiste("run", "--name", "src", "--network", "none", "-v", "shared:/s", "-v", "/anon",
          "busybox", "sh", "-c", "echo one > /s/a; echo two > /anon/b")
    p = kiste.run("--volumes-from", "src", "busybox", "cat", "/s/a", "/anon/b")
    assert p.stdout == "one\ntwo\n"
    p = kiste.run("--volumes-from", "src:ro", "busybox", "sh", "-c", "echo x > /s/a", check=False)
    assert p.returncode != 0 and "Read-only file system" in p.stderr
    p = kiste.run("--volumes-from", "src:ro", "busybox", "cat", "/s/a")
    assert p.stdout == "one\n"


def test_read_only_enforced(kiste, tmp_path):
    host = tmp_path / "host"
    host.mkdir()
    cases = [("-v", "ro1:/x:ro"), ("--mount", "type=volume,src=ro2,dst=/x,readonly"),
             ("-v", f"{host}:/x:ro"), ("--mount", f"type=bind,src={host},dst=/x,ro=true")]
    for flag, spec in cases:
        p = kiste.run(flag, spec, "busybox", "sh", "-c", "touch /x/f", check=False)
        assert p.returncode != 0, spec
        assert "Read-only file system" in p.stderr, (spec, p.stderr)
    assert not (host / "f").exists()
    # rw is writable, and the write lands in the host directory.
    kiste.run("-v", f"{host}:/x:rw", "busybox", "touch", "/x/f")
    assert (host / "f").exists()


@pytest.fixture
def data_image(kiste):
    """An image with /data holding an owned file, a private directory and a symlink."""
    kiste("run", "--name", "mk", "--network", "none", "busybox", "sh", "-c",
          "mkdir -p /data/sub && echo content > /data/sub/file && chown 1000:1000 /data/sub/file"
          " && chmod 600 /data/sub/file && chmod 0750 /data && ln -s sub/file /data/link"
          " && setfattr -n user.k -v val /data/sub/file 2>/dev/null; true")
    kiste("commit", "mk", "dataimg")
    kiste("rm", "mk")
    return "dataimg"


def test_copy_up_fills_an_empty_volume(kiste, data_image):
    kiste.run("-v", "cu:/data", data_image, "true")
    d = Path(json.loads(kiste("volume", "inspect", "cu").stdout)[0]["Mountpoint"])
    f = d / "sub" / "file"
    assert f.read_text() == "content\n"
    st = f.stat()
    assert (st.st_uid, st.st_gid, st.st_mode & 0o7777) == (1000, 1000, 0o600)
    assert d.stat().st_mode & 0o7777 == 0o750
    assert os.readlink(d / "link") == "sub/file"
    # A volume that is not empty is not filled again.
    kiste.run("-v", "cu:/data", data_image, "rm", "/data/sub/file")
    kiste.run("-v", "cu:/data", data_image, "true")
    assert not f.exists()
    # nocopy, in either syntax, leaves the volume empty.
    kiste.run("-v", "nc1:/data:nocopy", data_image, "true")
    kiste.run("--mount", "src=nc2,dst=/data,volume-nocopy", data_image, "true")
    for name in ("nc1", "nc2"):
        mp = Path(json.loads(kiste("volume", "inspect", name).stdout)[0]["Mountpoint"])
        assert list(mp.iterdir()) == []
    # A bind mount is never filled.
    kiste.run("-v", f"{d}/sub:/data", data_image, "true")
    assert sorted(p.name for p in (d / "sub").iterdir()) == []


def test_image_volume_is_anonymous(kiste, busybox_tar):
    kiste("import", "--change", "VOLUME /data", busybox_tar, "volimg")
    kiste("run", "--name", "cv", "--network", "none", "-v", "named:/n", "volimg", "sh", "-c",
          "echo x > /data/f")
    mounts = {m["Destination"]: m for m in kiste.inspect("cv")["Mounts"]}
    anon = mounts["/data"]
    assert anon["Type"] == "volume" and HEX64.match(anon["Name"]) and anon["Driver"] == "local"
    assert anon["RW"] is True
    assert (Path(anon["Source"]) / "f").read_text() == "x\n"
    assert {anon["Name"], "named"} <= kiste.volumes()
    # rm -v takes the anonymous volume; the named one stays.
    kiste("rm", "-v", "cv")
    assert anon["Name"] not in kiste.volumes()
    assert "named" in kiste.volumes()
    # A plain rm keeps anonymous volumes (Docker's rule), --rm removes them.
    kiste("run", "--name", "dv", "--network", "none", "volimg", "true")
    kept = kiste.inspect("dv")["Mounts"][0]["Name"]
    kiste("rm", "dv")
    assert kept in kiste.volumes()
    before = kiste.volumes()
    kiste.run("volimg", "true")
    assert kiste.volumes() == before
    # Something mounted at the image's VOLUME replaces the anonymous volume.
    kiste("create", "--name", "ev", "--network", "none", "-v", "named:/data", "volimg", "true")
    assert [m["Name"] for m in kiste.inspect("ev")["Mounts"]] == ["named"]


def test_bind_source_created_for_v_refused_for_mount(kiste, tmp_path):
    missing = tmp_path / "a" / "b"
    kiste.run("-v", f"{missing}:/b", "busybox", "touch", "/b/made")
    assert (missing / "made").exists() and missing.is_dir()
    other = tmp_path / "nope"
    p = kiste.run("--mount", f"type=bind,source={other},target=/b", "busybox", "true",
                  check=False)
    assert p.returncode == 125
    assert f"invalid mount config for type \"bind\": bind source path does not exist: {other}" \
        in p.stderr
    assert not other.exists()
    p = kiste.run("-v", "/h:/x:ro,rw", "busybox", "true", check=False)
    assert p.returncode == 125 and "invalid mode: ro,rw" in p.stderr


def test_inspect_mounts(kiste, tmp_path):
    kiste("create", "--name", "mm", "--network", "none", "-v", f"{tmp_path}:/host:ro,rslave",
          "-v", "vol:/vol", "--mount", "type=tmpfs,destination=/tmp/t,tmpfs-size=1m",
          "busybox", "true")
    info = kiste.inspect("mm")
    got = {m["Destination"]: m for m in info["Mounts"]}
    assert got["/host"] == {"Type": "bind", "Source": str(tmp_path), "Destination": "/host",
                            "Mode": "ro,rslave", "RW": False, "Propagation": "rslave"}
    assert got["/vol"] == {"Type": "volume", "Name": "vol",
                           "Source": str(kiste.root / "volumes" / "vol" / "_data"),
                           "Destination": "/vol", "Driver": "local", "Mode": "", "RW": True,
                           "Propagation": ""}
    assert got["/tmp/t"]["Type"] == "tmpfs" and got["/tmp/t"]["RW"] is True
    hc = info["HostConfig"]
    assert hc["Binds"] == [f"{tmp_path}:/host:ro,rslave", "vol:/vol"]
    assert hc["Mounts"] == [{"Type": "tmpfs", "Source": "", "Target": "/tmp/t",
                             "TmpfsOptions": {"SizeBytes": 1048576}}]
    kiste("start", "-a", "mm")
    p = kiste.run("--mount", "type=tmpfs,dst=/t,tmpfs-size=1m,tmpfs-mode=1770", "busybox",
                  "sh", "-c", "grep ' /t ' /proc/mounts; stat -c %a /t")
    assert "tmpfs" in p.stdout and "size=1024k" in p.stdout and p.stdout.endswith("1770\n")


def test_tmpfs_volume_mounted_while_used(kiste):
    kiste("volume", "create", "-o", "type=tmpfs", "-o", "device=tmpfs", "-o", "o=size=4m",
          "tv")
    info = json.loads(kiste("volume", "inspect", "tv").stdout)[0]
    assert info["Options"] == {"type": "tmpfs", "device": "tmpfs", "o": "size=4m"}
    mp = info["Mountpoint"]
    assert mp not in mounts_under(mp)
    kiste("run", "-d", "--name", "t1", "--network", "none", "-v", "tv:/t", "busybox", "sh", "-c",
          "echo in > /t/f; sleep 100")
    kiste("run", "-d", "--name", "t2", "--network", "none", "-v", "tv:/t", "busybox", "sleep",
          "100")
    assert wait_for(lambda: kiste("exec", "t2", "cat", "/t/f", check=False).stdout == "in\n")
    assert mounts_under(mp) == [mp]
    p = kiste("exec", "t1", "grep", " /t ", "/proc/mounts")
    assert p.stdout.startswith("tmpfs /t tmpfs") and "size=4096k" in p.stdout
    kiste("stop", "-t", "0", "t1")
    assert mounts_under(mp) == [mp], "still used by t2"
    kiste("stop", "-t", "0", "t2")
    assert mounts_under(mp) == [], "unmounted when the last user stopped"
    # A container that exits on its own is let go by the next command that looks.
    kiste("run", "--name", "t3", "--network", "none", "-v", "tv:/t", "busybox", "true")
    kiste("volume", "ls")
    assert mounts_under(mp) == []
    # A container killed with its monitor leaves a hold that the next command drops.
    kiste("start", "t1")
    assert mounts_under(mp) == [mp]
    pid = int((kiste.runroot / "containers" / kiste.inspect("t1")["Id"] /
               "monitor.pid").read_text())
    os.kill(pid, 9)
    kiste("kill", "t1", check=False)
    assert wait_for(lambda: kiste.inspect("t1")["State"]["Status"] == "exited")
    kiste("volume", "ls")
    kiste("rm", "t1", "t2", "t3")
    assert mounts_under(mp) == []
    kiste("volume", "rm", "tv")


def test_bind_volume_and_bad_options(kiste, tmp_path):
    dev = tmp_path / "dev"
    dev.mkdir()
    (dev / "seen").write_text("yes\n")
    kiste("volume", "create", "-o", "type=none", "-o", "o=bind", "-o", f"device={dev}", "bv")
    assert kiste.run("-v", "bv:/b", "busybox", "cat", "/b/seen").stdout == "yes\n"
    assert mounts_under(kiste.root) == []
    kiste("volume", "rm", "bv")
    assert (dev / "seen").exists(), "removing a bind volume leaves its device's content"
    p = kiste("volume", "create", "-o", "type=ext4", "bad", check=False)
    assert p.returncode != 0 and "device" in p.stderr
    p = kiste("volume", "create", "-o", "size=1", "bad", check=False)
    assert p.returncode != 0 and "invalid option key" in p.stderr
    p = kiste("volume", "create", "b/ad", check=False)
    assert p.returncode != 0 and "invalid characters" in p.stderr
    p = kiste("volume", "create", "-d", "nfs", "x1", check=False)
    assert p.returncode != 0 and "not found" in p.stderr


def test_block_device_volume_and_mount_volume_opt(kiste, tmp_path):
    img = tmp_path / "fs.img"
    subprocess.run(["truncate", "-s", "16M", str(img)], check=True)
    subprocess.run(["mkfs.ext4", "-q", str(img)], check=True)
    loop = subprocess.run(["losetup", "-f", "--show", str(img)], check=True,
                          capture_output=True, text=True).stdout.strip()
    try:
        kiste("volume", "create", "-d", "local", "-o", "type=ext4", "-o", f"device={loop}",
              "blk")
        mp = json.loads(kiste("volume", "inspect", "blk").stdout)[0]["Mountpoint"]
        kiste.run("-v", "blk:/b", "busybox", "sh", "-c", "echo disk > /b/f")
        assert mounts_under(mp) == []
        p = kiste.run("-v", "blk:/b", "busybox", "sh", "-c", "cat /b/f; grep ' /b ' /proc/mounts")
        assert p.stdout.startswith("disk\n") and " /b ext4 " in p.stdout
        # lost+found of the new file system: the volume was not empty, so no copy-up.
        assert "lost+found" in kiste.run("-v", "blk:/b", "busybox", "ls", "/b").stdout
        kiste("volume", "rm", "blk")
    finally:
        subprocess.run(["losetup", "-d", loop], check=True)
    # --mount's volume-opt creates a volume with options.
    kiste.run("--mount", "src=mt,dst=/t,volume-opt=type=tmpfs,volume-opt=device=tmpfs,"
              "volume-opt=o=size=1m", "busybox", "sh", "-c", "grep ' /t ' /proc/mounts")
    info = json.loads(kiste("volume", "inspect", "mt").stdout)[0]
    assert info["Options"] == {"type": "tmpfs", "device": "tmpfs", "o": "size=1m"}


@pytest.mark.parametrize("prop", ["rshared", "rslave"])
def test_propagation_host_mounts_appear(kiste, tmp_path, prop):
    src = tmp_path / "prop"
    src.mkdir()
    subprocess.run(["mount", "--bind", str(src), str(src)], check=True)
    try:
        subprocess.run(["mount", "--make-shared", str(src)], check=True)
        kiste("run", "-d", "--name", "pp", "--network", "none", "-v", f"{src}:/m:{prop}",
              "busybox", "sleep", "100")
        (src / "sub").mkdir()
        subprocess.run(["mount", "-t", "tmpfs", "tmpfs", str(src / "sub")], check=True)
        try:
            (src / "sub" / "f").write_text("from host\n")
            p = kiste("exec", "pp", "cat", "/m/sub/f")
            assert p.stdout == "from host\n"
            p = kiste("exec", "pp", "grep", " /m/sub ", "/proc/self/mountinfo")
            assert ("shared:" in p.stdout) == (prop == "rshared") and "master:" in p.stdout
        finally:
            subprocess.run(["umount", str(src / "sub")], check=True)
        # rprivate (the default) does not see it.
        kiste("run", "-d", "--name", "qq", "--network", "none", "-v", f"{src}:/m", "busybox",
              "sleep", "100")
        subprocess.run(["mount", "-t", "tmpfs", "tmpfs", str(src / "sub")], check=True)
        try:
            (src / "sub" / "g").write_text("x")
            assert kiste("exec", "qq", "ls", "/m/sub").stdout == ""
        finally:
            subprocess.run(["umount", str(src / "sub")], check=True)
        kiste("rm", "-f", "pp", "qq")
    finally:
        subprocess.run(["umount", str(src)], check=True)


def test_ls_filters_format_and_prune(kiste):
    kiste("volume", "create", "--label", "team=a", "la")
    kiste("volume", "create", "--name", "lb")
    anon_create = kiste("volume", "create").stdout.strip()
    assert HEX64.match(anon_create)
    kiste("create", "--name", "uu", "--network", "none", "-v", "la:/a", "-v", "/anon", "busybox",
          "true")
    anon = [m["Name"] for m in kiste.inspect("uu")["Mounts"] if m["Destination"] == "/anon"][0]
    out = kiste("volume", "ls").stdout.splitlines()
    assert out[0].split() == ["DRIVER", "VOLUME", "NAME"]
    assert set(kiste("volume", "ls", "-q", "--filter", "label=team=a").stdout.split()) == {"la"}
    assert set(kiste("volume", "ls", "-q", "--filter", "label=team").stdout.split()) == {"la"}
    assert set(kiste("volume", "ls", "-q", "--filter", "name=l").stdout.split()) == {"la", "lb"}
    dangling = set(kiste("volume", "ls", "-q", "--filter", "dangling=true").stdout.split())
    assert dangling == {"lb", anon_create}
    assert set(kiste("volume", "ls", "-q", "--filter", "dangling=false").stdout.split()) == \
        {"la", anon}
    assert kiste("volume", "ls", "--filter", "driver=local", "--format",
                 "{{.Name}} {{.Labels}} {{.Scope}}", "--filter", "name=la").stdout == \
        "la team=a local\n"
    p = kiste("volume", "ls", "--filter", "bogus=1", check=False)
    assert p.returncode != 0 and "invalid filter" in p.stderr
    # ps --filter volume= by name and by destination.
    cid = kiste.inspect("uu")["Id"][:12]
    assert kiste("ps", "-aq", "--filter", "volume=la").stdout.split() == [cid]
    assert kiste("ps", "-aq", "--filter", "volume=/a").stdout.split() == [cid]
    assert kiste("ps", "-aq", "--filter", "volume=lb").stdout.split() == []
    # prune: by default only anonymous volumes nothing uses (a named-by-create one is not
    # anonymous); -a takes the unused named ones too.
    p = kiste("volume", "prune", "-f")
    assert "Total reclaimed space" in p.stdout
    assert kiste.volumes() == {"la", "lb", anon_create, anon}
    p = kiste("volume", "prune", "-f", "-a", "--filter", "label!=keep")
    assert kiste.volumes() == {"la", anon}
    kiste("rm", "-v", "uu")
    assert kiste.volumes() == {"la"}


def test_system_df_counts_volumes(kiste):
    kiste.run("-v", "dfv:/d", "busybox", "sh", "-c",
              "dd if=/dev/zero of=/d/blob bs=1024 count=100 2>/dev/null")
    kiste("create", "--name", "holder", "--network", "none", "-v", "dfv:/d", "busybox", "true")
    kiste("volume", "create", "idle")
    rows = {}
    for line in kiste("system", "df", "--format",
                      "{{.Type}}|{{.TotalCount}}|{{.Active}}|{{.Size}}|{{.Reclaimable}}"
                      ).stdout.splitlines():
        t, total, active, size, recl = line.split("|")
        rows[t] = (total, active, size, recl)
    assert rows["Local Volumes"] == ("2", "1", "102kB", "0B (0%)")
    out = kiste("system", "df", "-v").stdout
    assert "Local Volumes space usage:" in out
    lines = {ln.split()[0]: ln.split()[1:] for ln in out.split("Local Volumes space usage:")[1]
             .strip().splitlines()[1:]}
    assert lines["dfv"] == ["1", "102kB"] and lines["idle"] == ["0", "0B"]


def test_parallel_runs_share_a_new_volume(kiste):
    def one(i):
        return kiste.run("-v", "same:/x", "busybox", "sh", "-c", f"echo {i} > /x/{i}",
                         check=False)
    with concurrent.futures.ThreadPoolExecutor(max_workers=10) as ex:
        results = list(ex.map(one, range(10)))
    for p in results:
        assert p.returncode == 0, p.stderr
    mp = Path(json.loads(kiste("volume", "inspect", "same").stdout)[0]["Mountpoint"])
    assert sorted(int(p.name) for p in mp.iterdir()) == list(range(10))
    assert kiste("ps", "-aq").stdout == ""
    assert kiste.volumes() == {"same"}
