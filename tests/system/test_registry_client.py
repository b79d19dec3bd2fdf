"""The registry client (pull, push, login, logout, search) against Debian's docker-registry 2.8
on 127.0.0.1, plain, with htpasswd basic auth, with TLS from a test CA, behind a bearer-token
proxy with a token service written here, and behind a proxy that breaks a blob download half
way; plus skopeo (and podman when it works) as peers. Every registry is started with a config
of the test's own (storage in the test's temporary directory, a free port) and stopped at the
end; every `kiste run` uses --network none."""

import base64
import gzip
import hashlib
import http.client
import http.server
import io
import json
import os
import shutil
import socket
import subprocess
import tarfile
import tempfile
import threading
import time
from pathlib import Path

import pytest

from conftest import KISTE, run_captured, wait_for, KisteCli, busybox_tar  # noqa: F401 (busybox_tar: a fixture)

REGISTRY = shutil.which("docker-registry")
SKOPEO = shutil.which("skopeo")
PODMAN = shutil.which("podman")
OPENSSL = shutil.which("openssl")

pytestmark = pytest.mark.skipif(REGISTRY is None, reason="docker-registry is not installed")


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]




class Kiste(KisteCli):
    timeout = 120

    def __init__(self, tmp: Path):
        env = dict(os.environ)
        env["DOCKER_CONFIG"] = str(tmp / "docker-config")
        env["KISTE_CERTS_D"] = str(tmp / "certs.d")
        env["HOME"] = str(tmp / "home")
        env.pop("KISTE_INSECURE_REGISTRIES", None)
        super().__init__(tmp / "root", Path(tempfile.mkdtemp(prefix="kr-", dir="/run")), env)

    def images(self):
        return self("images", "--format", "{{.Repository}}:{{.Tag}}").stdout.split()


@pytest.fixture
def kiste(tmp_path, busybox_tar):
    k = Kiste(tmp_path)
    k("import", busybox_tar, "busybox")
    yield k
    ids = k("ps", "-aq", "--no-trunc", check=False).stdout.split()
    if ids:
        k("rm", "-f", *ids, check=False)
    shutil.rmtree(k.runroot, ignore_errors=True)


class Registry:
    """docker-registry serving from a directory of the test, on a free port."""

    def __init__(self, tmp: Path, extra=""):
        self.dir = tmp / f"registry-{free_port()}"
        self.dir.mkdir()
        self.storage = self.dir / "storage"
        self.port = free_port()
        self.host = f"127.0.0.1:{self.port}"
        conf = self.dir / "config.yml"
        conf.write_text(f"""version: 0.1
log:
  level: error
storage:
  filesystem:
    rootdirectory: {self.storage}
  delete:
    enabled: true
http:
  addr: 127.0.0.1:{self.port}
{extra}""")
        self.log = open(self.dir / "log", "w")
        self.proc = subprocess.Popen([REGISTRY, "serve", str(conf)], stdout=self.log,
                                     stderr=subprocess.STDOUT)
        wait_for(self.listening, timeout=20)

    def listening(self):
        assert self.proc.poll() is None, (self.dir / "log").read_text()
        with socket.socket() as s:
            return s.connect_ex(("127.0.0.1", self.port)) == 0

    def stop(self):
        self.proc.terminate()
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        self.log.close()

    def blob_path(self, digest):
        hexd = digest.split(":")[1]
        return self.storage / "docker/registry/v2/blobs/sha256" / hexd[:2] / hexd / "data"


@pytest.fixture
def registry(tmp_path):
    regs = []

    def start(extra=""):
        r = Registry(tmp_path, extra)
        regs.append(r)
        return r

    yield start
    for r in regs:
        r.stop()


def manifest_of(host, repo, ref, scheme="http"):
    conn = http.client.HTTPConnection(host, timeout=10)
    conn.request("GET", f"/v2/{repo}/manifests/{ref}", headers={
        "Accept": "application/vnd.oci.image.manifest.v1+json, "
                  "application/vnd.docker.distribution.manifest.v2+json"})
    r = conn.getresponse()
    body = r.read()
    assert r.status == 200, body
    return json.loads(body), "sha256:" + hashlib.sha256(body).hexdigest()


# --- plain HTTP ---


def test_push_pull_run_plain_http(kiste, registry):
    reg = registry()
    ref = f"{reg.host}/test/busybox:v1"
    kiste("tag", "busybox", ref)
    p = kiste("push", ref)
    assert f"The push refers to repository [{reg.host}/test/busybox]" in p.stdout
    assert "Pushed" in p.stdout
    last = p.stdout.strip().splitlines()[-1]
    assert last.startswith("v1: digest: sha256:") and " size: " in last
    pushed_digest = last.split()[2]
    m, digest = manifest_of(reg.host, "test/busybox", "v1")
    assert digest == pushed_digest
    assert m["mediaType"] == "application/vnd.oci.image.manifest.v1+json"
    assert m["layers"][0]["mediaType"] == "application/vnd.oci.image.layer.v1.tar"
    # Pushing again finds every blob there.
    p = kiste("push", ref)
    assert "Layer already exists" in p.stdout and "Pushed" not in p.stdout

    kiste("rmi", ref, "busybox")
    assert kiste.images() == []
    p = kiste("pull", ref)
    assert "v1: Pulling from test/busybox" in p.stdout
    assert "Pull complete" in p.stdout
    assert f"Digest: {digest}" in p.stdout
    assert f"Status: Downloaded newer image for {ref}" in p.stdout
    assert p.stdout.strip().splitlines()[-1] == ref
    assert ref in kiste.images()
    d = kiste("images", "--digests", "--format", "{{.Digest}}").stdout.split()
    assert digest in d
    r = kiste("run", "--rm", "--network", "none", ref, "sh", "-c", "echo pulled-ok")
    assert r.stdout.strip() == "pulled-ok"
    p = kiste("pull", ref)
    assert "Already exists" in p.stdout
    assert f"Status: Image is up to date for {ref}" in p.stdout
    # By digest too.
    p = kiste("pull", "-q", f"{reg.host}/test/busybox@{digest}")
    assert p.stdout.strip() == f"{reg.host}/test/busybox@{digest}"
    # Every tag of the repository with -a.
    kiste("tag", ref, f"{reg.host}/test/busybox:v2")
    kiste("push", f"{reg.host}/test/busybox:v2")
    kiste("rmi", ref, f"{reg.host}/test/busybox:v2")
    p = kiste("pull", "-a", f"{reg.host}/test/busybox")
    assert {ref, f"{reg.host}/test/busybox:v2"} <= set(kiste.images())
    p = kiste("pull", "-a", ref, check=False)
    assert p.returncode == 1 and "tag can't be used" in p.stderr


