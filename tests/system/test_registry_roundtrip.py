"""kiste's registry client against kiste's own registry server: login, push, tag, search, pull,
run and logout through `kiste registry serve` with basic auth, as a user of both would."""
import json

from test_registry_client import busybox_tar, kiste  # noqa: F401  (fixtures)
from test_registry_server import Registry, htpasswd_file


def test_login_push_search_pull_run_logout(kiste, tmp_path):  # noqa: F811
    reg = Registry(tmp_path / "reg", "--htpasswd", htpasswd_file(tmp_path / "htpasswd")).start()
    try:
        ref = f"{reg.host}/team/busybox:1"
        kiste("tag", "busybox", ref)
        # Without credentials the server refuses the push.
        p = kiste("push", ref, check=False)
        assert p.returncode != 0 and ("401" in p.stderr or "auth" in p.stderr.lower()), p.stderr

        p = kiste("login", "-u", "alice", "--password-stdin", reg.host, input="wrong\n",
                  check=False)
        assert p.returncode != 0
        kiste("login", "-u", "alice", "--password-stdin", reg.host, input="s3cret\n")
        auths = json.loads((tmp_path / "docker-config" / "config.json").read_text())["auths"]
        assert reg.host in auths

        out = kiste("push", ref).stdout
        assert "digest: sha256:" in out
        pushed = out.split("digest: ")[1].split()[0]
        kiste("tag", ref, f"{reg.host}/team/busybox:2")
        kiste("push", f"{reg.host}/team/busybox:2")

        found = kiste("search", f"{reg.host}/busybox", "--format", "{{.Name}}").stdout.split()
        assert any(n.endswith("team/busybox") for n in found), found

        kiste("rmi", ref, f"{reg.host}/team/busybox:2")
        kiste("pull", ref)
        repo_digests = json.loads(kiste("image", "inspect", ref).stdout)[0]["RepoDigests"]
        assert f"{reg.host}/team/busybox@{pushed}" in repo_digests, repo_digests
        assert kiste("run", "--rm", "--network", "none", ref, "echo", "pulled").stdout == \
            "pulled\n"

        kiste("logout", reg.host)
        auths = json.loads((tmp_path / "docker-config" / "config.json").read_text())
        assert reg.host not in auths.get("auths", {})
        kiste("rmi", ref)
        p = kiste("pull", ref, check=False)
        assert p.returncode != 0
    finally:
        reg.stop()
