#!/usr/bin/env bash
# Container commands of kiste against Docker and runc, side by side in one run.
#
# The image is a busybox rootfs (Debian's static /bin/busybox, its applet links, /etc/passwd and
# /etc/group), tarred and imported into a private kiste store (`kiste import`) and into a private
# dockerd (`docker import`; its own data root, exec root, pid file and socket; no bridge, no
# iptables), which is stopped at the end. runc runs a bundle of the same rootfs (`runc spec`,
# process `true`, read-only root; runc's default spec has a network namespace with only lo).
#
#   run:  `kiste run --rm --network none IMG true` vs `docker run --rm --network none IMG true`
#         vs `runc run --bundle B ID` (create + start + wait + delete), and runc with the same
#         bundle plus the seccomp profile of kiste's generated config.json (Docker's default
#         profile, which kiste and Docker apply and `runc spec` does not), measured with hyperfine
#         (-N: no shell; 2 warm-up runs each), N runs each; medians and ratios.
#         Targets: kiste <= docker / 15, and kiste <= runc.
#   many: COUNT containers running `sleep` started with `kiste run -d --network none`, one
#         after the other. Memory per container beyond its own processes: MemAvailable before
#         minus after, less the Pss of the containers' `sleep` processes, divided by COUNT; and
#         the Pss and private memory of the kiste-monitor processes. Target: <= 1 MiB.
#   ps:   `kiste ps -a` with those COUNT containers (hyperfine, N runs). Target: median < 100 ms.
#   rm:   all COUNT removed with one `kiste rm -f` (timed once).
#
# Usage: bench/container-run.sh [-n RUNS] [-c COUNT]
#   environment: BENCH_N, BENCH_COUNT, KISTE_BUILD (build dir holding src/cli/kiste)
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
N=${BENCH_N:-20}
COUNT=${BENCH_COUNT:-1000}
BUILD=${KISTE_BUILD:-$here/../build-bench}
KISTE=${KISTE:-$BUILD/src/cli/kiste}
DOCKERD=${DOCKERD:-/usr/sbin/dockerd}
DOCKER=${DOCKER:-/usr/bin/docker}
RUNC=${RUNC:-/usr/sbin/runc}
BUSYBOX=${BUSYBOX:-/bin/busybox}
PYTHON=${PYTHON:-/usr/bin/python3}
HYPERFINE=${HYPERFINE:-hyperfine}

while getopts "n:c:h" opt; do
    case $opt in
    n) N=$OPTARG ;;
    c) COUNT=$OPTARG ;;
    *)
        sed -n '2,24p' "$0"
        exit 2
        ;;
    esac
done

for bin in "$KISTE" "$DOCKERD" "$DOCKER" "$RUNC" "$BUSYBOX" "$PYTHON" "$(command -v "$HYPERFINE")"; do
    if [ ! -x "$bin" ]; then
        echo "container-run: $bin: not found or not executable" >&2
        exit 2
    fi
done
KISTE=$(readlink -f "$KISTE")

work=$(mktemp -d /tmp/kiste-bench-run.XXXXXX)
# kiste finds kiste-monitor and kiste-runtime next to itself: copies keep a rebuild during the
# run from swapping binaries under running containers.
mkdir "$work/bin"
for b in "$KISTE" "$(dirname "$KISTE")"/../monitor/kiste-monitor \
    "$(dirname "$KISTE")"/../runtime/kiste-runtime "$(dirname "$KISTE")"/../init/kiste-init; do
    [ -x "$b" ] && cp "$b" "$work/bin/"
