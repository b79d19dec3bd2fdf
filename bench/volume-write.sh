#!/usr/bin/env bash
# Sequential write into a volume from inside a container against the same write on the host,
# side by side in one run.
#
# A private kiste store under a temporary directory holds a busybox image and a named volume;
# one container (`kiste run -d --network none -v benchvol:/v`) stays up for the whole run. Each
# round writes SIZE_MB MiB with `dd if=/dev/zero bs=1M conv=fsync` (so the data reaches the
# disk) once into the volume through `kiste exec` and once into a host directory on the same
# file system, alternating which goes first so drift hits both alike. The same busybox shell
# script times dd in both places from /proc/uptime (10 ms resolution), so the start of exec is
# not counted. One warm-up round of each, then N rounds; medians, throughput and the ratio
# volume/host. Target: the volume within 5% of the host (ratio <= 1.05).
#
# Usage: bench/volume-write.sh [-n RUNS] [-s SIZE_MB]
#   environment: BENCH_N, BENCH_SIZE_MB, KISTE_BUILD (build dir holding src/cli/kiste)
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
N=${BENCH_N:-11}
SIZE_MB=${BENCH_SIZE_MB:-1024}
BUILD=${KISTE_BUILD:-$here/../build-bench}
KISTE=${KISTE:-$BUILD/src/cli/kiste}
BUSYBOX=${BUSYBOX:-/bin/busybox}
TMPDIR=${TMPDIR:-/var/tmp}

while getopts "n:s:h" opt; do
    case $opt in
    n) N=$OPTARG ;;
    s) SIZE_MB=$OPTARG ;;
    *)
        sed -n '2,16p' "$0"
        exit 2
        ;;
    esac
done

for bin in "$KISTE" "$BUSYBOX"; do
    if [ ! -x "$bin" ]; then
        echo "volume-write: $bin: not found or not executable" >&2
        exit 2
    fi
done
KISTE=$(readlink -f "$KISTE")

work=$(mktemp -d "$TMPDIR/kiste-bench-vol.XXXXXX")
runroot=$(mktemp -d /run/kbv.XXXXXX)
k() { "$KISTE" --root "$work/root" --runroot "$runroot" "$@"; }
cleanup() {
    k rm -f -v benchw >/dev/null 2>&1 || true
    k volume rm -f benchvol >/dev/null 2>&1 || true
    rm -rf "$work" "$runroot"
}
trap cleanup EXIT

# The image: busybox with its applet links.
rootfs=$work/rootfs
mkdir -p "$rootfs/bin" "$rootfs/etc" "$rootfs/proc" "$rootfs/sys" "$rootfs/dev" "$rootfs/tmp"
cp "$BUSYBOX" "$rootfs/bin/busybox"
for a in $("$rootfs/bin/busybox" --list); do
    [ "$a" = busybox ] || ln -s busybox "$rootfs/bin/$a"
done
echo "root:x:0:0:root:/root:/bin/sh" >"$rootfs/etc/passwd"
echo "root:x:0:" >"$rootfs/etc/group"
tar -C "$rootfs" -cf "$work/busybox.tar" .
k import "$work/busybox.tar" busybox >/dev/null
k run -d --name benchw --network none -v benchvol:/v busybox sleep 100000 >/dev/null
host=$work/host
mkdir -p "$host"

# Prints dd's wall time in centiseconds for a write into directory $1.
script='rm -f "$1/blob"; sync; read a _ </proc/uptime
dd if=/dev/zero of="$1/blob" bs=1M count='"$SIZE_MB"' conv=fsync 2>/dev/null
read b _ </proc/uptime; rm -f "$1/blob"; sync
echo "$a $b" | awk "{ printf \"%d\n\", (\$2 - \$1) * 100 + 0.5 }"'
in_volume() { k exec benchw sh -c "$script" sh /v; }
on_host() { "$BUSYBOX" sh -c "$script" sh "$host"; }

# One round of each first, not counted: the first write into a new directory allocates more.
in_volume >/dev/null
on_host >/dev/null
vol=() hst=()
for i in $(seq 1 "$N"); do
    if [ $((i % 2)) -eq 1 ]; then
        vol+=("$(in_volume)")
        hst+=("$(on_host)")
    else
        hst+=("$(on_host)")
        vol+=("$(in_volume)")
    fi
    echo "round $i: volume ${vol[-1]}0 ms, host ${hst[-1]}0 ms" >&2
done

median() { printf '%s\n' "$@" | sort -n | awk '{ v[NR] = $1 } END { print (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }
mv=$(median "${vol[@]}")
mh=$(median "${hst[@]}")
awk -v v="$mv" -v h="$mh" -v mb="$SIZE_MB" -v n="$N" 'BEGIN {
    printf "sequential write of %d MiB, dd bs=1M conv=fsync, %d rounds, medians\n", mb, n
    printf "%-22s %10s %12s\n", "", "time", "throughput"
    printf "%-22s %8.2f s %8.0f MiB/s\n", "volume (in container)", v / 100, mb / (v / 100)
    printf "%-22s %8.2f s %8.0f MiB/s\n", "host directory", h / 100, mb / (h / 100)
    printf "ratio volume/host: %.3f (target <= 1.05)\n", v / h
}'
