#!/usr/bin/env bash
# Container lifecycle latency of kiste-runtime against runc, side by side in one run.
#
# One cycle is: create → start → wait for the container's init to exit → delete, of a busybox
# bundle whose process is `true` (terminal false). Cycles alternate between the two runtimes, so
# both see the same machine state; each runtime has its own private --root. The harness makes
# itself a child subreaper, so the init of either runtime is re-parented to it and the wait is a
# plain waitpid() (the same method for both). Wall time per cycle is CLOCK_MONOTONIC.
#
# Also runs `true` under linux.resources.memory.limit = 1 MiB with each runtime and reports
# whether it succeeded.
#
# Usage: bench/runtime-lifecycle.sh [-n ITERATIONS] [-k KISTE_RUNTIME] [-r RUNC]
#   environment: BENCH_N, KISTE_RUNTIME, RUNC, KISTE_BUILD (build dir holding the runtime)
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
N=${BENCH_N:-200}
KISTE=${KISTE_RUNTIME:-${KISTE_BUILD:-$here/../build-bench}/src/runtime/kiste-runtime}
RUNC=${RUNC:-/usr/sbin/runc}
BUSYBOX=${BUSYBOX:-/bin/busybox}
PYTHON=${PYTHON:-/usr/bin/python3}

while getopts "n:k:r:h" opt; do
    case $opt in
    n) N=$OPTARG ;;
    k) KISTE=$OPTARG ;;
    r) RUNC=$OPTARG ;;
    *)
        sed -n '2,15p' "$0"
        exit 2
        ;;
    esac
done

for bin in "$KISTE" "$RUNC" "$BUSYBOX" "$PYTHON"; do
    if [ ! -x "$bin" ]; then
        echo "runtime-lifecycle: $bin: not found or not executable" >&2
        exit 2
    fi
done
KISTE=$(readlink -f "$KISTE")
RUNC=$(readlink -f "$RUNC")

