"""Choose the NVIDIA container runtime path for a Docker version, from the role's matrix.

``docker_version | tfserving.fleet.nvidia_runtime_plan(matrix, os_family, ...)`` returns one dict: the path
(legacy nvidia-docker2 2.0.x pinned to one docker-ce build, nvidia-docker2 2.x on the ``nvidia``
runtime, or the NVIDIA Container Toolkit with ``--gpus``), the exact package strings to install
and lock, the daemon.json contribution for the Docker role, and the driver-versus-CUDA verdict for
the serving image. An impossible combination gives ``ok: false`` and an ``error`` that names both
versions and the nearest valid choices; nothing is raised, so preflight can fail with the host
name in front of it.

``plan | tfserving.fleet.nvidia_runtime_pins_installed(ansible_facts['packages'], os_family)`` tells
whether every package of the plan is installed at its pinned version.

The matrix is ``roles/nvidia_runtime/vars/matrix.yml`` (``_nvidia_runtime_matrix``). Reading Docker
versions and the driver-versus-CUDA verdict live in nvidia_runtime_versions.py.
"""

from __future__ import annotations

import re

from ansible.errors import AnsibleFilterError
from ansible_collections.tfserving.fleet.plugins.filter.nvidia_runtime_versions import (
    check_driver,
    parse_docker_version,
)
from ansible_collections.tfserving.fleet.plugins.module_utils.version_numbers import version_tuple

_TOOLKIT = re.compile(r"^(?P<ver>\d+\.\d+\.\d+)(?:-(?P<rel>\d+))?$")


def _nvidia_runtime_daemon():
    """daemon.json's contribution that registers the ``nvidia`` runtime (a new dict each call)."""
    return {"runtimes": {"nvidia": {"path": "nvidia-container-runtime", "runtimeArgs": []}}}


def _nvidia_docker2_plan(plan, path, packages, requirement):
    """The plan of an nvidia-docker2 path (legacy 2.0.3 or 2.x): its two packages on the nvidia runtime."""
    plan.update(
        {
            "path": path,
            "gpu_mode": "legacy",
            "packages": packages,
            "package_names": ["nvidia-docker2", "nvidia-container-runtime"],
            "docker_requirement": requirement,
            "repositories": "nvidia-docker",
            "daemon_options": _nvidia_runtime_daemon(),
        }
    )
    return plan


def _gpus_min(matrix) -> str:
    """'19.03.0' -> '19.03' for messages."""
    return ".".join(str(matrix["gpus_flag_min_docker"]).split(".")[:2])


def _distribution_ok(matrix, os_family, distribution, os_major):
    dists = matrix["legacy"]["distributions"]
    if os_family == "RedHat":
        return str(os_major) in dists["RedHat"], "EL" + ", EL".join(dists["RedHat"])
    key = "Ubuntu" if str(distribution).lower() == "ubuntu" else "Debian"
    allowed = dists[key]
    label = "; ".join(f"{k} {', '.join(v)}" for k, v in dists.items() if k != "RedHat")
    return str(os_major) in allowed, label


def _legacy_neighbours(matrix, docker, os_family):
    usable = [
        b
        for b in matrix["legacy"]["builds"]
        if (b["rpm_release"] if os_family == "RedHat" else b["deb_release"]) is not None
    ]
    lower = [b["docker"] for b in usable if version_tuple(b["docker"]) < docker]
    higher = [b["docker"] for b in usable if version_tuple(b["docker"]) > docker]
    out = []
    if lower:
        out.append(max(lower, key=version_tuple))
    if higher:
        out.append(min(higher, key=version_tuple))
    return out


def _legacy_for(matrix, docker, os_family):
    """The legacy build for this very Docker when one is installable, else its neighbours."""
    for b in matrix["legacy"]["builds"]:
        release = b["rpm_release"] if os_family == "RedHat" else b["deb_release"]
        if version_tuple(b["docker"]) == docker and release is not None:
            return [b["docker"]]
    return _legacy_neighbours(matrix, docker, os_family)


