#!/usr/bin/env bash
# Make sure headless Chromium is on this machine (Debian's chromium), for the tests that render the
# fleet report's HTML page in a browser. Idempotent; prints the path of the binary.
set -euo pipefail
if ! command -v chromium >/dev/null 2>&1; then
  echo "chromium: installing Debian's chromium" >&2
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq -o DPkg::Lock::Timeout=300
  apt-get install -y -qq -o DPkg::Lock::Timeout=300 --no-install-recommends chromium fonts-dejavu-core >/dev/null
fi
command -v chromium
