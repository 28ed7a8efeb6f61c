"""Docker Engine package strings: validate docker_engine_version and pin packages per OS family.

Docker's repositories give docker-ce an epoch from 18.09 on (RPM ``3:``, Debian ``5:``) and
docker-ce-cli an RPM epoch of ``1:``; 17.x builds carry a ``.ce`` suffix and have no separate CLI
package. Users write the upstream version; the epochs (and, on EL, the ``.ce`` suffix of builds
before 18.09) are added here so nobody has to know them.
"""

from __future__ import annotations

import re

from ansible.errors import AnsibleFilterError
from ansible_collections.tfserving.fleet.plugins.module_utils.version_numbers import version_tuple

_RPM = re.compile(r"^(?:(?P<epoch>\d+):)?(?P<ver>\d+\.\d+\.\d+(?:\.ce)?)(?:-(?P<rel>\d[\w.]*))?$")
# CentOS 7 extras' docker: '2:1.13.1', '1.13.1' or '2:1.13.1-209.git7d71120.el7.centos'.
_CENTOS = re.compile(r"^(?:(?P<epoch>2):)?(?P<ver>1\.1[0-3]\.\d+)(?:-(?P<rel>\d[\w.]*))?$")
_DEB = re.compile(r"^(?:(?P<epoch>\d+):)?(?P<ver>\d+\.\d+\.\d+(?:[.~]ce)?)(?P<rel>[-+~][\w.+~-]*)?$")

# Epochs Docker's repositories use from 18.09 on.
_RPM_EPOCHS = {"docker-ce": "3", "docker-ce-cli": "1"}
_DEB_EPOCH = "5"


def _parse(version: str, os_family: str, source: str = "docker"):
    """Return the match for a version string, or raise ValueError with the fix."""
    version = str(version).strip()
    if os_family == "RedHat":
        if source == "distribution":
            # On EL the distribution's Docker is CentOS 7's own 'docker' package (extras, epoch 2).
            match = _CENTOS.match(version) if version else None
            if not match:
                raise ValueError(
                    f"docker_engine_source 'distribution' is not available on RedHat-family hosts for "
                    f"docker_engine_version '{version}': on EL it means CentOS 7's own 'docker' package "
                    "(epoch 2: '2:1.13.1' or '2:1.12.6'); use docker_engine_source 'docker' (Docker's "
                    "docker-ce repository) for docker-ce"
                )
            return match
        if source != "docker":
            raise ValueError(
                f"docker_engine_source '{source}' is not available on RedHat-family hosts; "
                "use 'docker' (Docker's docker-ce repository)"
            )
        if "~" in version or "debian" in version or "ubuntu" in version:
            raise ValueError(
                f"docker_engine_version '{version}' is a Debian package version; RedHat-family hosts "
                "need an RPM version such as '20.10.24', '3:20.10.24' or '3:20.10.24-3.el8'"
            )
        match = _RPM.match(version)
        if not match:
            raise ValueError(
                f"docker_engine_version '{version}' is not an RPM version; use '20.10.24', "
                "'3:20.10.24', '3:20.10.24-3.el8' or a legacy '17.12.1.ce'"
            )
        ver = match["ver"]
        if version_tuple(ver) < (17, 3):
            raise ValueError(
                f"docker_engine_version '{version}': docker-ce starts at 17.03 in Docker's repository; "
                f"Docker {ver} on EL is CentOS 7's own 'docker' package: set docker_engine_source "
                f"'distribution' and docker_engine_version '2:{ver}', or pin a docker-ce release"
            )
        if not ver.endswith(".ce") and version_tuple(ver) < (18, 9):
            # Docker's RPMs before 18.09 are named '17.12.1.ce'; a bare '17.12.1' matches no package,
            # so it is completed here (the same build: docker-ce-17.12.1.ce-1.el7.centos).
            epoch = f"{match['epoch']}:" if match["epoch"] is not None else ""
            release = f"-{match['rel']}" if match["rel"] else ""
            match = _RPM.match(f"{epoch}{ver}.ce{release}")
            ver = match["ver"]
        legacy = ver.endswith(".ce")
        if match["epoch"] is not None:
            want = None if legacy or version_tuple(ver) < (18, 9) else _RPM_EPOCHS["docker-ce"]
            if match["epoch"] != want:
                raise ValueError(
                    f"docker_engine_version '{version}': docker-ce {ver} carries "
                    f"{'no epoch' if want is None else 'epoch ' + want} in Docker's repository; "
                    f"write '{ver}' and the role adds the right epochs"
                )
        return match
    if os_family == "Debian":
        if source not in ("docker", "distribution"):
            raise ValueError(f"docker_engine_source '{source}' is unknown; use 'docker' or 'distribution'")
        if re.search(r"\.el\d", version):
            raise ValueError(
                f"docker_engine_version '{version}' is an RPM (EL) version; Debian-family hosts need "
                "'20.10.24' or a full Debian version such as '5:24.0.7-1~debian.12~bookworm'"
            )
        match = _DEB.match(version)
        if not match:
            raise ValueError(
                f"docker_engine_version '{version}' is not a Debian package version; use '20.10.24' "
                "or a full version such as '5:24.0.7-1~debian.12~bookworm'"
            )
        return match
    raise ValueError(
        f"os_family '{os_family}' is not supported; this role supports the RedHat and Debian families"
    )