done
KISTE=$work/bin/kiste
runroot=$(mktemp -d /run/kb.XXXXXX) # short: socket paths live under it
ddir=$(mktemp -d /tmp/kiste-bench-dockerd.XXXXXX)
dpid=
kiste() { "$KISTE" --root "$work/root" --runroot "$runroot" "$@"; }
docker() { "$DOCKER" -H "unix://$ddir/sock" "$@"; }
stop_dockerd() {
    [ -n "$dpid" ] || return 0
    kill "$dpid" 2>/dev/null
    for _ in $(seq 300); do kill -0 "$dpid" 2>/dev/null || break; sleep 0.1; done
    dpid=
}
cleanup() {
    set +e
    if [ -d "$work/root" ]; then
        ids=$(kiste ps -aq --no-trunc 2>/dev/null)
        [ -z "$ids" ] || kiste rm -f $ids >/dev/null 2>&1
    fi
    # Whatever `rm` could not stop: the containers' processes, then their monitors.
    for f in "$runroot"/containers/*/monitor.pid; do
        [ -f "$f" ] || continue
        p=$(cat "$f")
        for c in $(pgrep -P "$p"); do kill -KILL "$c" 2>/dev/null; done
        kill -KILL "$p" 2>/dev/null
    done
    "$RUNC" --root "$work/runc-root" delete --force bench-runc >/dev/null 2>&1
    stop_dockerd
    for d in "$work" "$ddir" "$runroot"; do
        grep -o " $d/[^ ]*" /proc/self/mountinfo | sort -r | while read -r m; do umount -l "$m"; done
    done
    rm -rf "$work" "$ddir" "$runroot"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# --- the image ----------------------------------------------------------------------------------
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
tar --numeric-owner -C "$rootfs" -cf "$work/busybox.tar" .
IMG=kiste-bench-busybox:1
kiste import "$work/busybox.tar" "$IMG" >/dev/null

# kiste's generated config.json, for the seccomp profile that kiste and Docker apply by default.
cid=$(kiste run -d --network none "$IMG" sleep 1000)
cp "$runroot/containers/$cid/bundle/config.json" "$work/kiste-config.json"
kiste rm -f "$cid" >/dev/null
mkdir -p "$work/bundle" "$work/bundle-seccomp" "$work/runc-root"
(cd "$work/bundle" && "$RUNC" spec)
"$PYTHON" - "$work/bundle/config.json" "$rootfs" "$work/kiste-config.json" \
    "$work/bundle-seccomp/config.json" <<'EOF'
import json, sys
path, rootfs, kiste_config, path_seccomp = sys.argv[1:5]
c = json.load(open(path))
c["root"] = {"path": rootfs, "readonly": True}
c["process"]["terminal"] = False
c["process"]["args"] = ["true"]
json.dump(c, open(path, "w"), indent=2)
c["linux"]["seccomp"] = json.load(open(kiste_config))["linux"]["seccomp"]
json.dump(c, open(path_seccomp, "w"), indent=2)
EOF

"$DOCKERD" --data-root "$ddir/data" --exec-root "$ddir/exec" --pidfile "$ddir/pid" \
    -H "unix://$ddir/sock" --bridge=none --iptables=false >"$ddir/dockerd.log" 2>&1 &
dpid=$!
for _ in $(seq 300); do
    docker version >/dev/null 2>&1 && break
    kill -0 "$dpid" 2>/dev/null || { cat "$ddir/dockerd.log" >&2; exit 1; }
    sleep 0.2
done
docker import "$work/busybox.tar" "$IMG" >/dev/null

echo "machine: $(uname -srm), $(nproc) CPUs, $(sed -n "s/^model name[[:space:]]*: //p" /proc/cpuinfo | head -1)"
echo "kiste: $KISTE ($("$KISTE" --version | head -1))"
echo "docker: $("$DOCKERD" --version)"
echo "runc: $("$RUNC" --version | head -1)"
echo

# --- run --rm true ------------------------------------------------------------------------------
"$HYPERFINE" -N -w 2 -r "$N" --export-json "$work/run.json" \
    -n kiste "$KISTE --root $work/root --runroot $runroot run --rm --network none $IMG true" \
    -n runc "$RUNC --root $work/runc-root run --bundle $work/bundle bench-runc" \
    -n runc-seccomp "$RUNC --root $work/runc-root run --bundle $work/bundle-seccomp bench-runc" \
    -n docker "$DOCKER -H unix://$ddir/sock run --rm --network none $IMG true" >&2
stop_dockerd

# --- COUNT containers running sleep -------------------------------------------------------------
meminfo() { awk -v k="$1:" '$1 == k {print $2}' /proc/meminfo; }
# Sum of Pss (or other smaps_rollup fields, kB) over pids; missing processes count 0.
rollup() { # FIELD PID...
    local f=$1
    shift
    for p in "$@"; do cat "/proc/$p/smaps_rollup" 2>/dev/null; done |
        awk -v k="$f:" '$1 == k {s += $2} END {print s + 0}'
}
sync
avail0=$(meminfo MemAvailable) slab0=$(meminfo Slab)
t0=$(date +%s.%N)
for i in $(seq "$COUNT"); do
    if ! kiste run -d --network none "$IMG" sleep 100000 >/dev/null 2>"$work/run.err"; then
        echo "container-run: container $i failed to start: $(cat "$work/run.err")" >&2
        exit 1
    fi
done
t1=$(date +%s.%N)
sync
avail1=$(meminfo MemAvailable) slab1=$(meminfo Slab)
mapfile -t monitors < <(cat "$runroot"/containers/*/monitor.pid)
mapfile -t sleeps < <(for p in "${monitors[@]}"; do tr ' ' '\n' <"/proc/$p/task/$p/children"; done |
    grep .)