def test_cross_repository_mount_and_chunked_upload(kiste, registry, tmp_path, busybox_tar):
    reg = registry()
    ref = f"{reg.host}/a/one:1"
    kiste("tag", "busybox", ref)
    # Small chunks: the layer goes up in many PATCH requests.
    p = kiste("push", ref, env={"KISTE_PUSH_CHUNK_SIZE": "65536"})
    assert "Pushed" in p.stdout
    _, d1 = manifest_of(reg.host, "a/one", "1")
    # The store now knows the blobs are in a/one: pushing to b/two mounts them.
    kiste("tag", "busybox", f"{reg.host}/b/two:2")
    p = kiste("push", f"{reg.host}/b/two:2")
    assert "Mounted from a/one" in p.stdout, p.stdout
    _, d2 = manifest_of(reg.host, "b/two", "2")
    assert d1 == d2
    # A separate store pulls what the chunked upload put there, and runs it.
    other = Kiste(tmp_path / "other")
    try:
        other("pull", ref)
        assert other("run", "--rm", "--network", "none", ref, "cat", "/etc/group").stdout
    finally:
        shutil.rmtree(other.runroot, ignore_errors=True)


def test_run_and_create_pull_missing(kiste, registry):
    reg = registry()
    ref = f"{reg.host}/test/runme:latest"
    kiste("tag", "busybox", ref)
    kiste("push", ref)
    kiste("rmi", ref)
    p = kiste("run", "--pull", "never", "--rm", "--network", "none", ref, "true", check=False)
    assert p.returncode == 125 and "No such image" in p.stderr
    p = kiste("run", "--rm", "--network", "none", ref, "echo", "auto")
    assert p.stdout.strip() == "auto"
    assert f"Unable to find image '{ref}' locally" in p.stderr
    assert "Already exists" in p.stderr  # busybox's layer is in the store
    assert f"Status: Downloaded newer image for {ref}" in p.stderr
    p = kiste("run", "--rm", "--network", "none", "--pull", "always", ref, "echo", "again")
    assert "Image is up to date" in p.stderr and p.stdout.strip() == "again"
    kiste("rmi", ref)
    cid = kiste("create", "--network", "none", ref, "true").stdout.strip().splitlines()[-1]
    assert len(cid) == 64
    kiste("rm", cid)


def test_pull_errors(kiste, registry):
    reg = registry()
    p = kiste("pull", f"{reg.host}/nothing/here:v9", check=False)
    assert p.returncode == 1
    assert "manifest unknown" in p.stderr.lower()
    # An unreachable registry is a clear error, not a hang.
    p = kiste("pull", f"127.0.0.1:{free_port()}/x:y", check=False)
    assert p.returncode == 1 and "Error:" in p.stderr
    assert kiste.images() == ["busybox:latest"]


