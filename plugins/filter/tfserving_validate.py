# Copyright: the tfserving-ansible authors
# Apache License 2.0
"""Filter tfserving_validate: every problem in an inventory, as TF Serving would reject it and more,
each naming host, instance, model and field. An empty list means the inventory is deployable.

This file checks the host's settings, each instance and what instances share (ports, GPUs); the checks
of each model are in plugins/module_utils/tfserving_validate_models.py.
"""

from __future__ import annotations

from ansible_collections.tfserving.fleet.plugins.module_utils.tfserving_inventory import (
    BATCHING_KEYS,
    BATCHING_PARAMS,
    BATCHING_WRAPPED_INT,
    GPU_MODES,
    INSTANCE_KEYS,
    MANAGED_FLAGS,
    MEMORY_RE,
    MONITORING_KEYS,
    NAME_RE,
    SERVER_FLAGS,
    STATES,
    as_ip,
    as_port,
    container_mounts,
    gpu_set,
    image_ref_problem,
    is_int,
    settings_with_defaults,
)
from ansible_collections.tfserving.fleet.plugins.module_utils.tfserving_validate_models import (
    Errors,
    check_keys,
    validate_model,
)


def _check_positive_int(errors, value, instance, field, minimum=1):
    if not is_int(value) or value < minimum:
        errors.add(f"expected an integer >= {minimum}, got {value!r}", instance, None, field)
        return False
    return True


def _validate_batching(errors, iname, batching):
    if not isinstance(batching, dict):
        errors.add("expected a mapping with enabled and parameters", iname, None, "batching")
        return
    check_keys(errors, batching, BATCHING_KEYS, iname, prefix="batching.")
    if "enabled" in batching and not isinstance(batching["enabled"], bool):
        errors.add("expected true or false, got {!r}".format(batching["enabled"]), iname, None, "batching.enabled")
    params = batching.get("parameters", {})
    if not isinstance(params, dict):
        errors.add("expected a mapping", iname, None, "batching.parameters")
        return
    _validate_batching_parameters(errors, iname, params, "batching.parameters.")


def _validate_batching_parameters(errors, iname, params, prefix):
    check_keys(errors, params, BATCHING_PARAMS, iname, prefix=prefix, what="batching parameter")
    for key in BATCHING_WRAPPED_INT:
        if key in params:
            _check_positive_int(errors, params[key], iname, prefix + key, 0 if key == "batch_timeout_micros" else 1)
    if "thread_pool_name" in params and not isinstance(params["thread_pool_name"], str):
        errors.add("expected a string", iname, None, prefix + "thread_pool_name")
    if "pad_variable_length_inputs" in params and not isinstance(params["pad_variable_length_inputs"], bool):
        errors.add("expected true or false", iname, None, prefix + "pad_variable_length_inputs")
    if "allowed_batch_sizes" in params:
        sizes = params["allowed_batch_sizes"]
        field = prefix + "allowed_batch_sizes"
        if not isinstance(sizes, list) or not all(is_int(s) and s > 0 for s in sizes):
            errors.add(f"expected a list of positive integers, got {sizes!r}", iname, None, field)
        elif sizes != sorted(set(sizes)):
            errors.add(f"entries must be strictly increasing, got {sizes!r}", iname, None, field)
        elif sizes and is_int(params.get("max_batch_size")) and sizes[-1] != params["max_batch_size"]:
            errors.add(
                f"the last entry must equal max_batch_size ({params['max_batch_size']}), got {sizes[-1]}",
                iname,
                None,
                field,
            )


