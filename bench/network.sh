#!/usr/bin/env bash
# Container networking of kiste, side by side in one run.
#
#   start: `kiste run --rm IMG true` on the default bridge vs `kiste run --rm --network none IMG
#          true` (hyperfine -N, 2 warm-up runs, N runs each, alternating), twice: "warm", while
#          another container keeps the bridge up (as Docker's bridge always is), and "cold",
#          when each run makes the bridge and the nftables table and deletes them again.
#          Target: the bridge costs at most 5 ms more than none (warm).
#   bulk:  TCP throughput from the host into a container, through a published port on
#          127.0.0.1 (DNAT in kiste's table) and on the host's address, vs straight to the
#          container's address. The sink is a Python receiver in the container's network
#          namespace (nsenter), the source a Python sender on the host, SECS seconds per run,
#          3 runs per path, alternating; best of each. Target: published >= 80% of direct.
#
# Only loopback, the host's own address and the bench's own container are ever contacted.
# Usage: bench/network.sh [-n RUNS] [-s SECS]
#   environment: BENCH_N, BENCH_SECS, KISTE_BUILD (build dir holding src/cli/kiste)
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
N=${BENCH_N:-30}
SECS=${BENCH_SECS:-3}
BUILD=${KISTE_BUILD:-$here/../build-bench}
KISTE=${KISTE:-$BUILD/src/cli/kiste}
BUSYBOX=${BUSYBOX:-/bin/busybox}
PYTHON=${PYTHON:-/usr/bin/python3}
HYPERFINE=${HYPERFINE:-hyperfine}

while getopts "n:s:h" opt; do
    case $opt in
    n) N=$OPTARG ;;
    s) SECS=$OPTARG ;;
    *)
        sed -n '2,18p' "$0"
        exit 2
        ;;
    esac
done

for bin in "$KISTE" "$BUSYBOX" "$PYTHON" "$(command -v "$HYPERFINE")" "$(command -v nsenter)"; do
    [ -x "$bin" ] || {
        echo "missing: $bin" >&2
        exit 1
    }
done

work=$(mktemp -d /tmp/kiste-bench-net.XXXXXX)
runroot=$(mktemp -d /run/kbn-XXXXXX)
K=("$KISTE" --root "$work/root" --runroot "$runroot")
cleanup() {
    set +e
    [ -n "${sink_pid:-}" ] && kill "$sink_pid" 2>/dev/null && wait "$sink_pid" 2>/dev/null
    ids=$("${K[@]}" ps -aq --no-trunc 2>/dev/null)
    [ -n "$ids" ] && "${K[@]}" rm -f $ids >/dev/null 2>&1
    "${K[@]}" network teardown >/dev/null 2>&1
    rm -rf "$work" "$runroot"
}
trap cleanup EXIT

# The image: busybox and its applets.
rootfs=$work/rootfs
mkdir -p "$rootfs"/{bin,etc,proc,sys,dev,tmp}
cp "$BUSYBOX" "$rootfs/bin/busybox"
for a in $("$rootfs/bin/busybox" --list); do [ "$a" = busybox ] || ln -s busybox "$rootfs/bin/$a"; done
echo "root:x:0:0:root:/root:/bin/sh" >"$rootfs/etc/passwd"
echo "root:x:0:" >"$rootfs/etc/group"
tar -C "$rootfs" -cf "$work/bb.tar" .
"${K[@]}" import "$work/bb.tar" busybox >/dev/null

median() { "$PYTHON" -c 'import json,sys; print("%.2f" % (json.load(open(sys.argv[1]))["results"][int(sys.argv[2])]["median"]*1000))' "$@"; }

start_bench() {
    local label=$1
    "$HYPERFINE" -N -w 2 -r "$N" --export-json "$work/$label.json" \
        "${K[*]} run --rm --network none busybox true" \
        "${K[*]} run --rm busybox true" >/dev/null
    local none bridge
    none=$(median "$work/$label.json" 0)
    bridge=$(median "$work/$label.json" 1)
    printf '%-6s none %8s ms   bridge %8s ms   bridge - none %+8.2f ms\n' "$label" "$none" \
        "$bridge" "$("$PYTHON" -c "print($bridge - $none)")"
}

echo "== start (median of $N runs)"
holder=$("${K[@]}" run -d busybox sleep 100000)
start_bench warm
"${K[@]}" rm -f "$holder" >/dev/null
start_bench cold

echo "== bulk TCP ($SECS s per run, best of 3)"
port=$("$PYTHON" -c 'import socket; s=socket.socket(); s.bind(("",0)); print(s.getsockname()[1])')
cid=$("${K[@]}" run -d -p "$port:5001" busybox sleep 100000)
cip=$("${K[@]}" inspect "$cid" | "$PYTHON" -c 'import json,sys; print(json.load(sys.stdin)[0]["NetworkSettings"]["IPAddress"])')
hostip=$(ip -4 -o addr show up | awk '$2 != "lo" && $2 !~ /^(kiste|ks)/ {split($4, a, "/"); print a[1]; exit}')
cat >"$work/sink.py" <<'EOF'
import socket, threading
s = socket.socket()
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("0.0.0.0", 5001))
s.listen(8)
def drain(c):
    buf = bytearray(1 << 20)
    while c.recv_into(buf):
        pass
    c.close()
while True:
    c, _ = s.accept()
    threading.Thread(target=drain, args=(c,), daemon=True).start()
EOF
cat >"$work/send.py" <<'EOF'
import socket, sys, time
host, port, secs = sys.argv[1], int(sys.argv[2]), float(sys.argv[3])
buf = b"\0" * (1 << 20)
c = socket.create_connection((host, port))
n, t0 = 0, time.monotonic()
while time.monotonic() - t0 < secs:
    c.sendall(buf)
    n += len(buf)
c.close()
print("%.2f" % (n * 8 / (time.monotonic() - t0) / 1e9))
EOF
nsenter --net="$runroot/containers/$cid/netns" "$PYTHON" "$work/sink.py" &
sink_pid=$!
sleep 0.5
declare -A best
paths=("direct $cip 5001" "loopback 127.0.0.1 $port" "hostaddr $hostip $port")
for round in 1 2 3; do
    for p in "${paths[@]}"; do
        read -r name addr pt <<<"$p"
        g=$("$PYTHON" "$work/send.py" "$addr" "$pt" "$SECS")
        if [ -z "${best[$name]:-}" ] || "$PYTHON" -c "import sys; sys.exit(0 if $g > ${best[$name]} else 1)"; then
            best[$name]=$g
        fi
    done
done
for p in "${paths[@]}"; do
    read -r name addr pt <<<"$p"
    printf '%-9s %-22s %7s Gbit/s   %5.1f%% of direct\n' "$name" "$addr:$pt" "${best[$name]}" \
        "$("$PYTHON" -c "print(100 * ${best[$name]} / ${best[direct]})")"
done
