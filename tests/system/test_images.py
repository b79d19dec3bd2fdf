"""The image store through the command line: import, images, tag, rmi, inspect, history, layer
sharing and concurrent imports, every test under a private --root."""

import gzip
import hashlib
import json
import re
import subprocess
import tarfile
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from conftest import KISTE, run_captured, KisteCli, busybox_tar  # noqa: F401 (busybox_tar: a fixture)




Kiste = KisteCli


@pytest.fixture
def kiste(tmp_path):
    return Kiste(tmp_path / "root")


def diff_id(path: Path) -> str:
    return "sha256:" + hashlib.sha256(path.read_bytes()).hexdigest()


def layer_dirs(root: Path):
    return [d for d in (root / "overlay").iterdir() if d.name != "l"]


def test_import_file_and_inspect(kiste, busybox_tar):
    out = kiste("import", busybox_tar, "busybox:test").stdout.strip()
    assert re.fullmatch(r"sha256:[0-9a-f]{64}", out)
    info = json.loads(kiste("image", "inspect", "busybox:test").stdout)
    assert len(info) == 1
    i = info[0]
    assert i["Id"] == out
    assert i["RepoTags"] == ["busybox:test"]
    assert i["RootFS"] == {"Type": "layers", "Layers": [diff_id(busybox_tar)]}
    assert i["Architecture"] == "amd64" and i["Os"] == "linux"
    assert i["Parent"] == ""
    assert i["Size"] > 1_000_000
    assert any(e.startswith("PATH=") for e in i["Config"]["Env"])
    # The layer's files are there, unpacked once.
    (layer,) = layer_dirs(kiste.root)
    assert (layer / "diff" / "bin" / "busybox").is_file()
    assert (layer / "diff" / "bin" / "sh").is_symlink()


def test_import_stdin_with_changes(kiste, busybox_tar):
    data = gzip.compress(busybox_tar.read_bytes())
    p = subprocess.run([str(KISTE), "--root", str(kiste.root), "import", "--change",
                        'CMD ["sh"]', "--change", "ENV A=b", "-c", "WORKDIR /tmp",
                        "-c", "EXPOSE 80", "-m", "from stdin", "-", "bb:gz"],
                       input=data, capture_output=True, check=True)
    image_id = p.stdout.decode().strip()
    cfg = json.loads(kiste("image", "inspect", image_id).stdout)[0]
    assert cfg["Config"]["Cmd"] == ["sh"]
    assert "A=b" in cfg["Config"]["Env"]
    assert cfg["Config"]["WorkingDir"] == "/tmp"
    assert cfg["Config"]["ExposedPorts"] == {"80/tcp": {}}
    assert cfg["Comment"] == "from stdin"
    # The diff_id is that of the uncompressed tar, whatever the compression.
    assert cfg["RootFS"]["Layers"] == [diff_id(busybox_tar)]
    assert kiste("image", "inspect", "--format", "{{.Id}} {{.Config.Cmd}}",
                 "bb:gz").stdout == f"{image_id} [sh]\n"


def test_bad_change_refused(kiste, busybox_tar):
    p = kiste("import", "-c", "FROB x", busybox_tar, check=False)
    assert p.returncode == 1
    assert "not a valid change command" in p.stderr


def test_images_table_quiet_format_filter(kiste, busybox_tar):
    a = kiste("import", busybox_tar, "alpha:1").stdout.strip()
    b = kiste("import", "-c", "CMD sh", busybox_tar, "beta").stdout.strip()
    dangling = kiste("import", "-c", "USER 1000", busybox_tar).stdout.strip()
    lines = kiste("images").stdout.splitlines()
    assert lines[0].split() == ["REPOSITORY", "TAG", "IMAGE", "ID", "CREATED", "SIZE"]
    rows = {tuple(line.split()[:3]) for line in lines[1:]}
    assert ("alpha", "1", a[7:19]) in rows
    assert ("beta", "latest", b[7:19]) in rows
    assert ("<none>", "<none>", dangling[7:19]) in rows
    assert re.search(r"\d+(\.\d+)?MB$", lines[1])
    assert set(kiste("images", "-q").stdout.split()) == {a[7:19], b[7:19], dangling[7:19]}
    assert set(kiste("images", "-q", "--no-trunc").stdout.split()) == {a, b, dangling}
    fmt = kiste("images", "--format", "{{.Repository}}:{{.Tag}}").stdout.split()
    assert sorted(fmt) == ["<none>:<none>", "alpha:1", "beta:latest"]
    assert kiste("images", "-q", "--filter", "dangling=true").stdout.split() == [dangling[7:19]]
    assert sorted(kiste("images", "-q", "--filter", "dangling=false").stdout.split()) == \
        sorted([a[7:19], b[7:19]])
    assert kiste("images", "--format", "{{.Repository}}", "--filter",
                 "reference=al*").stdout.split() == ["alpha"]
    table = kiste("images", "--format", "table {{.ID}}\\t{{.Tag}}", "beta").stdout.splitlines()
    assert table[0].split() == ["IMAGE", "ID", "TAG"]
    assert table[1].split() == [b[7:19], "latest"]
    p = kiste("images", "--filter", "bogus=1", check=False)
    assert p.returncode != 0


