# Copyright: the tfserving-ansible authors
# Apache License 2.0
"""Filters of the fleet rollout (role tfserving_rollout), the rollout description: pure data, no I/O.

- ``tfserving_rollout_validate``: every problem of a rollout description (the list the operator
  passes), before any host is touched.
- ``tfserving_rollout_targets``: on one host, which instance/model each rollout entry touches, with
  the paths and ports to use.

The plan of each step is tfserving_rollout.py; its texts and summary are tfserving_rollout_report.py.
"""

from __future__ import annotations

import copy

from ansible.errors import AnsibleFilterError
from ansible_collections.tfserving.fleet.plugins.module_utils.tfserving_inventory import (
    LABEL_RE,
    NAME_RE,
    as_int,
    check_address,
    model_key,
    present_instances,
    rest_url,
)

ENTRY_KEYS = {
    "model", "version", "instance", "source", "labels", "keep_previous", "versions", "check", "on_host_only",
    "first_predict_budget_ms",
}
CHECK_KEYS = {
    "instances", "inputs", "expected", "signature_name", "tolerance", "relative_tolerance", "previous_expected",
}


# ---------------------------------------------------------------------------------------------
# validation of the rollout description


def validate(rollouts):
    """Problems of a rollout description, each naming the entry; [] when it can be rolled out."""
    problems = []
    if not isinstance(rollouts, list) or not rollouts:
        return ["expected a non-empty list of rollout entries ({model, version, ...})"]
    seen = set()
    for index, entry in enumerate(rollouts):
        where = f"rollout entry {index + 1}"
        if not isinstance(entry, dict):
            problems.append(f"{where}: expected a mapping with model and version, found {entry!r}")
            continue
        where = "rollout entry {} ({} {})".format(index + 1, entry.get("model"), entry.get("version"))
        unknown = sorted(set(entry) - ENTRY_KEYS)
        if unknown:
            problems.append(f"{where}: unknown key(s) {', '.join(unknown)}; allowed: {', '.join(sorted(ENTRY_KEYS))}")
        if not isinstance(entry.get("model"), str) or not NAME_RE.match(entry.get("model") or ""):
            problems.append(f"{where}: model must be a model name")
        version = as_int(entry.get("version"))
        if version is None or version <= 0:
            problems.append(f"{where}: version must be a positive integer, found {entry.get('version')!r}")
        key = (entry.get("instance"), entry.get("model"))
        if key in seen:
            problems.append(f"{where}: model {entry.get('model')} is listed twice; roll one version per model")
        seen.add(key)
        if entry.get("instance") is not None and not NAME_RE.match(str(entry["instance"])):
            problems.append(f"{where}: instance must be an instance name")
        labels = entry.get("labels", [])
        if labels != "all" and (
            not isinstance(labels, list) or not all(isinstance(x, str) and LABEL_RE.match(x) for x in labels)
        ):
            problems.append(f"{where}: labels must be a list of label names or 'all', found {labels!r}")
        keep = entry.get("keep_previous")
        if keep is not None and keep != "all" and (as_int(keep) is None or as_int(keep) < 0):
            problems.append(f"{where}: keep_previous must be a number >= 0 or 'all', found {keep!r}")
        versions = entry.get("versions")
        if versions is not None:
            if not isinstance(versions, list) or any(as_int(v) is None or as_int(v) <= 0 for v in versions):
                problems.append(f"{where}: versions must be a list of positive integers, found {versions!r}")
            elif version is not None and version not in [as_int(v) for v in versions]:
                problems.append(f"{where}: versions {versions} must include the version rolled out ({version})")
        check = entry.get("check")
        if check is not None:
            if not isinstance(check, dict):
                problems.append(f"{where}: check must be a mapping (instances or inputs, expected)")
            else:
                unknown = sorted(set(check) - CHECK_KEYS)
                if unknown:
                    problems.append(f"{where}: unknown check key(s) {', '.join(unknown)}")
                if ("instances" in check) == ("inputs" in check):
                    problems.append(f"{where}: check needs exactly one of instances (row format) or inputs (columnar)")
                if "expected" not in check:
                    problems.append(f"{where}: check needs expected, the outputs the new version must answer")
        budget = entry.get("first_predict_budget_ms")
        if budget is not None:
            if isinstance(budget, bool) or not isinstance(budget, (int, float)) or budget <= 0:
                problems.append(f"{where}: first_predict_budget_ms must be a positive number of milliseconds, "
                                f"found {budget!r}")
            elif check is None:
                problems.append(f"{where}: first_predict_budget_ms needs check (its request is the timed first "
                                "prediction)")
        if entry.get("source") is not None and not str(entry["source"]).startswith("/"):
            problems.append(f"{where}: source must be an absolute directory on the control node")
    return problems


