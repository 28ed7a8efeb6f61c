# Copyright: the tfserving-ansible authors
# Apache License 2.0
"""Filters of the fleet rollout (role tfserving_rollout), the plan of one host: pure data, no I/O.

- ``tfserving_rollout_plan``: from the targets and what the host has now (its models.config, its
  version directories, the rollout source listings), the instance data of each step of a rollout:
  ``serve`` (the new version loaded beside the versions served now, labels unchanged), ``promote``
  (labels moved, old versions retired by policy) and ``restore`` (labels back on the previous versions,
  used when a rollout fails after the labels moved), plus what to publish and what to record in the
  inventory.
- ``tfserving_rollout_previous_checks``, ``tfserving_rollout_snapshot``, ``tfserving_rollout_proofs``:
  what must be AVAILABLE before a rollout, the models.config texts read from the host, and the
  predictions that prove a restore.

The rollout description (``tfserving_rollout_validate``, ``tfserving_rollout_targets``) is
tfserving_rollout_targets.py; models.config is read by ``tfserving_models_config_parse``
(tfserving_config.py); texts for the log and the per-host outcomes with their summary are in
tfserving_rollout_report.py.

Version policy of the steps: ``serve`` always uses ``specific`` (the versions served now plus the new
one, so nothing unloads while the new version is checked). ``promote`` keeps ``latest``/``all``
unless the entry asks for ``versions`` or ``keep_previous``; with ``specific`` it serves the new
version, the ``keep_previous`` newest versions served before, and every version a label that does not
move still points at.

Labels of the steps: ``serve`` and ``promote`` are the two writes of the collection's one two-step
label plan (module_utils/tfserving_models_config.stage_labels): labels move only in ``promote``.
"""

from __future__ import annotations

import base64
import copy

from ansible.errors import AnsibleFilterError
from ansible_collections.tfserving.fleet.plugins.filter.tfserving_config import parse_models_config
from ansible_collections.tfserving.fleet.plugins.module_utils.tfserving_inventory import (
    NAME_RE,
    TEMP_PREFIX,
    listing_versions,
    model_key,
)
from ansible_collections.tfserving.fleet.plugins.module_utils.tfserving_models_config import (
    ModelEntry,
    policy_of,
    stage_labels,
)
from ansible_collections.tfserving.fleet.plugins.module_utils.tfserving_status import model_expectations

# ---------------------------------------------------------------------------------------------
# the plan of one host


def _available(statuses, model):
    return sorted(int(s["version"]) for s in (statuses or {}).get(model) or [] if s.get("state") == "AVAILABLE")


def _serve_step(model, versions, labels_now, labels_after):
    """The ModelEntry of the serve step: the first write of the two-step label plan.

    stage_labels keeps every label that moves on its current version, and leaves a new label out,
    until the second write (promote). It is asked before the server (no ``ready``) and with new
    labels held back whatever the server allows (allow_new false): no client reaches the new version
    through a label before it answered its check. ``versions`` (what is served now, what the labels
    point at, and the new version) is the rollout's own: nothing unloads before promote, so a
    restore loads nothing again.
    """
    wanted = ModelEntry(model, "", model_version_policy=policy_of("specific", versions=versions),
                        version_labels=labels_after)
    staged, _wait = stage_labels([wanted], {model: labels_now}, allow_new=False)
    return staged[0] if staged else wanted