def docker_engine_version_problem(version, os_family, source="docker"):
    """'' when ``version`` suits the OS family (or is empty), else a message naming the fix."""
    if not version:
        if os_family not in ("RedHat", "Debian"):
            return f"os_family '{os_family}' is not supported; this role supports the RedHat and Debian families"
        return ""
    try:
        _parse(version, os_family, source)
    except ValueError as exc:
        return str(exc)
    return ""


def docker_engine_upstream_version(version, os_family="RedHat", source="docker"):
    """The upstream version without epoch or release: '3:20.10.24-3.el8' -> '20.10.24'."""
    if not version:
        return ""
    return _parse(version, os_family, source)["ver"].replace("~ce", ".ce")


def docker_engine_packages(version, os_family, source="docker", containerd_version=""):
    """Package specs for the package manager, pinned when a version is given.

    RedHat: ['docker-ce-3:20.10.24', 'docker-ce-cli-1:20.10.24', 'containerd.io[-1.6.21]'].
    Debian: ['docker-ce=5:20.10.24*', ...] or ['docker.io=20.10.24*'] for the distribution source.
    """
    try:
        match = _parse(version, os_family, source) if version else None
    except ValueError as exc:
        raise AnsibleFilterError(str(exc)) from exc
    if os_family == "Debian" and source == "distribution":
        return [f"docker.io={match['ver']}*" if match else "docker.io"]
    if os_family == "RedHat" and source == "distribution":
        # docker pulls docker-client and docker-common of the same version-release (exact Requires).
        return [f"docker-2:{match['ver']}" + (f"-{match['rel']}" if match["rel"] else "") if match else "docker"]

    ver = match["ver"] if match else ""
    legacy = bool(ver) and (ver.endswith("ce") or version_tuple(ver) < (18, 9))
    names = ["docker-ce"] if legacy else ["docker-ce", "docker-ce-cli"]
    specs = []
    for name in names:
        if not ver:
            specs.append(name)
        elif os_family == "RedHat":
            rel = f"-{match['rel']}" if match["rel"] else ""
            epoch = "" if legacy else f"{_RPM_EPOCHS[name]}:"
            specs.append(f"{name}-{epoch}{ver}{rel}")
        else:
            if match["rel"]:  # a full Debian version: use it exactly
                epoch = f"{match['epoch']}:" if match["epoch"] else ""
                specs.append(f"{name}={epoch}{ver}{match['rel']}")
            else:
                deb_ver = ver.replace(".ce", "~ce")
                epoch = "" if legacy else f"{_DEB_EPOCH}:"
                specs.append(f"{name}={epoch}{deb_ver}*")
    if legacy:  # 17.x and 18.06 bundle containerd; containerd.io starts with 18.09
        return specs
    if containerd_version:
        sep = "-" if os_family == "RedHat" else "="
        star = "" if os_family == "RedHat" else "*"
        specs.append(f"containerd.io{sep}{containerd_version}{star}")
    else:
        specs.append("containerd.io")
    return specs


def docker_engine_daemon_config(defaults, contributions, options, existing=None, keep_unmanaged=False):
    """Merge daemon.json: defaults <- contributions (by name) <- options [<- kept unmanaged keys].

    Mappings merge recursively; lists from several sources are joined without duplicates, so two
    roles can each add an insecure registry. Returns {'config': ..., 'unmanaged': [keys]}.
    """
    for label, value in (("docker_engine_daemon_defaults", defaults), ("docker_engine_daemon_options", options),
                         ("docker_engine_daemon_contributions", contributions)):
        if not isinstance(value, dict):
            raise AnsibleFilterError(f"{label} must be a mapping of daemon.json keys, got {type(value).__name__}")

    def merge(base, extra):
        out = dict(base)
        for key, value in extra.items():
            if isinstance(value, dict) and isinstance(out.get(key), dict):
                out[key] = merge(out[key], value)
            elif isinstance(value, list) and isinstance(out.get(key), list):
                out[key] = out[key] + [v for v in value if v not in out[key]]
            else:
                out[key] = value
        return out

    config = merge({}, defaults)
    for name in sorted(contributions):
        part = contributions[name]
        if not isinstance(part, dict):
            raise AnsibleFilterError(
                f"docker_engine_daemon_contributions['{name}'] must be a mapping, got {type(part).__name__}"
            )
        config = merge(config, part)
    config = merge(config, options)
    unmanaged = sorted(k for k in (existing or {}) if k not in config)
    if keep_unmanaged:
        config = merge({k: existing[k] for k in unmanaged}, config)
    return {"config": config, "unmanaged": unmanaged}


class FilterModule:
    def filters(self):
        return {
            "docker_engine_version_problem": docker_engine_version_problem,
            "docker_engine_upstream_version": docker_engine_upstream_version,
            "docker_engine_packages": docker_engine_packages,
            "docker_engine_daemon_config": docker_engine_daemon_config,
        }
