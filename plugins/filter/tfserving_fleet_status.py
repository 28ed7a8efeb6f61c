# Copyright: the tfserving-ansible authors
# Apache License 2.0
"""Filters of the fleet status report (playbooks/status.yml), the models part: what each host serves
against what the inventory expects. Pure data transforms, no I/O.

- ``tfserving_fleet_checks``: what each instance of a host must serve, from the inventory
  (``tfserving_instances``), as the ``models`` list of module tfserving_model_status, with the
  address and REST port to ask.
- ``tfserving_fleet_host_report``: what rows and drift need from one host's variables (the drift part of
  it, what the host runs, is read by tfserving_fleet_drift.py).
- ``tfserving_fleet_rows``: the answers of every host turned into one row per host, instance, model
  and version: state, labels, error, whether the inventory expects it and whether it is as expected.
  A host that answered nothing (unreachable, or its check could not run) gets one failing row per
  instance.
- ``tfserving_fleet_summary``: counts and the list of problems; ``ok`` is false when anything the
  inventory expects is not AVAILABLE.

The drift part (what each host runs) is tfserving_fleet_drift.py; the rows as text, Markdown and HTML
are tfserving_fleet_report.py.
"""

from __future__ import annotations

from ansible.errors import AnsibleFilterError
from ansible_collections.tfserving.fleet.plugins.filter.tfserving_fleet_drift import host_runtime
from ansible_collections.tfserving.fleet.plugins.module_utils.tfserving_inventory import (
    as_int,
    check_address,
    present_instances,
)
from ansible_collections.tfserving.fleet.plugins.module_utils.tfserving_status import model_expectations

# Results of a row: OK (as the inventory expects), FAIL (expected, not AVAILABLE or label elsewhere),
# WARN (not expected and in trouble: a failed load), "-" (listed, not expected: loaded or retired).
OK, FAIL, WARN, INFO = "OK", "FAIL", "WARN", "-"


def checks(instances, bind_address="0.0.0.0"):
    """[{instance, check_address, rest_port, models}] for the present instances of a host.

    ``models`` is what tfserving_model_status expects: every version of a ``specific`` policy, every
    version the server loads for ``latest``/``all`` (at least one), and each label at its version.
    """
    if not isinstance(instances, list):
        raise AnsibleFilterError("tfserving_fleet_checks expects tfserving_instances, a list")
    out = []
    for inst in present_instances(instances):
        expectations = []
        for model in inst.get("models") or []:
            versions = {v for v in (as_int(x) for x in model.get("versions") or []) if v}
            policy = model.get("version_policy") or ("specific" if versions else "latest")
            labels = {label: as_int(version) for label, version in (model.get("labels") or {}).items()}
            expectations += model_expectations(model["name"], policy, versions, labels)
        bind = inst.get("bind_address", bind_address)
        try:
            address = check_address(bind)
        except ValueError as err:
            raise AnsibleFilterError(f"tfserving_fleet_checks: bind address {bind!r} is not an IP address") from err
        out.append(
            {
                "instance": inst["name"],
                "check_address": address,
                "rest_port": as_int(inst.get("rest_port", 8501)),
                "models": expectations,
            }
        )
    return out


def _row(host, instance, model, version):
    return {
        "host": host,
        "instance": instance,
        "model": model,
        "version": version,
        "labels": [],
        "state": None,
        "error_code": None,
        "error_message": None,
        "expected": False,
        "result": INFO,
        "notes": [],
    }


def _failed_load(entry):
    return entry.get("state") == "END" and entry.get("error_code") not in (None, "", "OK")


