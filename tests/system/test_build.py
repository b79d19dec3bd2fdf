"""The Dockerfile front end on the command line: `kiste dockerfile parse` against BuildKit's
parser data (../shared/testdata/dockerfile-parser beside the checkout), and `kiste dockerfile
check` on multi-stage files and on errors, which must name their line."""

import subprocess
from pathlib import Path

import pytest

from conftest import KISTE, ROOT

DATA = ROOT.parent / "shared" / "testdata" / "dockerfile-parser"


def kiste(*args, input=None):
    return subprocess.run([str(KISTE), *args], input=input, capture_output=True, timeout=30)


def cases(sub):
    if not DATA.is_dir():
        return [pytest.param(None, marks=pytest.mark.xfail(strict=True,
                                                            reason=f"{DATA} is missing"))]
    return sorted(p for p in (DATA / sub).iterdir() if p.is_dir())


@pytest.mark.parametrize("case", cases("testfiles"), ids=lambda p: p.name if p else "missing")
def test_parse_matches_buildkit(case):
    assert case is not None, f"BuildKit's parser data is missing at {DATA}"
    r = kiste("dockerfile", "parse", str(case / "Dockerfile"))
    assert r.returncode == 0, r.stderr.decode()
    assert r.stdout == (case / "result").read_bytes()


@pytest.mark.parametrize("case", cases("testfiles-negative"),
                         ids=lambda p: p.name if p else "missing")
def test_parse_rejects_negative(case):
    assert case is not None, f"BuildKit's parser data is missing at {DATA}"
    r = kiste("dockerfile", "parse", str(case / "Dockerfile"))
    assert r.returncode != 0
    assert r.stdout == b""
    assert b"dockerfile parse error on line " in r.stderr


def test_parse_from_stdin():
    r = kiste("dockerfile", "parse", "-", input=b"FROM busybox\nRUN <<EOF\necho hi\nEOF\n")
    assert r.returncode == 0, r.stderr
    assert r.stdout == b'(from "busybox")\n(run "<<EOF")\n'


def test_parse_missing_file(tmp_path):
    r = kiste("dockerfile", "parse", str(tmp_path / "nope"))
    assert r.returncode == 1
    assert b"No such file or directory" in r.stderr


def test_check_lists_stages(tmp_path):
    df = tmp_path / "Dockerfile"
    df.write_text("ARG BASE=busybox\n"
                  "FROM ${BASE} AS Build\n"
                  "RUN echo hi > /x\n"
                  "\n"
                  "FROM build\n"
                  "COPY --from=build /x /y\n"
                  "CMD [\"cat\", \"/y\"]\n")
    r = kiste("dockerfile", "check", str(df))
    assert r.returncode == 0, r.stderr
    assert r.stdout.decode().splitlines() == ["0\tbuild\t${BASE}\t2\t3", "1\t-\tbuild\t5\t7"]


@pytest.mark.parametrize("text,line,msg", [
    ("FROM a\nRUN x \\\n  y\nBOGUS z\n", 4, "unknown instruction: BOGUS"),
    ("RUN x\n", 1, "no build stage in current context"),
    ("FROM a\n\nCOPY --chmod=644 --frm=x a b\n", 3, "unknown flag: --frm"),
    ("FROM a\nRUN <<EOF\nnever ends\n", 2, "unterminated heredoc"),
])
def test_check_errors_name_the_line(tmp_path, text, line, msg):
    df = tmp_path / "Dockerfile"
    df.write_text(text)
    r = kiste("dockerfile", "check", str(df))
    assert r.returncode == 1
    err = r.stderr.decode()
    assert f"dockerfile parse error on line {line}: " in err and msg in err, err


def test_unknown_subcommand():
    r = kiste("dockerfile", "frobnicate")
    assert r.returncode == 1


# --- kiste build on the local busybox image ---

import json  # noqa: E402
import os  # noqa: E402
import shutil  # noqa: E402
import tarfile  # noqa: E402
import tempfile  # noqa: E402




class Store:
    def __init__(self, root, runroot):
        self.root, self.runroot = root, runroot

    def __call__(self, *args, check=True, input=None):
        p = subprocess.run([str(KISTE), "--root", str(self.root), "--runroot", str(self.runroot),
                            *[str(a) for a in args]], input=input, capture_output=True,
                           text=True, timeout=120)
        if check and p.returncode != 0:
            raise AssertionError(f"{args} failed ({p.returncode}):\n{p.stdout}\n{p.stderr}")
        return p

    def build(self, ctx, *args, check=True):
        return self("build", *args, ctx, check=check)

    def inspect(self, name):
        return json.loads(self("inspect", name).stdout)[0]