def plan(targets_, instances, configs, host_listings, source_listings, statuses=None, staging=True):
    """What each step of the rollout sets, for one host.

    ``configs``: {instance: models.config text on the host, or None}; ``host_listings`` /
    ``source_listings``: {target key: tfserving_model_versions result of the host directory / the
    rollout source (None without source)}; ``statuses``: {instance: tfserving_model_status ``statuses``
    of the check before the rollout}. With ``staging``, a version that is published is first served
    under a separate model name, ``<model>.rollout``, from its own directory, and checked there: the
    model's clients (by label, by version or newest) never reach a version that has not answered.
    Returns {problems, targets, publish, stage, serve, promote, restore}.
    """
    statuses = statuses or {}
    problems = []
    planned = []
    overrides = {"stage": {}, "serve": {}, "promote": {}, "restore": {}}
    added = {}
    parsed = {}
    for inst, text in (configs or {}).items():
        try:
            parsed[inst] = parse_models_config(text)
        except AnsibleFilterError as err:
            problems.append(f"instance {inst}: its models.config cannot be read: {err}")
            parsed[inst] = {}
    for target in targets_ or []:
        where = "instance {}, model {}, version {}".format(target["instance"], target["model"], target["version"])
        version = target["version"]
        current = parsed.get(target["instance"], {}).get(target["model"])
        if current is None:
            problems.append(
                f"{where}: the server does not serve this model yet (not in {target['config_path']}); "
                "deploy it with site.yml first")
            continue
        if target["inventory_model"].get("base_path"):
            problems.append(
                f"{where}: the model is read from base_path {target['inventory_model']['base_path']}; a rollout "
                "publishes versions into the model repository on the host, so it needs a model with source or "
                "host-managed versions")
            continue
        on_host = listing_versions(host_listings.get(target["key"])) or {}
        in_source = listing_versions(source_listings.get(target["key"])) or {}
        available = _available(statuses.get(target["instance"]), target["model"])
        if current["policy"] == "specific":
            served = sorted(current["versions"])
        else:
            served = available
        publish = None
        if version in on_host:
            if not on_host[version].get("saved_model"):
                problems.append(
                    f"{where}: {target['host_dir']}/{on_host[version]['name']} is on the host but holds no "
                    "saved_model.pb; remove it or roll out another version number")
        elif target["on_host_only"]:
            problems.append(
                f"{where}: version {version} is not on the host ({target['host_dir']} has "
                f"{', '.join(str(v) for v in sorted(on_host)) or 'no versions'}); roll back to a version "
                "that was deployed")
        elif not target["source"]:
            problems.append(
                f"{where}: version {version} is not on the host and the model has no source; set source "
                "to the control node directory that holds the version directory")
        elif version not in in_source:
            listing = source_listings.get(target["key"]) or {}
            found = ", ".join(str(v) for v in sorted(in_source)) or "no versions"
            what = "does not exist" if not listing.get("exists") else f"has {found}"
            problems.append(
                f"{where}: the source {target['source']} {what}; expected a directory named {version} "
                f"(or zero-padded, like {version:08d}) in it")
        elif listing_kind(source_listings.get(target["key"])) != "directory":
            problems.append(f"{where}: the source {target['source']} must be a directory for a rollout")
        else:
            name = in_source[version]["name"]
            staging_model = "{}.rollout".format(target["model"]) if staging else None
            if staging_model and not NAME_RE.match(staging_model):
                problems.append(
                    f"{where}: the model name is too long for the check model {staging_model} (63 characters "
                    "at most); set tfserving_rollout_staging: false")
            instance_dir = target["host_dir"].rsplit("/", 1)[0]
            into = f"{instance_dir}/{staging_model}" if staging else target["host_dir"]
            publish = {
                "key": target["key"],
                "source": "{}/{}".format(target["source"].rstrip("/"), name),
                "name": name,
                "version": version,
                "dir": into,
                "staged": f"{into}/{TEMP_PREFIX}{name}",
                "path": f"{into}/{name}",
                "final": "{}/{}".format(target["host_dir"], name),
                "staging_model": staging_model,
            }
        labels_now = dict(current["labels"])
        # "all": every label the model has on this host.
        moved = sorted(labels_now) if target["labels"] == "all" else list(target["labels"])
        unknown = [label for label in moved if label not in labels_now]
        # A label the model does not have yet is created on the new version (after the checks).
        previous_served = sorted(v for v in served if v != version)
        serve_versions = sorted(set(served) | set(labels_now.values()) | {version})
        labels_after = dict(labels_now)
        labels_after.update({label: version for label in moved})
        kept_by_labels = {v for k, v in labels_after.items() if k not in moved}
        if target["versions"] is not None:
            policy_after = {"version_policy": "specific", "versions": sorted(set(target["versions"]))}
            missing = sorted(kept_by_labels - set(target["versions"]))
            if missing:
                problems.append(
                    f"{where}: versions {target['versions']} leave label(s) "
                    + ", ".join(f"{k} -> {v}" for k, v in sorted(labels_after.items()) if v in missing)
                    + " pointing at a version that is no longer served; move them too (labels) or keep "
                    "those versions")
        elif current["policy"] == "specific" or target["keep_previous"] is not None:
            keep = target["keep_previous"] if target["keep_previous"] is not None else 1
            kept = previous_served if keep == "all" else (previous_served[-int(keep):] if int(keep) else [])
            policy_after = {
                "version_policy": "specific",
                "versions": sorted(set(kept) | kept_by_labels | {version}),
            }
        else:
            newest = max([*on_host, version])
            if version != newest:
                problems.append(
                    f"{where}: the model's policy is {current['policy']} and the host has newer version "
                    f"{newest}; the server would not serve {version} alone. Set versions or keep_previous "
                    "to switch to a specific policy")
            policy_after = {"version_policy": current["policy"]}
            if current["policy"] == "latest":
                policy_after["num_versions"] = current["num_versions"] or 1
        base = {k: v for k, v in target["inventory_model"].items() if k not in ("source", "base_path")}
        base.pop("num_versions", None)
        base.pop("versions", None)
        serve = _serve_step(target["model"], serve_versions, labels_now, labels_after)
        serve_model = {**base, "version_policy": "specific", "versions": serve.versions,
                       "labels": serve.version_labels}
        promote_model = {**base, **policy_after, "labels": labels_after}
        restore_model = {**base, "version_policy": "specific", "versions": serve_versions, "labels": labels_now}
        current_model = {**base, "version_policy": current["policy"], "labels": labels_now}
        if current["policy"] == "specific":
            current_model["versions"] = current["versions"]
        elif current["policy"] == "latest":
            current_model["num_versions"] = current["num_versions"] or 1
        if publish and publish["staging_model"]:
            overrides["stage"][target["key"]] = current_model
            added.setdefault(target["instance"], []).append(
                {"name": publish["staging_model"], "version_policy": "specific", "versions": [version]})
        overrides["serve"][target["key"]] = serve_model
        overrides["promote"][target["key"]] = promote_model
        overrides["restore"][target["key"]] = restore_model
        planned.append(
            {
                **{k: target[k] for k in ("key", "instance", "model", "version", "check_address", "rest_port",
                                          "rest_url", "host_dir", "config_path", "check", "source",
                                          "first_predict_budget_ms")},
                "labels": moved,
                "publish": publish,
                "staged": bool(publish and publish["staging_model"]),
                # The serve step changes nothing when the version is served already (a rollback).
                "serve_changes": not (current["policy"] == "specific" and version in current["versions"]),
                "created_labels": unknown,
                # After a restore: what the servers must no longer serve (404 counts as not served).
                "unload_checks": (
                    [{"url": "{}/v1/models/{}".format(target["rest_url"], target["model"]), "versions": [version]}]
                    + ([{"url": "{}/v1/models/{}".format(target["rest_url"], publish["staging_model"]),
                         "versions": None}] if publish and publish["staging_model"] else [])
                ) if publish else [],
                "previous": {
                    "policy": current["policy"],
                    "versions": served,
                    "num_versions": current["num_versions"],
                    "labels": labels_now,
                    "available": available,
                },
                "after": {**policy_after, "labels": labels_after},
                "record": {
                    "instance": target["instance"],
                    "model": target["model"],
                    **policy_after,
                    "labels": labels_after,
                },
                "previous_expectations": model_expectations(target["model"], current["policy"], served, labels_now),
                "serve_expectations": model_expectations(
                    target["model"], "specific", serve.versions, serve.version_labels),
                "promote_expectations": model_expectations(
                    target["model"], policy_after["version_policy"], policy_after.get("versions") or [version],
                    labels_after, newest=version),
            }
        )
    return {
        "problems": problems,
        "targets": planned,
        "publish": [t["publish"] for t in planned if t["publish"]],
        "stage": _apply(instances, overrides["stage"], added) if added else [],
        "serve_needed": any(t["serve_changes"] for t in planned),
        "serve": _apply(instances, overrides["serve"]),
        "promote": _apply(instances, overrides["promote"]),
        "restore": _apply(instances, overrides["restore"]),
    }


