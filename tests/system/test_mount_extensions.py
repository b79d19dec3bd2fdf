"""Mount extensions: idmapped bind mounts and tmpcopyup."""

import os
import shutil

import pytest


def test_idmapped_bind_mount_shifts_ownership(bundle, tmp_path):
    src = tmp_path / "idsrc"
    src.mkdir()
    (src / "f").write_text("x")
    os.chown(src / "f", 0, 0)
    bundle.config["mounts"].append({
        "destination": "/mnt/id", "type": "bind", "source": str(src),
        "options": ["bind", "idmap"],
        "uidMappings": [{"containerID": 0, "hostID": 1000, "size": 1}],
        "gidMappings": [{"containerID": 0, "hostID": 2000, "size": 1}],
    })
    p = bundle.run(["stat", "-c", "%u:%g", "/mnt/id/f"])
    assert p.returncode == 0, p.stderr
    assert p.stdout.strip() == "1000:2000"
    # The file on the host keeps its owner.
    st = os.stat(src / "f")
    assert (st.st_uid, st.st_gid) == (0, 0)


def test_idmap_without_mappings_is_an_error(bundle, tmp_path, state_root):
    bundle.config["mounts"].append({"destination": "/mnt/id", "type": "bind",
                                    "source": str(tmp_path), "options": ["bind", "idmap"]})
    p = bundle.run(["true"])
    assert p.returncode == 1
    assert "idmap needs uidMappings" in p.stderr
    assert list(state_root.iterdir()) == []


def test_tmpcopyup_fills_tmpfs_from_covered_directory(bundle, tmp_path, busybox_rootfs):
    rootfs = tmp_path / "rootfs"
    shutil.copytree(busybox_rootfs, rootfs, symlinks=True)
    (rootfs / "data").mkdir()
    (rootfs / "data" / "sub").mkdir()
    (rootfs / "data" / "sub" / "file").write_text("content\n")
    os.symlink("sub/file", rootfs / "data" / "link")
    os.chmod(rootfs / "data" / "sub" / "file", 0o640)
    bundle.config["root"]["path"] = str(rootfs)
    bundle.config["mounts"].append({"destination": "/data", "type": "tmpfs", "source": "tmpfs",
                                    "options": ["tmpcopyup", "ro"]})
    p = bundle.run(["sh", "-c", "cat /data/link; stat -c %a /data/sub/file; "
                    "grep ' /data ' /proc/mounts | cut -d' ' -f3,4; touch /data/x || echo ro"])
    assert p.returncode == 0, p.stderr
    lines = p.stdout.splitlines()
    assert lines[0] == "content"
    assert lines[1] == "640"
    assert lines[2].startswith("tmpfs ro")
    assert lines[3] == "ro"
    # The rootfs underneath is untouched.
    assert not (rootfs / "data" / "x").exists()
