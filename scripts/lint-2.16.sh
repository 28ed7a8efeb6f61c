#!/usr/bin/env bash
# The ansible-core 2.16 line (EL7 fleets): the same roles, playbooks and sample inventory must lint and
# parse there. ansible-lint (production profile, the repository's .ansible-lint), ansible-playbook
# --syntax-check of every playbook against inventories/sample, ansible-doc of every module.
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="$PWD/.venv-2.16/bin:$PATH" ANSIBLE_CONFIG="$PWD/ansible.cfg"
export ANSIBLE_COLLECTIONS_PATH="$PWD/collections:$PWD/.ansible/collections" ANSIBLE_LOCAL_TEMP="$PWD/.ansible/tmp"
core=$(ansible --version | sed -n '1s/.*core \([0-9.]*\)].*/\1/p')
case "$core" in 2.16.*) ;; *) echo "lint-2.16: expected ansible-core 2.16 in .venv-2.16, found '$core'" >&2; exit 2 ;; esac
echo "lint-2.16: ansible-lint (ansible-core $core)"; ansible-lint --offline -q
echo "lint-2.16: playbook syntax"
for p in playbooks/*.yml; do
  ansible-playbook -i inventories/sample --syntax-check "$p" >/dev/null
done
echo "lint-2.16: ansible-doc"
for m in plugins/modules/*.py; do
  ansible-doc -t module "tfserving.fleet.$(basename "$m" .py)" >/dev/null
done
echo "lint-2.16: passed"
