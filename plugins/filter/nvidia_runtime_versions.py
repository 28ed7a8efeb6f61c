"""Versions the NVIDIA runtime plan compares: Docker as users and package managers write it, and the
driver a CUDA version needs.

- ``raw | tfserving.fleet.nvidia_runtime_docker_version(os_family)``: '3:18.09.2-3.el7' -> '18.09.2';
  fails when the spelling or its epoch belongs to no docker-ce (or CentOS 'docker') package.
- ``driver_version | tfserving.fleet.nvidia_runtime_driver_max_cuda(matrix)``: the highest CUDA X.Y
  the driver runs, from the matrix (``roles/nvidia_runtime/vars/matrix.yml``).

``check_driver`` is the driver-versus-serving-image verdict that the plan (nvidia_runtime.py) carries
as ``cuda``.
"""

from __future__ import annotations

import re

from ansible.errors import AnsibleFilterError
from ansible_collections.tfserving.fleet.plugins.module_utils.version_numbers import version_tuple

_DOCKER = re.compile(
    r"^(?:(?P<epoch>\d+):)?v?(?P<ver>\d+\.\d+\.\d+)"
    r"(?P<suffix>(?:[.~-]?ce)?(?:[-~+].*)?)$"
)
_CUDA = re.compile(r"^(?P<major>\d+)\.(?P<minor>\d+)(?:\.\d+)?$")

# On EL, a Docker older than this is not docker-ce but the distribution's 'docker' (epoch 2).
_CENTOS_DOCKER_BELOW = (17, 3)
# docker-ce carries an epoch from 18.09 on: RPM 3, Debian 5. Other epochs belong to other packages.
_EPOCHS = {"RedHat": "3", "Debian": "5"}
_FOREIGN_EPOCHS = {
    "RedHat": {"1": "docker-ce-cli", "2": "Red Hat's own 'docker' package"},
    "Debian": {},
}


def parse_docker_version(raw, os_family):
    """'3:18.09.2-3.el7' -> {'version': '18.09.2', 'epoch': '3', ...}; raises ValueError."""
    text = str(raw).strip()
    match = _DOCKER.match(text)
    if not match:
        raise ValueError(
            f"Docker version '{raw}' is not a Docker version; expected '20.10.24', '3:20.10.24', "
            "'17.12.1.ce' or a full package version such as '5:20.10.24~3-0~debian-bullseye'"
        )
    version = match["ver"]
    epoch = match["epoch"]
    numeric = version_tuple(version)
    if os_family == "RedHat" and numeric < _CENTOS_DOCKER_BELOW:
        # Docker's repository starts at docker-ce 17.03 on EL; older Dockers on an EL host are the
        # distribution's own 'docker' package (CentOS 7 extras: 2:1.12.6, 2:1.13.1), epoch 2.
        if epoch not in (None, "2"):
            raise ValueError(
                f"Docker version '{raw}': Docker {version} on the RedHat family is CentOS's own 'docker' "
                f"package, which carries epoch 2; nearest valid spellings: '{version}' or '2:{version}'"
            )
        return {"raw": text, "version": version, "tuple": numeric, "epoch": "2", "package": "docker"}
    if epoch is not None and os_family in _EPOCHS:
        want = _EPOCHS[os_family] if numeric >= (18, 9) else None
        if epoch != want:
            owner = _FOREIGN_EPOCHS[os_family].get(epoch)
            owner_txt = f" (epoch {epoch} belongs to {owner})" if owner else ""
            if want:
                spellings = f"'{version}' or '{want}:{version}'"
                carries = f"epoch {want}"
            else:
                spellings = f"'{version}' or '{version}.ce'" if os_family == "RedHat" else f"'{version}'"
                carries = "no epoch"
            raise ValueError(
                f"Docker version '{raw}': docker-ce {version} carries {carries} in Docker's "
                f"{'RPM' if os_family == 'RedHat' else 'Debian'} repository{owner_txt}; "
                f"nearest valid spellings: {spellings}"
            )
    return {"raw": text, "version": version, "tuple": numeric, "epoch": epoch, "package": "docker-ce"}