running=$(kiste ps -q | wc -l)
mon_pss=$(rollup Pss "${monitors[@]}")
mon_priv=$(($(rollup Private_Clean "${monitors[@]}") + $(rollup Private_Dirty "${monitors[@]}")))
ctr_pss=$(rollup Pss "${sleeps[@]}")

"$HYPERFINE" -N -w 2 -r "$N" --export-json "$work/ps.json" \
    -n "kiste ps -a" "$KISTE --root $work/root --runroot $runroot ps -a" >&2

t2=$(date +%s.%N)
kiste rm -f $(kiste ps -aq --no-trunc) >/dev/null
t3=$(date +%s.%N)
left=$(kiste ps -aq | wc -l)

# --- report -------------------------------------------------------------------------------------
"$PYTHON" - "$work" "$N" "$COUNT" "$running" "${#monitors[@]}" "${#sleeps[@]}" \
    "$avail0" "$avail1" "$slab0" "$slab1" "$mon_pss" "$mon_priv" "$ctr_pss" \
    "$t0" "$t1" "$t2" "$t3" "$left" <<'EOF'
import json, statistics, sys
a = sys.argv[1:]
work, n, count, running, nmon, nsleep = a[0], int(a[1]), int(a[2]), int(a[3]), int(a[4]), int(a[5])
avail0, avail1, slab0, slab1, mon_pss, mon_priv, ctr_pss = (int(x) for x in a[6:13])
t0, t1, t2, t3 = (float(x) for x in a[13:17])
left = int(a[17])
med = {}
for f in ("run", "ps"):
    for r in json.load(open(f"{work}/{f}.json"))["results"]:
        med[r["command"]] = (statistics.median(r["times"]) * 1000, min(r["times"]) * 1000,
                             r["mean"] * 1000)
print(f"run --rm --network none busybox true, {n} runs each (hyperfine -N)")
print(f"{'':<8}{'median ms':>12}{'min ms':>10}{'mean ms':>10}")
for k in ("kiste", "runc", "runc-seccomp", "docker"):
    print(f"{k:<8}{med[k][0]:>12.1f}{med[k][1]:>10.1f}{med[k][2]:>10.1f}")
kd = med["kiste"][0] / med["docker"][0]
kr = med["kiste"][0] / med["runc"][0]
print(f"ratio kiste/docker {kd:.4f} = 1/{1 / kd:.1f} (target <= 1/15: "
      f"{'met' if kd <= 1 / 15 else 'NOT met'})")
print(f"ratio kiste/runc   {kr:.3f} (target <= 1: {'met' if kr <= 1 else 'NOT met'})")
print(f"ratio kiste/runc with kiste's (Docker's) seccomp profile "
      f"{med['kiste'][0] / med['runc-seccomp'][0]:.3f}")
print()
per = ((avail0 - avail1) - ctr_pss) / count
print(f"{count} containers running `sleep` (kiste run -d): started in {t1 - t0:.1f} s "
      f"({(t1 - t0) / count * 1000:.0f} ms each); running {running}, monitors {nmon}, "
      f"container processes {nsleep}")
print(f"MemAvailable {avail0 // 1024} MiB -> {avail1 // 1024} MiB: "
      f"{(avail0 - avail1) / count:.0f} KiB per container; less the containers' own Pss "
      f"({ctr_pss / count:.0f} KiB each): {per:.0f} KiB per container "
      f"(target <= 1024: {'met' if per <= 1024 else 'NOT met'})")
print(f"  of which kernel slab {(slab1 - slab0) / count:.0f} KiB; kiste-monitor Pss "
      f"{mon_pss / max(nmon, 1):.0f} KiB, private {mon_priv / max(nmon, 1):.0f} KiB each")
p = med["kiste ps -a"]
print(f"kiste ps -a with {count} containers: median {p[0]:.1f} ms, min {p[1]:.1f} ms "
      f"(target < 100: {'met' if p[0] < 100 else 'NOT met'})")
print(f"kiste rm -f of all {count}: {t3 - t2:.1f} s; left afterwards: {left}")
EOF