def _instance_rows(host, instance, result):
    """Rows of one instance from one tfserving_model_status result (registered, loop item)."""
    models = result.get("models")
    statuses = result.get("statuses")
    if not isinstance(models, list) or not isinstance(statuses, dict):
        # The module did not run or crashed: no per-version information at all.
        reason = result.get("msg") or "no status reported"
        row = _row(host, instance, None, None)
        row.update({"state": "UNREACHABLE" if result.get("unreachable") else "ERROR", "expected": True,
                    "result": FAIL, "notes": [str(reason).strip()]})
        return [row]
    rows = {}
    order = []

    def get(model, version):
        key = (model, version)
        if key not in rows:
            rows[key] = _row(host, instance, model, version)
            order.append(key)
        return rows[key]

    for exp in models:
        version = exp.get("requested_version") if exp.get("requested_version") is not None else exp.get("version")
        row = get(exp["name"], version)
        row["expected"] = True
        if exp.get("label"):
            row["labels"].append(exp["label"])
        if exp.get("state") is not None and exp.get("version") == version:
            row["state"] = exp["state"]
            row["error_code"] = exp.get("error_code")
            row["error_message"] = exp.get("error_message")
        if exp.get("available"):
            if row["result"] != FAIL:
                row["result"] = OK
        else:
            row["result"] = FAIL
            if exp.get("reason") and exp["reason"] not in row["notes"]:
                row["notes"].append(exp["reason"])
    for model, entries in sorted(statuses.items()):
        for entry in entries or []:
            version = as_int(entry.get("version"))
            row = get(model, version)
            # The server's own listing is the truth for this version.
            row["state"] = entry.get("state")
            row["error_code"] = entry.get("error_code")
            row["error_message"] = entry.get("error_message")
            if not row["expected"] and _failed_load(entry):
                row["result"] = WARN
    for row in rows.values():
        if row["expected"] and row["state"] is None:
            row["state"] = "MISSING"
    out = [rows[k] for k in order]
    out.sort(key=lambda r: (r["model"] or "", -(r["version"] or 0)))
    return out


def host_report(hostvars_of_host, registered="__tfserving_status"):
    """What rows() and drift() need from one host's variables: its name, the instances the inventory
    lists, the registered status results (None when the host answered nothing) and what the host
    reported about its containers, images, engine and GPUs (``runtime``, None when nothing)."""
    hv = hostvars_of_host
    host = hv.get("inventory_hostname")
    instances = [i.get("name") for i in present_instances(hv.get("tfserving_instances"))]
    reg = hv.get(registered)
    report = {"host": host, "instances": instances, "results": None, "runtime": host_runtime(hv)}
    if not isinstance(reg, dict):
        report["reason"] = "no status collected (host not in the play, or it failed before the check)"
    elif reg.get("unreachable"):
        first = (reg.get("results") or [{}])[0]
        report["reason"] = "host unreachable: {}".format(str(first.get("msg") or reg.get("msg", "")).strip())
    else:
        report["results"] = list(reg.get("results") or [])
    return report


def rows(host_reports):
    """One row per host, instance, model and version.

    ``host_reports``: [{host, instances: [the names the inventory lists], results: [registered
    tfserving_model_status loop results, each with item.instance] or None}]. ``results`` None (or
    missing) means the host answered nothing; every instance the inventory lists then fails.
    """
    out = []
    for report in host_reports or []:
        host = report["host"]
        results = report.get("results")
        names = list(report.get("instances") or [])
        if results is not None and not names:
            row = _row(host, None, None, None)
            row["notes"] = ["no TF Serving instance in the inventory"]
            out.append(row)
            continue
        if not results:
            reason = report.get("reason") or "host unreachable or status not collected"
            for name in names or [None]:
                row = _row(host, name, None, None)
                row.update({"state": "UNREACHABLE", "expected": bool(names), "result": FAIL if names else INFO,
                            "notes": [reason]})
                out.append(row)
            continue
        for result in results:
            instance = (result.get("item") or {}).get("instance")
            if result.get("skipped"):
                continue
            out += _instance_rows(host, instance, result)
    for row in out:
        if _failed_load(row) and row["error_message"]:
            note = f"{row['error_code']}: {row['error_message']}"
            if note not in row["notes"]:
                row["notes"].insert(0, note)
        row["detail"] = "; ".join(row["notes"])
    return out


def summary(rows_):
    """Counts and problems of a report; ``ok`` is false when an expected version is not as expected."""
    problems = [r for r in rows_ if r["result"] == FAIL]
    return {
        "ok": not problems,
        "hosts": len({r["host"] for r in rows_}),
        "instances": len({(r["host"], r["instance"]) for r in rows_ if r["instance"]}),
        "expected": sum(1 for r in rows_ if r["expected"]),
        "as_expected": sum(1 for r in rows_ if r["result"] == OK),
        "failed": len(problems),
        "warnings": sum(1 for r in rows_ if r["result"] == WARN),
        "problems": [
            "{}/{}/{}{}: {}".format(
                r["host"], r["instance"] or "-", r["model"] or "-",
                "" if r["version"] is None else f" v{r['version']}",
                r["detail"] or r["state"],
            )
            for r in problems
        ],
    }


class FilterModule:
    """tfserving fleet report filters: the models each host serves."""

    def filters(self):
        return {
            "tfserving_fleet_checks": checks,
            "tfserving_fleet_host_report": host_report,
            "tfserving_fleet_rows": rows,
            "tfserving_fleet_summary": summary,
        }