def test_corrupted_blob_refused_nothing_recorded(kiste, registry):
    reg = registry()
    ref = f"{reg.host}/test/corrupt:v1"
    kiste("tag", "busybox", ref)
    kiste("push", ref)
    m, _ = manifest_of(reg.host, "test/corrupt", "v1")
    kiste("rmi", ref, "busybox")
    overlay = kiste.root / "overlay"
    before = sorted(os.listdir(overlay)) if overlay.exists() else []
    data = reg.blob_path(m["layers"][0]["digest"])
    raw = bytearray(data.read_bytes())
    raw[len(raw) // 2] ^= 0xFF  # same size, other content
    data.write_bytes(bytes(raw))
    p = kiste("pull", ref, check=False)
    assert p.returncode == 1
    assert "digest mismatch" in p.stderr, p.stderr
    assert kiste.images() == []
    assert kiste("images", "-aq").stdout.strip() == ""
    after = sorted(os.listdir(overlay)) if overlay.exists() else []
    assert after == before


# --- search ---


def test_search_catalog_fallback(kiste, registry):
    reg = registry()
    for repo in ("team/busybox", "team/other", "busybox-mirror"):
        kiste("tag", "busybox", f"{reg.host}/{repo}:1")
        kiste("push", f"{reg.host}/{repo}:1")
    p = kiste("search", f"{reg.host}/busybox")
    lines = p.stdout.strip().splitlines()
    assert lines[0].split() == ["NAME", "DESCRIPTION", "STARS", "OFFICIAL", "AUTOMATED"]
    names = sorted(line.split()[0] for line in lines[1:])
    assert names == [f"{reg.host}/busybox-mirror", f"{reg.host}/team/busybox"]
    p = kiste("search", "--limit", "1", "--format", "{{.Name}}", f"{reg.host}/busybox")
    assert len(p.stdout.split()) == 1
    p = kiste("search", "--filter", "stars=3", f"{reg.host}/busybox")
    assert len(p.stdout.strip().splitlines()) == 1
    p = kiste("search", "--filter", "bogus=1", f"{reg.host}/busybox", check=False)
    assert p.returncode == 1


# --- basic auth ---


def htpasswd_line(user, password):
    if shutil.which("htpasswd"):
        out = subprocess.run(["htpasswd", "-nbB", user, password], check=True,
                             capture_output=True, text=True).stdout
        return out.strip()
    import warnings
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        import crypt
    return f"{user}:{crypt.crypt(password, crypt.mksalt(crypt.METHOD_BLOWFISH))}"


def test_basic_auth_login_logout(kiste, registry, tmp_path):
    htp = tmp_path / "htpasswd"
    htp.write_text(htpasswd_line("alice", "s3cret") + "\n")
    reg = registry(f"""auth:
  htpasswd:
    realm: kiste-test
    path: {htp}
""")
    cfg_dir = Path(kiste.env["DOCKER_CONFIG"])
    cfg_dir.mkdir()
    (cfg_dir / "config.json").write_text(json.dumps({"psFormat": "table {{.ID}}",
                                                     "auths": {"other.example": {"auth": "eDp5"}}}))
    ref = f"{reg.host}/private/busybox:1"
    kiste("tag", "busybox", ref)
    p = kiste("push", ref, check=False)
    assert p.returncode == 1 and "unauthorized" in p.stderr.lower()
    p = kiste("login", "-u", "alice", "--password-stdin", reg.host, input="wrong\n", check=False)
    assert p.returncode == 1 and "login" in p.stderr.lower()
    cfg = json.loads((cfg_dir / "config.json").read_text())
    assert reg.host not in cfg["auths"]
    p = kiste("login", "-u", "alice", "--password-stdin", reg.host, input="s3cret\n")
    assert "Login Succeeded" in p.stdout
    cfg = json.loads((cfg_dir / "config.json").read_text())
    assert base64.b64decode(cfg["auths"][reg.host]["auth"]) == b"alice:s3cret"
    assert cfg["psFormat"] == "table {{.ID}}"
    assert cfg["auths"]["other.example"] == {"auth": "eDp5"}
    assert (cfg_dir / "config.json").stat().st_mode & 0o077 == 0
    kiste("push", ref)
    kiste("rmi", ref)
    kiste("pull", ref)
    p = kiste("logout", reg.host)
    assert f"Removing login credentials for {reg.host}" in p.stdout
    cfg = json.loads((cfg_dir / "config.json").read_text())
    assert reg.host not in cfg["auths"] and "other.example" in cfg["auths"]
    assert "Not logged in" in kiste("logout", reg.host).stdout
    kiste("rmi", ref)
    p = kiste("pull", ref, check=False)
    assert p.returncode == 1 and "unauthorized" in p.stderr.lower()


def test_credential_helper(kiste, registry, tmp_path):
    """credHelpers: docker-credential-<name> get/store/erase on stdin/stdout."""
    htp = tmp_path / "htpasswd"
    htp.write_text(htpasswd_line("bob", "pw2") + "\n")
    reg = registry(f"""auth:
  htpasswd:
    realm: kiste-test
    path: {htp}
""")
    bindir = tmp_path / "bin"
    bindir.mkdir()
    store = tmp_path / "helper-store.json"
    helper = bindir / "docker-credential-kistetest"
    helper.write_text(f"""#!/usr/bin/python3
import json, sys
path = {str(store)!r}
try:
    db = json.load(open(path))
except Exception:
    db = {{}}
verb = sys.argv[1]
data = sys.stdin.read()
if verb == "store":
    o = json.loads(data)
    db[o["ServerURL"]] = [o["Username"], o["Secret"]]
elif verb == "get":
    if data.strip() not in db:
        print("credentials not found in native keychain")
        sys.exit(1)
    u, s = db[data.strip()]
    print(json.dumps({{"ServerURL": data.strip(), "Username": u, "Secret": s}}))
elif verb == "erase":
    db.pop(data.strip(), None)
json.dump(db, open(path, "w"))
""")
    helper.chmod(0o755)
    cfg_dir = Path(kiste.env["DOCKER_CONFIG"])
    cfg_dir.mkdir()
    (cfg_dir / "config.json").write_text(json.dumps({"credHelpers": {reg.host: "kistetest"}}))
    env = {"PATH": f"{bindir}:{os.environ['PATH']}"}
    kiste("login", "-u", "bob", "--password-stdin", reg.host, input="pw2\n", env=env)
    assert json.loads(store.read_text())[reg.host] == ["bob", "pw2"]
    cfg = json.loads((cfg_dir / "config.json").read_text())
    assert cfg["auths"][reg.host] == {}  # listed, no secret in the file
    ref = f"{reg.host}/helper/busybox:1"
    kiste("tag", "busybox", ref)
    kiste("push", ref, env=env)
    kiste("logout", reg.host, env=env)
    assert reg.host not in json.loads(store.read_text())


# --- TLS ---


def make_ca(d: Path, name):
    d.mkdir(parents=True, exist_ok=True)
    subprocess.run([OPENSSL, "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
                    "-subj", f"/CN={name}", "-keyout", d / "ca.key", "-out", d / "ca.crt"],
                   check=True, capture_output=True)
    return d / "ca.crt", d / "ca.key"


def make_server_cert(d: Path, ca_crt, ca_key):
    ext = d / "ext.cnf"
    ext.write_text("subjectAltName=IP:127.0.0.1,DNS:localhost\n")
    subprocess.run([OPENSSL, "req", "-newkey", "rsa:2048", "-nodes", "-subj", "/CN=127.0.0.1",
                    "-keyout", d / "server.key", "-out", d / "server.csr"],
                   check=True, capture_output=True)
    subprocess.run([OPENSSL, "x509", "-req", "-in", d / "server.csr", "-CA", ca_crt, "-CAkey",
                    ca_key, "-CAcreateserial", "-days", "2", "-extfile", ext, "-out",
                    d / "server.crt"], check=True, capture_output=True)
    return d / "server.crt", d / "server.key"


@pytest.mark.skipif(OPENSSL is None, reason="openssl is not installed")
def test_tls_with_test_ca(kiste, registry, tmp_path):
    ca_crt, ca_key = make_ca(tmp_path / "ca", "kiste test CA")
    crt, key = make_server_cert(tmp_path / "ca", ca_crt, ca_key)
    reg = registry(f"""  tls:
    certificate: {crt}
    key: {key}
""")
    ref = f"{reg.host}/tls/busybox:1"
    kiste("tag", "busybox", ref)
    # A certs.d directory for the registry means its certificate is checked: against a CA
    # that did not sign it, the push fails.
    wrong, _ = make_ca(tmp_path / "wrong", "another CA")
    certs = Path(kiste.env["KISTE_CERTS_D"]) / reg.host
    certs.mkdir(parents=True)
    shutil.copy(wrong, certs / "ca.crt")
    p = kiste("push", ref, check=False)
    assert p.returncode == 1 and "certificate" in p.stderr.lower(), p.stderr
    shutil.copy(ca_crt, certs / "ca.crt")
    kiste("push", ref)
    kiste("rmi", ref)
    kiste("pull", ref)
    assert kiste("run", "--rm", "--network", "none", ref, "echo", "tls").stdout.strip() == "tls"
    # A registry that wants a client certificate gets the certs.d's *.cert and *.key.
    d = tmp_path / "ca"
    subprocess.run([OPENSSL, "req", "-newkey", "rsa:2048", "-nodes", "-subj", "/CN=client",
                    "-keyout", d / "client.key", "-out", d / "client.csr"],
                   check=True, capture_output=True)
    subprocess.run([OPENSSL, "x509", "-req", "-in", d / "client.csr", "-CA", ca_crt, "-CAkey",
                    ca_key, "-CAcreateserial", "-days", "2", "-out", d / "client.cert"],
                   check=True, capture_output=True)
    mtls = registry(f"""  tls:
    certificate: {crt}
    key: {key}
    clientcas:
      - {ca_crt}
""")
    mcerts = Path(kiste.env["KISTE_CERTS_D"]) / mtls.host
    mcerts.mkdir(parents=True)
    shutil.copy(ca_crt, mcerts / "ca.crt")
    mref = f"{mtls.host}/mtls/busybox:1"
    kiste("tag", "busybox", mref)
    p = kiste("push", mref, check=False)
    assert p.returncode == 1
    shutil.copy(d / "client.cert", mcerts / "client.cert")
    shutil.copy(d / "client.key", mcerts / "client.key")
    kiste("push", mref)
    # Over plain HTTP the TLS registry cannot be spoken to at all.
    conn = http.client.HTTPConnection(reg.host, timeout=5)
    conn.request("GET", "/v2/")
    assert conn.getresponse().status == 400


# --- bearer tokens ---


class TokenProxy:
    """A registry front that demands bearer tokens, and the token service that issues them:
    tokens are bound to the scope asked for; pushing needs the basic credentials."""

    def __init__(self, upstream, user="carol", password="tok3n"):
        self.upstream = upstream
        self.tokens = {}  # token -> scope
        self.token_requests = []
        self.user, self.password = user, password
        self.port = free_port()
        self.host = f"127.0.0.1:{self.port}"
        proxy = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *a):
                pass

            def token(self):
                q = dict(p.split("=", 1) for p in self.path.split("?", 1)[1].split("&"))
                from urllib.parse import unquote
                scope = unquote(q.get("scope", ""))
                authz = self.headers.get("Authorization", "")
                ok_user = authz == "Basic " + base64.b64encode(
                    f"{proxy.user}:{proxy.password}".encode()).decode()
                proxy.token_requests.append((unquote(q.get("service", "")), scope, ok_user))
                if "push" in scope and not ok_user:
                    return self.reply(401, b'{"details":"bad credentials"}')
                tok = base64.b64encode(os.urandom(18)).decode()
                proxy.tokens[tok] = scope
                body = json.dumps({"access_token": tok, "expires_in": 300}).encode()
                return self.reply(200, body, {"Content-Type": "application/json"})

            def reply(self, status, body, headers=None):
                self.send_response(status)
                for k, v in (headers or {}).items():
                    self.send_header(k, v)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                if self.command != "HEAD":
                    self.wfile.write(body)

            def allowed(self):
                path = self.path.split("?")[0]
                if path == "/v2/" or not path.startswith("/v2/"):
                    need = None
                else:
                    repo = path[4:].rsplit("/blobs/", 1)[0].rsplit("/manifests/", 1)[0]
                    repo = repo.rsplit("/tags/", 1)[0]
                    need = f"repository:{repo}:" + (
                        "pull" if self.command in ("GET", "HEAD") else "push")
                authz = self.headers.get("Authorization", "")
                scope = proxy.tokens.get(authz[7:]) if authz.startswith("Bearer ") else None
                if scope is not None and (need is None or need.rsplit(":", 1)[0] in scope and
                                          need.rsplit(":", 1)[1] in scope):
                    return True
                chal = (f'Bearer realm="http://{proxy.host}/token",service="kiste-test"')
                if need:
                    chal += f',scope="{need}"'
                self.reply(401, b'{"errors":[{"code":"UNAUTHORIZED","message":"token needed"}]}',
                           {"WWW-Authenticate": chal, "Content-Type": "application/json"})
                return False

            def forward(self):
                if self.path.startswith("/token"):
                    return self.token()
                if not self.allowed():
                    return
                n = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(n) if n else None
                c = http.client.HTTPConnection(proxy.upstream, timeout=30)
                hdrs = {k: v for k, v in self.headers.items()
                        if k.lower() not in ("authorization", "host", "connection")}
                hdrs["Host"] = proxy.host
                c.request(self.command, self.path, body=body, headers=hdrs)
                r = c.getresponse()
                data = r.read()
                self.send_response(r.status)
                for k, v in r.getheaders():
                    if k.lower() not in ("content-length", "connection", "transfer-encoding"):
                        self.send_header(k, v)
                self.send_header("Content-Length", str(len(data) if self.command != "HEAD"
                                                       else r.getheader("Content-Length", "0")))
                self.end_headers()
                if self.command != "HEAD":
                    self.wfile.write(data)
                c.close()

            do_GET = do_HEAD = do_PUT = do_POST = do_PATCH = do_DELETE = forward

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def stop(self):
        self.server.shutdown()
        self.server.server_close()


