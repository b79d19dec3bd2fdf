#!/bin/sh
# Run the OCI runtime-tools validation suite against one runtime and count its checks.
# usage: run.sh RUNTIME-TOOLS-CHECKOUT RUNTIME-BINARY [OUTDIR]      (as root; see docs/conformance.md)
# Nothing is downloaded: the checkout must already build with the local Go (`go build` runs here).
set -eu
src=$(cd "$1" && pwd); rt=$(readlink -f "$2"); out=$(readlink -f "${3:-conformance-$(basename "$rt")}")
mkdir -p "$out"
cd "$src"   # the tests untar rootfs-<arch>.tar.gz and copy ./runtimetest from here
[ -x runtimetest ] && ls validation/*/*.t >/dev/null 2>&1 || make runtimetest validation-executables >/dev/null
for t in validation/*/*.t; do
    name=$(basename "$t" .t)
    rc=0; RUNTIME="$rt" timeout 300 "$t" >"$out/$name.tap" 2>"$out/$name.err" || rc=$?
    echo "$rc" >"$out/$name.rc"
done
cd "$out"; rm -f failures.txt
# A check is a TAP "ok"/"not ok" line; "# SKIP" marks a skip. A test that exits non-zero without
# any "not ok" (it gave up, or found a MUST violated outside its TAP checks) is counted as aborted.
for f in *.tap; do
    awk -v rc="$(cat "${f%.tap}.rc")" -v n="${f%.tap}" '
        /^(not )?ok / { if (tolower($0) ~ /# skip/) s++; else if (/^ok /) p++; else { f++; print n ": " $0 } }
        END { if (rc != 0 && !f) { a++; print n ": aborted, exit " rc }
              printf "%d %d %d %d\n", p, f, s, a > "/dev/stderr" }' "$f" 2>>counts.tmp
done >failures.txt
awk '{ p += $1; f += $2; s += $3; a += $4 }
     END { printf "pass %d fail %d skip %d aborted-tests %d\n", p, f, s, a }' counts.tmp | tee summary.txt
rm -f counts.tmp
