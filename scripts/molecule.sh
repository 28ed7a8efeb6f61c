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
# molecule/fleet renders the fleet report's HTML page in headless Chromium.
[[ " ${scenarios[*]} " == *" fleet "* ]] && scripts/chromium.sh >/dev/null
failed=()
for s in "${scenarios[@]}"; do
  echo "=== molecule test -s $s"
  start=$(date +%s)
  molecule test -s "$s" || failed+=("$s")
  echo "=== molecule $s: $(( $(date +%s) - start )) s"
  docker volume ls -q --filter "name=^tfs-$s-" | xargs -r docker volume rm >/dev/null || true
done
[ ${#failed[@]} -eq 0 ] || echo "molecule: failed scenarios: ${failed[*]}"
# Scenario counts in the plain "N passed, N failed" form CI logs are read by.
echo "molecule: $(( ${#scenarios[@]} - ${#failed[@]} )) passed, ${#failed[@]} failed"
[ ${#failed[@]} -eq 0 ]
