#!/bin/sh
# The walk-through of `make demo`: the local busybox image made and imported into kiste's store,
# containers run from it as Docker users run them (foreground, detached, exec, logs, stop, rm),
# a named volume kept between two containers, the image saved and loaded again, and the same busybox tree run directly by the OCI runtime
# kiste-runtime. Private state under build/demo.
set -eu
here=$(cd "$(dirname "$0")/.." && pwd)
build=${KISTE_BUILD:-$here/build}
rt="$build/src/runtime/kiste-runtime"
demo="$build/demo"
root="$demo/state"
rm -rf "$demo/bundle"
mkdir -p "$demo/bundle" "$root"
"$here/scripts/make-busybox-rootfs" "$build/test-fixtures/busybox-rootfs"
kiste="$build/src/cli/kiste"
store="$demo/store"
runroot=/run/kiste-demo
k() { "$kiste" --root "$store" --runroot "$runroot" "$@"; }
cleanup() {
    "$rt" --root "$root" delete --force demo-bg >/dev/null 2>&1 || true
    k rm -f web >/dev/null 2>&1 || true
}
trap cleanup EXIT
step() { printf '\n\033[1m$ %s\033[0m\n' "$*"; }

# The engine: the busybox tree imported as an image, containers run from it.
k rm -f web >/dev/null 2>&1 || true
rm -rf "$store"
tar -C "$build/test-fixtures/busybox-rootfs" --exclude=.complete -cf "$demo/busybox.tar" .
step kiste import busybox.tar busybox --change "'CMD [\"sh\"]'"
k import --change 'CMD ["sh"]' "$demo/busybox.tar" busybox
step kiste images
k images
step kiste run --rm busybox sh -c "'echo hello from \$(hostname) as \$(id -un); cat /proc/self/status | grep Seccomp:'"
k run --rm busybox sh -c 'echo hello from $(hostname) as $(id -un); cat /proc/self/status | grep Seccomp:'
step kiste run -d --name web -m 64m busybox sh -c "'while :; do date; sleep 1; done'"
k run -d --name web -m 64m busybox sh -c 'while :; do date; sleep 1; done'
sleep 1.5
step kiste ps
k ps
step kiste exec web ps
k exec web ps
step kiste logs --tail 1 web
k logs --tail 1 web
step kiste inspect --format "'{{.State.Status}} pid {{.State.Pid}} memory {{.HostConfig.Memory}}'" web
k inspect --format '{{.State.Status}} pid {{.State.Pid}} memory {{.HostConfig.Memory}}' web
step kiste stop -t 1 web '&&' kiste ps -a
k stop -t 1 web
k ps -a
step kiste system df
k system df
step kiste rm web
k rm web
step kiste run --rm -v notes:/srv busybox sh -c "'echo written by the first container > /srv/note'"
k run --rm -v notes:/srv busybox sh -c 'echo written by the first container > /srv/note'
step kiste run --rm -v notes:/srv:ro busybox cat /srv/note '&&' kiste volume ls
k run --rm -v notes:/srv:ro busybox cat /srv/note
k volume ls
k volume rm notes
step kiste save -o busybox-saved.tar busybox '&&' kiste rmi busybox '&&' kiste load -i busybox-saved.tar
k save -o "$demo/busybox-saved.tar" busybox
k rmi busybox
k load -i "$demo/busybox-saved.tar"
k run --rm busybox echo the loaded image runs
k rmi busybox

# The OCI runtime on its own: the same tree as a bundle.
cd "$demo/bundle"
"$rt" spec
# The generated config wants a terminal; the demo's first container prints and exits.
python3 - "$build/test-fixtures/busybox-rootfs" <<'PY'
import json, sys
c = json.load(open("config.json"))
c["root"]["path"] = sys.argv[1]
c["process"]["terminal"] = False
c["process"]["args"] = ["sh", "-c",
    "echo \"hello from $(hostname), pid $$, as $(id)\"; echo 'mounts:'; "
    "cut -d' ' -f2,3 /proc/mounts | sed 's/^/  /'"]
c["linux"]["resources"]["memory"] = {"limit": 64 * 1024 * 1024}
c["linux"]["resources"]["pids"] = {"limit": 64}
json.dump(c, open("config.json", "w"), indent=2)
PY
step kiste-runtime run demo-fg
"$rt" --root "$root" run demo-fg
python3 - <<'PY'
import json
c = json.load(open("config.json"))
c["process"]["args"] = ["sleep", "300"]
json.dump(c, open("config.json", "w"), indent=2)
PY
step kiste-runtime run --detach demo-bg
"$rt" --root "$root" run --detach demo-bg
step kiste-runtime list
"$rt" --root "$root" list
step kiste-runtime exec demo-bg ps
"$rt" --root "$root" exec demo-bg ps
step kiste-runtime pause demo-bg '&&' state
"$rt" --root "$root" pause demo-bg
"$rt" --root "$root" state demo-bg | grep '"status"'
"$rt" --root "$root" resume demo-bg
step kiste-runtime kill demo-bg KILL '&&' delete demo-bg
"$rt" --root "$root" kill demo-bg KILL
"$rt" --root "$root" delete --force demo-bg
"$rt" --root "$root" list

printf '\ndemo finished\n'
