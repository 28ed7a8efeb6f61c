#!/usr/bin/env bash
# Run every benchmark in bench/ (each prints its own figures); `make bench` calls this.
set -euo pipefail
cd "$(dirname "$0")/.."
shopt -s nullglob
for bench in bench/*.py; do
  echo "== $bench"
  .venv/bin/python "$bench"
done