def _deb_docker_requirement(version):
    numeric = version_tuple(version)
    if numeric >= (18, 9):
        return f"docker-ce (= 5:{version}~3-0~<distribution>-<codename>)"
    if numeric >= (18, 6):
        return f"docker-ce (= {version}~ce~3-0~<distribution>)"
    return f"docker-ce (= {version}~ce-0~<distribution>)"


def _refuse(plan, message, nearest):
    plan["ok"] = False
    plan["error"] = message
    plan["nearest"] = nearest
    return plan


def _plan_legacy(plan, matrix, docker, os_family, requested_nd2):
    legacy = matrix["legacy"]
    version = docker["version"]
    if requested_nd2 and version_tuple(requested_nd2)[:3] != version_tuple(legacy["nvidia_docker2_version"]):
        return _refuse(
            plan,
            f"nvidia-docker2 {requested_nd2} is not a per-Docker legacy build for Docker {version}; the "
            f"legacy builds are nvidia-docker2 {legacy['nvidia_docker2_version']}",
            [f"nvidia-docker2 {legacy['nvidia_docker2_version']}"],
        )
    if requested_nd2 and "docker" in str(requested_nd2):
        wanted = f"nvidia-docker2-{requested_nd2}" + (".noarch" if os_family == "RedHat" else "")
        bad = next((k for k in legacy["known_bad"] if k["package"] == wanted), None)
        if bad is not None:
            good = [b for b in legacy["builds"] if b["docker"] == bad["docker"] and b["rpm_release"]]
            nearest = [f"nvidia-docker2-2.0.3-{g['rpm_release']}.docker{g['docker']}.ce" for g in good]
            neighbours = _legacy_neighbours(matrix, version_tuple(bad["docker"]), os_family)
            nearest = nearest or [f"Docker {v}" for v in neighbours]
            return _refuse(
                plan,
                f"{wanted} cannot be installed with docker-ce {version}: it {bad['why']}; nearest valid "
                f"choices: {', '.join(nearest)}",
                nearest,
            )
        built_for = re.search(r"docker(\d+\.\d+\.\d+)", str(requested_nd2))
        if built_for and built_for.group(1) != version:
            return _refuse(
                plan,
                f"nvidia-docker2 {requested_nd2} is built for {docker['package']} {built_for.group(1)}, but Docker is "
                f"{version}; nearest valid choices: Docker {built_for.group(1)} with it, or the build for "
                f"Docker {version} (leave the nvidia-docker2 version at 2.0.3)",
                [f"Docker {built_for.group(1)}", "nvidia-docker2 2.0.3"],
            )
    if docker["package"] == "docker":
        return _plan_centos_docker(plan, legacy, docker)
    build = next((b for b in legacy["builds"] if b["docker"] == version), None)
    release = None
    if build is not None:
        release = build["rpm_release"] if os_family == "RedHat" else build["deb_release"]
    if build is None or release is None:
        near = _legacy_neighbours(matrix, docker["tuple"], os_family)
        bad = [k for k in legacy["known_bad"] if k["docker"] == version and k["os_family"] == os_family]
        why = "; ".join(f"{k['package']} {k['why']}" for k in bad)
        return _refuse(
            plan,
            f"nvidia-docker2 {legacy['nvidia_docker2_version']} has no installable build for Docker "
            f"{version} on the {os_family} family"
            + (f" ({why})" if why else "")
            + f"; nearest valid choices: Docker {' or '.join(near)} with its nvidia-docker2 build, "
            f"or Docker >= {_gpus_min(matrix)} with the NVIDIA Container Toolkit",
            [f"Docker {v}" for v in near] + [f"Docker >= {_gpus_min(matrix)} + toolkit"],
        )
    nd2, ncr = legacy["nvidia_docker2_version"], legacy["runtime_version"]
    if os_family == "RedHat":
        requirement = f"docker-ce = 3:{version}" if docker["tuple"] >= (18, 9) else f"docker-ce = {version}.ce"
        packages = [
            f"nvidia-docker2-{nd2}-{release}.docker{version}.ce",
            f"nvidia-container-runtime-{ncr}-{release}.docker{version}",
        ]
    else:
        requirement = _deb_docker_requirement(version)
        packages = [
            f"nvidia-docker2={nd2}+docker{version}-{release}",
            f"nvidia-container-runtime={ncr}+docker{version}-{release}",
        ]
    return _nvidia_docker2_plan(plan, "legacy", packages, requirement)


