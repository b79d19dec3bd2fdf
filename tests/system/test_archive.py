"""kiste save / kiste load against the real tools: a private dockerd (docker load, docker save,
docker run), skopeo (docker-archive:, oci-archive:, oci: layouts) and umoci (unpack of an OCI
export). Every test has a private --root; the dockerd is private to the session and removed
afterwards."""

import gzip
import hashlib
import json
import os
import pty
import shutil
import stat
import subprocess
import tarfile
import tempfile
import time
from pathlib import Path

import pytest

from conftest import KISTE, run_captured
from test_images import Kiste, busybox_tar, kiste  # noqa: F401  (fixtures)

DOCKERD = shutil.which("dockerd", path="/usr/sbin:/usr/bin:/sbin:/bin")
DOCKER = shutil.which("docker", path="/usr/bin:/bin:/usr/sbin")
SKOPEO = shutil.which("skopeo", path="/usr/bin:/bin")
UMOCI = shutil.which("umoci", path="/usr/bin:/bin:/usr/sbin")


class Docker:
    def __init__(self, sock: Path):
        self.sock = sock

    def __call__(self, *args, check=True, input=None, timeout=120):
        cmd = [DOCKER, "-H", f"unix://{self.sock}"] + [str(a) for a in args]
        p = run_captured(cmd, input=input, timeout=timeout)
        if check and p.returncode != 0:
            raise AssertionError(f"{cmd} failed ({p.returncode}):\n{p.stdout}\n{p.stderr}")
        return p


def _unmount_below(path: Path):
    with open("/proc/self/mountinfo") as f:
        points = [line.split()[4] for line in f]
    for mp in sorted((p for p in points if p.startswith(str(path) + "/")), reverse=True):
        subprocess.run(["umount", "-l", mp], check=False)


