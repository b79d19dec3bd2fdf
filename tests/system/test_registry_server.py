"""`kiste registry serve`: the OCI distribution API driven over HTTP for its protocol details,
and the real peers (skopeo, podman) pushing to and pulling from it."""

import base64
import concurrent.futures
import hashlib
import http.client
import json
import os
import re
import shutil
import signal
import ssl
import subprocess
import tarfile
import tempfile
import time
import warnings
from pathlib import Path

import pytest

from conftest import KISTE, run_captured
from test_archive import DOCKER, dockerd  # noqa: F401  (a private dockerd, as a fixture)

with warnings.catch_warnings():
    warnings.simplefilter("ignore", DeprecationWarning)
    import crypt  # libxcrypt: the bcrypt hashes that `htpasswd -B` writes

OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_INDEX = "application/vnd.oci.image.index.v1+json"
OCI_CONFIG = "application/vnd.oci.image.config.v1+json"
OCI_LAYER = "application/vnd.oci.image.layer.v1.tar"


def sha256(b: bytes) -> str:
    return "sha256:" + hashlib.sha256(b).hexdigest()


class Registry:
    """One `kiste registry serve` process on a port of its own choosing."""

    def __init__(self, root: Path, *extra, scheme="http"):
        self.root = root
        self.scheme = scheme
        self.extra = [str(a) for a in extra]
        self.proc = None
        self.auth = None

    def start(self):
        self.proc = subprocess.Popen(
            [str(KISTE), "registry", "serve", "--addr", "127.0.0.1:0", "--root", str(self.root)]
            + self.extra, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        line = self.proc.stdout.readline()
        assert line.startswith("Listening on port "), (line, self.proc.stderr.read())
        self.port = int(line.split()[3])
        self.host = f"127.0.0.1:{self.port}"
        return self

    def stop(self, sig=signal.SIGTERM):
        proc, self.proc = self.proc, None
        if proc is None:
            return
        if proc.poll() is None:
            proc.send_signal(sig)
            proc.wait(timeout=10)
        err = proc.stderr.read()
        proc.stdout.close()
        proc.stderr.close()
        # a sanitizer build reports memory errors and leaks here, at exit
        assert "Sanitizer" not in err and "runtime error" not in err, err
        if sig == signal.SIGTERM:
            assert proc.returncode == 0, err

    def conn(self):
        if self.scheme == "https":
            ctx = ssl.create_default_context(cafile=str(self.root.parent / "cert.pem"))
            return http.client.HTTPSConnection("127.0.0.1", self.port, context=ctx, timeout=30)
        return http.client.HTTPConnection("127.0.0.1", self.port, timeout=30)

    def request(self, method, path, body=None, headers=None):
        h = dict(headers or {})
        if self.auth:
            h["Authorization"] = "Basic " + base64.b64encode(self.auth.encode()).decode()
        c = self.conn()
        try:
            c.request(method, path, body=body, headers=h)
            r = c.getresponse()
            data = r.read()
            return r.status, {k.lower(): v for k, v in r.getheaders()}, data
        finally:
            c.close()

    def error_code(self, data):
        return json.loads(data)["errors"][0]["code"]

    def push_blob(self, repo, data: bytes):
        d = sha256(data)
        st, h, body = self.request("POST", f"/v2/{repo}/blobs/uploads/?digest={d}", data,
                                   {"Content-Type": "application/octet-stream"})
        assert st == 201, body
        assert h["docker-content-digest"] == d
        return d

    def put_manifest(self, repo, ref, doc, media_type=OCI_MANIFEST):
        raw = json.dumps(doc).encode()
        st, h, body = self.request("PUT", f"/v2/{repo}/manifests/{ref}", raw,
                                   {"Content-Type": media_type})
        return st, h, body, raw


@pytest.fixture
def registry(tmp_path):
    r = Registry(tmp_path / "reg").start()
    yield r
    r.stop()


def image_manifest(reg, repo, layer: bytes, config=None, **extra):
    config = config if config is not None else json.dumps(
        {"architecture": "amd64", "os": "linux",
         "rootfs": {"type": "layers", "diff_ids": [sha256(layer)]}}).encode()
    cd = reg.push_blob(repo, config)
    ld = reg.push_blob(repo, layer)
    doc = {"schemaVersion": 2, "mediaType": OCI_MANIFEST,
           "config": {"mediaType": OCI_CONFIG, "digest": cd, "size": len(config)},
           "layers": [{"mediaType": OCI_LAYER, "digest": ld, "size": len(layer)}]}
    doc.update(extra)
    return doc


def test_base_errors_and_untrusted_paths(registry):
    st, h, _ = registry.request("GET", "/v2/")
    assert st == 200 and h["docker-distribution-api-version"] == "registry/2.0"
    st, _, body = registry.request("GET", "/v2/Bad_Name/tags/list")
    assert st == 400 and registry.error_code(body) == "NAME_INVALID"
    st, _, body = registry.request("GET", "/v2/none/tags/list")
    assert st == 404 and registry.error_code(body) == "NAME_UNKNOWN"
    st, _, body = registry.request("GET", "/v2/x/blobs/" + sha256(b"nothing"))
    assert st == 404 and registry.error_code(body) == "BLOB_UNKNOWN"
    st, _, body = registry.request("GET", "/v2/x/manifests/latest")
    assert st == 404 and registry.error_code(body) == "MANIFEST_UNKNOWN"
    st, _, body = registry.request("GET", "/v2/x/blobs/uploads/" + "0" * 32)
    assert st == 404 and registry.error_code(body) == "BLOB_UPLOAD_UNKNOWN"
    st, _, body = registry.request("GET", "/v2/x/blobs/sha256:1234")
    assert st == 400 and registry.error_code(body) == "DIGEST_INVALID"
    st, _, body = registry.request("GET", "/v2/x/manifests/bad%20tag")
    assert st == 404 and registry.error_code(body) == "MANIFEST_UNKNOWN"
    st, _, body = registry.request("PUT", "/v2/x/manifests/.bad", b"{}")
    assert st == 400 and registry.error_code(body) == "MANIFEST_INVALID"
    # traversal through names, references and upload ids, raw and percent-encoded
    for path in ("/v2/../../etc/tags/list", "/v2/a/%2e%2e/%2e%2e/blobs/uploads/",
                 "/v2/x/manifests/..%2f..%2fescape", "/v2/x/blobs/uploads/..%2F..%2Fescape",
                 "/v2/x/blobs/uploads/../../../escape"):
        st, _, _ = registry.request("PUT" if "manifests" in path else "POST", path, b"{}")
        assert st in (400, 404, 405), path
    assert not (registry.root.parent / "escape").exists()
    assert sorted(p.name for p in registry.root.iterdir()) == ["blobs", "repositories",
                                                               "uploads"]
    st, _, body = registry.request("PUT", "/v2/", b"x")
    assert st == 405 and registry.error_code(body) == "UNSUPPORTED"


def test_monolithic_upload_range_and_delete(registry):
    data = os.urandom(100_000)
    d = registry.push_blob("lib/a", data)
    st, h, body = registry.request("HEAD", f"/v2/lib/a/blobs/{d}")
    assert st == 200 and int(h["content-length"]) == len(data) and body == b""
    assert h["docker-content-digest"] == d
    st, h, body = registry.request("GET", f"/v2/lib/a/blobs/{d}")
    assert st == 200 and body == data
    # a resumed download
    st, h, body = registry.request("GET", f"/v2/lib/a/blobs/{d}", headers={"Range": "bytes=1000-"})
    assert st == 206 and body == data[1000:]
    assert h["content-range"] == f"bytes 1000-{len(data) - 1}/{len(data)}"
    st, h, body = registry.request("GET", f"/v2/lib/a/blobs/{d}",
                                   headers={"Range": "bytes=10-19"})
    assert st == 206 and body == data[10:20]
    st, h, _ = registry.request("GET", f"/v2/lib/a/blobs/{d}",
                                headers={"Range": f"bytes={len(data)}-"})
    assert st == 416 and h["content-range"] == f"bytes */{len(data)}"
    # the blob is the repository's, not another's
    st, _, body = registry.request("GET", f"/v2/lib/b/blobs/{d}")
    assert st == 404 and registry.error_code(body) == "BLOB_UNKNOWN"
    # a digest that does not match the content stores nothing
    st, _, body = registry.request("POST", f"/v2/lib/a/blobs/uploads/?digest={sha256(b'x')}", b"y")
    assert st == 400 and registry.error_code(body) == "DIGEST_INVALID"
    assert not (registry.root / "blobs" / "sha256" / hashlib.sha256(b"y").hexdigest()).exists()
    assert list((registry.root / "blobs" / "tmp").iterdir()) == []
    st, _, _ = registry.request("DELETE", f"/v2/lib/a/blobs/{d}")
    assert st == 202
    st, _, body = registry.request("GET", f"/v2/lib/a/blobs/{d}")
    assert st == 404 and registry.error_code(body) == "BLOB_UNKNOWN"
    st, _, body = registry.request("DELETE", f"/v2/lib/a/blobs/{d}")
    assert st == 404


def test_chunked_upload_out_of_order_and_digest(registry):
    data = os.urandom(300_000)
    d = sha256(data)
    st, h, _ = registry.request("POST", "/v2/chunky/blobs/uploads/")
    assert st == 202 and h["range"] == "0-0"
    loc, uuid = h["location"], h["docker-upload-uuid"]
    assert loc == f"/v2/chunky/blobs/uploads/{uuid}"
    st, h, _ = registry.request("PATCH", loc, data[:100_000],
                                {"Content-Range": "0-99999",
                                 "Content-Type": "application/octet-stream"})
    assert st == 202 and h["range"] == "0-99999"
    # a chunk that does not start where the last one ended
    st, h, _ = registry.request("PATCH", loc, data[150_000:200_000],
                                {"Content-Range": "150000-199999"})
    assert st == 416 and h["range"] == "0-99999"
    # a Content-Range that does not match the body
    st, _, body = registry.request("PATCH", loc, data[100_000:100_010],
                                   {"Content-Range": "100000-100019"})
    assert st == 400
    st, h, _ = registry.request("GET", loc)
    assert st == 204 and h["range"] == "0-99999" and h["docker-upload-uuid"] == uuid
    st, h, _ = registry.request("PATCH", loc, data[100_000:200_000],
                                {"Content-Range": "100000-199999"})
    assert st == 202 and h["range"] == "0-199999"
    # a chunk without Content-Range is appended (what streaming clients send)
    st, h, _ = registry.request("PATCH", loc, data[200_000:250_000])
    assert st == 202 and h["range"] == "0-249999"
    st, _, body = registry.request("PUT", f"{loc}?digest={sha256(b'other')}", data[250_000:])
    assert st == 400 and registry.error_code(body) == "DIGEST_INVALID"
    st, _, body = registry.request("PUT", f"{loc}?digest=sha256:zz", b"")
    assert st == 400 and registry.error_code(body) == "DIGEST_INVALID"
    st, h, _ = registry.request("PUT", f"{loc}?digest={d}", data[250_000:],
                                {"Content-Range": "250000-299999"})
    assert st == 201 and h["location"] == f"/v2/chunky/blobs/{d}"
    assert h["docker-content-digest"] == d
    st, _, body = registry.request("GET", f"/v2/chunky/blobs/{d}")
    assert st == 200 and body == data
    st, _, _ = registry.request("GET", loc)
    assert st == 404
    assert list((registry.root / "uploads").iterdir()) == []
    # an upload id of another repository is unknown here
    st, h, _ = registry.request("POST", "/v2/one/blobs/uploads/")
    other = h["location"].replace("/v2/one/", "/v2/two/")
    st, _, body = registry.request("PATCH", other, b"abc")
    assert st == 404 and registry.error_code(body) == "BLOB_UPLOAD_UNKNOWN"
    # cancel
    st, _, _ = registry.request("DELETE", h["location"])
    assert st == 204
    st, _, _ = registry.request("GET", h["location"])
    assert st == 404


def test_upload_survives_kill_and_resumes(tmp_path):
    reg = Registry(tmp_path / "reg").start()
    try:
        data = os.urandom(64_000)
        st, h, _ = reg.request("POST", "/v2/resume/blobs/uploads/")
        loc = h["location"]
        st, h, _ = reg.request("PATCH", loc, data[:40_000], {"Content-Range": "0-39999"})
        assert st == 202
        reg.stop(signal.SIGKILL)
        reg.start()
        st, h, _ = reg.request("GET", loc)
        assert st == 204 and h["range"] == "0-39999"
        st, h, _ = reg.request("PUT", f"{loc}?digest={sha256(data)}", data[40_000:],
                               {"Content-Range": "40000-63999"})
        assert st == 201
        st, _, body = reg.request("GET", f"/v2/resume/blobs/{sha256(data)}")
        assert body == data
    finally:
        reg.stop()


def test_post_then_put_and_cross_repository_mount(registry):
    data = b"layer content"
    d = sha256(data)
    st, h, _ = registry.request("POST", "/v2/src/blobs/uploads/")
    st, h, _ = registry.request("PUT", f"{h['location']}?digest={d}", data)
    assert st == 201
    st, h, _ = registry.request("POST", f"/v2/dst/blobs/uploads/?mount={d}&from=src")
    assert st == 201 and h["location"] == f"/v2/dst/blobs/{d}"
    st, _, body = registry.request("GET", f"/v2/dst/blobs/{d}")
    assert st == 200 and body == data
    # not in the named repository: a session instead
    st, h, _ = registry.request("POST", f"/v2/dst2/blobs/uploads/?mount={d}&from=nowhere")
    assert st == 202 and "docker-upload-uuid" in h
    st, h, _ = registry.request("POST", f"/v2/dst3/blobs/uploads/?mount={d}&from=../src")
    assert st == 202


def test_manifests_tags_and_content_types(registry):
    layer = os.urandom(2000)
    doc = image_manifest(registry, "app", layer)
    st, h, body, raw = registry.put_manifest("app", "v1", doc)
    assert st == 201, body
    md = sha256(raw)
    assert h["docker-content-digest"] == md and h["location"] == f"/v2/app/manifests/{md}"
    for ref in ("v1", md):
        st, h, body = registry.request("GET", f"/v2/app/manifests/{ref}",
                                       headers={"Accept": OCI_MANIFEST})
        assert st == 200 and body == raw and h["content-type"] == OCI_MANIFEST
        assert h["docker-content-digest"] == md
        st, h, body = registry.request("HEAD", f"/v2/app/manifests/{ref}")
        assert st == 200 and body == b"" and int(h["content-length"]) == len(raw)
    # a Docker schema 2 manifest keeps its own type
    ddoc = dict(doc, mediaType="application/vnd.docker.distribution.manifest.v2+json")
    ddoc["config"] = dict(doc["config"],
                          mediaType="application/vnd.docker.container.image.v1+json")
    ddoc["layers"] = [dict(doc["layers"][0],
                           mediaType="application/vnd.docker.image.rootfs.diff.tar.gzip")]
    st, _, body, _ = registry.put_manifest("app", "docker", ddoc, ddoc["mediaType"])
    assert st == 201, body
    st, h, _ = registry.request("GET", "/v2/app/manifests/docker")
    assert h["content-type"] == ddoc["mediaType"]
    # refusals
    bad = dict(doc, layers=[{"mediaType": OCI_LAYER, "digest": sha256(b"absent"), "size": 6}])
    st, _, body, _ = registry.put_manifest("app", "bad", bad)
    assert st == 400 and registry.error_code(body) == "MANIFEST_BLOB_UNKNOWN"
    st, _, body = registry.request("PUT", "/v2/app/manifests/bad", b"{not json",
                                   {"Content-Type": OCI_MANIFEST})
    assert st == 400 and registry.error_code(body) == "MANIFEST_INVALID"
    st, _, body, _ = registry.put_manifest("app", sha256(b"other"), doc)
    assert st == 400 and registry.error_code(body) == "DIGEST_INVALID"
    big = dict(doc, annotations={"x": "y" * (5 << 20)})
    st, _, body, _ = registry.put_manifest("app", "big", big)
    assert st == 413 and registry.error_code(body) == "SIZE_INVALID"
    # an index of manifests the repository has
    index = {"schemaVersion": 2, "mediaType": OCI_INDEX,
             "manifests": [{"mediaType": OCI_MANIFEST, "digest": md, "size": len(raw),
                            "platform": {"architecture": "amd64", "os": "linux"}}]}
    st, _, body, iraw = registry.put_manifest("app", "multi", index, OCI_INDEX)
    assert st == 201, body
    missing = dict(index, manifests=[dict(index["manifests"][0], digest=sha256(b"no"))])
    st, _, body, _ = registry.put_manifest("app", "multi2", missing, OCI_INDEX)
    assert st == 400 and registry.error_code(body) == "MANIFEST_BLOB_UNKNOWN"
    # delete by tag, then by digest (which takes the tags along)
    st, _, _ = registry.request("DELETE", "/v2/app/manifests/multi")
    assert st == 202
    st, _, _ = registry.request("GET", "/v2/app/manifests/multi")
    assert st == 404
    st, _, _ = registry.request("DELETE", f"/v2/app/manifests/{md}")
    assert st == 202
    for ref in ("v1", md):
        st, _, body = registry.request("GET", f"/v2/app/manifests/{ref}")
        assert st == 404 and registry.error_code(body) == "MANIFEST_UNKNOWN"


def test_tags_catalog_pagination_and_search(registry):
    layer = b"x" * 10
    for repo in ("b/web", "a/db", "c/cache", "a/web-tools"):
        doc = image_manifest(registry, repo, layer)
        for tag in ("v3", "v1", "latest", "v2"):
            st, _, body, _ = registry.put_manifest(repo, tag, doc)
            assert st == 201, body
    st, h, body = registry.request("GET", "/v2/b/web/tags/list")
    assert json.loads(body) == {"name": "b/web", "tags": ["latest", "v1", "v2", "v3"]}
    assert "link" not in h
    st, h, body = registry.request("GET", "/v2/b/web/tags/list?n=2")
    assert json.loads(body)["tags"] == ["latest", "v1"]
    assert h["link"] == '</v2/b/web/tags/list?n=2&last=v1>; rel="next"'
    st, h, body = registry.request("GET", "/v2/b/web/tags/list?n=2&last=v1")
    assert json.loads(body)["tags"] == ["v2", "v3"] and "link" not in h
    st, h, body = registry.request("GET", "/v2/b/web/tags/list?n=0")
    assert json.loads(body)["tags"] == []
    st, h, body = registry.request("GET", "/v2/b/web/tags/list?n=-1")
    assert st == 400
    st, h, body = registry.request("GET", "/v2/_catalog")
    assert json.loads(body) == {"repositories": ["a/db", "a/web-tools", "b/web", "c/cache"]}
    st, h, body = registry.request("GET", "/v2/_catalog?n=3")
    assert json.loads(body)["repositories"] == ["a/db", "a/web-tools", "b/web"]
    assert h["link"] == '</v2/_catalog?n=3&last=b/web>; rel="next"'
    st, h, body = registry.request("GET", "/v2/_catalog?n=3&last=b/web")
    assert json.loads(body)["repositories"] == ["c/cache"]
    st, h, body = registry.request("GET", "/v1/search?q=web&n=25")
    res = json.loads(body)
    assert res["num_results"] == 2 and res["query"] == "web"
    assert [r["name"] for r in res["results"]] == ["a/web-tools", "b/web"]
    assert set(res["results"][0]) == {"name", "description", "star_count", "is_official",
                                      "is_automated"}
    st, h, body = registry.request("GET", "/v1/search?q=web&n=1")
    res = json.loads(body)
    assert res["num_results"] == 2 and len(res["results"]) == 1


def test_referrers(registry):
    layer = b"subject layer"
    doc = image_manifest(registry, "ref", layer)
    st, _, _, raw = registry.put_manifest("ref", "v1", doc)
    subject = {"mediaType": OCI_MANIFEST, "digest": sha256(raw), "size": len(raw)}
    empty = registry.push_blob("ref", b"{}")
    sig = registry.push_blob("ref", b"signature")
    arts = []
    for atype, ann in (("application/vnd.example.sig", {"k": "sig"}),
                       ("application/vnd.example.sbom", {"k": "sbom"})):
        art = {"schemaVersion": 2, "mediaType": OCI_MANIFEST, "artifactType": atype,
               "config": {"mediaType": "application/vnd.oci.empty.v1+json", "digest": empty,
                          "size": 2},
               "layers": [{"mediaType": "application/octet-stream", "digest": sig, "size": 9}],
               "subject": subject, "annotations": ann}
        st, h, body, araw = registry.put_manifest("ref", sha256(json.dumps(art).encode()), art)
        assert st == 201, body
        assert h["oci-subject"] == subject["digest"]
        arts.append((atype, sha256(araw), len(araw)))
    st, h, body = registry.request("GET", f"/v2/ref/referrers/{subject['digest']}")
    assert st == 200 and h["content-type"] == OCI_INDEX
    idx = json.loads(body)
    assert idx["schemaVersion"] == 2 and idx["mediaType"] == OCI_INDEX
    got = sorted((m["artifactType"], m["digest"], m["size"]) for m in idx["manifests"])
    assert got == sorted(arts)
    assert {m["annotations"]["k"] for m in idx["manifests"]} == {"sig", "sbom"}
    st, h, body = registry.request(
        "GET", f"/v2/ref/referrers/{subject['digest']}?artifactType=application/vnd.example.sbom")
    assert h["oci-filters-applied"] == "artifactType"
    assert [m["artifactType"] for m in json.loads(body)["manifests"]] == [
        "application/vnd.example.sbom"]
    st, h, body = registry.request("GET", f"/v2/ref/referrers/{sha256(b'none')}")
    assert st == 200 and json.loads(body)["manifests"] == []
    st, _, body = registry.request("GET", "/v2/ref/referrers/sha256:bad")
    assert st == 400
    # deleting a referrer takes it out of the list
    registry.request("DELETE", f"/v2/ref/manifests/{arts[0][1]}")
    st, h, body = registry.request("GET", f"/v2/ref/referrers/{subject['digest']}")
    assert [m["digest"] for m in json.loads(body)["manifests"]] == [arts[1][1]]


def test_concurrent_chunked_pushes(registry):
    def push(i):
        data = os.urandom(50_000 + i)
        st, h, _ = registry.request("POST", f"/v2/par{i % 3}/blobs/uploads/")
        loc = h["location"]
        for off in range(0, len(data), 16_384):
            chunk = data[off:off + 16_384]
            st, h, _ = registry.request("PATCH", loc, chunk,
                                        {"Content-Range": f"{off}-{off + len(chunk) - 1}"})
            assert st == 202
        st, h, _ = registry.request("PUT", f"{loc}?digest={sha256(data)}")
        assert st == 201
        st, _, body = registry.request("GET", f"/v2/par{i % 3}/blobs/{sha256(data)}")
        return body == data
    with concurrent.futures.ThreadPoolExecutor(16) as ex:
        assert all(ex.map(push, range(32)))


def htpasswd_file(path: Path):
    bcrypt = crypt.crypt("s3cret", "$2y$05$" + "abcdefghijklmnopqrstuu")
    assert bcrypt.startswith("$2y$05$")
    sha = base64.b64encode(hashlib.sha1(b"other").digest()).decode()
    path.write_text(f"# users\nalice:{bcrypt}\nbob:{{SHA}}{sha}\n")
    return path


def test_basic_auth(tmp_path):
    reg = Registry(tmp_path / "reg", "--htpasswd", htpasswd_file(tmp_path / "htpasswd")).start()
    try:
        st, h, body = reg.request("GET", "/v2/")
        assert st == 401 and h["www-authenticate"].startswith("Basic realm=")
        assert reg.error_code(body) == "UNAUTHORIZED"
        for cred in ("alice:wrong", "mallory:s3cret", "alice", "bob:s3cret"):
            reg.auth = cred
            assert reg.request("GET", "/v2/")[0] == 401, cred
        for cred in ("alice:s3cret", "bob:other"):
            reg.auth = cred
            assert reg.request("GET", "/v2/")[0] == 200, cred
            assert reg.request("GET", "/v2/_catalog")[0] == 200
        reg.auth = "alice:s3cret"
        reg.push_blob("secure", b"data")
        reg.auth = None
        st, _, _ = reg.request("GET", f"/v2/secure/blobs/{sha256(b'data')}")
        assert st == 401
        st, _, _ = reg.request("POST", f"/v2/secure/blobs/uploads/?digest={sha256(b'z')}", b"z")
        assert st == 401
    finally:
        reg.stop()


def test_read_only(tmp_path):
    reg = Registry(tmp_path / "reg").start()
    try:
        d = reg.push_blob("ro", b"kept")
    finally:
        reg.stop()
    reg = Registry(tmp_path / "reg", "--read-only").start()
    try:
        st, _, body = reg.request("GET", f"/v2/ro/blobs/{d}")
        assert st == 200 and body == b"kept"
        for method, path in (("POST", "/v2/ro/blobs/uploads/"), ("DELETE", f"/v2/ro/blobs/{d}"),
                             ("PUT", "/v2/ro/manifests/latest")):
            st, _, body = reg.request(method, path, b"")
            assert st == 405 and reg.error_code(body) == "UNSUPPORTED", (method, path)
    finally:
        reg.stop()


def test_tls(tmp_path):
    if shutil.which("openssl") is None:
        pytest.skip("the openssl command is not installed")
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
                    "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1",
                    "-keyout", str(tmp_path / "key.pem"), "-out", str(tmp_path / "cert.pem")],
                   check=True, capture_output=True)
    reg = Registry(tmp_path / "reg", "--tls-cert", tmp_path / "cert.pem", "--tls-key",
                   tmp_path / "key.pem", scheme="https").start()
    try:
        st, h, _ = reg.request("GET", "/v2/")
        assert st == 200 and h["docker-distribution-api-version"] == "registry/2.0"
        d = reg.push_blob("tls", b"over tls")
        assert reg.request("GET", f"/v2/tls/blobs/{d}")[2] == b"over tls"
        # a plain HTTP client gets nothing useful from the TLS port
        c = http.client.HTTPConnection("127.0.0.1", reg.port, timeout=10)
        with pytest.raises((http.client.HTTPException, ConnectionError, OSError)):
            c.request("GET", "/v2/")
            r = c.getresponse()
            if r.status != 200:
                raise http.client.HTTPException(r.status)
        c.close()
    finally:
        reg.stop()


