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

# A second registry that requires a login (htpasswd, bcrypt), port 5001, for the registry-credential
# tests. Its state is machine-wide (not per checkout) so every clone on this machine finds the one
# password of the registry that is running.
auth_port=5001
auth_dir=/var/tmp/tfserving-ansible-registry-auth
auth_user=tfs-test
if [ "$(curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$auth_port/v2/")" != 401 ]; then
  command -v htpasswd >/dev/null 2>&1 || { export DEBIAN_FRONTEND=noninteractive; apt-get install -y -qq apache2-utils >/dev/null; }
  mkdir -p "$auth_dir"
  chmod 700 "$auth_dir"
  [ -s "$auth_dir/password" ] || head -c 24 /dev/urandom | base64 | tr -d '/+=' > "$auth_dir/password"
  htpasswd -Bbn "$auth_user" "$(cat "$auth_dir/password")" > "$auth_dir/htpasswd"
  cat > "$auth_dir/config.yml" <<CFG
version: 0.1
log:
  level: warn
storage:
  filesystem:
    rootdirectory: $auth_dir/data
http:
  addr: 0.0.0.0:$auth_port
auth:
  htpasswd:
    realm: tfserving-ansible-test
    path: $auth_dir/htpasswd
CFG
  setsid docker-registry serve "$auth_dir/config.yml" >"$auth_dir/registry.log" 2>&1 </dev/null &
  for _ in $(seq 1 30); do
    [ "$(curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$auth_port/v2/")" = 401 ] && break
    sleep 0.5
  done
  [ "$(curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$auth_port/v2/")" = 401 ] \
    || { echo "registry: the authenticated registry did not start" >&2; cat "$auth_dir/registry.log" >&2; exit 1; }
fi
if docker image inspect tfserving-double:test >/dev/null 2>&1; then
  docker login -u "$auth_user" --password-stdin "127.0.0.1:$auth_port" < "$auth_dir/password" >/dev/null 2>&1
  docker tag tfserving-double:test "127.0.0.1:$auth_port/tfserving-double:test"
  docker push -q "127.0.0.1:$auth_port/tfserving-double:test" >/dev/null
  docker logout "127.0.0.1:$auth_port" >/dev/null
  echo "registry: tfserving-double:test available as <bridge address>:$auth_port/tfserving-double:test (login required)"
fi
