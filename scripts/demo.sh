#!/bin/sh
# The walk-through of `make demo`: a busybox container run by kiste-runtime, in the foreground
# and in the background (state, exec, ps, pause, kill, delete). Private state under build/demo.
set -eu
here=$(cd "$(dirname "$0")/.." && pwd)
build=${KISTE_BUILD:-$here/build}
rt="$build/src/runtime/kiste-runtime"
demo="$build/demo"
root="$demo/state"
rm -rf "$demo/bundle"
mkdir -p "$demo/bundle" "$root"
"$here/scripts/make-busybox-rootfs" "$build/test-fixtures/busybox-rootfs"
cleanup() { "$rt" --root "$root" delete --force demo-bg >/dev/null 2>&1 || true; }
trap cleanup EXIT
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
step() { printf '\n\033[1m$ %s\033[0m\n' "$*"; }
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

# The image store: the same busybox tree imported as an image.
kiste="$build/src/cli/kiste"
store="$demo/store"
rm -rf "$store"
tar -C "$build/test-fixtures/busybox-rootfs" --exclude=.complete -cf "$demo/busybox.tar" .
step kiste import busybox.tar busybox:demo --change "'CMD [\"sh\"]'"
"$kiste" --root "$store" import --change 'CMD ["sh"]' "$demo/busybox.tar" busybox:demo
step kiste images
"$kiste" --root "$store" images
step kiste image inspect --format "'{{.RootFS.Layers}} {{.Config.Cmd}}'" busybox:demo
"$kiste" --root "$store" image inspect --format '{{.RootFS.Layers}} {{.Config.Cmd}}' busybox:demo
step kiste rmi busybox:demo
"$kiste" --root "$store" rmi busybox:demo
printf '\ndemo finished\n'