def test_garbage_collect(tmp_path):
    reg = Registry(tmp_path / "reg").start()
    try:
        keep = image_manifest(reg, "gc", b"kept layer")
        st, _, _, kraw = reg.put_manifest("gc", "keep", keep)
        drop = image_manifest(reg, "gc", b"dropped layer")
        st, _, _, draw = reg.put_manifest("gc", "drop", drop)
        stray = reg.push_blob("gc", b"never referenced")
        reg.request("DELETE", "/v2/gc/manifests/drop")  # the tag only
        old_upload = reg.request("POST", "/v2/gc/blobs/uploads/")[1]["docker-upload-uuid"]
        new_upload = reg.request("POST", "/v2/gc/blobs/uploads/")[1]["docker-upload-uuid"]
    finally:
        reg.stop()
    week_ago = time.time() - 8 * 24 * 3600
    os.utime(tmp_path / "reg/uploads" / old_upload / "state", (week_ago, week_ago))
    gc = [str(KISTE), "registry", "garbage-collect", "--root", str(tmp_path / "reg")]
    p = run_captured(gc + ["--dry-run", "--delete-untagged"])
    assert p.returncode == 0, p.stderr
    assert f"would remove blob {stray}" in p.stdout
    assert f"would remove manifest gc@{sha256(draw)}" in p.stdout
    assert (tmp_path / "reg/blobs/sha256" / stray.split(":")[1]).exists()
    assert f"would remove upload {old_upload}" in p.stdout and new_upload not in p.stdout
    # without --delete-untagged the untagged manifest and its blobs stay
    p = run_captured(gc)
    assert p.returncode == 0 and f"removed blob {stray}" in p.stdout
    assert "Removed 1 blobs" in p.stdout, p.stdout
    assert sorted(os.listdir(tmp_path / "reg/uploads")) == [new_upload]
    p = run_captured(gc + ["--delete-untagged"])
    assert p.returncode == 0, p.stderr
    assert "Removed 3 blobs" in p.stdout and ", 1 manifests" in p.stdout, p.stdout
    reg.start()
    try:
        st, _, body = reg.request("GET", "/v2/gc/manifests/keep")
        assert st == 200 and body == kraw
        for blob in (keep["config"]["digest"], keep["layers"][0]["digest"]):
            assert reg.request("GET", f"/v2/gc/blobs/{blob}")[0] == 200
        for blob in (drop["layers"][0]["digest"], stray):
            assert reg.request("GET", f"/v2/gc/blobs/{blob}")[0] == 404
        assert reg.request("GET", f"/v2/gc/manifests/{sha256(draw)}")[0] == 404
    finally:
        reg.stop()


