# Copyright: the tfserving-ansible authors
# Apache License 2.0
"""Filter tfserving_plan: the validated inventory turned into what the role's tasks do: directories,
versions to publish and to retire, server flags, the container definition, the versions to verify.
"""

from __future__ import annotations

import ipaddress

from ansible.errors import AnsibleFilterError
from ansible_collections.tfserving.fleet.plugins.filter.tfserving_validate import validate
from ansible_collections.tfserving.fleet.plugins.module_utils.tfserving_inventory import (
    CONTAINER_GRPC_PORT,
    CONTAINER_REST_PORT,
    TEMP_PREFIX,
    as_port,
    as_version,
    check_address,
    flag_value,
    gpu_set,
    listing_names,
    model_key,
    model_kind,
    rest_url,
    section_enabled,
    served_versions,
    settings_with_defaults,
    version_policy,
)


def _model_plan(iname, model, listings, cfg, model_dir):
    mname = model["name"]
    kind = model_kind(model)
    policy = version_policy(model)
    listing = listings.get(model_key(iname, mname), {})
    source_versions = listing_names(listing.get("source")) if kind == "source" else None
    host_versions = listing_names(listing.get("host")) or {}
    host_listing = listing.get("host") or {}
    plan = {
        "name": mname,
        "kind": kind,
        "platform": model.get("platform", "tensorflow"),
        "policy": policy,
        "versions": sorted({as_version(v) for v in model.get("versions") or []} - {None}),
        "num_versions": model.get("num_versions", 1) if policy == "latest" else None,
        "labels": {k: as_version(v) for k, v in sorted((model.get("labels") or {}).items())},
        "source": model.get("source") if kind == "source" else None,
        "source_kind": (listing.get("source") or {}).get("kind") if kind == "source" else None,
        "source_prefix": (listing.get("source") or {}).get("prefix", "") if kind == "source" else None,
        "host_dir": None if kind == "remote" else f"{model_dir}/{mname}",
        "base_path": model["base_path"] if kind == "remote" else "{}/{}".format(cfg["container_model_path"], mname),
        "publish": [],
        "retire": [],
        # GPU memory one version needs, when the inventory says (else estimated from its size on disk).
        "gpu_memory_mib": model.get("gpu_memory_mib"),
        "stale_temp": sorted(
            f"{model_dir}/{mname}/{n}"
            for n in (host_listing.get("other") or [] if kind != "remote" else [])
            if n.startswith(TEMP_PREFIX)
        ),
    }
    if kind == "source" and source_versions is not None:
        # Where a new version waits, hidden, before its rename into place.
        if plan["source_kind"] == "archive":
            prefix = plan["source_prefix"]
            staging = "{}/{}archive/{}".format(plan["host_dir"], TEMP_PREFIX, prefix + "/" if prefix else "")
        else:
            staging = "{}/{}".format(plan["host_dir"], TEMP_PREFIX)
        plan["publish"] = [
            {"name": name, "version": number, "staged": staging + name}
            for number, name in sorted(source_versions.items())
            if number not in host_versions
        ]
        plan["retire"] = [
            {"name": name, "version": number}
            for number, name in sorted(host_versions.items())
            if number not in source_versions
        ]
        on_disk = set(source_versions)
    elif kind == "host":
        on_disk = set(host_versions)
    else:
        on_disk = None
    served = served_versions(policy, model, on_disk)
    plan["serve"] = served if served is not None else []
    # Remote base paths with latest/all: the server decides; verification wants one AVAILABLE version.
    plan["serve_any"] = served is None
    return plan


