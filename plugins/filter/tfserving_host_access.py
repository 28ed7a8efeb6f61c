"""What the tfserving role asks of the host's SELinux policy and firewalld (tasks selinux.yml and
firewalld.yml): pure data, tested under both ansible-core lines.

- ``tfserving_firewalld_ports``: the ``port/tcp`` entries to open (gRPC and REST of every present
  instance; TF Serving serves monitoring on the REST port) and to close (those of instances marked
  ``state: absent`` that no present instance still publishes).
- ``tfserving_selinux_fcontexts``: one file-context rule per directory tree the role owns and mounts
  into containers, as ``semanage fcontext`` takes it (``<escaped path>(/.*)?``).
- ``tfserving_host_access_problems``: the role options of both, checked before the host changes.
"""

from __future__ import annotations

import re

from ansible_collections.tfserving.fleet.plugins.module_utils.tfserving_inventory import as_port

DEFAULT_GRPC_PORT = 8500
DEFAULT_REST_PORT = 8501
# firewalld zone names: letters, digits, '_' and '-', at most 17 characters (firewalld's own limit).
_ZONE = re.compile(r"^[A-Za-z0-9_-]{1,17}$")


def _kind(value):
    """A type name for messages (ansible-core 2.19 hands filters tagged subclasses of str, list, dict)."""
    for kind, name in (
        (bool, "a boolean"),
        (str, "a string"),
        (int, "a number"),
        (float, "a number"),
        (dict, "a mapping"),
        (list, "a list"),
    ):
        if isinstance(value, kind):
            return name
    return "null" if value is None else type(value).__name__


def _instance_ports(instance):
    ports = []
    for key, default in (("grpc_port", DEFAULT_GRPC_PORT), ("rest_port", DEFAULT_REST_PORT)):
        number = as_port(instance.get(key, default))
        if number is not None:
            ports.append(number)
    return ports


def tfserving_firewalld_ports(instances):
    """{'open': [...], 'close': [...]} of 'PORT/tcp' strings, sorted by port number."""
    opened, removed = set(), set()
    for instance in instances or []:
        if not isinstance(instance, dict):
            continue
        target = removed if instance.get("state", "present") == "absent" else opened
        target.update(_instance_ports(instance))
    return {
        "open": [f"{p}/tcp" for p in sorted(opened)],
        "close": [f"{p}/tcp" for p in sorted(removed - opened)],
    }


def tfserving_selinux_fcontexts(paths):
    """[{'path': ..., 'target': ...}] for each distinct absolute directory, trailing '/' removed."""
    out, seen = [], set()
    for path in paths or []:
        clean = str(path).rstrip("/") or "/"
        if clean in seen:
            continue
        seen.add(clean)
        # semanage takes a regular expression: escape the path so '.' or '+' in it match themselves.
        escaped = re.sub(r"([.^$*+?()\[\]{}|\\])", r"\\\1", clean)
        out.append({"path": clean, "target": f"{escaped}(/.*)?"})
    return out


def tfserving_host_access_problems(host, firewalld_zone, selinux_type):
    """One message per bad option: variable, value found, what is expected (empty list when valid).

    The booleans (tfserving_firewalld_manage, tfserving_selinux_manage) are checked by the role's
    argument spec, which also accepts the strings of INI inventories and extra vars.
    """
    problems = []
    if not isinstance(firewalld_zone, str) or not _ZONE.match(firewalld_zone):
        problems.append(
            f"{host}: tfserving_firewalld_zone is {firewalld_zone!r} ({_kind(firewalld_zone)}); expected the "
            "name of one firewalld zone as a string (letters, digits, '_', '-', at most 17 characters), such as "
            "public or internal. Fix: set tfserving_firewalld_zone: public (the default) or the zone of the "
            "interface clients reach the servers on (firewall-cmd --get-active-zones)."
        )
    if not isinstance(selinux_type, str) or not re.match(r"^[a-z0-9_]+_t$", selinux_type):
        problems.append(
            f"{host}: tfserving_selinux_type is {selinux_type!r} ({_kind(selinux_type)}); "
            "expected an SELinux file type name ending in _t. "
            "Fix: set tfserving_selinux_type: container_file_t (the default, from container-selinux)."
        )
    return problems


class FilterModule:
    def filters(self):
        return {
            "tfserving_firewalld_ports": tfserving_firewalld_ports,
            "tfserving_selinux_fcontexts": tfserving_selinux_fcontexts,
            "tfserving_host_access_problems": tfserving_host_access_problems,
        }