def _plan_centos_docker(plan, legacy, docker):
    """nvidia-docker2 2.0.3 built for CentOS 7's own docker package (requires 'docker = 2:X')."""
    version = docker["version"]
    builds = legacy["centos_docker_builds"]
    build = next((b for b in builds if b["docker"] == version), None)
    if build is None:
        near = [b["docker"] for b in builds]
        return _refuse(
            plan,
            f"nvidia-docker2 {legacy['nvidia_docker2_version']} has no build for CentOS's docker {version} "
            f"(epoch 2); NVIDIA built it for CentOS's docker {' and '.join(near)}; nearest valid choices: "
            f"docker 2:{' or 2:'.join(near)} with its nvidia-docker2 build, or docker-ce >= 19.03 with the "
            "NVIDIA Container Toolkit",
            [f"docker 2:{v}" for v in near] + ["Docker >= 19.03 + toolkit"],
        )
    nd2, ncr, release = legacy["nvidia_docker2_version"], legacy["runtime_version"], build["rpm_release"]
    packages = [
        f"nvidia-docker2-{nd2}-{release}.docker{version}",
        f"nvidia-container-runtime-{ncr}-{release}.docker{version}",
    ]
    return _nvidia_docker2_plan(plan, "legacy", packages, f"docker = 2:{version}")


def _plan_nvidia_docker2(plan, matrix, docker, os_family, requested_nd2):
    rows = matrix["nvidia_docker2"]
    versions = [r["version"] for r in rows]
    row = next((r for r in rows if r["version"] == requested_nd2), None)
    if row is None:
        return _refuse(
            plan,
            f"nvidia-docker2 {requested_nd2 or '(none)'} is not in the matrix for Docker "
            f"{docker['version']}; "
            f"nearest valid choices: nvidia-docker2 {', '.join(versions)}",
            [f"nvidia-docker2 {v}" for v in versions],
        )
    minimum = row["docker_min_rpm"] if os_family == "RedHat" else row["docker_min_deb"]
    if docker["tuple"] < version_tuple(minimum):
        near = _legacy_for(matrix, docker["tuple"], os_family)
        return _refuse(
            plan,
            f"nvidia-docker2 {requested_nd2} requires docker-ce >= {minimum}, but Docker is "
            f"{docker['version']}; nearest valid choices: Docker >= {minimum} with nvidia-docker2 "
            f"{requested_nd2}, or nvidia-docker2 2.0.3 pinned to Docker {' or '.join(near)}",
            [f"Docker >= {minimum}"] + [f"Docker {v} + nvidia-docker2 2.0.3" for v in near],
        )
    if os_family == "RedHat":
        packages = [f"nvidia-docker2-{row['version']}-1", f"nvidia-container-runtime-{row['runtime']}-1"]
    else:
        packages = [f"nvidia-docker2={row['version']}-1", f"nvidia-container-runtime={row['runtime']}-1"]
    return _nvidia_docker2_plan(plan, "nvidia-docker2", packages, f"docker-ce >= {minimum}")