def _container_plan(inst, plan, cfg):
    bind = str(inst.get("bind_address", cfg["bind_address"]))
    address = ipaddress.ip_address(bind)
    shown = f"[{bind}]" if address.version == 6 else bind
    gpus = gpu_set(inst.get("gpus"))
    mode = cfg["gpu_mode"]
    use_gpu = bool(gpus) and mode != "none"
    env = {str(k): flag_value(v) for k, v in sorted({**cfg["env"], **(inst.get("env") or {})}.items())}
    device_requests = []
    runtime = None
    if use_gpu and mode == "toolkit":
        request = {"driver": "nvidia", "capabilities": [["gpu"]]}
        if gpus == "all":
            request["count"] = -1
        else:
            request["device_ids"] = list(gpus)
        device_requests.append(request)
    elif use_gpu and mode == "legacy":
        runtime = "nvidia"
        env["NVIDIA_VISIBLE_DEVICES"] = "all" if gpus == "all" else ",".join(gpus)
    elif mode == "legacy":
        # nvidia-docker2 hosts often make nvidia the default runtime: a CPU server sees no GPU.
        env["NVIDIA_VISIBLE_DEVICES"] = "void"
    image = inst.get("image") or (cfg["image_gpu"] if use_gpu else cfg["image_cpu"])
    mounts = [
        {
            "type": "bind",
            "source": plan["model_dir"],
            "target": cfg["container_model_path"],
            "read_only": True,
        },
        {
            "type": "bind",
            "source": plan["config_dir"],
            "target": cfg["container_config_path"],
            "read_only": True,
        },
    ]
    for mount in inst.get("extra_mounts") or []:
        mounts.append({"type": "bind", "source": mount["source"], "target": mount["target"], "read_only": True})
    container = {
        "name": plan["container_name"],
        "image": image,
        "command": plan["args"],
        "published_ports": [
            f"{shown}:{plan['grpc_port']}:{CONTAINER_GRPC_PORT}",
            f"{shown}:{plan['rest_port']}:{CONTAINER_REST_PORT}",
        ],
        "mounts": mounts,
        "env": env,
        "device_requests": device_requests,
        "runtime": runtime,
        "labels": {"tfserving-ansible.instance": plan["name"], "tfserving-ansible.managed": "true"},
        "restart_policy": cfg["restart_policy"],
        "log_driver": cfg["log_driver"],
        "log_options": {str(k): str(v) for k, v in sorted((cfg["log_options"] or {}).items())},
        "read_only": bool(cfg["read_only"]),
        "cap_drop": list(cfg["cap_drop"] or []),
        "memory": str(inst["memory"]) if "memory" in inst else None,
        "cpus": inst.get("cpus"),
        "shm_size": str(inst["shm_size"]) if "shm_size" in inst else None,
    }
    return (
        container,
        ("gpu" if use_gpu else "cpu"),
        (None if use_gpu or not gpus else "no GPU runtime on host"),
    )


