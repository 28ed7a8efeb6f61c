# Copyright: the tfserving-ansible authors
# Apache License 2.0
"""Glue filters for the tfserving role's tasks: loop lists in (tfserving_model_refs), registered
loop results out (tfserving_collect_listings, tfserving_collect_dirs, tfserving_current_configs),
what to verify (tfserving_expectations), what to clean up (tfserving_cleanup_items,
tfserving_unloaded) and which config writes to apply over gRPC at once (tfserving_grpc_reloads).
"""

from __future__ import annotations

import base64
import ipaddress

from ansible_collections.tfserving.fleet.plugins.module_utils.tfserving_inventory import (
    NAME_RE,
    container_mounts,
    host_path_of,
    model_key,
    model_kind,
    present_instances,
    settings_with_defaults,
)


def model_refs(instances, settings=None):
    """Pairs to list before validation: [{key, instance, model, source, host_path}].

    Tolerates a malformed inventory (validation reports it); names that are unsafe as directory
    names get no host_path, so nothing outside the model root is ever looked at.
    """
    cfg = settings_with_defaults(settings)
    out = []
    for inst in present_instances(instances):
        iname = inst.get("name")
        if not isinstance(iname, str) or not NAME_RE.match(iname):
            continue
        for model in inst.get("models") or []:
            if not isinstance(model, dict):
                continue
            mname = model.get("name")
            if not isinstance(mname, str) or not NAME_RE.match(mname):
                continue
            kind = model_kind(model)
            host_path = "{}/{}/{}".format(cfg["model_root"].rstrip("/"), iname, mname)
            if kind == "remote":
                # The directory the server will read, as the host sees it through the container's
                # mounts (None for URIs and paths no mount holds: nothing to list).
                host_path = host_path_of(model.get("base_path"), container_mounts(inst, cfg))[0]
            out.append(
                {
                    "key": model_key(iname, mname),
                    "instance": iname,
                    "model": mname,
                    "kind": kind,
                    "source": model.get("source") if kind == "source" else None,
                    "host_path": host_path,
                }
            )
    return out


def collect_listings(source_results=None, host_results=None):
    """{"instance/model": {"source": result, "host": result}} from two registered loops over model refs."""
    out = {}
    for where, results in (("source", source_results), ("host", host_results)):
        for result in (results or {}).get("results", []) if isinstance(results, dict) else results or []:
            if result.get("skipped") or "item" not in result:
                continue
            listing = {k: v for k, v in result.items() if k not in ("item", "invocation", "ansible_loop_var")}
            out.setdefault(result["item"]["key"], {})[where] = listing
    return out


def collect_dirs(results=None):
    """{instance: [entry names]} from a registered loop over instance directories (items are
    instance names), run with tfserving_model_versions (versions + other) or find (files)."""
    out = {}
    results = (results or {}).get("results", []) if isinstance(results, dict) else results or []
    for result in results:
        if result.get("skipped") or "item" not in result:
            continue
        name = result["item"]["name"] if isinstance(result["item"], dict) else result["item"]
        names = [f["path"].rstrip("/").rsplit("/", 1)[-1] for f in result.get("files") or []]
        names += [v["name"] for v in result.get("versions") or []] + list(result.get("other") or [])
        out[name] = sorted(set(names))
    return out


def expectations(instance):
    """The models list of tfserving_model_status for one planned instance: every served version,
    and every label at the version it must point at."""
    out = []
    for model in instance.get("models", []):
        if model["serve_any"]:
            out.append({"name": model["name"]})
        out += [{"name": model["name"], "version": v} for v in model["serve"]]
        out += [{"name": model["name"], "label": k, "version": v} for k, v in sorted(model["labels"].items())]
    return out