def _plan_toolkit(plan, matrix, docker, os_family, requested, register_runtime):
    toolkit = matrix["toolkit"]
    minimum_docker = matrix["gpus_flag_min_docker"]
    if docker["tuple"] < version_tuple(minimum_docker):
        near = _legacy_for(matrix, docker["tuple"], os_family)
        return _refuse(
            plan,
            f"the NVIDIA Container Toolkit {requested or ''} needs Docker >= {_gpus_min(matrix)} (--gpus), "
            f"but Docker is {docker['version']}; nearest valid choices: Docker >= {_gpus_min(matrix)} with "
            f"the toolkit, or the legacy nvidia-docker2 2.0.3 build for Docker {' or '.join(near) or 'none'}",
            [f"Docker >= {_gpus_min(matrix)}"] + [f"Docker {v} + nvidia-docker2 2.0.3" for v in near],
        )
    match = _TOOLKIT.match(str(requested or "").strip())
    if not match:
        return _refuse(
            plan,
            f"toolkit version '{requested}' is not a version such as '1.17.8' (for Docker {docker['version']})",
            [f"toolkit {toolkit['known_versions'][-1]}"],
        )
    version, release = match["ver"], match["rel"] or "1"
    known = toolkit["known_versions"]
    if version_tuple(version) < version_tuple(toolkit["min_version"]):
        return _refuse(
            plan,
            f"NVIDIA Container Toolkit {version} predates nvidia-container-toolkit-base, so its packages "
            f"cannot be pinned together (Docker {docker['version']}); nearest valid choice: toolkit "
            f"{toolkit['min_version']} or later (newest known: {known[-1]})",
            [f"toolkit {toolkit['min_version']}", f"toolkit {known[-1]}"],
        )
    if version not in known and version_tuple(version) <= version_tuple(known[-1]):
        lower = [v for v in known if version_tuple(v) < version_tuple(version)]
        higher = [v for v in known if version_tuple(v) > version_tuple(version)]
        near = [max(lower, key=version_tuple)] if lower else []
        near += [min(higher, key=version_tuple)] if higher else []
        return _refuse(
            plan,
            f"NVIDIA Container Toolkit {version} is not a release (Docker {docker['version']}); "
            f"nearest valid choices: {' or '.join(near)}",
            [f"toolkit {v}" for v in near],
        )
    if version not in known:
        plan["notes"].append(
            f"toolkit {version} is newer than the matrix ({known[-1]}); pinned as given, not validated"
        )
    if os_family == "RedHat":
        packages = [f"{name}-{version}-{release}" for name in toolkit["packages"]]
    else:
        packages = [f"{name}={version}-{release}" for name in toolkit["packages"]]
    daemon = {}
    if register_runtime:
        daemon = _nvidia_runtime_daemon()
    plan.update(
        {
            "path": "toolkit",
            "gpu_mode": "toolkit",
            "packages": packages,
            "package_names": list(toolkit["packages"]),
            "docker_requirement": f"Docker >= {_gpus_min(matrix)}",
            "repositories": "nvidia-container-toolkit",
            "daemon_options": daemon,
        }
    )
    return plan