def plan(instances, settings=None, listings=None, host_dirs=None):
    """The validated inventory as the role's tasks consume it (run tfserving_validate first).

    ``host_dirs`` maps an instance name to the entry names found under <model_root>/<instance>/,
    so models dropped from the inventory are retired after the config no longer names them.
    """
    cfg = settings_with_defaults(settings)
    listings = listings or {}
    host_dirs = host_dirs or {}
    problems = validate(instances, cfg["host"], listings, settings)
    if problems:
        raise AnsibleFilterError("tfserving_plan needs a valid inventory:\n" + "\n".join(problems))
    root = cfg["model_root"].rstrip("/")
    conf = cfg["config_root"].rstrip("/")
    inside = cfg["container_config_path"].rstrip("/")
    out = []
    for inst in instances or []:
        iname = inst["name"]
        item = {
            "name": iname,
            "state": inst.get("state", "present"),
            "container_name": cfg["container_prefix"] + iname,
            "model_dir": f"{root}/{iname}",
            "config_dir": f"{conf}/{iname}",
        }
        if item["state"] == "absent":
            out.append(item)
            continue
        batching = inst.get("batching") or {}
        batching_on = section_enabled(batching)
        monitoring = inst.get("monitoring") or {}
        monitoring_on = section_enabled(monitoring)
        bind = str(inst.get("bind_address", cfg["bind_address"]))
        check = check_address(bind)
        rest_port = as_port(inst.get("rest_port", 8501))
        item.update(
            {
                "grpc_port": as_port(inst.get("grpc_port", 8500)),
                "rest_port": rest_port,
                "model_config_poll_wait_seconds": inst.get(
                    "model_config_poll_wait_seconds", cfg["model_config_poll_wait_seconds"]
                ),
                "bind_address": bind,
                "check_address": check,
                "rest_url": rest_url(check, rest_port),
                "models": sorted(
                    (_model_plan(iname, m, listings, cfg, item["model_dir"]) for m in inst["models"]),
                    key=lambda m: m["name"],
                ),
                "batching": {
                    "enabled": batching_on,
                    "parameters": {**cfg["batching_parameters"], **(batching.get("parameters") or {})},
                },
                "monitoring": {
                    "enabled": monitoring_on,
                    "path": monitoring.get("path", cfg["monitoring_path"]),
                },
            }
        )
        names = {m["name"] for m in item["models"]}
        item["retire_models"] = sorted(n for n in host_dirs.get(iname, []) if n not in names and not n.startswith("."))
        item["stale_temp"] = sorted(
            "{}/{}".format(item["model_dir"], n) for n in host_dirs.get(iname, []) if n.startswith(TEMP_PREFIX)
        )
        args = [
            f"--model_config_file={inside}/models.config",
            "--model_config_file_poll_wait_seconds={}".format(
                inst.get("model_config_poll_wait_seconds", cfg["model_config_poll_wait_seconds"])
            ),
            "--file_system_poll_wait_seconds={}".format(
                inst.get("file_system_poll_wait_seconds", cfg["file_system_poll_wait_seconds"])
            ),
        ]
        if cfg["allow_version_labels_for_unavailable_models"]:
            # Labels in the start-up config are checked before any model loads; without this flag a
            # labelled config stops the server from starting at all.
            args.append("--allow_version_labels_for_unavailable_models=true")
        if batching_on:
            args += ["--enable_batching=true", f"--batching_parameters_file={inside}/batching.config"]
        if monitoring_on:
            args.append(f"--monitoring_config_file={inside}/monitoring.config")
        # Warm-up (assets.extra/tf_serving_warmup_requests replayed at load) is on by default in TF Serving
        # (server.h); the flag is written only to turn it off, so upgrading the role never changes, and so
        # recreates, a running container. An explicit server_flags.enable_model_warmup wins.
        warmup = inst.get("model_warmup", cfg["model_warmup"])
        flags = {**({} if warmup else {"enable_model_warmup": False}), **cfg["server_flags"],
                 **(inst.get("server_flags") or {})}
        args += [f"--{k}={flag_value(v)}" for k, v in sorted(flags.items())]
        item["args"] = args
        item["container"], item["device_kind"], item["gpu_note"] = _container_plan(inst, item, cfg)
        gpus = gpu_set(inst.get("gpus"))
        item["gpus"] = gpus if gpus == "all" else list(gpus)
        out.append(item)
    return out


def config_plan(instances, planned, settings=None, only=None):
    """The planned instances of a models.config write: ``instances`` (tfserving_instances form, as the
    rollout's plan sets them for one step) over ``planned``, the deployed plan (tfserving_plan).

    Each present instance of ``planned`` that ``only`` names (every one when None) keeps its
    directories, ports and flags and takes its models from ``instances``. No listing is read: only the
    models.config rendering is asked of these models, and it names the versions itself.
    """
    cfg = settings_with_defaults(settings)
    models = {i["name"]: i.get("models") or [] for i in instances or [] if isinstance(i, dict) and "name" in i}
    out = []
    for item in planned or []:
        if item.get("state") != "present" or item["name"] not in models:
            continue
        if only is not None and item["name"] not in only:
            continue
        out.append({
            **item,
            "models": sorted(
                (_model_plan(item["name"], m, {}, cfg, item["model_dir"]) for m in models[item["name"]]),
                key=lambda m: m["name"],
            ),
        })
    return out


class FilterModule:
    """Filters tfserving_plan (the validated inventory turned into what the role's tasks do: directories,
    versions, flags, containers) and tfserving_config_plan (one step's models over that plan)."""

    def filters(self):
        return {
            "tfserving_plan": plan,
            "tfserving_config_plan": config_plan,
        }