# ---- the real peers ----

@pytest.fixture(scope="module")
def saved_busybox(busybox_rootfs, tmp_path_factory):
    """A busybox image imported into a private store and saved as a docker-archive."""
    d = tmp_path_factory.mktemp("bbsave")
    tar = d / "busybox.tar"
    with tarfile.open(tar, "w", format=tarfile.PAX_FORMAT) as t:
        for p in sorted(busybox_rootfs.iterdir()):
            if p.name != ".complete":
                t.add(p, arcname=p.name)
    runroot = Path(tempfile.mkdtemp(prefix="kt-", dir="/run"))
    base = [str(KISTE), "--root", str(d / "root"), "--runroot", str(runroot)]
    try:
        for args in (["import", "-c", 'CMD ["sh"]', str(tar), "busybox:latest"],
                     ["save", "-o", str(d / "saved.tar"), "busybox:latest"]):
            p = run_captured(base + args)
            assert p.returncode == 0, p.stderr
    finally:
        shutil.rmtree(runroot, ignore_errors=True)
    return d / "saved.tar"


def skopeo(*args):
    p = run_captured(["skopeo", *[str(a) for a in args]], timeout=300)
    assert p.returncode == 0, p.stderr
    return p.stdout


@pytest.mark.peer
def test_skopeo_copy_in_and_out(registry, saved_busybox, tmp_path):
    if shutil.which("skopeo") is None:
        pytest.skip("skopeo is not installed")
    dest = f"docker://{registry.host}/library/busybox:latest"
    skopeo("copy", "--dest-tls-verify=false", f"docker-archive:{saved_busybox}", dest)
    info = json.loads(skopeo("inspect", "--tls-verify=false", dest))
    assert info["Name"] == f"{registry.host}/library/busybox"
    assert info["Os"] == "linux" and len(info["Layers"]) == 1
    raw = skopeo("inspect", "--raw", "--tls-verify=false", dest).encode()
    assert info["Digest"] == sha256(raw)
    # the same again: every blob is there already
    skopeo("copy", "--dest-tls-verify=false", f"docker-archive:{saved_busybox}", dest)
    # and back out, into an OCI layout
    out = tmp_path / "layout"
    skopeo("copy", "--src-tls-verify=false", dest, f"oci:{out}:latest")
    index = json.loads((out / "index.json").read_text())
    mdesc = index["manifests"][0]
    manifest_bytes = (out / "blobs/sha256" / mdesc["digest"].split(":")[1]).read_bytes()
    assert sha256(manifest_bytes) == mdesc["digest"]
    manifest = json.loads(manifest_bytes)
    for desc in [manifest["config"]] + manifest["layers"]:
        blob = (out / "blobs/sha256" / desc["digest"].split(":")[1]).read_bytes()
        assert sha256(blob) == desc["digest"] and len(blob) == desc["size"]
    assert [layer["digest"] for layer in manifest["layers"]] == info["Layers"]
    st, _, body = registry.request("GET", "/v2/_catalog")
    assert json.loads(body)["repositories"] == ["library/busybox"]
    # a copy between two repositories of the same registry
    skopeo("copy", "--src-tls-verify=false", "--dest-tls-verify=false", dest,
           f"docker://{registry.host}/mirror/busybox:v1")
    st, _, body = registry.request("GET", "/v2/mirror/busybox/tags/list")
    assert json.loads(body)["tags"] == ["v1"]


