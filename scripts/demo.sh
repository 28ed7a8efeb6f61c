#!/usr/bin/env bash
# make demo: a local sandbox fleet of two host containers, site.yml against inventories/sandbox/,
# the fleet status and a prediction. `scripts/demo.sh clean` removes everything it created.
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="$PWD/.venv/bin:$PATH" ANSIBLE_CONFIG="$PWD/ansible.cfg"
inventory=inventories/sandbox

if [ "${1:-}" = clean ]; then
  ansible-playbook sandbox/down.yml -e sandbox_name=tfs-sandbox
  exit 0
fi

image="${TFSERVING_IMAGE:-172.30.0.1:5000/tfserving-double:test}"
banner() { printf '\n%s\n%s\n%s\n' "================================================================" "$1" "================================================================"; }
if [ -z "${TFSERVING_IMAGE:-}" ]; then
  banner "SERVING IMAGE: $image
This is the project's TF SERVING TEST DOUBLE (tests/tfserving_double), not TensorFlow Serving:
the real image cannot be pulled on this machine. To run the real server where it can be pulled:
  make demo TFSERVING_IMAGE=tensorflow/serving:2.19.0"
else
  banner "SERVING IMAGE: $image"
fi

ansible-playbook sandbox/up.yml -e sandbox_name=tfs-sandbox
ansible-playbook -i "$inventory" playbooks/site.yml

if [ -f playbooks/status.yml ]; then
  ansible-playbook -i "$inventory" playbooks/status.yml
fi

banner "A prediction from each sandbox host (half_plus_two, label stable):"
for host in 172.30.0.11 172.30.0.12; do
  printf '%s -> ' "$host"
  curl -sS --max-time 10 -X POST -d '{"instances": [1.0, 2.0, 5.0]}' \
    "http://$host:8501/v1/models/half_plus_two/labels/stable:predict"
  echo
done
banner "Serving image used: $image"