def _validate_instance(errors, index, inst, listings, cfg):
    if not isinstance(inst, dict):
        errors.add(f"expected a mapping, got {inst!r}", f"#{index}")
        return None
    iname = inst.get("name")
    shown = iname if isinstance(iname, str) and iname else f"#{index}"
    check_keys(errors, inst, INSTANCE_KEYS, shown)
    if not isinstance(iname, str) or not NAME_RE.match(iname):
        errors.add(
            f"{iname!r} is not a valid instance name (letters, digits, '_', '.', '-'; at most 63; it becomes "
            "a container name and a directory name)",
            shown,
            None,
            "name",
        )
    state = inst.get("state", "present")
    if state not in STATES:
        errors.add("expected one of {}, got {!r}".format(", ".join(STATES), state), shown, None, "state")
        return None
    if state == "absent":
        return None

    grpc = inst.get("grpc_port", 8500)
    rest = inst.get("rest_port", 8501)
    if as_port(grpc) is None:
        errors.add(f"expected a port number 1-65535, got {grpc!r}", shown, None, "grpc_port")
    if as_port(rest) is None:
        errors.add(f"expected a port number 1-65535, got {rest!r}", shown, None, "rest_port")
    if as_port(grpc) is not None and as_port(grpc) == as_port(rest):
        errors.add(f"REST and gRPC ports are both {rest} (TF Serving then skips REST)", shown, None, "rest_port")
    bind = inst.get("bind_address", cfg["bind_address"])
    if as_ip(bind) is None:
        errors.add(f"{bind!r} is not an IP address", shown, None, "bind_address")

    gpus = gpu_set(inst.get("gpus"))
    if gpus is None:
        errors.add(
            "expected 'all', a list of device indexes or GPU UUIDs, or an empty list; got {!r}".format(
                inst.get("gpus")
            ),
            shown,
            None,
            "gpus",
        )
    elif gpus != "all" and len(set(gpus)) != len(gpus):
        errors.add("a device is listed twice: {!r}".format(inst.get("gpus")), shown, None, "gpus")
    if "gpu_sharing" in inst and not isinstance(inst["gpu_sharing"], bool):
        errors.add("expected true or false", shown, None, "gpu_sharing")
    if "image" in inst and image_ref_problem(inst["image"]):
        errors.add(
            "{!r} is not an image reference Docker accepts: {}".format(inst["image"], image_ref_problem(inst["image"])),
            shown,
            None,
            "image",
        )

    for field in ("model_config_poll_wait_seconds", "file_system_poll_wait_seconds"):
        # 0 means "read once": model changes would then need a restart, which this role never does.
        if field in inst:
            _check_positive_int(errors, inst[field], shown, field)
    if "batching" in inst:
        _validate_batching(errors, shown, inst["batching"])
    if "monitoring" in inst:
        mon = inst["monitoring"]
        if not isinstance(mon, dict):
            errors.add("expected a mapping with enabled and path", shown, None, "monitoring")
        else:
            check_keys(errors, mon, MONITORING_KEYS, shown, prefix="monitoring.")
            if "enabled" in mon and not isinstance(mon["enabled"], bool):
                errors.add("expected true or false", shown, None, "monitoring.enabled")
            if "path" in mon and not (isinstance(mon["path"], str) and mon["path"].startswith("/")):
                errors.add("expected a URL path starting with '/'", shown, None, "monitoring.path")
    if "model_warmup" in inst and not isinstance(inst["model_warmup"], bool):
        errors.add("expected true or false", shown, None, "model_warmup")
    flags = inst.get("server_flags", {})
    if not isinstance(flags, dict):
        errors.add("expected a mapping of flag name -> value", shown, None, "server_flags")
    else:
        for flag in sorted(flags, key=str):
            value = flags[flag]
            field = f"server_flags.{flag}"
            if flag in MANAGED_FLAGS:
                errors.add(f"the role sets --{flag} itself; use the role's variable for it", shown, None, field)
            elif flag not in SERVER_FLAGS:
                errors.add(
                    "unknown tensorflow_model_server flag (the server would print 'unknown argument' and ignore it)",
                    shown,
                    None,
                    field,
                )
            elif not isinstance(value, (str, int, float, bool)):
                errors.add(f"expected a scalar value, got {value!r}", shown, None, field)
    env = inst.get("env", {})
    if not isinstance(env, dict) or not all(isinstance(v, (str, int, float, bool)) for v in env.values()):
        errors.add("expected a mapping of variable -> scalar", shown, None, "env")
    if "memory" in inst and not MEMORY_RE.match(str(inst["memory"])):
        errors.add("expected a size like 8g or 512m, got {!r}".format(inst["memory"]), shown, None, "memory")
    if "shm_size" in inst and not MEMORY_RE.match(str(inst["shm_size"])):
        errors.add("expected a size like 1g, got {!r}".format(inst["shm_size"]), shown, None, "shm_size")
    if "cpus" in inst and (
        isinstance(inst["cpus"], bool) or not isinstance(inst["cpus"], (int, float)) or inst["cpus"] <= 0
    ):
        errors.add("expected a positive number, got {!r}".format(inst["cpus"]), shown, None, "cpus")
    mounts = inst.get("extra_mounts", [])
    if not isinstance(mounts, list):
        errors.add("expected a list of {source, target}", shown, None, "extra_mounts")
    else:
        for pos, mount in enumerate(mounts):
            if (
                not isinstance(mount, dict)
                or set(mount) != {"source", "target"}
                or not all(isinstance(mount[k], str) and mount[k].startswith("/") for k in mount)
            ):
                errors.add(
                    "expected {source: /absolute/host/path, target: /absolute/container/path}",
                    shown,
                    None,
                    f"extra_mounts[{pos}]",
                )
            elif mount["target"].rstrip("/") in (cfg["container_model_path"], cfg["container_config_path"]):
                errors.add(
                    "{} is where the role mounts its own directory".format(mount["target"]),
                    shown,
                    None,
                    f"extra_mounts[{pos}]",
                )

    models = inst.get("models")
    if not isinstance(models, list) or not models:
        errors.add(
            "expected a non-empty list of models (use state: absent to remove an instance)",
            shown,
            None,
            "models",
        )
        models = []
    names = set()
    for pos, model in enumerate(models):
        # Where base paths are depends on the instance's name (its directories): unknown while it is invalid.
        mounts = container_mounts(inst, cfg) if isinstance(iname, str) and NAME_RE.match(iname) else None
        validate_model(errors, shown, pos, model, names, listings, mounts)
    return {
        "name": shown,
        "grpc": as_port(grpc),
        "rest": as_port(rest),
        "bind": as_ip(bind),
        "gpus": gpus,
        "sharing": inst.get("gpu_sharing") is True,
    }