def nvidia_runtime_plan(
    docker_version,
    matrix,
    os_family,
    os_major="",
    distribution="",
    flavor="auto",
    nvidia_docker2_version="",
    toolkit_version="",
    register_runtime=False,
    cuda_version="",
    driver_version="",
    driver_cuda_version="",
):
    """The plan for one host; see the module docstring."""
    if not isinstance(matrix, dict) or "legacy" not in matrix:
        raise AnsibleFilterError("nvidia_runtime_plan: matrix must be _nvidia_runtime_matrix (vars/matrix.yml)")
    plan = {
        "ok": True,
        "error": None,
        "nearest": [],
        "notes": [],
        "path": None,
        "gpu_mode": "none",
        "docker": None,
        "docker_requirement": None,
        "packages": [],
        "package_names": [],
        "repositories": None,
        "daemon_options": {},
        "cuda": None,
    }
    if os_family not in ("RedHat", "Debian"):
        return _refuse(
            plan,
            f"OS family '{os_family}' is not supported; use a RedHat or Debian family host",
            ["RedHat family (EL7, EL8, EL9)", "Debian family"],
        )
    if flavor not in ("auto", "legacy", "nvidia-docker2", "toolkit"):
        return _refuse(plan, f"flavor '{flavor}' is unknown", ["auto", "legacy", "nvidia-docker2", "toolkit"])
    if not docker_version:
        return _refuse(
            plan,
            "the Docker version is unknown: set docker_engine_version (or nvidia_runtime_docker_version) "
            "or install Docker first",
            [],
        )
    try:
        docker = parse_docker_version(docker_version, os_family)
    except ValueError as exc:
        return _refuse(plan, str(exc), [])
    plan["docker"] = {k: docker[k] for k in ("raw", "version", "epoch", "package")}

    gpus_flag = docker["tuple"] >= version_tuple(matrix["gpus_flag_min_docker"])
    if flavor == "auto":
        flavor = (
            "toolkit"
            if gpus_flag
            else (
                "nvidia-docker2"
                if nvidia_docker2_version and version_tuple(nvidia_docker2_version) >= (2, 1)
                else "legacy"
            )
        )
    if flavor in ("legacy", "nvidia-docker2") and gpus_flag:
        return _refuse(
            plan,
            f"nvidia-docker2 {nvidia_docker2_version or matrix['legacy']['nvidia_docker2_version']} is not "
            f"used with Docker {docker['version']}: Docker >= {_gpus_min(matrix)} takes GPUs "
            "through --gpus and the NVIDIA Container Toolkit; nearest valid choices: the toolkit with this "
            f"Docker, or Docker {' or '.join(_legacy_neighbours(matrix, docker['tuple'], os_family)[-1:])} "
            "with nvidia-docker2 2.0.3",
            ["flavor toolkit"],
        )
    if flavor in ("legacy", "nvidia-docker2"):
        allowed, label = _distribution_ok(matrix, os_family, distribution, os_major)
        if not allowed:
            dist = f"{distribution or os_family} {os_major}".strip()
            return _refuse(
                plan,
                f"nvidia-docker2 for Docker {docker['version']} was built only for {label}, not {dist}; "
                f"nearest valid choice on {dist}: Docker >= {_gpus_min(matrix)} with the "
                "NVIDIA Container Toolkit",
                [f"Docker >= {_gpus_min(matrix)} + toolkit"],
            )
    if flavor == "legacy":
        _plan_legacy(plan, matrix, docker, os_family, nvidia_docker2_version)
    elif flavor == "nvidia-docker2":
        _plan_nvidia_docker2(plan, matrix, docker, os_family, nvidia_docker2_version)
    else:
        _plan_toolkit(plan, matrix, docker, os_family, toolkit_version, register_runtime)
    if not plan["ok"]:
        return plan

    try:
        verdict = check_driver(matrix, cuda_version, driver_version, driver_cuda_version or None)
    except ValueError as exc:
        return _refuse(plan, str(exc), [])
    plan["cuda"] = verdict
    if not verdict["ok"]:
        return _refuse(plan, verdict["error"], [])
    return plan


def _pin_versions(packages, os_family):
    """Package strings -> {name: 'version-release'} (RPM 'n-v-r' or Debian 'n=v')."""
    pins = {}
    for spec in packages:
        if os_family == "Debian":
            name, _unused, version = spec.partition("=")
        else:
            match = re.match(r"^(?P<name>.+?)-(?P<ver>\d[^-]*-[^-]+)$", spec)
            if not match:
                raise AnsibleFilterError(f"'{spec}' is not an RPM name-version-release")
            name, version = match["name"], match["ver"]
        pins[name] = version
    return pins


def nvidia_runtime_pins_installed(plan, packages, os_family):
    """True when every package of the plan is installed at its pinned version.

    ``packages`` is ``ansible_facts['packages']`` from package_facts.
    """
    if not plan or not plan.get("packages"):
        return True
    for name, want in _pin_versions(plan["packages"], os_family).items():
        found = []
        for entry in (packages or {}).get(name, []):
            if os_family == "Debian":
                found.append(str(entry.get("version")))
            else:
                found.append(f"{entry.get('version')}-{entry.get('release')}")
        if want not in found:
            return False
    return True


class FilterModule:
    def filters(self):
        return {
            "nvidia_runtime_plan": nvidia_runtime_plan,
            "nvidia_runtime_pins_installed": nvidia_runtime_pins_installed,
        }