def test_tag_and_rmi(kiste, busybox_tar):
    image_id = kiste("import", busybox_tar, "one").stdout.strip()
    kiste("tag", "one", "two:v2")
    kiste("tag", image_id[7:15], "localhost:5000/three")
    tags = json.loads(kiste("image", "inspect", "one").stdout)[0]["RepoTags"]
    assert sorted(tags) == ["localhost:5000/three:latest", "one:latest", "two:v2"]

    # Several repositories: removing by ID needs -f.
    p = kiste("rmi", image_id[7:19], check=False)
    assert p.returncode == 1
    assert "referenced in multiple repositories" in p.stderr
    # By reference: untag only while other tags remain.
    p = kiste("rmi", "two:v2")
    assert p.stdout == "Untagged: two:v2\n"
    assert kiste("images", "-q").stdout.split() == [image_id[7:19]]
    p = kiste("rmi", "-f", image_id)
    assert "Untagged: one:latest" in p.stdout
    assert "Untagged: localhost:5000/three:latest" in p.stdout
    assert f"Deleted: {image_id}" in p.stdout
    assert kiste("images", "-q").stdout == ""
    # Everything collected: layer directory, blobs.
    assert layer_dirs(kiste.root) == []
    assert list((kiste.root / "blobs" / "sha256").iterdir()) == []

    p = kiste("rmi", "nosuch", check=False)
    assert p.returncode == 1
    assert "No such image: nosuch" in p.stderr
    p = kiste("image", "inspect", "nosuch", check=False)
    assert p.returncode == 1 and "No such image" in p.stderr
    p = kiste("tag", "nosuch", "x", check=False)
    assert p.returncode == 1 and "No such image" in p.stderr


def test_rmi_last_tag_deletes(kiste, busybox_tar):
    image_id = kiste("import", busybox_tar, "solo:1").stdout.strip()
    p = kiste("image", "rm", "solo:1")
    assert p.stdout == f"Untagged: solo:1\nDeleted: {image_id}\n"
    assert layer_dirs(kiste.root) == []


def test_same_tarball_shares_layer(kiste, busybox_tar):
    a = kiste("import", busybox_tar, "a").stdout.strip()
    b = kiste("import", "-c", "CMD sh", busybox_tar, "b").stdout.strip()
    assert a != b
    assert len(layer_dirs(kiste.root)) == 1
    du = int(subprocess.run(["du", "-sb", str(kiste.root / "overlay")], check=True,
                            capture_output=True, text=True).stdout.split()[0])
    assert du < 2 * busybox_tar.stat().st_size
    # The layer stays while an image uses it.
    kiste("rmi", "a")
    assert len(layer_dirs(kiste.root)) == 1
    kiste("rmi", "b")
    assert layer_dirs(kiste.root) == []


def test_history(kiste, busybox_tar):
    image_id = kiste("import", "-m", "a comment", busybox_tar, "h").stdout.strip()
    lines = kiste("history", "h").stdout.splitlines()
    assert lines[0].split() == ["IMAGE", "CREATED", "CREATED", "BY", "SIZE", "COMMENT"]
    assert len(lines) == 2
    assert lines[1].startswith(image_id[7:19])
    assert "kiste import" in lines[1] and "a comment" in lines[1]
    assert kiste("image", "history", "-q", "h").stdout.split() == [image_id[7:19]]


def test_concurrent_imports(kiste, busybox_tar):
    kiste("images")  # create the store first
    with ThreadPoolExecutor(10) as pool:
        procs = list(pool.map(
            lambda i: kiste("import", "-c", f"ENV N={i}", busybox_tar, f"c{i}", check=False),
            range(10)))
    for p in procs:
        assert p.returncode == 0, p.stderr
    ids = {p.stdout.strip() for p in procs}
    assert len(ids) == 10
    assert len(kiste("images", "-q").stdout.split()) == 10
    assert len(layer_dirs(kiste.root)) == 1
    with ThreadPoolExecutor(10) as pool:
        procs = list(pool.map(lambda i: kiste("rmi", f"c{i}", check=False), range(10)))
    for p in procs:
        assert p.returncode == 0, p.stderr
    assert layer_dirs(kiste.root) == []