def test_bearer_token_flow(kiste, registry):
    reg = registry()
    proxy = TokenProxy(reg.host)
    try:
        ref = f"{proxy.host}/tok/busybox:1"
        kiste("tag", "busybox", ref)
        p = kiste("push", ref, check=False)
        assert p.returncode == 1 and "bad credentials" in p.stderr, p.stderr
        kiste("login", "-u", "carol", "--password-stdin", proxy.host, input="tok3n\n")
        proxy.token_requests.clear()
        kiste("push", ref)
        assert ("kiste-test", "repository:tok/busybox:pull,push", True) in proxy.token_requests
        # One token per scope for the whole push: it is cached until it expires.
        pushes = [t for t in proxy.token_requests if t[1] == "repository:tok/busybox:pull,push"]
        assert len(pushes) == 1, proxy.token_requests
        kiste("logout", proxy.host)
        kiste("rmi", ref)
        # Anonymous pull: the token service gives pull tokens to anyone.
        proxy.token_requests.clear()
        kiste("pull", ref)
        assert proxy.token_requests == [("kiste-test", "repository:tok/busybox:pull", False)]
        out = kiste("run", "--rm", "--network", "none", ref, "echo", "bearer").stdout
        assert out.strip() == "bearer"
    finally:
        proxy.stop()