@pytest.fixture
def store(tmp_path, busybox_tar):
    runroot = Path(tempfile.mkdtemp(prefix="kb-", dir="/run"))
    s = Store(tmp_path / "root", runroot)
    s("import", busybox_tar, "busybox")
    try:
        yield s
        left = s("ps", "-aq", check=False).stdout.split()
        mounts = [line.split()[4] for line in open("/proc/self/mountinfo")
                  if str(s.root) in line.split()[4]]
    finally:
        shutil.rmtree(runroot, ignore_errors=True)
    assert not left, f"build containers left: {left}: " + s("ps", "-a", check=False).stdout
    assert not mounts, f"mounts left: {mounts}"


def write_ctx(tmp_path, text, name="ctx"):
    ctx = tmp_path / name
    ctx.mkdir(exist_ok=True)
    (ctx / "Dockerfile").write_text(text)
    return ctx


def test_build_run_env_workdir_and_config(store, tmp_path):
    ctx = write_ctx(tmp_path, "ARG GREETING=hello\n"
                              "FROM busybox\n"
                              "ARG GREETING\n"
                              "ENV A=\"x y\" B=$GREETING\n"
                              "WORKDIR /work\n"
                              "RUN echo \"$A $B\" > out.txt && echo ran in $(pwd)\n"
                              "USER nobody\n"
                              "EXPOSE 8080\n"
                              "LABEL made=kiste\n"
                              "CMD [\"cat\", \"/work/out.txt\"]\n")
    p = store.build(ctx, "-t", "built:1")
    assert "Step 6/10 : RUN echo" in p.stdout
    assert "ran in /work" in p.stdout
    assert "Successfully tagged built:1" in p.stdout
    assert store("run", "--rm", "built:1").stdout == "x y hello\n"
    cfg = store.inspect("built:1")["Config"]
    assert "A=x y" in cfg["Env"] and "B=hello" in cfg["Env"]
    assert not any(e.startswith("GREETING=") for e in cfg["Env"])  # ARGs stay out of the image
    assert cfg["WorkingDir"] == "/work" and cfg["User"] == "nobody"
    assert cfg["Cmd"] == ["cat", "/work/out.txt"]
    assert cfg["Labels"] == {"made": "kiste"} and "8080/tcp" in cfg["ExposedPorts"]
    hist = store("history", "--no-trunc", "built:1").stdout
    assert "/bin/sh -c echo \"$A $B\" > out.txt && echo ran in $(pwd)" in hist
    assert "#(nop)" in hist


def test_build_cache_hits_and_misses(store, tmp_path):
    text = "FROM busybox\nENV N=1\nRUN echo $N > /n\nRUN cat /n\n"
    ctx = write_ctx(tmp_path, text)
    first = store.build(ctx, "-q").stdout.strip()
    again = store.build(ctx)
    assert again.stdout.count("Using cache") == 2
    assert again.stdout.strip().endswith(f"Successfully built {first[7:19]}")
    # a change before a RUN is a miss for it and every step after
    write_ctx(tmp_path, text.replace("N=1", "N=2"))
    changed = store.build(ctx)
    assert "Using cache" not in changed.stdout
    assert "\n2\n" in changed.stdout
    # the first text again: the cache still has it
    write_ctx(tmp_path, text)
    assert store.build(ctx, "-q").stdout.strip() == first
    nocache = store.build(ctx, "--no-cache")
    assert "Using cache" not in nocache.stdout and "Running in" in nocache.stdout


def test_build_args_and_multi_stage_target(store, tmp_path):
    ctx = write_ctx(tmp_path, "FROM busybox AS one\n"
                              "RUN echo one > /one\n"
                              "FROM one AS two\n"
                              "ARG V=def\n"
                              "RUN echo \"$V\" > /two\n"
                              "FROM busybox\n"
                              "RUN exit 1\n")
    p = store.build(ctx, "--target", "two", "--build-arg", "V=cli", "--build-arg", "NOPE=1",
                    "-t", "two")
    assert "[Warning] One or more build-args [NOPE] were not consumed" in p.stdout
    assert store("run", "--rm", "two", "cat", "/one", "/two").stdout == "one\ncli\n"
    p = store.build(ctx, "--target", "three", check=False)
    assert p.returncode == 1 and "target stage \"three\" could not be found" in p.stderr


