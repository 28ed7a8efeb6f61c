#!/usr/bin/env bash
# Create or reuse .venv/ with the project and every extra the tests use.
set -euo pipefail
cd "$(dirname "$0")/.."
if [ ! -x .venv/bin/python ]; then
  python3 -m venv .venv
fi
.venv/bin/python -m pip install -q --upgrade pip
.venv/bin/python -m pip install -q -e '.[test,lint,double,export,warmup,onnx]'