# --- an interrupted download resumes ---


class CuttingProxy:
    """Forwards to a registry; the first GET of a large blob is cut off half way (the full
    Content-Length announced, half the bytes sent, the connection closed). Range headers of
    the requests are recorded."""

    def __init__(self, upstream):
        self.upstream = upstream
        self.cut = 0
        self.ranges = []
        self.port = free_port()
        self.host = f"127.0.0.1:{self.port}"
        proxy = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *a):
                pass

            def handle_any(self):
                n = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(n) if n else None
                hdrs = {k: v for k, v in self.headers.items()
                        if k.lower() not in ("host", "connection")}
                hdrs["Host"] = proxy.host
                if "/blobs/sha256:" in self.path and self.command == "GET":
                    proxy.ranges.append(self.headers.get("Range"))
                c = http.client.HTTPConnection(proxy.upstream, timeout=30)
                c.request(self.command, self.path, body=body, headers=hdrs)
                r = c.getresponse()
                data = r.read()
                c.close()
                cut = (self.command == "GET" and "/blobs/sha256:" in self.path and
                       r.status == 200 and len(data) > 100000 and proxy.cut == 0)
                self.send_response(r.status)
                for k, v in r.getheaders():
                    if k.lower() not in ("content-length", "connection", "transfer-encoding"):
                        self.send_header(k, v)
                self.send_header("Content-Length", str(len(data) if self.command != "HEAD"
                                                       else r.getheader("Content-Length", "0")))
                self.end_headers()
                if self.command == "HEAD":
                    return
                if cut:
                    proxy.cut = len(data) // 2
                    self.wfile.write(data[:proxy.cut])
                    self.wfile.flush()
                    self.close_connection = True
                    self.connection.shutdown(socket.SHUT_RDWR)
                    return
                self.wfile.write(data)

            do_GET = do_HEAD = do_PUT = do_POST = do_PATCH = handle_any

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def stop(self):
        self.server.shutdown()
        self.server.server_close()


def test_interrupted_download_resumes_with_range(kiste, registry):
    reg = registry()
    direct = f"{reg.host}/cut/busybox:1"
    kiste("tag", "busybox", direct)
    kiste("push", direct)
    kiste("rmi", direct, "busybox")
    proxy = CuttingProxy(reg.host)
    try:
        ref = f"{proxy.host}/cut/busybox:1"
        p = kiste("pull", ref)
        assert proxy.cut > 0, "the proxy never cut a download"
        assert f"bytes={proxy.cut}-" in proxy.ranges, proxy.ranges
        assert "Retrying" in p.stdout
        out = kiste("run", "--rm", "--network", "none", ref, "echo", "resumed").stdout
        assert out.strip() == "resumed"
    finally:
        proxy.stop()


# --- replies no registry should give ---


def bad_image(layer_size_delta, not_a_tar=False):
    """A manifest, config and layer whose descriptor says the layer is layer_size_delta bytes
    longer (or, negative, shorter) than what is served; with not_a_tar, a layer that is
    gzip but no tar."""
    layer, diff_id = gz_layer({"f": b"x" * 50000})
    if not_a_tar:
        layer = gzip.compress(b"\x01" * 100000, mtime=0)
    cfg = json.dumps({"architecture": "amd64", "os": "linux",
                      "rootfs": {"type": "layers", "diff_ids": [diff_id]}}).encode()
    cd = "sha256:" + hashlib.sha256(cfg).hexdigest()
    ld = "sha256:" + hashlib.sha256(layer).hexdigest()
    man = json.dumps({"schemaVersion": 2,
                      "mediaType": "application/vnd.oci.image.manifest.v1+json",
                      "config": {"mediaType": "application/vnd.oci.image.config.v1+json",
                                 "digest": cd, "size": len(cfg)},
                      "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip",
                                  "digest": ld, "size": len(layer) + layer_size_delta}]})
    return man.encode(), {cd: cfg, ld: layer}


