#!/usr/bin/env bash
# Make sure a Docker engine runs on this machine: install Debian's docker.io when dockerd is
# missing, start dockerd in the background when its socket does not answer. Idempotent.
set -euo pipefail
log=/var/log/tfserving-ansible-dockerd.log

if ! command -v dockerd >/dev/null 2>&1; then
  echo "docker-engine: installing Debian's docker.io"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq docker.io debootstrap >/dev/null
fi
command -v debootstrap >/dev/null 2>&1 || { apt-get update -qq; DEBIAN_FRONTEND=noninteractive apt-get install -y -qq debootstrap >/dev/null; }

if docker info >/dev/null 2>&1; then
  exit 0
fi
echo "docker-engine: starting dockerd (log: $log)"
# setsid: the engine must outlive the make process that started it.
setsid dockerd >"$log" 2>&1 < /dev/null &
for _ in $(seq 1 60); do
  if docker info >/dev/null 2>&1; then
    echo "docker-engine: ready ($(docker version --format '{{.Server.Version}}'))"
    exit 0
  fi
  sleep 1
done
echo "docker-engine: dockerd did not answer within 60 s; last log lines:" >&2
tail -n 20 "$log" >&2
exit 1
