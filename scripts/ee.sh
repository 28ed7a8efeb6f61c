#!/usr/bin/env bash
# Build the execution environment image tfserving-ansible/ee:latest (execution-environment.yml)
# with ansible-builder, only when its inputs changed (a label carries their hash, as in images.sh):
#   tfserving-ansible/ee-base:bookworm   images/ee-base: the debootstrap base + python3/pip
#   tfserving-ansible/ee:latest          ansible-core, ansible-runner, tfserving.fleet and its
#                                        dependency collections, their Python and system packages
# Needs tfserving-ansible/base:bookworm (scripts/images.sh). Prints the build time and image size.
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="$PWD/.venv/bin:$PATH"
unset ANSIBLE_CONFIG

base=tfserving-ansible/base:bookworm
eebase=tfserving-ansible/ee-base:bookworm
ee=tfserving-ansible/ee:latest
work=.cache/ee
stage=$work/staged

docker image inspect "$base" >/dev/null 2>&1 || { echo "ee: $base is missing (run scripts/images.sh)" >&2; exit 1; }

want=$(sha256sum images/ee-base/Dockerfile | cut -c1-16)
have=$(docker image inspect -f '{{ index .Config.Labels "tfserving-ansible.hash" }}' "$eebase" 2>/dev/null || true)
if [ "$want" != "$have" ]; then
  echo "ee: building $eebase"
  docker build -q --label "tfserving-ansible.hash=$want" --build-arg "BASE=$base" -t "$eebase" images/ee-base >/dev/null
fi

# Inputs: the collection as `ansible-galaxy collection build` packs it, the dependency collections
# the `ansible` package bundles, and the CA bundle pip trusts (this machine's system bundle).
rm -rf "$stage" "$work/context"
mkdir -p "$stage/collections/ansible_collections" "$stage/certs"
ansible-galaxy collection build --force --output-path "$work" . >/dev/null
version=$(python -c 'import yaml; print(yaml.safe_load(open("galaxy.yml"))["version"])')
cp "$work/tfserving-fleet-$version.tar.gz" "$stage/collections/tfserving-fleet.tar.gz"
site=$(python -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')/ansible_collections
for dep in community/docker community/library_inventory_filtering_v1 community/general ansible/posix; do
  mkdir -p "$stage/collections/ansible_collections/$(dirname "$dep")"
  cp -a "$site/$dep" "$stage/collections/ansible_collections/$dep"
done
find "$stage" -name __pycache__ -prune -exec rm -rf {} +
cp /etc/ssl/certs/ca-certificates.crt "$stage/certs/pip-ca-bundle.crt"

# The collection's content (FILES.json lists every file with its checksum), the dependencies'
# manifests, the EE definition and its base image; not the CA bundle (a property of the machine).
want=$( {
  tar -xzOf "$stage/collections/tfserving-fleet.tar.gz" FILES.json
  cat execution-environment.yml
  docker image inspect -f '{{ .Id }}' "$eebase"
  for dep in "$stage"/collections/ansible_collections/*/*/MANIFEST.json; do cat "$dep"; done
  ansible-builder --version
} | sha256sum | cut -c1-16)
have=$(docker image inspect -f '{{ index .Config.Labels "tfserving-ansible.hash" }}' "$ee" 2>/dev/null || true)
if [ "$want" = "$have" ]; then
  echo "ee: $ee is up to date ($(docker image inspect -f '{{ .Size }}' "$ee" | awk '{printf "%d MB", $1/1e6}'))"
  exit 0
fi
echo "ee: building $ee with ansible-builder (log: $work/build.log)"
start=$(date +%s)
if ! ansible-builder build -f execution-environment.yml -c "$work/context" -t "$ee" \
     --container-runtime docker --extra-build-cli-args "--label tfserving-ansible.hash=$want" \
     -v 2 >"$work/build.log" 2>&1; then
  tail -40 "$work/build.log" >&2
  exit 1
fi
echo "ee: built $ee in $(( $(date +%s) - start ))s, $(docker image inspect -f '{{ .Size }}' "$ee" | awk '{printf "%d MB", $1/1e6}')"
