#!/usr/bin/env bash
# Run Molecule scenarios (all, or the ones named) and remove their inner-Docker volumes after.
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="$PWD/.venv/bin:$PATH"
# Scenarios that need hardware or hosts this machine does not have are run by users, not here.
skip_here=" gpu "
if [ $# -gt 0 ]; then
  scenarios=("$@")
else
  scenarios=()
  for f in molecule/*/molecule.yml; do
    s=$(basename "$(dirname "$f")")
    [[ "$skip_here" == *" $s "* ]] || scenarios+=("$s")
  done
fi
status=0
for s in "${scenarios[@]}"; do
  echo "=== molecule test -s $s"
  start=$(date +%s)
  if ! molecule test -s "$s"; then status=1; fi
  echo "=== molecule $s: $(( $(date +%s) - start )) s"
  docker volume ls -q --filter "name=^tfs-$s-" | xargs -r docker volume rm >/dev/null || true
  [ $status -eq 0 ] || break
done
exit $status