def _ports_collide(a_bind, b_bind):
    if a_bind is None or b_bind is None:
        return True
    return a_bind == b_bind or a_bind.is_unspecified or b_bind.is_unspecified


def validate(instances, host="", listings=None, settings=None):
    """Every problem of an inventory, each a sentence naming host, instance, model and field.

    ``listings`` maps "instance/model" to {"source": ..., "host": ...}, results of the
    tfserving_model_versions module for the control node source and the host directory.
    """
    cfg = settings_with_defaults(settings)
    errors = Errors(host or cfg["host"])
    listings = listings or {}
    if instances is None:
        instances = []
    if not isinstance(instances, list):
        errors.add(f"expected a list of instances, got {type(instances).__name__!r}", field="tfserving_instances")
        return errors.items
    for key in ("model_config_poll_wait_seconds", "file_system_poll_wait_seconds"):
        if not is_int(cfg[key]) or cfg[key] < 1:
            errors.add(f"expected an integer >= 1, got {cfg[key]!r}", field="tfserving_" + key)
    if cfg["gpu_mode"] not in GPU_MODES:
        errors.add("expected one of {}, got {!r}".format(", ".join(GPU_MODES), cfg["gpu_mode"]), field="gpu_mode")
    for key in ("image_gpu", "image_cpu"):
        # Checked here, not when Docker pulls: by then the models and configs would have changed.
        if image_ref_problem(cfg[key]):
            errors.add(
                f"{cfg[key]!r} is not an image reference Docker accepts: {image_ref_problem(cfg[key])}",
                field="tfserving_" + key,
            )
    if cfg["batching_parameters"]:
        _validate_batching_parameters(errors, None, cfg["batching_parameters"], "tfserving_batching_parameters.")

    seen_names = set()
    checked = []
    for index, inst in enumerate(instances):
        if isinstance(inst, dict) and isinstance(inst.get("name"), str):
            if inst["name"] in seen_names:
                errors.add("instance listed twice on this host", inst["name"], None, "name")
            seen_names.add(inst["name"])
        summary = _validate_instance(errors, index, inst, listings, cfg)
        if summary:
            checked.append(summary)

    # Between instances on one host: ports and GPUs.
    for pos, this in enumerate(checked):
        for other in checked[:pos]:
            for field in ("grpc", "rest"):
                mine = this[field]
                if mine is None:
                    continue
                for other_field in ("grpc", "rest"):
                    if other[other_field] == mine and _ports_collide(this["bind"], other["bind"]):
                        errors.add(
                            "port {} is already the {} port of instance '{}'".format(
                                mine, "REST" if other_field == "rest" else "gRPC", other["name"]
                            ),
                            this["name"],
                            None,
                            f"{field}_port",
                        )
            mine, theirs = this["gpus"], other["gpus"]
            if not mine or not theirs:
                continue
            overlap = "all" if "all" in (mine, theirs) else sorted(set(mine) & set(theirs))
            if overlap and not (this["sharing"] and other["sharing"]):
                errors.add(
                    "GPU {} already assigned to instance '{}'; set gpu_sharing: true on both to share".format(
                        "devices (all)" if overlap == "all" else ", ".join(overlap), other["name"]
                    ),
                    this["name"],
                    None,
                    "gpus",
                )
    return errors.items


class FilterModule:
    """Filter tfserving_validate: every problem in an inventory, as TF Serving would reject it and more,."""

    def filters(self):
        return {
            "tfserving_validate": validate,
        }