def test_build_failing_run_stops_and_cleans_up(store, tmp_path):
    ctx = write_ctx(tmp_path, "FROM busybox\nRUN echo before\nRUN echo oops >&2; exit 3\n"
                              "RUN echo never\n")
    p = store.build(ctx, "-t", "broken", check=False)
    assert p.returncode == 1
    assert "The command '/bin/sh -c echo oops >&2; exit 3' returned a non-zero code: 3" \
        in p.stderr
    assert "oops" in p.stderr and "never" not in p.stdout
    assert store("images", "-q", "broken", check=False).stdout.strip() == ""
    # the store fixture checks that no container and no mount is left


@pytest.mark.parametrize("text,msg", [
    ("FROM scratch\n", "FROM scratch is not supported by kiste build yet"),
    ("FROM busybox\nADD http://127.0.0.1/x /x\n", "ADD from a URL is not supported"),
    ("FROM busybox\nADD x.tar.gz /x\n", "ADD of an archive (unpacking it) is not supported"),
    ("FROM busybox\nCOPY --from=other x /x\n", "No such image"),
    ("FROM busybox\nCOPY <<EOF /x\nhi\nEOF\n", "heredocs is not supported"),
    ("FROM busybox\nRUN --mount=type=cache,target=/c true\n", "RUN --mount"),
    ("FROM busybox\nCOPY nope /x\n", "file not found in build context or excluded by "
                                       ".dockerignore: stat nope"),
    ("FROM busybox\nCOPY Dockerfile Dockerfile /x\n", "must be a directory and end with a /"),
    ("FROM no-such-image\n", "No such image"),
    ("FROM busybox\nBOGUS\n", "line 2: unknown instruction: BOGUS"),
])
def test_build_refusals(store, tmp_path, text, msg):
    p = store.build(write_ctx(tmp_path, text), check=False)
    assert p.returncode == 1 and msg in p.stderr, p.stderr


def test_build_copy_dockerignore_and_cache(store, tmp_path):
    ctx = write_ctx(tmp_path, "FROM busybox\n"
                              "WORKDIR /app\n"
                              "COPY a.txt .\n"
                              "COPY src /app/src/\n"
                              "COPY --chown=user --chmod=600 a.txt /etc/renamed\n"
                              "COPY *.txt link /multi/\n"
                              "COPY . /all\n"
                              "ADD a.txt /added\n"
                              "RUN cat /app/a.txt /app/src/sub/two.c\n")
    (ctx / "src" / "sub").mkdir(parents=True)
    (ctx / "node_modules").mkdir()
    (ctx / "a.txt").write_text("hello\n")
    (ctx / "a.txt").chmod(0o640)
    (ctx / "src" / "one.c").write_text("one\n")
    (ctx / "src" / "sub" / "two.c").write_text("two\n")
    (ctx / "node_modules" / "m").write_text("m\n")
    (ctx / "x.log").write_text("log\n")
    (ctx / "link").symlink_to("a.txt")
    (ctx / ".dockerignore").write_text("node_modules\n*.log\n")
    p = store.build(ctx, "-t", "copied")
    assert "hello\ntwo\n" in p.stdout

    def sh(cmd):
        return store("run", "--rm", "copied", "sh", "-c", cmd).stdout

    assert sh("cat /app/a.txt /app/src/one.c /multi/a.txt") == "hello\none\nhello\n"
    assert sh("stat -c '%a %u %g' /app/a.txt /etc/renamed") == "640 0 0\n600 1000 1000\n"
    assert sh("readlink /multi/link") == "a.txt\n"
    assert sh("cat /added") == "hello\n"
    listing = sh("cd /all && find . | sort").split()
    assert "./src/sub/two.c" in listing and "./a.txt" in listing
    assert not any("node_modules" in f or f.endswith(".log") for f in listing)
    hist = store("history", "--no-trunc", "copied").stdout
    assert "#(nop) COPY file:" in hist and "#(nop) COPY dir:" in hist
    assert "#(nop) ADD file:" in hist

    # every step cached; then a change in src/ misses from its COPY on
    again = store.build(ctx)
    assert again.stdout.count("Using cache") == 7
    os.utime(ctx / "a.txt", (1, 1))  # a new mtime alone is no change
    assert store.build(ctx).stdout.count("Using cache") == 7
    (ctx / "node_modules" / "m").write_text("ignored change\n")
    assert store.build(ctx).stdout.count("Using cache") == 7
    (ctx / "src" / "one.c").write_text("changed\n")
    changed = store.build(ctx).stdout
    assert changed.count("Using cache") == 1  # only COPY a.txt, before the change


