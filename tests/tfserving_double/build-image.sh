#!/usr/bin/env bash
# Build tfserving-double:test, the TF Serving TEST DOUBLE image, locally and only when its inputs changed.
#
# Offline: FROM the debootstrap base image (no registry pull); Python wheels are downloaded on this
# machine with its own pip configuration into a cache (.cache/tfserving-double/wheels) and copied into
# a build stage that the final image does not keep. The wheel versions are the ones the project's venv
# tests with. The image carries a hash of every input as a label; an unchanged hash skips the build.
#
#   tests/tfserving_double/build-image.sh            build if needed
#   TFSERVING_DOUBLE_IMAGE=name:tag ...build-image.sh  another tag
#   TFSERVING_DOUBLE_FORCE=1 ...build-image.sh         build even if the hash matches
#   TFSERVING_DOUBLE_NO_CACHE=1 ...build-image.sh      and without Docker's layer cache (as a fresh machine)
#   TFSERVING_DOUBLE_CACHE=dir ...build-image.sh       keep downloaded wheels in dir
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
image=${TFSERVING_DOUBLE_IMAGE:-tfserving-double:test}
base=${TFSERVING_DOUBLE_BASE:-tfserving-ansible/base:bookworm}
python=${TFSERVING_DOUBLE_PYTHON:-$root/.venv/bin/python}
cache=${TFSERVING_DOUBLE_CACHE:-$root/.cache/tfserving-double}
mkdir -p "$cache/wheels"

if ! docker image inspect "$base" >/dev/null 2>&1; then
  echo "build-image: base image $base is missing; build it with scripts/images.sh" >&2
  exit 1
fi

# The runtime set: TensorFlow (CPU), TF Serving's protos and stubs, and what importing them needs.
# Keras, libclang, h5py and the full tensorflow package are left out on purpose.
runtime=(tensorflow-cpu tensorflow-serving-api absl-py astunparse flatbuffers gast google-pasta grpcio
         ml-dtypes numpy opt-einsum packaging protobuf requests urllib3 idna charset-normalizer certifi six
         termcolor typing-extensions wrapt)
requirements=$cache/requirements.txt
"$python" - "${runtime[@]}" > "$requirements.new" <<'PY'
import re
import sys
from importlib import metadata

def norm(name):
    return re.sub(r"[-_.]+", "-", name).lower()

installed = {norm(d.metadata["Name"]): d.version for d in metadata.distributions()}
missing = [name for name in sys.argv[1:] if norm(name) not in installed]
if missing:
    sys.exit(f"build-image: not installed in the venv: {', '.join(missing)} (run scripts/venv.sh)")
for name in sys.argv[1:]:
    print(f"{norm(name)}=={installed[norm(name)]}")
PY
mv "$requirements.new" "$requirements"

want=$( { cat "$requirements" "$here/build-image.sh" "$here"/image/*; \
          find "$here" -maxdepth 1 -name '*.py' ! -name testing.py | sort | xargs cat; echo "$base"; } \
        | sha256sum | cut -c1-16)
have=$(docker image inspect -f '{{ index .Config.Labels "tfserving-double.hash" }}' "$image" 2>/dev/null || true)
if [ "$want" = "$have" ] && [ -z "${TFSERVING_DOUBLE_FORCE:-}" ]; then
  echo "build-image: $image is up to date ($want)"
  exit 0
fi

# Wheels: fetched once into the cache with this machine's pip configuration (local indexes first).
# --no-deps because the list above is the complete, pinned set.
missing_wheels=()
while IFS= read -r line; do
  name=${line%%==*}; version=${line##*==}
  pattern=$(echo "$name" | tr '-' '_')
  if ! ls "$cache/wheels" | grep -iqE "^${pattern}-${version}-"; then
    missing_wheels+=("$line")
  fi
done < "$requirements"
if [ ${#missing_wheels[@]} -gt 0 ]; then
  echo "build-image: downloading ${#missing_wheels[@]} wheel(s) into $cache/wheels"
  "$python" -m pip download --quiet --no-deps --only-binary=:all: -d "$cache/wheels" "${missing_wheels[@]}" \
    2> >(grep -v "is ignored: it is neither a file nor a directory" >&2)
fi

context=$(mktemp -d "${TMPDIR:-/tmp}/tfserving-double-build.XXXXXX")
trap 'rm -rf "$context"' EXIT
cp "$here"/image/* "$context/"
cp "$requirements" "$context/requirements.txt"
mkdir "$context/wheels" "$context/tfserving_double"
while IFS= read -r line; do
  name=${line%%==*}; version=${line##*==}
  pattern=$(echo "$name" | tr '-' '_')
  wheel=$(ls "$cache/wheels" | grep -iE "^${pattern}-${version}-" | head -n1)
  ln "$cache/wheels/$wheel" "$context/wheels/$wheel" 2>/dev/null || cp "$cache/wheels/$wheel" "$context/wheels/"
done < "$requirements"
find "$here" -maxdepth 1 -name '*.py' ! -name testing.py -exec cp {} "$context/tfserving_double/" \;

echo "build-image: building $image (TF Serving TEST DOUBLE) from $base"
start=$(date +%s)
no_cache=()
[ -n "${TFSERVING_DOUBLE_NO_CACHE:-}" ] && no_cache=(--no-cache)
if ! docker build -q "${no_cache[@]}" --build-arg "BASE=$base" --label "tfserving-double.hash=$want" -t "$image" "$context" \
     >"$context/build.log" 2>&1; then
  cat "$context/build.log" >&2
  echo "build-image: docker build of $image failed" >&2
  exit 1
fi
size=$(docker image inspect -f '{{ .Size }}' "$image")
echo "build-image: built $image in $(( $(date +%s) - start ))s, $(( size / 1000000 )) MB"
