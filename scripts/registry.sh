#!/usr/bin/env bash
# A private registry on this machine (Debian's docker-registry, port 5000), so test hosts get
# images the way an air-gapped fleet does. Pushes every local test image that is not there yet.
set -euo pipefail
cd "$(dirname "$0")/.."
port=5000
if ! command -v docker-registry >/dev/null 2>&1; then
  export DEBIAN_FRONTEND=noninteractive
  apt-get install -y -qq docker-registry >/dev/null 2>&1 || { apt-get update -qq; apt-get install -y -qq docker-registry >/dev/null; }
  # The package starts nothing without systemd; we run it ourselves below.
fi
if ! curl -fsS "http://127.0.0.1:$port/v2/" >/dev/null 2>&1; then
  mkdir -p .cache/registry
  cat > .cache/registry/config.yml <<CFG
version: 0.1
log:
  level: warn
storage:
  filesystem:
    rootdirectory: $PWD/.cache/registry/data
  delete:
    enabled: true
http:
  addr: 0.0.0.0:$port
CFG
  setsid docker-registry serve .cache/registry/config.yml >.cache/registry/registry.log 2>&1 </dev/null &
  for _ in $(seq 1 30); do curl -fsS "http://127.0.0.1:$port/v2/" >/dev/null 2>&1 && break; sleep 0.5; done
  curl -fsS "http://127.0.0.1:$port/v2/" >/dev/null || { echo "registry: did not start" >&2; cat .cache/registry/registry.log >&2; exit 1; }
fi
for image in "$@"; do
  docker tag "$image" "127.0.0.1:$port/$image"
  docker push -q "127.0.0.1:$port/$image" >/dev/null
  echo "registry: $image available as <bridge address>:$port/$image"
done