def previous_checks(targets_, configs):
    """[{instance, check_address, rest_port, models}]: what must be AVAILABLE before a rollout touches
    an instance (its current config, as the server serves it now), one entry per instance."""
    out = {}
    for target in targets_ or []:
        try:
            current = parse_models_config((configs or {}).get(target["instance"])).get(target["model"])
        except AnsibleFilterError:
            current = None
        entry = out.setdefault(target["instance"], {
            "instance": target["instance"],
            "check_address": target["check_address"],
            "rest_port": target["rest_port"],
            "models": [],
        })
        if current is None:
            # Not served yet: the plan refuses it; ask for the model so the report says what the server knows.
            entry["models"].append({"name": target["model"]})
            continue
        entry["models"] += model_expectations(
            target["model"], current["policy"], current["versions"], current["labels"])
    return list(out.values())


def snapshot(targets_, slurp_results):
    """{instance: its models.config text on the host, or None when there is none} from slurp results."""
    by_path = {}
    for result in slurp_results or []:
        if result.get("content") is not None:
            by_path[result["item"]] = base64.b64decode(result["content"]).decode("utf-8")
    return {t["instance"]: by_path.get(t["config_path"]) for t in targets_ or []}


def proofs(targets_):
    """[(target, label or None)]: after a restore, predict through every label that moved back and
    once without a label (the newest version the server serves)."""
    out = []
    for target in targets_ or []:
        out.append((target, None))
        out += [(target, label) for label in target["labels"] if label in target["previous"]["labels"]]
    return out


def listing_kind(listing):
    return (listing or {}).get("kind")


def _apply(instances, overrides, added=None):
    """tfserving_instances with the overridden models (a model without source: the role serves the
    versions the rollout put on the host and never deletes them) and the ``added`` models
    ({instance: [models]})."""
    out = copy.deepcopy(instances or [])
    for inst in out:
        if not isinstance(inst, dict):
            continue
        for index, model in enumerate(inst.get("models") or []):
            key = model_key(inst.get("name"), model.get("name"))
            if key in overrides:
                inst["models"][index] = copy.deepcopy(overrides[key])
        inst["models"] = list(inst.get("models") or []) + copy.deepcopy((added or {}).get(inst.get("name"), []))
    return out


class FilterModule:
    """tfserving rollout filters."""

    def filters(self):
        return {
            "tfserving_rollout_previous_checks": previous_checks,
            "tfserving_rollout_plan": plan,
            "tfserving_rollout_snapshot": snapshot,
            "tfserving_rollout_proofs": proofs,
        }
