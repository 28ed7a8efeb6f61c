# Copyright: the tfserving-ansible authors
# Apache License 2.0
"""Filter tfserving_validate: every problem in an inventory, as TF Serving would reject it and more,
each naming host, instance, model and field. An empty list means the inventory is deployable.
"""

from __future__ import annotations

from ansible_collections.tfserving.fleet.plugins.module_utils.tfserving_inventory import (
    BATCHING_KEYS,
    BATCHING_PARAMS,
    BATCHING_WRAPPED_INT,
    GPU_MODES,
    INSTANCE_KEYS,
    LABEL_RE,
    MANAGED_FLAGS,
    MEMORY_RE,
    MODEL_KEYS,
    MONITORING_KEYS,
    NAME_RE,
    PLATFORMS,
    POLICIES,
    SERVER_FLAGS,
    STATES,
    URI_RE,
    as_ip,
    as_port,
    as_version,
    container_mounts,
    gpu_set,
    host_path_of,
    image_ref_problem,
    is_int,
    location,
    model_key,
    model_kind,
    served_versions,
    settings_with_defaults,
    version_policy,
)


class _Errors:
    def __init__(self, host):
        self.host = host
        self.items = []

    def add(self, message, instance=None, model=None, field=None):
        self.items.append(f"{location(self.host, instance, model, field)}: {message}")