def test_build_context_tar_on_stdin(store, tmp_path):
    ctx = write_ctx(tmp_path, "FROM busybox\nCOPY data /data\nRUN cat /data\n")
    (ctx / "data").write_text("from the tar\n")
    tar = tmp_path / "ctx.tar"
    with tarfile.open(tar, "w") as t:
        t.add(ctx, arcname=".")
    p = subprocess.run([str(KISTE), "--root", str(store.root), "--runroot", str(store.runroot),
                        "build", "-t", "fromtar", "-"], input=tar.read_bytes(),
                       capture_output=True, timeout=120)
    assert p.returncode == 0 and b"from the tar" in p.stdout, p.stdout + p.stderr
    assert store("run", "--rm", "fromtar", "cat", "/data").stdout == "from the tar\n"
    assert not list((store.root / "tmp").glob("context-*"))  # the unpacked context is gone
    p = store("build", "-", input="FROM busybox\n", check=False)
    assert p.returncode == 1 and "unpacking the build context from stdin" in p.stderr


def test_build_healthcheck_onbuild_and_prune(store, tmp_path):
    parent = write_ctx(tmp_path, "FROM busybox\n"
                                 "HEALTHCHECK --interval=5s --retries=3 CMD test -e /tmp\n"
                                 "ONBUILD RUN echo triggered > /trig\n"
                                 "STOPSIGNAL SIGINT\n", "parent")
    store.build(parent, "-t", "parent")
    cfg = store.inspect("parent")["Config"]
    assert cfg["Healthcheck"] == {"Test": ["CMD-SHELL", "test -e /tmp"], "Interval": 5000000000,
                                  "Retries": 3}
    assert cfg["OnBuild"] == ["RUN echo triggered > /trig"] and cfg["StopSignal"] == "SIGINT"
    child = write_ctx(tmp_path, "FROM parent\nRUN cat /trig\n", "child")
    p = store.build(child, "-t", "child")
    assert "# Executing 1 build trigger" in p.stdout and "triggered" in p.stdout
    assert not store.inspect("child")["Config"].get("OnBuild")  # triggers are not inherited
    assert "Using cache" in store.build(child).stdout
    pruned = store("builder", "prune")
    assert pruned.stdout.startswith("Deleted build cache objects: ")
    assert int(pruned.stdout.split(":")[1]) >= 2
    assert "Using cache" not in store.build(child).stdout


def test_build_context_links_stay_inside(store, tmp_path):
    ctx = write_ctx(tmp_path, "FROM busybox\nCOPY esc/hostname /x\n")
    (ctx / "esc").symlink_to("/etc")
    p = store.build(ctx, check=False)
    assert p.returncode == 1 and "file not found in build context" in p.stderr, p.stderr
    ctx2 = write_ctx(tmp_path, "FROM busybox\nCOPY esc /x/\nRUN readlink /x/esc\n", "ctx2")
    (ctx2 / "esc").symlink_to("/etc")
    assert "/etc" in store.build(ctx2).stdout  # the link itself is copied, not its target


def test_build_copy_from_stages_and_images(store, tmp_path):
    ctx = write_ctx(tmp_path, "FROM busybox AS build\n"
                              "RUN mkdir -p /out/sub && echo built > /out/artifact && "
                              "echo deep > /out/sub/x && ln -s /etc /out/etclink\n"
                              "FROM busybox\n"
                              "COPY --from=build /out/artifact /usr/local/bin/\n"
                              "COPY --from=build /out /copied\n"
                              "COPY --from=0 /out/sub/x /x\n"
                              "COPY --from=busybox /etc/passwd /passwd-from-image\n"
                              "RUN cat /usr/local/bin/artifact /copied/sub/x /x && "
                              "readlink /copied/etclink\n")
    p = store.build(ctx, "-t", "multi")
    assert "built\ndeep\ndeep\n/etc\n" in p.stdout
    assert store("run", "--rm", "multi", "head", "-1", "/passwd-from-image").stdout.startswith(
        "root:")
    assert store.build(ctx).stdout.count("Using cache") == 6