def cuda_tuple(text):
    match = _CUDA.match(str(text).strip())
    if not match:
        raise ValueError(f"CUDA version '{text}' is not a CUDA version such as '12.2'")
    return (int(match["major"]), int(match["minor"]))


def driver_max_cuda(driver_version, matrix):
    """Highest CUDA X.Y in the matrix whose minimum driver <= driver_version, or None."""
    best = None
    for row in matrix["cuda_min_driver"]:
        if version_tuple(driver_version) >= version_tuple(row["driver"]):
            if best is None or cuda_tuple(row["cuda"]) > cuda_tuple(best):
                best = row["cuda"]
    return best


def cuda_min_driver(cuda_version, matrix):
    """Minimum driver for CUDA X.Y (the newest table row <= X.Y within the same major), or None."""
    want = cuda_tuple(cuda_version)
    rows = [r for r in matrix["cuda_min_driver"] if cuda_tuple(r["cuda"]) <= want]
    rows = [r for r in rows if cuda_tuple(r["cuda"])[0] == want[0]]
    if not rows:
        return None
    return max(rows, key=lambda r: cuda_tuple(r["cuda"]))["driver"]


def check_driver(matrix, cuda_version, driver_version, driver_cuda_version=None):
    """Verdict for 'image built on CUDA cuda_version' on 'driver driver_version'."""
    result = {
        "image_cuda": cuda_version or None,
        "driver": driver_version or None,
        "driver_max_cuda": None,
        "min_driver": None,
        "checked": False,
        "ok": True,
        "error": None,
    }
    if not cuda_version or not driver_version:
        return result
    want = cuda_tuple(cuda_version)
    result["min_driver"] = cuda_min_driver(cuda_version, matrix)
    supported = driver_cuda_version or driver_max_cuda(driver_version, matrix)
    result["driver_max_cuda"] = supported
    result["checked"] = True
    if supported is None:
        result["ok"] = False
        result["error"] = (
            f"driver {driver_version} is older than every driver in the matrix and cannot run the "
            f"serving image built on CUDA {cuda_version}; nearest valid choice: a driver >= "
            f"{result['min_driver'] or 'the CUDA ' + cuda_version + ' minimum'}"
        )
        return result
    if cuda_tuple(supported) >= want:
        return result
    result["ok"] = False
    hint = ""
    compat = matrix.get("cuda_minor_compat_driver", {}).get(str(want[0]))
    if compat and version_tuple(driver_version) >= version_tuple(compat):
        hint = (
            f" (the driver meets CUDA {want[0]}.x minor-version compatibility, >= {compat}, but the "
            "container runtime enforces the image's NVIDIA_REQUIRE_CUDA)"
        )
    need = f"driver >= {result['min_driver']}" if result["min_driver"] else f"a driver supporting CUDA {cuda_version}"
    result["error"] = (
        f"driver {driver_version} supports CUDA up to {supported}, but the serving image is built on "
        f"CUDA {cuda_version}{hint}; nearest valid choices: upgrade to a {need}, or serve an image "
        f"built on CUDA <= {supported}"
    )
    return result


def nvidia_runtime_docker_version(raw, os_family):
    """'3:18.09.2-3.el7' -> '18.09.2' (raises when the version or its epoch is wrong)."""
    try:
        return parse_docker_version(raw, os_family)["version"]
    except ValueError as exc:
        raise AnsibleFilterError(str(exc)) from exc


def nvidia_runtime_driver_max_cuda(driver_version, matrix):
    return driver_max_cuda(driver_version, matrix)


class FilterModule:
    def filters(self):
        return {
            "nvidia_runtime_docker_version": nvidia_runtime_docker_version,
            "nvidia_runtime_driver_max_cuda": nvidia_runtime_driver_max_cuda,
        }