work=$(mktemp -d /tmp/kiste-bench-lifecycle.XXXXXX)
cleanup() {
    set +e
    for rt in kiste runc; do
        bin=$KISTE
        [ $rt = runc ] && bin=$RUNC
        if [ -d "$work/root-$rt" ]; then
            for d in "$work/root-$rt"/*/; do
                [ -d "$d" ] || continue
                "$bin" --root "$work/root-$rt" delete --force "$(basename "$d")" >/dev/null 2>&1
            done
        fi
    done
    rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# --- the bundle -------------------------------------------------------------------------------
rootfs=$work/rootfs
mkdir -p "$rootfs"/{bin,etc,proc,sys,dev,tmp,root}
chmod 1777 "$rootfs/tmp"
cp "$BUSYBOX" "$rootfs/bin/busybox"
for a in $("$rootfs/bin/busybox" --list); do
    [ "$a" = busybox ] || ln -s busybox "$rootfs/bin/$a"
done
printf 'root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/bin/false\n' \
    >"$rootfs/etc/passwd"
printf 'root:x:0:\nnogroup:x:65534:\n' >"$rootfs/etc/group"

# Both runtimes use the same config: kiste-runtime's default spec, with `true` as the process
# and the shared rootfs by absolute path (runc refuses a symlinked one).
make_bundle() { # DIR MEMORY_LIMIT(0 = none)
    mkdir -p "$1"
    (cd "$1" && "$KISTE" spec)
    "$PYTHON" - "$1/config.json" "$2" "$rootfs" <<'EOF'
import json, sys
path, mem, rootfs = sys.argv[1], int(sys.argv[2]), sys.argv[3]
c = json.load(open(path))
c["root"] = {"path": rootfs, "readonly": True}
c["process"]["terminal"] = False
c["process"]["args"] = ["true"]
if mem:
    c.setdefault("linux", {}).setdefault("resources", {})["memory"] = {"limit": mem}
json.dump(c, open(path, "w"), indent=2)
EOF
}
make_bundle "$work/bundle" 0
make_bundle "$work/bundle-mem" 1048576
mkdir -p "$work/root-kiste" "$work/root-runc"

# --- the harness ------------------------------------------------------------------------------
cat >"$work/harness.py" <<'EOF'
import ctypes, os, statistics, sys, time

PR_SET_CHILD_SUBREAPER = 36
libc = ctypes.CDLL(None, use_errno=True)
if libc.prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) != 0:
    sys.exit("prctl(PR_SET_CHILD_SUBREAPER) failed")

mode, work, n = sys.argv[1], sys.argv[2], int(sys.argv[3])
runtimes = [("kiste-runtime", sys.argv[4], work + "/root-kiste"),
            ("runc", sys.argv[5], work + "/root-runc")]
devnull = os.open(os.devnull, os.O_RDWR)


def run(argv):
    """Spawn and wait; returns (exit status, stderr text). stderr goes to a file, not a pipe:
    the container's init inherits it and outlives `create`."""
    errpath = f"{work}/stderr"
    errfd = os.open(errpath, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    fa = [(os.POSIX_SPAWN_DUP2, devnull, 0), (os.POSIX_SPAWN_DUP2, devnull, 1),
          (os.POSIX_SPAWN_DUP2, errfd, 2)]
    pid = os.posix_spawn(argv[0], argv, os.environ, file_actions=fa)
    os.close(errfd)
    _, status = os.waitpid(pid, 0)
    rc = os.waitstatus_to_exitcode(status)
    err = ""
    if rc != 0:
        with open(errpath, errors="replace") as f:
            err = f.read().strip()
    return rc, err


def wait_init(pid):
    """Wait for the re-parented init; reap whatever else was re-parented on the way."""
    while True:
        got, status = os.waitpid(-1, 0)
        if got == pid:
            return os.waitstatus_to_exitcode(status)


def cycle(binary, root, bundle, cid):
    pidfile = f"{work}/{cid}.pid"
    t0 = time.clock_gettime_ns(time.CLOCK_MONOTONIC)
    rc, err = run([binary, "--root", root, "create", "--bundle", bundle,
                   "--pid-file", pidfile, cid])
    if rc != 0:
        return None, f"create: exit {rc}: {err}"
    with open(pidfile) as f:
        pid = int(f.read())
    rc, err = run([binary, "--root", root, "start", cid])
    if rc != 0:
        run([binary, "--root", root, "delete", "--force", cid])
        return None, f"start: exit {rc}: {err}"
    status = wait_init(pid)
    rc, err = run([binary, "--root", root, "delete", cid])
    t1 = time.clock_gettime_ns(time.CLOCK_MONOTONIC)
    os.unlink(pidfile)
    if rc != 0:
        run([binary, "--root", root, "delete", "--force", cid])
        return None, f"delete: exit {rc}: {err}"
    if status != 0:
        return None, f"`true` exited with {status}"
    return (t1 - t0) / 1e6, None


def pct(xs, p):
    xs = sorted(xs)
    k = (len(xs) - 1) * p / 100
    lo = int(k)
    hi = min(lo + 1, len(xs) - 1)
    return xs[lo] + (xs[hi] - xs[lo]) * (k - lo)


if mode == "lifecycle":
    times = {name: [] for name, _, _ in runtimes}
    # A few untimed cycles first: page cache, cgroup hierarchies, dentries.
    for i in range(3):
        for name, binary, root in runtimes:
            _, err = cycle(binary, root, work + "/bundle", f"warm{i}")
            if err:
                sys.exit(f"{name}: warm-up: {err}")
    for i in range(n):
        order = runtimes if i % 2 == 0 else runtimes[::-1]
        for name, binary, root in order:
            ms, err = cycle(binary, root, work + "/bundle", f"b{i}")
            if err:
                sys.exit(f"{name}: iteration {i}: {err}")
            times[name].append(ms)
    print(f"create+start+wait+delete of busybox `true`, {n} cycles each, interleaved")
    print(f"{'runtime':<15}{'median ms':>12}{'p90 ms':>10}{'min ms':>10}{'mean ms':>10}")
    for name, _, _ in runtimes:
        t = times[name]
        print(f"{name:<15}{statistics.median(t):>12.2f}{pct(t, 90):>10.2f}"
              f"{min(t):>10.2f}{statistics.mean(t):>10.2f}")
    k, r = times["kiste-runtime"], times["runc"]
    ratio = statistics.median(k) / statistics.median(r)
    print(f"ratio kiste/runc: median {ratio:.3f}, p90 {pct(k, 90) / pct(r, 90):.3f}"
          f"  (target: median <= 0.300: {'met' if ratio <= 0.3 else 'NOT met'})")
elif mode == "memory":
    print("`true` with linux.resources.memory.limit = 1048576 (1 MiB)")
    for name, binary, root in runtimes:
        _, err = cycle(binary, root, work + "/bundle-mem", "mem1m")
        print(f"{name:<15}{'ok' if err is None else 'FAILED: ' + err}")
EOF

echo "machine: $(uname -srm), $(nproc) CPUs, $(sed -n "s/^model name[[:space:]]*: //p" /proc/cpuinfo | head -1)"
echo "kiste-runtime: $KISTE ($("$KISTE" --version | head -1))"
echo "runc: $RUNC ($("$RUNC" --version | head -1))"
echo
"$PYTHON" "$work/harness.py" lifecycle "$work" "$N" "$KISTE" "$RUNC"
echo
"$PYTHON" "$work/harness.py" memory "$work" 1 "$KISTE" "$RUNC"