@pytest.mark.peer
def test_podman_pull(registry, saved_busybox, tmp_path):
    if shutil.which("podman") is None or shutil.which("skopeo") is None:
        pytest.skip("podman or skopeo is not installed")
    dest = f"{registry.host}/library/busybox:latest"
    skopeo("copy", "--dest-tls-verify=false", f"docker-archive:{saved_busybox}",
           f"docker://{dest}")
    # podman wants a run root of at most 50 characters
    runroot = Path(tempfile.mkdtemp(prefix="kp-", dir="/run"))
    storage = ["--root", str(tmp_path / "proot"), "--runroot", str(runroot),
               "--storage-driver", "vfs", "--cgroup-manager", "cgroupfs"]
    try:
        p = run_captured(["podman", *storage, "pull", "--tls-verify=false", dest], timeout=300)
        assert p.returncode == 0, p.stderr
        p = run_captured(["podman", *storage, "image", "inspect", dest])
        assert p.returncode == 0, p.stderr
        raw = skopeo("inspect", "--raw", "--tls-verify=false", f"docker://{dest}").encode()
        assert json.loads(p.stdout)[0]["Digest"] == sha256(raw)
        # and it runs (TESTING.md: runc, no network, the machine's ulimits)
        p = run_captured(["podman", *storage, "run", "--rm", "--runtime", "runc", "--network",
                          "none", "--ulimit", "nproc=1000:1000", "--ulimit", "nofile=1024:1024",
                          dest, "echo", "pulled from kiste"], timeout=120)
        assert p.returncode == 0 and p.stdout == "pulled from kiste\n", p.stderr
    finally:
        run_captured(["podman", *storage, "system", "reset", "--force"], timeout=120)
        shutil.rmtree(tmp_path / "proot", ignore_errors=True)
        shutil.rmtree(runroot, ignore_errors=True)


