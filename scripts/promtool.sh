#!/usr/bin/env bash
# Prints the path of a promtool (Prometheus' rule checker) for the tests, from Debian's prometheus
# package. Installed when missing: the package is fetched with apt-get and only unpacked into
# .cache/promtool, so no Prometheus server is installed or started on this machine.
set -euo pipefail
cd "$(dirname "$0")/.."
if command -v promtool >/dev/null 2>&1; then command -v promtool; exit 0; fi
dir="$PWD/.cache/promtool"
if [ ! -x "$dir/root/usr/bin/promtool" ]; then
  mkdir -p "$dir/deb"
  rm -rf "$dir/root" "$dir"/deb/*.deb
  (cd "$dir/deb" && { apt-get download -qq prometheus >/dev/null 2>&1 || { apt-get update -qq >/dev/null; apt-get download -qq prometheus >/dev/null; }; })
  dpkg-deb -x "$dir"/deb/prometheus_*.deb "$dir/root"
fi
"$dir/root/usr/bin/promtool" --version >/dev/null
echo "$dir/root/usr/bin/promtool"
