#!/usr/bin/env bash
# The collection tfserving.fleet as users get it: `ansible-galaxy collection build` of this
# checkout, installed into an empty collections path outside the checkout (ansible-test would
# otherwise list the files through the checkout's git and find none), then
#   scripts/collection.sh units    pytest tests/unit against the INSTALLED copy
#   scripts/collection.sh sanity   ansible-test sanity in the installed copy (local Python)
# Without an argument: both.
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="$PWD/.venv/bin:$PATH"
work=${TMPDIR:-/var/tmp}/tfserving-fleet-collection.$(printf %s "$PWD" | sha256sum | cut -c1-8)
installed=$work/installed

build() {
  rm -rf "$work"
  mkdir -p "$installed"
  ansible-galaxy collection build --force --output-path "$work" . >/dev/null
  # --offline: the dependencies (community.docker, ...) are the copies the ansible package bundles.
  ANSIBLE_COLLECTIONS_PATH=$installed ansible-galaxy collection install --offline -p "$installed" \
    "$work"/tfserving-fleet-*.tar.gz >/dev/null
  echo "collection: $(basename "$work"/tfserving-fleet-*.tar.gz) installed in $installed"
}

units() {
  # tests/conftest.py imports plugins from TFSERVING_COLLECTIONS_PATH; the playbooks the tests run
  # find the same copy through ANSIBLE_COLLECTIONS_PATH.
  TFSERVING_COLLECTIONS_PATH=$installed ANSIBLE_COLLECTIONS_PATH=$installed python -m pytest -q tests/unit
}

sanity() {
  # ansible-test bootstraps pip in each test's virtual environment with a script it downloads from
  # a host that may be unreachable; scripts/ansible_test_get_pip.py does the same from Python's ensurepip.
  local cache=$HOME/.ansible/test/cache cert
  cert=$(python -m pip config list 2>/dev/null | sed -n "s/^[^=]*\.cert='\(.*\)'$/\1/p" | head -1)
  mkdir -p "$cache"
  # The pip version ansible-test pins for its virtual environments names the cached script.
  version=$(python - <<'PY'
import pathlib, re, ansible_test
source = (pathlib.Path(ansible_test.__file__).parent / "_internal" / "python_requirements.py").read_text()
print(re.search(r"pip='([0-9.]+)'", source).group(1))
PY
  )
  sed "s#@CERT@#${cert:-}#" scripts/ansible_test_get_pip.py > "$cache/get_pip_${version//./_}.py"
  cd "$installed/ansible_collections/tfserving/fleet"
  # pslint: no PowerShell here and none in the collection; shellcheck: no shell scripts in the build.
  ansible-test sanity --python "$(python -c 'import sys; print("%d.%d" % sys.version_info[:2])')" \
    --skip-test pslint --skip-test shellcheck "$@"
}

build
case "${1:-all}" in
  units) units ;;
  sanity) shift; sanity "$@" ;;
  all) units; sanity ;;
  *) echo "usage: $0 [units|sanity|all]" >&2; exit 2 ;;
esac
