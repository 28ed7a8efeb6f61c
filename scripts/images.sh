#!/usr/bin/env bash
# Build every image the tests and the demo use, locally and only when its inputs changed:
#   tfserving-ansible/base:bookworm   debootstrap minbase, imported (no registry pulls)
#   tfserving-ansible/host:bookworm   systemd + sshd + python3 fleet host
#   tfserving-ansible/el-host:bookworm  the host above with rpm and dnf, presenting as EL (molecule/el)
#   tfserving-double:test             the TF Serving TEST DOUBLE (tests/tfserving_double)
# and start the local registry the hosts pull from (air-gapped fleet style).
set -euo pipefail
cd "$(dirname "$0")/.."
mkdir -p .cache/ssh

base=tfserving-ansible/base:bookworm
host=tfserving-ansible/host:bookworm

if ! docker image inspect "$base" >/dev/null 2>&1; then
  echo "images: building $base with debootstrap (about a minute)"
  root=$(mktemp -d /var/tmp/tfs-base.XXXXXX)
  debootstrap --variant=minbase bookworm "$root" http://deb.debian.org/debian >/dev/null
  tar -C "$root" -c . | docker import - "$base" >/dev/null
  rm -rf "$root"
fi

# One key pair for the whole test fleet: the fleet scenario reaches hosts over real SSH.
[ -f .cache/ssh/id_ed25519 ] || ssh-keygen -q -t ed25519 -N '' -C tfserving-ansible-test -f .cache/ssh/id_ed25519
cp .cache/ssh/id_ed25519.pub images/host/authorized_keys

# Rebuild the host image only when its Dockerfile or key changed (label carries the hash).
want=$(cat images/host/Dockerfile images/host/authorized_keys | sha256sum | cut -c1-16)
have=$(docker image inspect -f '{{ index .Config.Labels "tfserving-ansible.hash" }}' "$host" 2>/dev/null || true)
if [ "$want" != "$have" ]; then
  echo "images: building $host"
  docker build -q --label "tfserving-ansible.hash=$want" -t "$host" images/host >/dev/null
fi
rm -f images/host/authorized_keys

# The EL-looking host of molecule/el (Debian + rpm + dnf), on top of the fleet host image.
el_host=tfserving-ansible/el-host:bookworm
want=$(find images/el-host -type f | sort | xargs cat | sha256sum | cut -c1-16)-$(docker image inspect -f '{{ .Id }}' "$host" | cut -c8-19)
have=$(docker image inspect -f '{{ index .Config.Labels "tfserving-ansible.hash" }}' "$el_host" 2>/dev/null || true)
if [ "$want" != "$have" ]; then
  echo "images: building $el_host"
  docker build -q --label "tfserving-ansible.hash=$want" --build-arg "HOST=$host" -t "$el_host" images/el-host >/dev/null
fi

# A tiny HTTP server image (static busybox) for "the engine runs containers" checks.
probe=tfserving-ansible/probe:busybox
if ! docker image inspect "$probe" >/dev/null 2>&1; then
  [ -x /bin/busybox ] || { export DEBIAN_FRONTEND=noninteractive; apt-get install -y -qq busybox-static >/dev/null; }
  cp /bin/busybox images/probe/busybox
  docker build -q -t "$probe" images/probe >/dev/null
  rm -f images/probe/busybox
fi

if [ -x tests/tfserving_double/build-image.sh ]; then
  tests/tfserving_double/build-image.sh
fi
scripts/registry.sh "$probe" $(docker image inspect tfserving-double:test >/dev/null 2>&1 && echo tfserving-double:test)
