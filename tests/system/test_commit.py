"""`kiste commit` as Docker's: the container's image layers shared as they are plus one layer
made from the container's upper directory (whiteouts for what it deleted), the container's
config with --change applied, -m/-a, and a history entry. Private --root and a short private
--runroot under /run, as in test_containers.py, whose fixtures these tests use."""

import json
import sqlite3

from test_containers import Kiste, busybox_tar, kiste  # noqa: F401 (fixtures)


def image(kiste, name):
    return json.loads(kiste("image", "inspect", name).stdout)[0]


def layer_rows(kiste):
    db = sqlite3.connect(f"file:{kiste.root}/kiste.db?mode=ro", uri=True)
    try:
        return {row[0]: row[1] for row in db.execute("SELECT chain_id, parent FROM layers")}
    finally:
        db.close()


def test_commit_adds_one_layer_on_the_base_chain(kiste):
    base = image(kiste, "busybox")
    n = len(base["RootFS"]["Layers"])
    rows_before = layer_rows(kiste)
    kiste("run", "--name", "c1", "busybox", "sh", "-c",
          "echo hello > /new-file && rm /bin/vi && mkdir -p /data && echo x > /data/f")
    new_id = kiste("commit", "-m", "my message", "-a", "Some Body <sb@example.org>",
                   "-c", 'CMD ["cat", "/new-file"]', "c1", "committed:1").stdout.strip()
    assert new_id.startswith("sha256:")
    img = image(kiste, "committed:1")
    assert img["Id"] == new_id
    layers = img["RootFS"]["Layers"]
    assert len(layers) == n + 1
    assert layers[:n] == base["RootFS"]["Layers"]
    assert img["Author"] == "Some Body <sb@example.org>"
    assert img["Comment"] == "my message"
    assert img["Config"]["Cmd"] == ["cat", "/new-file"]

    # The base's layers are shared, not copied: exactly one new layer row, on the base's top.
    rows = layer_rows(kiste)
    added = set(rows) - set(rows_before)
    assert len(added) == 1
    (top,) = added
    base_top = [c for c in rows_before if c not in set(rows_before.values())]
    assert rows[top] in base_top

    # A history entry: the container's command, the message.
    out = kiste("history", "--no-trunc", "committed:1").stdout.splitlines()
    assert len(out) == 1 + len(base["RootFS"]["Layers"]) + 1
    assert "my message" in out[1] and "echo hello" in out[1]

def test_committed_image_runs_with_the_change_and_the_deletion(kiste):
    kiste("run", "--name", "c2", "busybox", "sh", "-c",
          "echo hello > /new-file && rm /bin/vi && rm -r /home && mkdir /home && echo y > /home/only")
    kiste("commit", "-c", 'CMD ["cat", "/new-file"]', "c2", "committed:2")
    # -c CMD applies: no command given, the committed CMD runs.
    assert kiste("run", "--rm", "committed:2").stdout == "hello\n"
    # A deleted file stays deleted (a whiteout), a replaced directory is opaque.
    p = kiste("run", "--rm", "committed:2", "sh", "-c",
              "ls /bin/vi; echo rc=$?; ls /home", check=False)
    assert "rc=1" in p.stdout or "rc=2" in p.stdout, p.stdout + p.stderr
    assert p.stdout.split("rc=")[1].split("\n", 1)[1].split() == ["only"]
    # The base image still has what the container deleted.
    assert kiste("run", "--rm", "busybox", "ls", "/bin/vi").returncode == 0


def test_commit_keeps_the_container_config_and_env_change(kiste):
    kiste("create", "--name", "c3", "-e", "FOO=bar", "-w", "/tmp", "busybox",
          "sh", "-c", "echo $FOO $BAZ; pwd")
    kiste("commit", "--change", "ENV BAZ=qux", "c3", "committed:3")
    img = image(kiste, "committed:3")
    env = img["Config"]["Env"]
    assert "FOO=bar" in env and "BAZ=qux" in env
    assert img["Config"]["WorkingDir"] == "/tmp"
    assert kiste("run", "--rm", "committed:3").stdout == "bar qux\n/tmp\n"


def test_commit_running_container_pauses_and_resumes(kiste):
    kiste("run", "-d", "--name", "c4", "busybox", "sh", "-c",
          "echo live > /live; while :; do sleep 1; done")
    for _ in range(50):
        if kiste("exec", "c4", "cat", "/live", check=False).stdout == "live\n":
            break
    kiste("commit", "c4", "committed:4")
    assert kiste.state("c4")["Status"] == "running"
    assert kiste("run", "--rm", "committed:4", "cat", "/live").stdout == "live\n"
    kiste("rm", "-f", "c4")
