#!/usr/bin/env bash
# Image loading and importing of kiste against Docker and tar, side by side in one run.
#
# The image is a Debian bookworm root file system made with `debootstrap --variant=minbase`
# (cached under $KISTE_BUILD/bench-fixtures/), tarred. A private dockerd (its own data root,
# exec root, pid file and socket; no bridge, no iptables) imports the tarball and saves it with
# `docker save`; that archive is what both `kiste load` and `docker load` read.
#
#   load:   `kiste load -i ARCHIVE` into an empty store vs `docker load -i ARCHIVE`; the image is
#           removed (and, for kiste, the store emptied) between runs.
#   import: `kiste import ROOTFS.tar` vs `tar -xf ROOTFS.tar` into an empty directory on the same
#           file system.
#
# The two sides alternate (and which goes first alternates too), `sync` before each run (not
# timed); wall time per run is measured with `date +%s.%N`; the result is the median of N runs
# and the ratio kiste / peer. Each run starts without the image: kiste loads into a new store,
# docker into a dockerd restarted on a new data root (untimed); nothing is deleted before the
# end (see below).
#
# Usage: bench/image-load.sh [-n RUNS]
#   environment: BENCH_N, KISTE_BUILD (build dir holding src/cli/kiste), MIRROR (Debian mirror)
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
N=${BENCH_N:-5}
BUILD=${KISTE_BUILD:-$here/../build-bench}
KISTE=${KISTE:-$BUILD/src/cli/kiste}
MIRROR=${MIRROR:-http://deb.debian.org/debian}
DOCKERD=${DOCKERD:-/usr/sbin/dockerd}
DOCKER=${DOCKER:-/usr/bin/docker}

while getopts "n:h" opt; do
    case $opt in
    n) N=$OPTARG ;;
    *)
        sed -n '2,20p' "$0"
        exit 2
        ;;
    esac
done

for bin in "$KISTE" "$DOCKERD" "$DOCKER"; do
    if [ ! -x "$bin" ]; then
        echo "image-load: $bin: not found or not executable" >&2
        exit 2
    fi
done
KISTE=$(readlink -f "$KISTE")

# --- the fixture ------------------------------------------------------------------------------
fixtures=$BUILD/bench-fixtures
mkdir -p "$fixtures"
rootfs=$fixtures/debian-bookworm-minbase
if [ ! -d "$rootfs" ]; then
    echo "image-load: building the Debian rootfs with debootstrap (takes minutes)" >&2
    rm -rf "$rootfs.tmp"
    debootstrap --variant=minbase bookworm "$rootfs.tmp" "$MIRROR" >"$fixtures/debootstrap.log" 2>&1
    mv "$rootfs.tmp" "$rootfs"
fi
rootfs_tar=$fixtures/debian-bookworm-minbase.tar
if [ ! -f "$rootfs_tar" ]; then
    tar --numeric-owner -C "$rootfs" -cf "$rootfs_tar.tmp" .
    mv "$rootfs_tar.tmp" "$rootfs_tar"
fi

# Work on the same file system as the fixture, so tar -x and kiste write to the same disk.
work=$(mktemp -d "$BUILD/bench-image-load.XXXXXX")
ddir=$(mktemp -d /tmp/kiste-bench-dockerd.XXXXXX) # short: the socket paths live here
dpid=
cleanup() {
    set +e
    stop_dockerd
    grep -o " $work/[^ ]*" /proc/self/mountinfo | sort -r | while read -r m; do umount -l "$m"; done
    rm -rf "$work" "$ddir"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# --- the private dockerd ----------------------------------------------------------------------
docker() { "$DOCKER" -H "unix://$ddir/sock" "$@"; }
stop_dockerd() {
    [ -n "$dpid" ] || return 0
    kill "$dpid" 2>/dev/null
    for _ in $(seq 300); do kill -0 "$dpid" 2>/dev/null || break; sleep 0.1; done
    dpid=
}
start_dockerd() { # DATA_ROOT
    "$DOCKERD" --data-root "$1" --exec-root "$ddir/exec" --pidfile "$ddir/pid" \
        -H "unix://$ddir/sock" --bridge=none --iptables=false >"$work/dockerd.log" 2>&1 &
    dpid=$!
    for _ in $(seq 300); do
        docker version >/dev/null 2>&1 && return 0
        kill -0 "$dpid" 2>/dev/null || break
        sleep 0.2
    done
    cat "$work/dockerd.log" >&2
    exit 1
}
start_dockerd "$work/docker-data"

docker import "$rootfs_tar" bench-debian:1 >/dev/null
archive=$work/debian-docker.tar
docker save -o "$archive" bench-debian:1

now() { date +%s.%N; }
elapsed() { echo "$2 - $1" | bc; }
median() { printf '%s\n' "$@" | sort -g | awk '{a[NR]=$1} END {print (NR%2) ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2}'; }

kl=() dl=() ki=() tx=()
time_import() { # RUN
    sync
    local t0 t1
    t0=$(now)
    "$KISTE" --root "$work/iroot$1" import "$rootfs_tar" bench-import:1 >/dev/null
    t1=$(now)
    ki+=("$(elapsed "$t0" "$t1")")
}
time_untar() { # RUN
    mkdir "$work/untar$1"
    sync
    local t0 t1
    t0=$(now)
    tar -xf "$rootfs_tar" -C "$work/untar$1"
    t1=$(now)
    tx+=("$(elapsed "$t0" "$t1")")
}
time_kiste_load() { # RUN
    sync
    local t0 t1
    t0=$(now)
    "$KISTE" --root "$work/kroot$1" load -q -i "$archive" >/dev/null
    t1=$(now)
    kl+=("$(elapsed "$t0" "$t1")")
}
time_docker_load() { # RUN
    stop_dockerd
    start_dockerd "$work/docker-data$1"
    sync
    local t0 t1
    t0=$(now)
    docker load -q -i "$archive" >/dev/null
    t1=$(now)
    dl+=("$(elapsed "$t0" "$t1")")
}

# Every run writes to a fresh directory (kiste: a new store; docker: a dockerd restarted, untimed,
# on a new data root) and nothing is deleted until the end: ext4 searches longer for free inodes
# right after many were deleted, which would penalise whoever runs after a removal. The order
# alternates within each pair.
for i in $(seq "$N"); do
    if [ $((i % 2)) = 1 ]; then time_import "$i"; time_untar "$i"; else time_untar "$i"; time_import "$i"; fi
    echo "import run $i: kiste import ${ki[-1]}s, tar -x ${tx[-1]}s" >&2
done
for i in $(seq "$N"); do
    if [ $((i % 2)) = 1 ]; then time_kiste_load "$i"; time_docker_load "$i"; else time_docker_load "$i"; time_kiste_load "$i"; fi
    echo "load run $i: kiste load ${kl[-1]}s, docker load ${dl[-1]}s" >&2
done

mkl=$(median "${kl[@]}") mdl=$(median "${dl[@]}") mki=$(median "${ki[@]}") mtx=$(median "${tx[@]}")
size=$(stat -c %s "$archive")
echo "image: debian bookworm minbase, docker save archive $((size / 1048576)) MiB, $N runs"
printf 'load:   kiste %.3fs  docker %.3fs  ratio %.2f (target <= 0.50)\n' "$mkl" "$mdl" \
    "$(echo "$mkl / $mdl" | bc -l)"
printf 'import: kiste %.3fs  tar -x %.3fs  ratio %.2f (target <= 1.20)\n' "$mki" "$mtx" \
    "$(echo "$mki / $mtx" | bc -l)"