def _check_keys(errors, data, allowed, instance, model=None, prefix=""):
    for key in sorted(set(data) - allowed):
        errors.add(
            "unknown key; expected one of {}".format(", ".join(sorted(allowed))),
            instance,
            model,
            prefix + str(key),
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
    _check_keys(errors, batching, BATCHING_KEYS, iname, prefix="batching.")
    if "enabled" in batching and not isinstance(batching["enabled"], bool):
        errors.add("expected true or false, got {!r}".format(batching["enabled"]), iname, None, "batching.enabled")
    params = batching.get("parameters", {})
    if not isinstance(params, dict):
        errors.add("expected a mapping", iname, None, "batching.parameters")
        return
    _validate_batching_parameters(errors, iname, params, "batching.parameters.")


def _validate_batching_parameters(errors, iname, params, prefix):
    for key in sorted(set(params) - BATCHING_PARAMS):
        errors.add(
            "unknown batching parameter; expected one of {}".format(", ".join(sorted(BATCHING_PARAMS))),
            iname,
            None,
            prefix + str(key),
        )
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


def _validate_model(errors, iname, index, model, names, listings, mounts=None):
    if not isinstance(model, dict):
        errors.add(f"expected a mapping, got {model!r}", iname, None, f"models[{index}]")
        return
    mname = model.get("name")
    shown = mname if isinstance(mname, str) and mname else f"#{index}"
    _check_keys(errors, model, MODEL_KEYS, iname, shown)
    budget = model.get("first_predict_budget_ms")
    if "first_predict_budget_ms" in model and (
        isinstance(budget, bool) or not isinstance(budget, (int, float)) or budget <= 0
    ):
        errors.add(f"expected a positive number of milliseconds, got {budget!r}", iname, shown,
                   "first_predict_budget_ms")
    if not isinstance(mname, str) or not NAME_RE.match(mname):
        errors.add(
            f"{mname!r} is not a valid model name (letters, digits, '_', '.', '-'; at most 63; "
            "it becomes a directory name and a URL path segment)",
            iname,
            shown,
            "name",
        )
        return
    if mname in names:
        errors.add(
            "model listed twice in this instance (TF Serving: 'Illegal to list model multiple times')",
            iname,
            mname,
            "name",
        )
    names.add(mname)

    if "gpu_memory_mib" in model and not (is_int(model["gpu_memory_mib"]) and model["gpu_memory_mib"] > 0):
        errors.add(
            "expected the GPU memory one version of this model needs, in MiB (a positive integer such as "
            "6144), got {!r}".format(model["gpu_memory_mib"]),
            iname,
            mname,
            "gpu_memory_mib",
        )

    platform = model.get("platform", "tensorflow")
    if platform not in PLATFORMS:
        errors.add(
            "unknown model platform {!r}; TF Serving knows only {}".format(platform, ", ".join(PLATFORMS)),
            iname,
            mname,
            "platform",
        )

    kind = model_kind(model)
    if model.get("source") and model.get("base_path"):
        errors.add(
            "set either source (versions copied from the control node) or base_path "
            "(versions the server reads in place), not both",
            iname,
            mname,
            "base_path",
        )
    if "source" in model and not (isinstance(model["source"], str) and model["source"]):
        errors.add("expected a path on the control node (directory or archive)", iname, mname, "source")
    if "base_path" in model:
        base = model["base_path"]
        if not isinstance(base, str) or not base:
            errors.add("expected an absolute path or a URI", iname, mname, "base_path")
        elif not (base.startswith("/") or URI_RE.match(base)):
            errors.add(
                f"{base!r} is relative; TF Serving expects an absolute path or a URI",
                iname,
                mname,
                "base_path",
            )
        elif (
            base.startswith("/")
            and not model.get("source")
            and mounts is not None
            and host_path_of(base, mounts)[0] is None
        ):
            errors.add(
                "{!r} is not inside a directory mounted into the container ({}); the server would never "
                "find it. Add an extra_mounts entry for it".format(base, ", ".join(sorted(t for t, _unused in mounts))),
                iname,
                mname,
                "base_path",
            )

    # What is on disk decides what latest/all serve and what a label may point at.
    known = None
    listing = listings.get(model_key(iname, mname), {})
    if kind == "source" and isinstance(model.get("source"), str):
        known = _validate_listing(errors, iname, mname, listing.get("source"), "source", model["source"])
    elif kind == "host":
        known = _validate_listing(errors, iname, mname, listing.get("host"), "versions", "the host's model directory")
    elif kind == "remote" and listing.get("host") and mounts and host_path_of(model.get("base_path"), mounts)[0]:
        # A base path the server cannot list makes TF Serving wait for it forever: its config poll (or
        # a reload) never finishes, and no later config change is applied. Refused before any write.
        host_path, target = host_path_of(model["base_path"], mounts)
        if not listing["host"].get("exists") and not listing["host"].get("failed"):
            errors.add(
                "{!r} does not exist: {} on the host (mounted at {}) is missing. TF Serving would wait for it "
                "forever and apply no later config change; nothing was written".format(
                    model["base_path"], host_path, target
                ),
                iname,
                mname,
                "base_path",
            )
            known = set()
        else:
            known = _validate_listing(errors, iname, mname, listing["host"], "base_path", f"{host_path} on the host")

    policy = version_policy(model)
    if policy not in POLICIES:
        errors.add(
            "unknown version_policy {!r}; expected one of {}".format(policy, ", ".join(POLICIES)),
            iname,
            mname,
            "version_policy",
        )
        return
    versions = model.get("versions")
    if policy == "specific":
        if not isinstance(versions, list) or not versions:
            errors.add("version_policy specific needs a non-empty list of versions", iname, mname, "versions")
            versions = []
        seen = set()
        for pos, value in enumerate(versions):
            number = as_version(value)
            if number is None:
                errors.add(f"{value!r} is not a positive integer version", iname, mname, f"versions[{pos}]")
            elif number in seen:
                errors.add(f"version {number} listed twice", iname, mname, f"versions[{pos}]")
            else:
                seen.add(number)
                if known is not None and number not in known:
                    errors.add(
                        "version {} is not among the versions found ({})".format(
                            number, ", ".join(str(v) for v in sorted(known)) or "none"
                        ),
                        iname,
                        mname,
                        f"versions[{pos}]",
                    )
    elif versions is not None:
        errors.add(
            f"versions is only used with version_policy specific (policy is {policy})",
            iname,
            mname,
            "versions",
        )
    if "num_versions" in model:
        if policy != "latest":
            errors.add(
                f"num_versions is only used with version_policy latest (policy is {policy})",
                iname,
                mname,
                "num_versions",
            )
        elif not is_int(model["num_versions"]) or model["num_versions"] < 1:
            errors.add(
                "expected an integer >= 1, got {!r}".format(model["num_versions"]),
                iname,
                mname,
                "num_versions",
            )
            return

    labels = model.get("labels", {})
    if labels is None:
        labels = {}
    if not isinstance(labels, dict):
        errors.add("expected a mapping of label -> version", iname, mname, "labels")
        return
    served = served_versions(policy, model, known)
    for label in sorted(labels, key=str):
        field = f"labels.{label}"
        if not isinstance(label, str) or not LABEL_RE.match(label):
            errors.add(
                f"{label!r} is not a valid label name (a letter, then letters, digits, '_', '.', '-')",
                iname,
                mname,
                field,
            )
            continue
        number = as_version(labels[label])
        if number is None:
            errors.add(f"{labels[label]!r} is not a positive integer version", iname, mname, field)
        elif served is not None and number not in served:
            errors.add(
                "label points at version {}, which version_policy {} does not serve (serves {}); "
                "TF Serving only assigns labels to loaded versions".format(
                    number, policy, ", ".join(str(v) for v in served) or "nothing"
                ),
                iname,
                mname,
                field,
            )


def _validate_listing(errors, iname, mname, listing, field, what):
    """Versions found for a model (a set of numbers), or None when the listing says nothing."""
    if not listing:
        return None
    if listing.get("failed") or not listing.get("exists"):
        reason = listing.get("msg") or f"{what} does not exist"
        errors.add(reason, iname, mname, field)
        return set()
    for member in listing.get("unsafe_members") or []:
        errors.add(f"archive member {member!r} would land outside the model directory", iname, mname, field)
    seen = {}
    for entry in listing.get("versions") or []:
        number = int(entry["version"])
        if number <= 0:
            errors.add("version directory {!r} is not a positive version".format(entry["name"]), iname, mname, field)
            continue
        if number in seen:
            errors.add(
                f"version directories {seen[number]!r} and {entry['name']!r} are both version {number}",
                iname,
                mname,
                field,
            )
            continue
        seen[number] = entry["name"]
        if not entry.get("saved_model"):
            errors.add(
                "version {!r} has no saved_model.pb or saved_model.pbtxt in {}".format(entry["name"], what),
                iname,
                mname,
                field,
            )
    if not seen:
        errors.add(
            f"no version directories (numeric names) in {what}; TF Serving would not start this model",
            iname,
            mname,
            field,
        )
    return set(seen)


def _validate_instance(errors, index, inst, listings, cfg):
    if not isinstance(inst, dict):
        errors.add(f"expected a mapping, got {inst!r}", f"#{index}")
        return None
    iname = inst.get("name")
    shown = iname if isinstance(iname, str) and iname else f"#{index}"
    _check_keys(errors, inst, INSTANCE_KEYS, shown)
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
            _check_keys(errors, mon, MONITORING_KEYS, shown, prefix="monitoring.")
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
        _validate_model(errors, shown, pos, model, names, listings, mounts)
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
    errors = _Errors(host or cfg["host"])
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
