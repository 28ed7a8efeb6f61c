#!/usr/bin/env bash
# Lint everything: ruff, yamllint, ansible-lint (production profile, no skip list), ansible-doc
# on every module (by its FQCN, from this checkout as the collection tfserving.fleet), and the
# argument_specs/defaults agreement of every role.
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="$PWD/.venv/bin:$PATH" ANSIBLE_CONFIG="$PWD/ansible.cfg"
echo "lint: ruff"; ruff check .
echo "lint: yamllint"; yamllint -s .
echo "lint: ansible-lint"; ansible-lint --offline -q
shopt -s nullglob
modules=(plugins/modules/*.py)
if [ ${#modules[@]} -gt 0 ]; then
  echo "lint: ansible-doc"
  for m in "${modules[@]}"; do
    name=$(basename "$m" .py)
    ansible-doc -t module "tfserving.fleet.$name" >/dev/null
  done
fi
echo "lint: role interfaces"; .venv/bin/python scripts/check_role_specs.py
echo "lint: changelog fragments"; antsibull-changelog lint