class BadRegistry:
    """Serves what no client should take: schema 1, too large or wrongly typed manifests, a
    redirect to another origin, blobs longer or shorter than their descriptors."""

    def __init__(self):
        self.port = free_port()
        self.host = f"127.0.0.1:{self.port}"
        images = {"short": bad_image(+100), "long": bad_image(-100),
                  "notar": bad_image(0, not_a_tar=True)}
        port = self.port

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *a):
                pass

            def do_GET(self):
                ct, body, status, extra = "application/json", b"{}", 200, {}
                repo = self.path[4:].split("/")[0]
                if repo in images and "/manifests/" in self.path:
                    ct, body = "application/vnd.oci.image.manifest.v1+json", images[repo][0]
                elif repo in images and "/blobs/" in self.path:
                    ct = "application/octet-stream"
                    body = images[repo][1][self.path.rsplit("/", 1)[1]]
                elif self.path.startswith("/v2/redir/manifests/"):
                    status, extra = 307, {"Location": f"http://localhost:{port}/v2/old/manifests/x"}
                elif self.path.startswith("/v2/old/manifests/"):
                    ct = "application/vnd.docker.distribution.manifest.v1+prettyjws"
                    body = json.dumps({"schemaVersion": 1, "name": "old", "tag": "latest",
                                       "fsLayers": [], "history": []}).encode()
                elif self.path.startswith("/v2/big/manifests/"):
                    ct = "application/vnd.oci.image.manifest.v1+json"
                    body = b'{"schemaVersion":2,"x":"' + b"a" * (5 << 20) + b'"}'
                elif self.path.startswith("/v2/html/manifests/"):
                    ct, body = "text/html", b"<html>login here</html>"
                self.send_response(status)
                for k, v in extra.items():
                    self.send_header(k, v)
                self.send_header("Content-Type", ct)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                try:
                    self.wfile.write(body)
                except OSError:
                    pass  # the client hung up on a reply it refused

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def stop(self):
        self.server.shutdown()
        self.server.server_close()


def test_bad_replies_refused(kiste):
    bad = BadRegistry()
    try:
        p = kiste("pull", f"{bad.host}/old:latest", check=False)
        assert p.returncode == 1 and "schema 1" in p.stderr, p.stderr
        p = kiste("pull", f"{bad.host}/big:latest", check=False)
        assert p.returncode == 1 and "too large" in p.stderr, p.stderr
        p = kiste("pull", f"{bad.host}/html:latest", check=False)
        assert p.returncode == 1 and "text/html" in p.stderr, p.stderr
        p = kiste("pull", f"{bad.host}/redir:latest", check=False)
        assert p.returncode == 1 and "refusing the redirect" in p.stderr, p.stderr
        p = kiste("pull", f"{bad.host}/long:latest", check=False)
        assert p.returncode == 1 and "more bytes than the manifest says" in p.stderr, p.stderr
        p = kiste("pull", f"{bad.host}/short:latest", check=False)
        assert p.returncode == 1 and "truncated" in p.stderr, p.stderr
        p = kiste("pull", f"{bad.host}/notar:latest", check=False)
        assert p.returncode == 1 and "could not be unpacked" not in p.stderr, p.stderr
        assert "download of layer" not in p.stderr and "archive format" in p.stderr, p.stderr
        assert kiste.images() == ["busybox:latest"]
    finally:
        bad.stop()


# --- multi-platform index (pushed by skopeo) ---


def gz_layer(files: dict, base_tar: Path = None):
    """A gzip layer: the busybox tree (when given) plus files {path: bytes}."""
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w", format=tarfile.PAX_FORMAT) as t:
        if base_tar:
            with tarfile.open(base_tar) as src:
                for m in src.getmembers():
                    t.addfile(m, src.extractfile(m) if m.isfile() else None)
        for name, data in files.items():
            ti = tarfile.TarInfo(name)
            ti.size = len(data)
            ti.mode = 0o644
            t.addfile(ti, io.BytesIO(data))
    tar = raw.getvalue()
    return gzip.compress(tar, mtime=0), "sha256:" + hashlib.sha256(tar).hexdigest()


def write_blob(layout: Path, data: bytes):
    d = "sha256:" + hashlib.sha256(data).hexdigest()
    (layout / "blobs/sha256" / d[7:]).write_bytes(data)
    return {"digest": d, "size": len(data)}


def make_multiarch_layout(layout: Path, busybox_tar: Path):
    (layout / "blobs/sha256").mkdir(parents=True)
    (layout / "oci-layout").write_text('{"imageLayoutVersion":"1.0.0"}')
    manifests = []
    for arch, variant in (("amd64", None), ("arm64", "v8")):
        layer, diff_id = gz_layer({"arch": arch.encode()},
                                  busybox_tar if arch == "amd64" else None)
        ld = write_blob(layout, layer)
        ld["mediaType"] = "application/vnd.oci.image.layer.v1.tar+gzip"
        cfg = {"architecture": arch, "os": "linux", "config": {"Cmd": ["/bin/sh"]},
               "rootfs": {"type": "layers", "diff_ids": [diff_id]}}
        if variant:
            cfg["variant"] = variant
        cd = write_blob(layout, json.dumps(cfg).encode())
        cd["mediaType"] = "application/vnd.oci.image.config.v1+json"
        man = {"schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
               "config": cd, "layers": [ld]}
        md = write_blob(layout, json.dumps(man).encode())
        md["mediaType"] = "application/vnd.oci.image.manifest.v1+json"
        md["platform"] = {"architecture": arch, "os": "linux"}
        if variant:
            md["platform"]["variant"] = variant
        manifests.append(md)
    index = {"schemaVersion": 2, "mediaType": "application/vnd.oci.image.index.v1+json",
             "manifests": manifests}
    (layout / "index.json").write_text(json.dumps(
        {"schemaVersion": 2, "manifests": [dict(write_blob(layout, json.dumps(index).encode()),
                                                mediaType=index["mediaType"],
                                                annotations={
                                                    "org.opencontainers.image.ref.name": "multi"})]}))


