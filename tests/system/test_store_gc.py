"""The store's collector: layer directories under <root>/overlay that no layer and no
container names (an import killed between unpacking and recording leaves one) and their
dangling l/ short links go with `kiste image prune`; a container's snapshot and the image's
layers stay. Private --root and runroot, as in test_containers.py, whose fixtures these use."""

import os
import signal
import subprocess
import time

from test_containers import Kiste, busybox_tar, kiste  # noqa: F401 (fixtures)


def overlay_dirs(kiste):
    return sorted(p for p in os.listdir(kiste.root / "overlay") if p != "l")


def short_links(kiste):
    return sorted(os.listdir(kiste.root / "overlay" / "l"))


def test_prune_sweeps_stray_layer_dirs_and_keeps_snapshots(kiste):
    kiste("create", "--name", "keep", "busybox", "true")
    before_dirs, before_links = overlay_dirs(kiste), short_links(kiste)
    assert len(before_dirs) == 2  # the image's layer and the container's snapshot

    # A stray as an interrupted import leaves it: a layer directory with its short link.
    stray = "f" * 64
    os.makedirs(kiste.root / "overlay" / stray / "diff" / "usr")
    (kiste.root / "overlay" / stray / "diff" / "usr" / "file").write_text("x")
    (kiste.root / "overlay" / stray / "link").write_text("STRAYSTRAYSTRAYSTRAYSTRAY")
    os.symlink(f"../{stray}/diff", kiste.root / "overlay" / "l" / "STRAYSTRAYSTRAYSTRAYSTRAY")
    # A dangling short link whose directory is already gone.
    os.symlink("../" + "e" * 64 + "/diff", kiste.root / "overlay" / "l" / "DANGLINGDANGLINGDANGLING0")

    kiste("image", "prune")
    assert overlay_dirs(kiste) == before_dirs
    assert short_links(kiste) == before_links
    # What is kept still works.
    kiste("start", "-a", "keep")
    assert kiste("run", "--rm", "busybox", "echo", "ok").stdout == "ok\n"


def test_prune_sweeps_what_a_killed_import_left(kiste, busybox_tar, tmp_path):
    before = overlay_dirs(kiste)
    # An import whose input never ends: killed once its layer directory exists.
    p = subprocess.Popen(kiste.argv("import", "-", "half"), stdin=subprocess.PIPE,
                         stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    data = busybox_tar.read_bytes()
    p.stdin.write(data[: len(data) // 2])
    p.stdin.flush()
    deadline = time.monotonic() + 20
    while len(overlay_dirs(kiste)) == len(before) and time.monotonic() < deadline:
        time.sleep(0.05)
    time.sleep(0.2)
    p.send_signal(signal.SIGKILL)
    p.wait()
    p.stdin.close()
    assert len(overlay_dirs(kiste)) == len(before) + 1
    assert "half" not in kiste("images").stdout
    kiste("image", "prune")
    assert overlay_dirs(kiste) == before
    assert kiste("run", "--rm", "busybox", "echo", "ok").stdout == "ok\n"
