#!/usr/bin/env bash
# Build the signed RPM repositories of molecule/el (tests/el/build_repo.py) into .cache/el/repo,
# installing Debian's RPM tools first: rpm (rpmbuild, rpmsign), createrepo-c, gnupg, and
# dnf-plugins-core, whose versionlock plugin becomes the payload of the EL versionlock packages.
set -euo pipefail
cd "$(dirname "$0")/../.."
need=()
for tool in rpmbuild:rpm rpmsign:rpm createrepo_c:createrepo-c gpg:gnupg; do
  command -v "${tool%%:*}" >/dev/null || need+=("${tool##*:}")
done
[ -f /usr/lib/python3/dist-packages/dnf-plugins/versionlock.py ] || need+=(dnf-plugins-core)
if [ ${#need[@]} -gt 0 ]; then
  echo "el-repo: apt-get install ${need[*]}"
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need[@]}" >/dev/null
fi
python3 tests/el/build_repo.py .cache/el/repo
