#!/usr/bin/env bash
# End-to-end demo: a busybox container run by berth, from a bundle made here.
set -euo pipefail
BERTH=${BERTH:-berth}
work=$(mktemp -d /tmp/berth-demo.XXXXXX)
root="$work/state"
cleanup() { "$BERTH" --root "$root" delete --force demo >/dev/null 2>&1 || true; rm -rf "$work"; }
trap cleanup EXIT

mkdir -p "$work/bundle/rootfs"/{bin,proc,sys,dev,tmp,etc,root}
cp /bin/busybox "$work/bundle/rootfs/bin/busybox"
for applet in sh echo id hostname cat ls ps head grep mount; do
  ln -s busybox "$work/bundle/rootfs/bin/$applet"
done
echo 'root:x:0:0:root:/root:/bin/sh' > "$work/bundle/rootfs/etc/passwd"
echo 'root:x:0:' > "$work/bundle/rootfs/etc/group"

cd "$work/bundle"
"$BERTH" spec
# A non-interactive process: the demo must also run where there is no terminal.
script='echo "hello from a berth container"; echo "hostname: $(hostname)"; echo "user: $(id)"
echo "pid 1: $(cat /proc/1/comm)"; echo processes:; ps; echo mounts:; cat /proc/mounts'
jq --arg s "$script" '.process.terminal = false | .process.args = ["sh", "-c", $s]' config.json > config.json.new
mv config.json.new config.json

echo "== berth run (bundle $work/bundle)"
code=0
"$BERTH" --root "$root" run demo || code=$?
echo "== exit code: $code"
echo "== state left behind: $(ls -A "$root" 2>/dev/null | wc -l) container(s)"