@pytest.mark.skipif(SKOPEO is None, reason="skopeo is not installed")
def test_multiarch_index_platform_selection(kiste, registry, tmp_path, busybox_tar):
    reg = registry()
    layout = tmp_path / "layout"
    make_multiarch_layout(layout, busybox_tar)
    subprocess.run([SKOPEO, "copy", "--all", "--dest-tls-verify=false", f"oci:{layout}:multi",
                    f"docker://{reg.host}/multi/box:1"], check=True, capture_output=True)
    ref = f"{reg.host}/multi/box:1"
    p = kiste("pull", ref)
    out = kiste("run", "--rm", "--network", "none", ref, "cat", "/arch").stdout
    assert out == "amd64"
    index_digest = [ln for ln in p.stdout.splitlines() if ln.startswith("Digest: ")][0][8:]
    assert f"{reg.host}/multi/box@{index_digest}" in kiste(
        "images", "--digests", "--format", "{{.Repository}}@{{.Digest}}").stdout
    kiste("pull", "--platform", "linux/arm64", f"{reg.host}/multi/box:1")
    info = json.loads(kiste("image", "inspect", ref).stdout)[0]
    assert info["Architecture"] == "arm64"
    p = kiste("pull", "--platform", "linux/s390x", ref, check=False)
    assert p.returncode == 1 and "linux/amd64" in p.stderr


# --- peers ---


@pytest.mark.peer
@pytest.mark.skipif(SKOPEO is None, reason="skopeo is not installed")
def test_interop_with_skopeo(kiste, registry, tmp_path):
    reg = registry()
    ref = f"{reg.host}/interop/busybox:1"
    kiste("tag", "busybox", ref)
    kiste("push", ref)
    # Pushed by kiste, read by skopeo.
    out = tmp_path / "oci-out"
    subprocess.run([SKOPEO, "copy", "--src-tls-verify=false", f"docker://{ref}", f"oci:{out}:x"],
                   check=True, capture_output=True)
    index = json.loads((out / "index.json").read_text())
    assert len(index["manifests"]) == 1
    # Pushed by skopeo (from `kiste save`), pulled by kiste and run.
    archive = tmp_path / "busybox.tar"
    kiste("save", "-o", archive, "busybox")
    ref2 = f"{reg.host}/from-skopeo/busybox:2"
    subprocess.run([SKOPEO, "copy", "--dest-tls-verify=false", f"docker-archive:{archive}",
                    f"docker://{ref2}"], check=True, capture_output=True)
    kiste("pull", ref2)
    assert kiste("run", "--rm", "--network", "none", ref2, "echo", "sk").stdout.strip() == "sk"


@pytest.mark.peer
@pytest.mark.skipif(PODMAN is None or shutil.which("runc") is None,
                    reason="podman or runc is not installed")
def test_podman_pulls_and_runs_what_kiste_pushed(kiste, registry, tmp_path):
    reg = registry()
    ref = f"{reg.host}/podman/busybox:1"
    kiste("tag", "busybox", ref)
    kiste("push", ref)
    root, runroot = tmp_path / "podman-root", Path(tempfile.mkdtemp(prefix="kp-", dir="/run"))
    base = [PODMAN, "--root", str(root), "--runroot", str(runroot), "--runtime",
            shutil.which("runc"), "--cgroup-manager", "cgroupfs", "--events-backend", "none"]
    try:
        subprocess.run(base + ["pull", "--tls-verify=false", ref], check=True,
                       capture_output=True, timeout=120)
        p = subprocess.run(base + ["run", "--rm", "--network", "none", "--ulimit",
                                   "nproc=1000:1000", "--ulimit", "nofile=1024:1024", ref,
                                   "echo", "from-podman"], capture_output=True, text=True,
                           timeout=120)
        if p.returncode != 0 and "cgroup" in p.stderr.lower():
            pytest.skip(f"podman cannot run containers here: {p.stderr.strip()}")
        assert p.stdout.strip() == "from-podman", p.stderr
    finally:
        subprocess.run(base + ["rmi", "-af"], capture_output=True, timeout=60)
        subprocess.run(["umount", "-R", str(root / "overlay")], capture_output=True)
        shutil.rmtree(runroot, ignore_errors=True)