@pytest.fixture(scope="session")
def dockerd(leak_check):
    """A dockerd of the session's own: its data root, exec root, pid file and socket in a
    private directory, no bridge and no iptables rules; stopped and removed afterwards."""
    if DOCKERD is None or DOCKER is None:
        pytest.skip("docker.io (dockerd, docker) is not installed")
    base = Path(tempfile.mkdtemp(prefix="kiste-dockerd-", dir="/tmp"))
    sock = base / "docker.sock"
    log = open(base / "dockerd.log", "wb")
    proc = subprocess.Popen(
        [DOCKERD, "--data-root", str(base / "data"), "--exec-root", str(base / "exec"),
         "--pidfile", str(base / "docker.pid"), "-H", f"unix://{sock}", "--bridge=none",
         "--iptables=false"],
        stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    d = Docker(sock)
    try:
        end = time.time() + 60
        while time.time() < end:
            if proc.poll() is not None:
                break
            if sock.exists() and d("version", check=False, timeout=10).returncode == 0:
                break
            time.sleep(0.3)
        if proc.poll() is not None or d("version", check=False).returncode != 0:
            pytest.skip("the private dockerd did not start: "
                        + (base / "dockerd.log").read_text(errors="replace")[-2000:])
        yield d
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        log.close()
        _unmount_below(base)
        shutil.rmtree(base, ignore_errors=True)


def member_json(tar_path: Path, name: str):
    with tarfile.open(tar_path) as t:
        return json.loads(t.extractfile(name).read())


def kiste_inspect(kiste, name):
    return json.loads(kiste("image", "inspect", name).stdout)[0]


def tree(root: Path):
    """Every path below root with its type, mode, size, symlink target and content hash."""
    out = {}
    for dirpath, dirs, files in os.walk(root):
        for name in dirs + files:
            p = Path(dirpath) / name
            rel = str(p.relative_to(root))
            if rel == ".complete":
                continue
            st = p.lstat()
            entry = [stat.S_IFMT(st.st_mode), stat.S_IMODE(st.st_mode)]
            if stat.S_ISLNK(st.st_mode):
                entry.append(os.readlink(p))
            elif stat.S_ISREG(st.st_mode):
                entry += [st.st_size, hashlib.sha256(p.read_bytes()).hexdigest()]
            out[rel] = tuple(entry)
    return out


def du(path: Path) -> int:
    return int(subprocess.run(["du", "-s", "--block-size=1", str(path)], check=True,
                              capture_output=True, text=True).stdout.split()[0])


# --- kiste → docker ---------------------------------------------------------------------------


def test_save_then_docker_load_and_run(kiste, busybox_tar, dockerd, tmp_path):
    kiste("import", "-c", 'CMD ["sh"]', busybox_tar, "kiste-saved:plain")
    # A layer kept gzip-compressed is decompressed on the way out.
    gz = tmp_path / "bb.tar.gz"
    gz.write_bytes(gzip.compress(busybox_tar.read_bytes()))
    kiste("import", "-c", "ENV FROM=gzip", gz, "kiste-saved:gz")
    out = tmp_path / "saved.tar"
    kiste("save", "-o", out, "kiste-saved:plain", "kiste-saved:gz")
    names = tarfile.open(out).getnames()
    assert {"oci-layout", "index.json", "manifest.json", "repositories"} <= set(names)
    manifest = member_json(out, "manifest.json")
    assert [m["RepoTags"] for m in manifest] == [["kiste-saved:plain"], ["kiste-saved:gz"]]
    try:
        p = dockerd("load", "-i", out)
        assert "Loaded image: kiste-saved:plain" in p.stdout
        assert "Loaded image: kiste-saved:gz" in p.stdout
        for tag in ("kiste-saved:plain", "kiste-saved:gz"):
            mine = kiste_inspect(kiste, tag)
            theirs = json.loads(dockerd("image", "inspect", tag).stdout)[0]
            assert theirs["Id"] == mine["Id"]
            assert theirs["RootFS"]["Layers"] == mine["RootFS"]["Layers"]
            p = dockerd("run", "--rm", "--network", "none", tag, "/bin/sh", "-c", "echo ok")
            assert p.stdout == "ok\n"
        assert "FROM=gzip" in dockerd("image", "inspect", "--format", "{{.Config.Env}}",
                                      "kiste-saved:gz").stdout
    finally:
        dockerd("rmi", "-f", "kiste-saved:plain", "kiste-saved:gz", check=False)


def test_save_by_id_has_no_tags(kiste, busybox_tar, dockerd, tmp_path):
    image_id = kiste("import", busybox_tar, "kiste-byid:1").stdout.strip()
    out = tmp_path / "byid.tar"
    kiste("save", "-o", out, image_id[7:19])
    assert member_json(out, "manifest.json")[0]["RepoTags"] is None
    assert "repositories" not in tarfile.open(out).getnames()
    try:
        p = dockerd("load", "-i", out)
        assert f"Loaded image ID: {image_id}" in p.stdout
    finally:
        dockerd("rmi", "-f", image_id, check=False)


# --- docker → kiste ---------------------------------------------------------------------------


def test_docker_save_then_kiste_load(kiste, busybox_tar, dockerd, tmp_path):
    dockerd("import", "-c", 'CMD ["sh"]', busybox_tar, "docker-saved:1")
    try:
        out = tmp_path / "docker.tar"
        dockerd("save", "-o", out, "docker-saved:1")
        theirs = json.loads(dockerd("image", "inspect", "docker-saved:1").stdout)[0]
        p = kiste("load", "-i", out)
        assert p.stdout == "Loaded image: docker-saved:1\n"
        mine = kiste_inspect(kiste, "docker-saved:1")
        assert mine["Id"] == theirs["Id"]
        assert mine["RootFS"]["Layers"] == theirs["RootFS"]["Layers"]
        assert mine["Config"]["Cmd"] == ["sh"]
        # The config is kept byte for byte: the one kiste saves is docker's.
        config_name = theirs["Id"][7:] + ".json"
        with tarfile.open(out) as t:
            docker_config = t.extractfile(config_name).read()
        again = tmp_path / "again.tar"
        kiste("save", "-o", again, "docker-saved:1")
        with tarfile.open(again) as t:
            assert t.extractfile("blobs/sha256/" + theirs["Id"][7:]).read() == docker_config

        # Compressed as a whole, from stdin, and by ID: no name.
        fresh = Kiste(tmp_path / "root2")
        dockerd("save", "-o", tmp_path / "id.tar", theirs["Id"])
        data = gzip.compress((tmp_path / "id.tar").read_bytes())
        p = subprocess.run([str(KISTE), "--root", str(fresh.root), "load"], input=data,
                           capture_output=True, check=True)
        assert p.stdout.decode() == f"Loaded image ID: {theirs['Id']}\n"
        assert kiste_inspect(fresh, theirs["Id"])["RepoTags"] == []
    finally:
        dockerd("rmi", "-f", "docker-saved:1", check=False)


def test_shared_base_layer_stored_once(kiste, busybox_tar, dockerd, tmp_path):
    dockerd("import", busybox_tar, "shared-base:1")
    cname = "kiste-archive-commit"
    try:
        dockerd("run", "--network", "none", "--name", cname, "shared-base:1", "/bin/sh", "-c",
                "echo hello > /hello.txt")
        dockerd("commit", cname, "shared-child:1")
        dockerd("save", "-o", tmp_path / "base.tar", "shared-base:1")
        dockerd("save", "-o", tmp_path / "child.tar", "shared-child:1")
    finally:
        dockerd("rm", "-f", cname, check=False)
    try:
        kiste("load", "-i", tmp_path / "base.tar")
        before = du(kiste.root)
        kiste("load", "-i", tmp_path / "child.tar")
        added = du(kiste.root) - before
        base = kiste_inspect(kiste, "shared-base:1")
        child = kiste_inspect(kiste, "shared-child:1")
        assert child["RootFS"]["Layers"][0] == base["RootFS"]["Layers"][0]
        assert len(child["RootFS"]["Layers"]) == 2
        # The base layer is about 2 MB unpacked (and as much again as its blob); the second
        # image adds a tiny layer, its config and database rows.
        assert added < base["Size"] / 4, f"loading the second image added {added} bytes"
        layer_dirs = [d for d in (kiste.root / "overlay").iterdir() if d.name != "l"]
        assert len(layer_dirs) == 2
    finally:
        dockerd("rmi", "-f", "shared-child:1", "shared-base:1", check=False)


# --- skopeo and umoci -------------------------------------------------------------------------


def need(binary, name):
    if binary is None:
        pytest.skip(f"{name} is not installed")


def test_skopeo_reads_both_formats(kiste, busybox_tar, tmp_path):
    need(SKOPEO, "skopeo")
    image_id = kiste("import", busybox_tar, "skopeo-src:1").stdout.strip()
    layers = kiste_inspect(kiste, "skopeo-src:1")["RootFS"]["Layers"]
    kiste("save", "-o", tmp_path / "docker.tar", "skopeo-src:1")
    kiste("save", "--format", "oci", "-o", tmp_path / "oci.tar", "skopeo-src:1")
    assert "manifest.json" not in tarfile.open(tmp_path / "oci.tar").getnames()
    for src, dest in ((f"docker-archive:{tmp_path}/docker.tar", tmp_path / "from-docker"),
                      (f"oci-archive:{tmp_path}/oci.tar", tmp_path / "from-oci")):
        p = run_captured([SKOPEO, "copy", "--quiet", src, f"oci:{dest}:copied:1"])
        assert p.returncode == 0, p.stderr
        index = json.loads((dest / "index.json").read_text())
        (desc,) = index["manifests"]
        assert desc["annotations"]["org.opencontainers.image.ref.name"] == "copied:1"
        m = json.loads((dest / "blobs" / "sha256" / desc["digest"][7:]).read_text())
        cfg = json.loads((dest / "blobs" / "sha256" / m["config"]["digest"][7:]).read_text())
        assert cfg["rootfs"]["diff_ids"] == layers

    # skopeo's OCI layout (gzip layers) → tar → kiste load.
    layout_tar = tmp_path / "layout.tar"
    with tarfile.open(layout_tar, "w") as t:
        t.add(tmp_path / "from-oci", arcname=".")
    fresh = Kiste(tmp_path / "root2")
    p = fresh("load", "-i", layout_tar)
    assert p.stdout == "Loaded image: copied:1\n"
    loaded = kiste_inspect(fresh, "copied:1")
    assert loaded["RootFS"]["Layers"] == layers
    assert loaded["Id"] != "" and image_id.startswith("sha256:")
    # and saved again, the compressed layer goes out as its uncompressed tar.
    fresh("save", "-o", tmp_path / "resaved.tar", "copied:1")
    m = member_json(tmp_path / "resaved.tar", "manifest.json")[0]
    with tarfile.open(tmp_path / "resaved.tar") as t:
        data = t.extractfile(m["Layers"][0]).read()
    assert "sha256:" + hashlib.sha256(data).hexdigest() == layers[0]


def test_umoci_unpack_matches_rootfs(kiste, busybox_tar, busybox_rootfs, tmp_path):
    need(UMOCI, "umoci")
    kiste("import", busybox_tar, "umoci-src:latest")
    kiste("save", "--format", "oci", "-o", tmp_path / "oci.tar", "umoci-src:latest")
    layout = tmp_path / "layout"
    layout.mkdir()
    with tarfile.open(tmp_path / "oci.tar") as t:
        t.extractall(layout)
    bundle = tmp_path / "bundle"
    p = run_captured([UMOCI, "unpack", "--image", f"{layout}:latest", str(bundle)])
    assert p.returncode == 0, p.stderr
    assert tree(bundle / "rootfs") == tree(busybox_rootfs)


# --- the command line -------------------------------------------------------------------------


def test_cli_errors_and_stdin(kiste, busybox_tar, tmp_path):
    kiste("import", busybox_tar, "cli:1")
    # A tar is not written to a terminal.
    master, slave = pty.openpty()
    try:
        p = subprocess.run([str(KISTE), "--root", str(kiste.root), "save", "cli:1"],
                           stdout=slave, stderr=subprocess.PIPE, timeout=30)
    finally:
        os.close(slave)
        os.close(master)
    assert p.returncode == 1 and b"cowardly refusing" in p.stderr
    p = kiste("save", "-o", tmp_path / "x.tar", "nosuch:image", check=False)
    assert p.returncode == 1 and "No such image: nosuch:image" in p.stderr
    assert not (tmp_path / "x.tar").exists()
    # zstd-compressed from stdin, through `image save` / `image load`.
    saved = subprocess.run([str(KISTE), "--root", str(kiste.root), "image", "save", "cli:1"],
                           capture_output=True, check=True).stdout
    if shutil.which("zstd"):
        data = subprocess.run(["zstd", "-q", "-c"], input=saved, capture_output=True,
                              check=True).stdout
    else:
        data = gzip.compress(saved)
    fresh = Kiste(tmp_path / "root2")
    p = subprocess.run([str(KISTE), "--root", str(fresh.root), "image", "load", "-q"],
                       input=data, capture_output=True)
    assert p.returncode == 0, p.stderr
    assert p.stdout == b"Loaded image: cli:1\n"
    # Not an archive at all.
    (tmp_path / "junk").write_bytes(b"this is not a tar archive" * 100)
    p = fresh("load", "-i", tmp_path / "junk", check=False)
    assert p.returncode == 1 and p.stderr.startswith("Error: load:")
    assert fresh("images", "-q").stdout.split() == [kiste_inspect(fresh, "cli:1")["Id"][7:19]]
