# Copyright: the tfserving-ansible authors
# Apache License 2.0
"""Monitoring hand-off: Prometheus scrape targets of the fleet's TF Serving instances (pure data).

``tfserving_file_sd``: one file_sd target group per instance with monitoring enabled, at
``<address>:<rest_port>`` (TF Serving serves its Prometheus page on the REST port), with the
instance's metrics path as ``__metrics_path__`` and the labels ``tfserving_host`` and
``tfserving_instance`` (which the sample alert rules use). The address is the instance's
bind_address when it names one, else the host's ``ansible_host`` (else its inventory name).
"""

from __future__ import annotations

import ipaddress

from ansible.errors import AnsibleFilterError
from ansible_collections.tfserving.fleet.plugins.module_utils.tfserving_inventory import (
    present_instances,
    section_enabled,
)

DEFAULT_PATH = "/monitoring/prometheus/metrics"


def _address(bind, host, host_vars):
    try:
        address = ipaddress.ip_address(str(bind)) if bind is not None else None
    except ValueError:
        address = None
    if address is None or address.is_unspecified:
        return str(host_vars.get("ansible_host") or host)
    return f"[{address}]" if address.version == 6 else str(address)


def _instances(host_vars, defaults):
    """(name, rest_port, bind, path) of every present instance with monitoring on: from the plan the
    role made on that host in this play, else from its inventory (hosts the play has not reached)."""
    planned = host_vars.get("_tfserving_plan")
    out = []
    if isinstance(planned, list):
        for inst in planned:
            if inst.get("state") == "present" and (inst.get("monitoring") or {}).get("enabled"):
                out.append((inst["name"], inst["rest_port"], inst["bind_address"], inst["monitoring"]["path"]))
        return out
    for inst in present_instances(host_vars.get("tfserving_instances")):
        monitoring = inst.get("monitoring")
        if not section_enabled(monitoring):
            continue
        out.append(
            (
                inst.get("name"),
                inst.get("rest_port", 8501),
                inst.get("bind_address", host_vars.get("tfserving_bind_address", defaults.get("bind_address"))),
                monitoring.get("path")
                or host_vars.get("tfserving_monitoring_path")
                or defaults.get("monitoring_path")
                or DEFAULT_PATH,
            )
        )
    return out


def file_sd(hosts, hostvars, defaults=None):
    """Prometheus file_sd target groups (a list, sorted by host and instance) for ``hosts``."""
    defaults = defaults or {}
    if isinstance(hosts, str) or not hasattr(hosts, "__iter__"):
        raise AnsibleFilterError(f"tfserving_file_sd expects a list of inventory host names, got {hosts!r}")
    groups = []
    for host in sorted(hosts):
        host_vars = hostvars[host] if host in hostvars else {}
        for name, port, bind, path in _instances(host_vars, defaults):
            groups.append(
                {
                    "targets": [f"{_address(bind, host, host_vars)}:{int(port)}"],
                    "labels": {
                        "__metrics_path__": path,
                        "tfserving_host": host,
                        "tfserving_instance": str(name),
                    },
                }
            )
    return sorted(groups, key=lambda g: (g["labels"]["tfserving_host"], g["labels"]["tfserving_instance"]))


class FilterModule:
    def filters(self):
        return {"tfserving_file_sd": file_sd}
