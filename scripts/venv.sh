#!/usr/bin/env bash
# Create or reuse .venv/ with the project and every extra the tests use (ansible-core 2.19).
# ANSIBLE_CORE=2.16: .venv-2.16/ with the exact pins of requirements/ansible-core-2.16.txt, for
# fleets with CentOS 7 hosts (Python 2.7/3.6, yum), which ansible-core 2.19 cannot manage.
set -euo pipefail
cd "$(dirname "$0")/.."
case "${ANSIBLE_CORE:-}" in
  ""|2.19)
    if [ ! -x .venv/bin/python ]; then
      python3 -m venv .venv
    fi
    .venv/bin/python -m pip install -q --upgrade pip
    .venv/bin/python -m pip install -q -e '.[test,lint,double,export,warmup,onnx]' ;;
  2.16)
    [ -x .venv-2.16/bin/python ] || python3 -m venv .venv-2.16
    .venv-2.16/bin/python -m pip install -q --upgrade pip
    .venv-2.16/bin/python -m pip install -q -r requirements/ansible-core-2.16.txt
    # The project itself, without its ansible 12 requirement.
    .venv-2.16/bin/python -m pip install -q --no-deps -e . ;;
  *)
    echo "venv: ANSIBLE_CORE=${ANSIBLE_CORE} is not a line this project is tested with; use 2.19 (default) or 2.16" >&2
    exit 2 ;;
esac