def cleanup_items(plan_):
    """What the cleanup step removes, each with what to wait for first.

    models: directories of models no longer in an instance's inventory (wait: the server unloaded it);
    versions: version directories no longer in a model's source (wait only with policy specific,
    whose config names versions; with latest/all the directory going away is what unloads it).
    ``poll`` is the instance's config poll interval, the longest a server takes to notice.
    """
    models, versions = [], []
    for inst in plan_ or []:
        if inst.get("state") != "present":
            continue
        for name in inst.get("retire_models", []):
            models.append(
                {
                    "instance": inst["name"],
                    "model": name,
                    "path": "{}/{}".format(inst["model_dir"], name),
                    "url": "{}/v1/models/{}".format(inst["rest_url"], name),
                    "poll": inst["model_config_poll_wait_seconds"],
                }
            )
        for model in inst["models"]:
            for version in model["retire"]:
                versions.append(
                    {
                        "instance": inst["name"],
                        "model": model["name"],
                        "name": version["name"],
                        "version": version["version"],
                        "path": "{}/{}".format(model["host_dir"], version["name"]),
                        "url": "{}/v1/models/{}".format(inst["rest_url"], model["name"]),
                        "wait": model["policy"] == "specific",
                        "poll": inst["model_config_poll_wait_seconds"],
                    }
                )
    return {"models": models, "versions": versions}


def current_configs(slurp_results=None):
    """{instance name: its models.config text} from the role's slurp loop over the present instances;
    an instance without the file (not deployed yet) is left out."""
    return {
        result["item"]["name"]: base64.b64decode(result["content"]).decode("utf-8")
        for result in slurp_results or []
        if result.get("content") is not None
    }


def unloaded(status, versions=None):
    """True when none of ``versions`` (ints) is loading or serving in a REST status answer."""
    if not isinstance(status, dict) or status.get("status") == 404:
        return True
    listed = (status.get("json") or {}).get("model_version_status") or []
    wanted = {int(v) for v in versions} if versions is not None else None
    for entry in listed:
        if wanted is not None and int(entry.get("version", 0)) not in wanted:
            continue
        if entry.get("state") != "END":
            return False
    return True


def _fs_poll_seconds(instance):
    for arg in instance.get("args") or []:
        if arg.startswith("--file_system_poll_wait_seconds="):
            return int(arg.split("=", 1)[1])
    return 1  # TF Serving's default


def _loopback(address):
    if address == "localhost":
        return True
    try:
        return ipaddress.ip_address(address.strip("[]")).is_loopback
    except ValueError:
        return False


def grpc_reloads(writes, running=None, host_address="", local=False):
    """The models.config writes of a registered template loop to send over gRPC at once.

    ``writes`` are the loop's results (each ``item`` is a planned instance, or a label step with
    the instance under ``instance``); only changed ones count. Returns [{name, instance, address,
    grpc_port}] for the control node to call, and leaves the others to TF Serving's config poll:
    - a container that does not run now (created later in this run, it reads the file at start);
    - --file_system_poll_wait_seconds <= 0: a reload that adds a model waits for a base path poll
      that never comes, and holds the server's config lock while it waits;
    - a port the control node cannot address: bound to a wildcard, the server is reached at
      ``host_address`` (the host's address as Ansible knows it); bound to one address, at that
      address; a loopback address other than the control node's own (``local``) would reach a
      different server.
    """
    out = []
    for result in writes or []:
        if not result.get("changed") or result.get("skipped"):
            continue
        item = result.get(result.get("ansible_loop_var") or "item") or {}
        inst = item.get("instance", item)
        if inst.get("name") not in (running or []) or _fs_poll_seconds(inst) <= 0:
            continue
        bind, check = str(inst.get("bind_address", "")), str(inst.get("check_address", ""))
        address = check if bind == check else str(host_address or "")
        if not address or (_loopback(address) and not local):
            continue
        out.append({"name": inst["name"], "instance": inst, "address": address, "grpc_port": inst["grpc_port"]})
    return out


class FilterModule:
    """Glue filters for the tfserving role's tasks: loop lists in (tfserving_model_refs), registered."""

    def filters(self):
        return {
            "tfserving_model_refs": model_refs,
            "tfserving_collect_listings": collect_listings,
            "tfserving_collect_dirs": collect_dirs,
            "tfserving_current_configs": current_configs,
            "tfserving_expectations": expectations,
            "tfserving_cleanup_items": cleanup_items,
            "tfserving_unloaded": unloaded,
            "tfserving_grpc_reloads": grpc_reloads,
        }