@pytest.mark.peer
def test_docker_login_push_pull(tmp_path, saved_busybox, dockerd):  # noqa: F811
    """Docker's own client: login with basic auth, push, pull back by tag; loopback registries
    are plain HTTP to dockerd without configuration."""
    reg = Registry(tmp_path / "reg", "--htpasswd", htpasswd_file(tmp_path / "htpasswd")).start()
    env = dict(os.environ, DOCKER_CONFIG=str(tmp_path / "docker-config"))

    def docker(*args, input=None, check=True):
        p = run_captured([DOCKER, "-H", f"unix://{dockerd.sock}", *[str(a) for a in args]],
                         input=input, timeout=300, env=env)
        assert not check or p.returncode == 0, (args, p.stderr)
        return p

    ref = f"{reg.host}/dock/busybox:v1"
    try:
        docker("load", "-i", saved_busybox)
        docker("tag", "busybox:latest", ref)
        p = docker("push", ref, check=False)
        assert p.returncode != 0 and "basic auth" in p.stderr + p.stdout, p.stderr
        docker("login", "-u", "alice", "--password-stdin", reg.host, input="s3cret\n")
        out = docker("push", ref).stdout
        digest = re.search(r"digest: (sha256:[0-9a-f]{64})", out).group(1)
        reg.auth = "alice:s3cret"
        st, h, _ = reg.request("HEAD", "/v2/dock/busybox/manifests/v1")
        assert st == 200 and h["docker-content-digest"] == digest
        assert h["content-type"] == "application/vnd.docker.distribution.manifest.v2+json"
        docker("rmi", ref, "busybox:latest")
        docker("pull", ref)
        info = json.loads(docker("image", "inspect", ref).stdout)[0]
        assert f"{reg.host}/dock/busybox@{digest}" in info["RepoDigests"]
        docker("logout", reg.host)
    finally:
        docker("rmi", "-f", ref, "busybox:latest", check=False)
        reg.stop()