# ---------------------------------------------------------------------------------------------
# targets on one host


def targets(rollouts, instances, model_root="/srv/tfserving/models", config_root="/etc/tfserving",
            bind_address="0.0.0.0"):
    """[{key, instance, model, version, ...}]: the instance/model pairs of this host each entry touches.

    An entry without ``instance`` touches every present instance of the host that serves the model;
    an entry whose model this host does not serve touches nothing here. An entry that names an instance
    that does not serve the model is an error.
    """
    problems = validate(rollouts)
    if problems:
        raise AnsibleFilterError("tfserving_rollout_targets: invalid rollout:\n" + "\n".join(problems))
    out = []
    present = present_instances(instances)
    for entry in rollouts:
        found = False
        for inst in present:
            if entry.get("instance") not in (None, inst["name"]):
                continue
            model = next((m for m in inst.get("models") or [] if m.get("name") == entry["model"]), None)
            if model is None:
                continue
            found = True
            source = entry.get("source") or (None if entry.get("on_host_only") else model.get("source"))
            host_dir = "{}/{}/{}".format(model_root.rstrip("/"), inst["name"], entry["model"])
            check = check_address(inst.get("bind_address", bind_address))
            rest_port = as_int(inst.get("rest_port", 8501))
            # The entry's budget, else the model's in the inventory. Rollbacks (on_host_only) without a
            # check time nothing: the version they return to may be loaded already.
            budget = entry.get("first_predict_budget_ms", model.get("first_predict_budget_ms"))
            if budget is not None and entry.get("check") is None:
                if not entry.get("on_host_only"):
                    raise AnsibleFilterError(
                        "tfserving_rollout_targets: model {} of instance {} has first_predict_budget_ms {} in the "
                        "inventory, expected a check in its rollout entry: the check's request is the timed first "
                        "prediction. Fix: add check (instances or inputs, expected) to the entry".format(
                            entry["model"], inst["name"], budget))
                budget = None
            out.append(
                {
                    "key": model_key(inst["name"], entry["model"]),
                    "instance": inst["name"],
                    "model": entry["model"],
                    "version": as_int(entry["version"]),
                    "inventory_model": copy.deepcopy(model),
                    "source": source,
                    "on_host_only": bool(entry.get("on_host_only")),
                    "host_dir": host_dir,
                    "config_path": "{}/{}/models.config".format(config_root.rstrip("/"), inst["name"]),
                    "check_address": check,
                    "rest_port": rest_port,
                    "rest_url": rest_url(check, rest_port),
                    "labels": "all" if entry.get("labels") == "all" else list(entry.get("labels") or []),
                    "keep_previous": entry.get("keep_previous"),
                    "versions": None if entry.get("versions") is None else sorted(as_int(v) for v in entry["versions"]),
                    "check": entry.get("check"),
                    "first_predict_budget_ms": budget,
                }
            )
        if not found and entry.get("instance") is not None:
            if any(i["name"] == entry["instance"] for i in present):
                raise AnsibleFilterError(
                    "tfserving_rollout_targets: instance {} does not serve model {} on this host".format(
                        entry["instance"], entry["model"]))
    return out


class FilterModule:
    """tfserving rollout description filters."""

    def filters(self):
        return {
            "tfserving_rollout_validate": validate,
            "tfserving_rollout_targets": targets,
        }
