#!/usr/bin/env bash
# Registers berth as a Docker runtime: adds "runtimes": {"berth": {"path": ...}} to
# /etc/docker/daemon.json (keeping what is there; a backup is left next to it), reloads
# dockerd and runs a container with --runtime berth.
set -euo pipefail
PREFIX=${PREFIX:-/usr/local}
conf=/etc/docker/daemon.json
mkdir -p /etc/docker
[ -s "$conf" ] || echo '{}' > "$conf"
cp "$conf" "$conf.before-berth"
jq --arg p "$PREFIX/bin/berth" '.runtimes.berth.path = $p' "$conf.before-berth" > "$conf"
echo "== $conf:"; cat "$conf"
if pid=$(pidof dockerd); then
  kill -HUP "$pid"   # dockerd reloads "runtimes" on SIGHUP
else
  echo "dockerd is not running: start it (systemctl start docker, or dockerd &) and run:"
  echo "  docker run --rm --runtime berth busybox echo hello from berth"; exit 0
fi
docker info --format '{{json .Runtimes}}'
docker run --rm --runtime berth busybox echo hello from berth || \
  echo "(the busybox image needs a registry; any local image works: docker run --runtime berth IMAGE ...)"