class StallProxy:
    """Forwards to a registry, records blob GETs, and holds back the answer for the blobs in
    `stall` until released."""

    def __init__(self, upstream):
        self.upstream = upstream
        self.gets = []
        self.stall = set()
        self.half = set()
        self.half_sent = threading.Event()
        self.release = threading.Event()
        self.port = free_port()
        self.host = f"127.0.0.1:{self.port}"
        proxy = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *a):
                pass

            def do_GET(self):
                digest = self.path.rsplit("/", 1)[1]
                if "/blobs/" in self.path:
                    proxy.gets.append((digest, self.headers.get("Range")))
                    if digest in proxy.stall:
                        proxy.release.wait(60)
                c = http.client.HTTPConnection(proxy.upstream, timeout=30)
                c.request("GET", self.path, headers={k: v for k, v in self.headers.items()
                                                     if k.lower() != "connection"})
                r = c.getresponse()
                data = r.read()
                c.close()
                self.send_response(r.status)
                for k, v in r.getheaders():
                    if k.lower() not in ("content-length", "connection", "transfer-encoding"):
                        self.send_header(k, v)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                try:
                    if digest in proxy.half:
                        # Half the blob, then nothing until released.
                        self.wfile.write(data[:len(data) // 2])
                        self.wfile.flush()
                        proxy.half_sent.set()
                        proxy.release.wait(60)
                        return
                    self.wfile.write(data)
                except OSError:
                    pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        self.server.daemon_threads = True
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def stop(self):
        self.release.set()
        self.server.shutdown()
        self.server.server_close()


@pytest.mark.skipif(SKOPEO is None, reason="skopeo is not installed")
def test_killed_pull_does_not_download_finished_layers_again(kiste, registry, tmp_path):
    reg = registry()
    layout = tmp_path / "layout2"
    (layout / "blobs/sha256").mkdir(parents=True)
    (layout / "oci-layout").write_text('{"imageLayoutVersion":"1.0.0"}')
    layers, diff_ids = [], []
    for i in range(2):
        data, diff_id = gz_layer({f"file{i}": os.urandom(200000)})
        ld = write_blob(layout, data)
        ld["mediaType"] = "application/vnd.oci.image.layer.v1.tar+gzip"
        layers.append(ld)
        diff_ids.append(diff_id)
    cd = write_blob(layout, json.dumps({"architecture": "amd64", "os": "linux", "rootfs": {
        "type": "layers", "diff_ids": diff_ids}}).encode())
    cd["mediaType"] = "application/vnd.oci.image.config.v1+json"
    md = write_blob(layout, json.dumps({
        "schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": cd, "layers": layers}).encode())
    md["mediaType"] = "application/vnd.oci.image.manifest.v1+json"
    md["annotations"] = {"org.opencontainers.image.ref.name": "two"}
    (layout / "index.json").write_text(json.dumps({"schemaVersion": 2, "manifests": [md]}))
    subprocess.run([SKOPEO, "copy", "--dest-tls-verify=false", f"oci:{layout}:two",
                    f"docker://{reg.host}/two/layers:1"], check=True, capture_output=True)
    proxy = StallProxy(reg.host)
    try:
        ref = f"{proxy.host}/two/layers:1"
        proxy.stall = {layers[1]["digest"]}
        p = subprocess.Popen([str(KISTE), "--root", str(kiste.root), "--runroot",
                              str(kiste.runroot), "pull", ref], stdout=subprocess.PIPE,
                             text=True, env=kiste.env)
        short = layers[0]["digest"][7:19]
        for line in p.stdout:
            if line.strip() == f"{short}: Pull complete":
                break
        p.kill()
        p.wait()
        p.stdout.close()
        assert ref not in kiste.images()
        proxy.release.set()
        proxy.stall = set()
        proxy.gets.clear()
        kiste("pull", ref)
        got = [g[0] for g in proxy.gets]
        assert layers[0]["digest"] not in got, proxy.gets
        assert layers[1]["digest"] in got
        assert ref in kiste.images()
    finally:
        proxy.stop()


@pytest.mark.skipif(SKOPEO is None, reason="skopeo is not installed")
def test_killed_pull_resumes_partial_blob(kiste, registry, tmp_path):
    """A pull killed in the middle of a blob keeps the bytes it had; the next pull asks only
    for the rest (Range) and the layer still checks out."""
    reg = registry()
    layout = tmp_path / "layout3"
    (layout / "blobs/sha256").mkdir(parents=True)
    (layout / "oci-layout").write_text('{"imageLayoutVersion":"1.0.0"}')
    data, diff_id = gz_layer({"big": os.urandom(400000)})
    ld = write_blob(layout, data)
    ld["mediaType"] = "application/vnd.oci.image.layer.v1.tar+gzip"
    cd = write_blob(layout, json.dumps({"architecture": "amd64", "os": "linux", "rootfs": {
        "type": "layers", "diff_ids": [diff_id]}}).encode())
    cd["mediaType"] = "application/vnd.oci.image.config.v1+json"
    md = write_blob(layout, json.dumps({
        "schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": cd, "layers": [ld]}).encode())
    md["mediaType"] = "application/vnd.oci.image.manifest.v1+json"
    md["annotations"] = {"org.opencontainers.image.ref.name": "one"}
    (layout / "index.json").write_text(json.dumps({"schemaVersion": 2, "manifests": [md]}))
    subprocess.run([SKOPEO, "copy", "--dest-tls-verify=false", f"oci:{layout}:one",
                    f"docker://{reg.host}/partial/layer:1"], check=True, capture_output=True)
    proxy = StallProxy(reg.host)
    try:
        ref = f"{proxy.host}/partial/layer:1"
        proxy.half = {ld["digest"]}
        p = subprocess.Popen([str(KISTE), "--root", str(kiste.root), "--runroot",
                              str(kiste.runroot), "pull", ref], stdout=subprocess.DEVNULL,
                             env=kiste.env)
        assert proxy.half_sent.wait(30)
        partial = kiste.root / "pull-partial" / ld["digest"][7:]
        assert wait_for(lambda: partial.exists() and partial.stat().st_size == ld["size"] // 2,
                        timeout=10)
        p.kill()
        p.wait()
        proxy.half = set()
        proxy.release.set()
        proxy.gets.clear()
        stale = partial.parent / ("0" * 64)
        stale.write_bytes(b"old")
        os.utime(stale, (time.time() - 8 * 86400, time.time() - 8 * 86400))
        kiste("pull", ref)
        assert (ld["digest"], f"bytes={ld['size'] // 2}-") in proxy.gets, proxy.gets
        assert ref in kiste.images()
        assert not partial.exists()
        assert not stale.exists(), "a week-old partial download was not dropped"
    finally:
        proxy.stop()
