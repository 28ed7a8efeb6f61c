# Copyright: the tfserving-ansible authors
# Apache License 2.0
"""Filters of the tfserving role: pure data transforms, no I/O.

- ``tfserving_model_refs``: the (instance, model) pairs whose versions must be listed, for loops.
- ``tfserving_validate``: every problem in an inventory, as TF Serving would reject it and more,
  each naming host, instance, model and field. An empty list means the inventory is deployable.
- ``tfserving_plan``: the validated inventory turned into what the tasks do: directories,
  versions to publish and to retire, server flags, the container definition, the versions to verify.
- ``tfserving_models_config`` / ``tfserving_batching_config`` / ``tfserving_monitoring_config``:
  the files TF Serving reads, in protobuf text format, with a managed header and a stable order.
- ``tfserving_config_labels``: the version labels of a models.config this role rendered earlier
  (to move a label in two steps, as TF Serving requires).
"""

from __future__ import annotations

import copy
import ipaddress
import posixpath
import re

from ansible.errors import AnsibleFilterError
from ansible_collections.tfserving.fleet.plugins.module_utils import tfserving_models_config as models_config
from ansible_collections.tfserving.fleet.plugins.module_utils.tfserving_inventory import (
    LABEL_RE,
    NAME_RE,
    TEMP_PREFIX,
    check_address,
    listing_versions,
    present_instances,
)
from ansible_collections.tfserving.fleet.plugins.module_utils.tfserving_models_config import ModelEntry, policy_of

URI_RE = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*://")
MEMORY_RE = re.compile(r"^[0-9]+[bkmgBKMG]?$")
GPU_UUID_RE = re.compile(r"^(GPU|MIG)-[0-9A-Za-z-]+$")
VERSION_DIR_RE = re.compile(r"^[0-9]+$")

# Docker's image reference grammar (github.com/distribution/reference, regexp.go): a lowercase path of
# components, optionally after a registry host[:port], then an optional tag and an optional digest.
_REF_COMPONENT = r"[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*"
_REF_LABEL = r"[a-zA-Z0-9](?:[a-zA-Z0-9-]*[a-zA-Z0-9])?"
_REF_DOMAIN = rf"(?:{_REF_LABEL}(?:\.{_REF_LABEL})*|\[[0-9a-fA-F:]+\])"
IMAGE_PATH_RE = re.compile(rf"^{_REF_COMPONENT}(?:/{_REF_COMPONENT})*$")
IMAGE_DOMAIN_RE = re.compile(rf"^{_REF_DOMAIN}(?::[0-9]+)?$")
IMAGE_TAG_RE = re.compile(r"^[\w][\w.-]{0,127}$")
IMAGE_DIGEST_RE = re.compile(r"^[A-Za-z][A-Za-z0-9]*(?:[-_+.][A-Za-z][A-Za-z0-9]*)*:[0-9a-fA-F]{32,}$")

PLATFORMS = ("tensorflow",)
POLICIES = ("latest", "all", "specific")
STATES = ("present", "absent")
GPU_MODES = ("toolkit", "legacy", "none")

INSTANCE_KEYS = {
    "name",
    "state",
    "grpc_port",
    "rest_port",
    "bind_address",
    "gpus",
    "gpu_sharing",
    "image",
    "models",
    "model_config_poll_wait_seconds",
    "file_system_poll_wait_seconds",
    "batching",
    "monitoring",
    "server_flags",
    "env",
    "memory",
    "cpus",
    "shm_size",
    "extra_mounts",
    "model_warmup",
}
MODEL_KEYS = {
    "name",
    "source",
    "base_path",
    "platform",
    "version_policy",
    "versions",
    "num_versions",
    "labels",
    # Read by role tfserving_rollout: the longest the first prediction of a new version may take.
    "first_predict_budget_ms",
    "gpu_memory_mib",
}
BATCHING_KEYS = {"enabled", "parameters"}
MONITORING_KEYS = {"enabled", "path"}
# BatchingParameters (tensorflow_serving/servables/tensorflow/session_bundle_config.proto).
BATCHING_WRAPPED_INT = ("max_batch_size", "batch_timeout_micros", "max_enqueued_batches", "num_batch_threads")
BATCHING_PARAMS = {
    *BATCHING_WRAPPED_INT,
    "thread_pool_name",
    "allowed_batch_sizes",
    "pad_variable_length_inputs",
}

# Flags of tensorflow_model_server (model_servers/main.cc) a user may set through server_flags.
SERVER_FLAGS = {
    "rest_api_num_threads",
    "rest_api_timeout_in_ms",
    "rest_api_enable_cors_support",
    "enable_per_model_batching_parameters",
    "num_load_threads",
    "num_unload_threads",
    "max_num_load_retries",
    "load_retry_interval_micros",
    "flush_filesystem_caches",
    "tensorflow_session_parallelism",
    "tensorflow_session_config_file",
    "tensorflow_intra_op_parallelism",
    "tensorflow_inter_op_parallelism",
    "use_alts_credentials",
    "ssl_config_file",
    "platform_config_file",
    "per_process_gpu_memory_fraction",
    "saved_model_tags",
    "grpc_channel_arguments",
    "grpc_max_threads",
    "grpc_socket_path",
    "enable_model_warmup",
    "num_request_iterations_for_warmup",
    "remove_unused_fields_from_bundle_metagraph",
    "prefer_tflite_model",
    "num_tflite_pools",
    "num_tflite_interpreters_per_pool",
    "enable_signature_method_name_check",
    "xla_cpu_compilation_enabled",
    "enable_profiler",
    "thread_pool_factory_config_file",
    "enable_grpc_healthcheck_service",
}
# Flags the role sets itself: a second value would silently win or lose.
MANAGED_FLAGS = {
    "port",
    "rest_api_port",
    "model_config_file",
    "model_config_file_poll_wait_seconds",
    "file_system_poll_wait_seconds",
    "model_name",
    "model_base_path",
    "enable_batching",
    "batching_parameters_file",
    "monitoring_config_file",
    "allow_version_labels_for_unavailable_models",
    "version",
}

# Ports inside the container: the image's entrypoint passes --port=8500 --rest_api_port=8501.
CONTAINER_GRPC_PORT = 8500
CONTAINER_REST_PORT = 8501

SETTINGS_DEFAULTS = {
    "host": "",
    "model_root": "/srv/tfserving/models",
    "config_root": "/etc/tfserving",
    "container_prefix": "tfserving-",
    "container_model_path": "/models",
    "container_config_path": "/etc/tfserving",
    "bind_address": "0.0.0.0",
    "image_gpu": "tensorflow/serving:latest-gpu",
    "image_cpu": "tensorflow/serving:latest",
    "gpu_mode": "none",
    "model_config_poll_wait_seconds": 10,
    "file_system_poll_wait_seconds": 1,
    "allow_version_labels_for_unavailable_models": True,
    "model_warmup": True,
    "server_flags": {},
    "batching_parameters": {},
    "monitoring_path": "/monitoring/prometheus/metrics",
    "env": {},
    "restart_policy": "unless-stopped",
    "log_driver": "json-file",
    "log_options": {},
    "read_only": True,
    "cap_drop": ["ALL"],
}


# ---------------------------------------------------------------------------------------------
# helpers


def _settings(settings):
    out = dict(SETTINGS_DEFAULTS)
    out.update({k: v for k, v in (settings or {}).items() if v is not None})
    return out


def _is_int(value):
    return isinstance(value, int) and not isinstance(value, bool)


def _as_version(value):
    """A version number from an int or a string of digits, else None. 0 and negatives are None too."""
    if _is_int(value):
        return value if value > 0 else None
    if isinstance(value, str) and VERSION_DIR_RE.match(value.strip()):
        number = int(value.strip())
        return number if number > 0 else None
    return None


def _label(host, instance=None, model=None, field=None):
    parts = [f"host '{host}'"]
    if instance is not None:
        parts.append(f"instance '{instance}'")
    if model is not None:
        parts.append(f"model '{model}'")
    if field is not None:
        parts.append(f"field '{field}'")
    return ", ".join(parts)


def _key(instance, model):
    return f"{instance}/{model}"


def _port(value):
    """A port number from an int or a string of digits (inventories in INI give strings), else None."""
    if isinstance(value, str) and value.isdigit():
        value = int(value)
    return value if _is_int(value) and 1 <= value <= 65535 else None


def _bind(value):
    try:
        return ipaddress.ip_address(str(value))
    except ValueError:
        return None


def _gpu_set(gpus):
    """'all', a tuple of device ids as strings, or () for no GPU. None when malformed."""
    if gpus is None or gpus == "none" or gpus == [] or gpus is False:
        return ()
    if gpus == "all":
        return "all"
    if isinstance(gpus, (int, str)) and not isinstance(gpus, bool):
        gpus = [gpus]
    if not isinstance(gpus, list):
        return None
    out = []
    for gpu in gpus:
        if _is_int(gpu) and gpu >= 0:
            out.append(str(gpu))
        elif isinstance(gpu, str) and (gpu.isdigit() or GPU_UUID_RE.match(gpu)):
            out.append(gpu)
        else:
            return None
    return tuple(out)


def _policy(model):
    policy = model.get("version_policy")
    if policy is None:
        return "specific" if model.get("versions") else "latest"
    return policy


def _served(policy, model, known):
    """The versions TF Serving will load under this policy, given the versions on disk (None: unknown)."""
    if policy == "specific":
        return sorted({_as_version(v) for v in model.get("versions") or []} - {None})
    if known is None:
        return None
    if policy == "all":
        return sorted(known)
    num = model.get("num_versions") or 1
    return sorted(known)[-num:]


def _listing_versions(listing):
    """{version number: directory name} of a tfserving_model_versions result, or None."""
    versions = listing_versions(listing)
    return None if versions is None else {number: v["name"] for number, v in versions.items()}


def image_ref_problem(ref):
    """'' for a reference Docker accepts, else why it does not (Docker's own parser rules)."""
    if not isinstance(ref, str) or not ref:
        return "expected an image reference (name:tag or name@sha256:digest)"
    name, _unused, digest = ref.partition("@")
    if "@" in ref and not IMAGE_DIGEST_RE.match(digest):
        return "the digest after '@' is not algorithm:hex (sha256:...)"
    head, _unused, last = name.rpartition("/")
    last, colon, tag = last.partition(":")
    if colon and not IMAGE_TAG_RE.match(tag):
        return "the tag after ':' must be letters, digits, '_', '.' or '-' (at most 128, not starting with '.' or '-')"
    name = f"{head}/{last}" if head else last
    domain, slash, path = name.partition("/")
    # Docker reads the first component as a registry host when it has '.', ':' or is localhost.
    if not slash or not ("." in domain or ":" in domain or domain == "localhost" or domain != domain.lower()):
        domain, path = "", name
    if domain and not IMAGE_DOMAIN_RE.match(domain):
        return f"registry host {domain!r} is not host[:port]"
    if not IMAGE_PATH_RE.match(path):
        return "the repository name must be lowercase letters, digits and separators ('.', '_', '-', '/')"
    if len(name) > 255:
        return "the name is longer than 255 characters"
    return ""


def _mounts(inst, cfg):
    """(container path, host path) of every directory the instance's container sees, longest first."""
    out = []
    iname = inst.get("name") if isinstance(inst, dict) else None
    if isinstance(iname, str) and NAME_RE.match(iname):
        out.append((cfg["container_model_path"], "{}/{}".format(cfg["model_root"].rstrip("/"), iname)))
        out.append((cfg["container_config_path"], "{}/{}".format(cfg["config_root"].rstrip("/"), iname)))
    mounts = inst.get("extra_mounts") if isinstance(inst, dict) else None
    for mount in mounts if isinstance(mounts, list) else []:
        if (
            isinstance(mount, dict)
            and all(isinstance(mount.get(k), str) and mount[k].startswith("/") for k in ("source", "target"))
        ):
            out.append((mount["target"], mount["source"]))
    return sorted(((t.rstrip("/") or "/", h.rstrip("/") or "/") for t, h in out), key=lambda m: -len(m[0]))


def _host_path(base, mounts):
    """(host path, mount target) where the host keeps a container path, or (None, None) when no
    mount of the container holds it (URIs and relative paths too)."""
    if not isinstance(base, str) or not base.startswith("/"):
        return None, None
    norm = posixpath.normpath(base)
    for target, host in mounts:
        if norm == target or norm.startswith(target.rstrip("/") + "/"):
            rest = norm[len(target) :].lstrip("/")
            return (posixpath.join(host, rest) if rest else host), target
    return None, None


def _model_kind(model):
    if model.get("source"):
        return "source"
    if model.get("base_path"):
        return "remote"
    return "host"


# ---------------------------------------------------------------------------------------------
# tfserving_model_refs


def model_refs(instances, settings=None):
    """Pairs to list before validation: [{key, instance, model, source, host_path}].

    Tolerates a malformed inventory (validation reports it); names that are unsafe as directory
    names get no host_path, so nothing outside the model root is ever looked at.
    """
    cfg = _settings(settings)
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
            kind = _model_kind(model)
            host_path = "{}/{}/{}".format(cfg["model_root"].rstrip("/"), iname, mname)
            if kind == "remote":
                # The directory the server will read, as the host sees it through the container's
                # mounts (None for URIs and paths no mount holds: nothing to list).
                host_path = _host_path(model.get("base_path"), _mounts(inst, cfg))[0]
            out.append(
                {
                    "key": _key(iname, mname),
                    "instance": iname,
                    "model": mname,
                    "kind": kind,
                    "source": model.get("source") if kind == "source" else None,
                    "host_path": host_path,
                }
            )
    return out


# ---------------------------------------------------------------------------------------------
# tfserving_validate


class _Errors:
    def __init__(self, host):
        self.host = host
        self.items = []

    def add(self, message, instance=None, model=None, field=None):
        self.items.append(f"{_label(self.host, instance, model, field)}: {message}")


def _check_keys(errors, data, allowed, instance, model=None, prefix=""):
    for key in sorted(set(data) - allowed):
        errors.add(
            "unknown key; expected one of {}".format(", ".join(sorted(allowed))),
            instance,
            model,
            prefix + str(key),
        )


def _check_positive_int(errors, value, instance, field, minimum=1):
    if not _is_int(value) or value < minimum:
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
        if not isinstance(sizes, list) or not all(_is_int(s) and s > 0 for s in sizes):
            errors.add(f"expected a list of positive integers, got {sizes!r}", iname, None, field)
        elif sizes != sorted(set(sizes)):
            errors.add(f"entries must be strictly increasing, got {sizes!r}", iname, None, field)
        elif sizes and _is_int(params.get("max_batch_size")) and sizes[-1] != params["max_batch_size"]:
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

    if "gpu_memory_mib" in model and not (_is_int(model["gpu_memory_mib"]) and model["gpu_memory_mib"] > 0):
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

    kind = _model_kind(model)
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
            and _host_path(base, mounts)[0] is None
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
    listing = listings.get(_key(iname, mname), {})
    if kind == "source" and isinstance(model.get("source"), str):
        known = _validate_listing(errors, iname, mname, listing.get("source"), "source", model["source"])
    elif kind == "host":
        known = _validate_listing(errors, iname, mname, listing.get("host"), "versions", "the host's model directory")
    elif kind == "remote" and listing.get("host") and mounts and _host_path(model.get("base_path"), mounts)[0]:
        # A base path the server cannot list makes TF Serving wait for it forever: its config poll (or
        # a reload) never finishes, and no later config change is applied. Refused before any write.
        host_path, target = _host_path(model["base_path"], mounts)
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

    policy = _policy(model)
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
            number = _as_version(value)
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
        elif not _is_int(model["num_versions"]) or model["num_versions"] < 1:
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
    served = _served(policy, model, known)
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
        number = _as_version(labels[label])
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
    if _port(grpc) is None:
        errors.add(f"expected a port number 1-65535, got {grpc!r}", shown, None, "grpc_port")
    if _port(rest) is None:
        errors.add(f"expected a port number 1-65535, got {rest!r}", shown, None, "rest_port")
    if _port(grpc) is not None and _port(grpc) == _port(rest):
        errors.add(f"REST and gRPC ports are both {rest} (TF Serving then skips REST)", shown, None, "rest_port")
    bind = inst.get("bind_address", cfg["bind_address"])
    if _bind(bind) is None:
        errors.add(f"{bind!r} is not an IP address", shown, None, "bind_address")

    gpus = _gpu_set(inst.get("gpus"))
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
        mounts = _mounts(inst, cfg) if isinstance(iname, str) and NAME_RE.match(iname) else None
        _validate_model(errors, shown, pos, model, names, listings, mounts)
    return {
        "name": shown,
        "grpc": _port(grpc),
        "rest": _port(rest),
        "bind": _bind(bind),
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
    cfg = _settings(settings)
    errors = _Errors(host or cfg["host"])
    listings = listings or {}
    if instances is None:
        instances = []
    if not isinstance(instances, list):
        errors.add(f"expected a list of instances, got {type(instances).__name__!r}", field="tfserving_instances")
        return errors.items
    for key in ("model_config_poll_wait_seconds", "file_system_poll_wait_seconds"):
        if not _is_int(cfg[key]) or cfg[key] < 1:
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


# ---------------------------------------------------------------------------------------------
# tfserving_plan


def _flag_value(value):
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def _model_plan(iname, model, listings, cfg, model_dir):
    mname = model["name"]
    kind = _model_kind(model)
    policy = _policy(model)
    listing = listings.get(_key(iname, mname), {})
    source_versions = _listing_versions(listing.get("source")) if kind == "source" else None
    host_versions = _listing_versions(listing.get("host")) or {}
    host_listing = listing.get("host") or {}
    plan = {
        "name": mname,
        "kind": kind,
        "platform": model.get("platform", "tensorflow"),
        "policy": policy,
        "versions": sorted({_as_version(v) for v in model.get("versions") or []} - {None}),
        "num_versions": model.get("num_versions", 1) if policy == "latest" else None,
        "labels": {k: _as_version(v) for k, v in sorted((model.get("labels") or {}).items())},
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
    served = _served(policy, model, on_disk)
    plan["serve"] = served if served is not None else []
    # Remote base paths with latest/all: the server decides; verification wants one AVAILABLE version.
    plan["serve_any"] = served is None
    return plan


def _container_plan(inst, plan, cfg):
    bind = str(inst.get("bind_address", cfg["bind_address"]))
    address = ipaddress.ip_address(bind)
    shown = f"[{bind}]" if address.version == 6 else bind
    gpus = _gpu_set(inst.get("gpus"))
    mode = cfg["gpu_mode"]
    use_gpu = bool(gpus) and mode != "none"
    env = {str(k): _flag_value(v) for k, v in sorted({**cfg["env"], **(inst.get("env") or {})}.items())}
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
    cfg = _settings(settings)
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
        batching_on = bool(batching.get("enabled", bool(batching)))
        monitoring = inst.get("monitoring") or {}
        monitoring_on = bool(monitoring.get("enabled", bool(monitoring)))
        bind = str(inst.get("bind_address", cfg["bind_address"]))
        check = check_address(bind)
        rest_port = _port(inst.get("rest_port", 8501))
        item.update(
            {
                "grpc_port": _port(inst.get("grpc_port", 8500)),
                "rest_port": rest_port,
                "model_config_poll_wait_seconds": inst.get(
                    "model_config_poll_wait_seconds", cfg["model_config_poll_wait_seconds"]
                ),
                "bind_address": bind,
                "check_address": check,
                "rest_url": "http://{}:{}".format(f"[{check}]" if ":" in check else check, rest_port),
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
        args += [f"--{k}={_flag_value(v)}" for k, v in sorted(flags.items())]
        item["args"] = args
        item["container"], item["device_kind"], item["gpu_note"] = _container_plan(inst, item, cfg)
        gpus = _gpu_set(inst.get("gpus"))
        item["gpus"] = gpus if gpus == "all" else list(gpus)
        out.append(item)
    return out


# ---------------------------------------------------------------------------------------------
# rendering


def _entries(instance, labels=None):
    """The ModelEntry list of one planned instance; ``labels`` overrides the version labels."""
    out = []
    for model in instance["models"]:
        model_labels = model["labels"] if labels is None else (labels.get(model["name"]) or {})
        policy = policy_of(model["policy"], model.get("num_versions"), model.get("versions"))
        out.append(ModelEntry(model["name"], model["base_path"], model["platform"], policy,
                              {k: int(v) for k, v in model_labels.items()}))
    return out


def render_models_config(instance, labels=None):
    """models.config (ModelServerConfig) of one planned instance.

    ``labels`` optionally overrides the version labels ({model: {label: version}}), for the first
    step of a label move.
    """
    if not isinstance(instance, dict) or "models" not in instance:
        raise AnsibleFilterError("tfserving_models_config expects one instance of tfserving_plan")
    return models_config.render(_entries(instance, labels), instance["name"])


def render_batching_config(parameters, instance=""):
    """batching.config (BatchingParameters) from a mapping of parameters; stable field order."""
    params = parameters or {}
    lines = [models_config.header(instance, "tensorflow.serving.BatchingParameters").rstrip("\n")]
    for key in BATCHING_WRAPPED_INT:
        if key in params:
            lines.append(f"{key} {{ value: {params[key]} }}")
    if "thread_pool_name" in params:
        lines.append("thread_pool_name {{ value: {} }}".format(models_config.quote(params["thread_pool_name"])))
    for size in params.get("allowed_batch_sizes") or []:
        lines.append(f"allowed_batch_sizes: {size}")
    if "pad_variable_length_inputs" in params:
        lines.append("pad_variable_length_inputs: {}".format(_flag_value(bool(params["pad_variable_length_inputs"]))))
    return "\n".join(lines) + "\n"


def render_monitoring_config(path="/monitoring/prometheus/metrics", instance=""):
    """monitoring.config (MonitoringConfig) that turns the Prometheus endpoint on."""
    return "{}prometheus_config {{\n  enable: true\n  path: {}\n}}\n".format(
        models_config.header(instance, "tensorflow.serving.MonitoringConfig"),
        models_config.quote(path),
    )


def config_labels(text):
    """{model: {label: version}} from a models.config this role rendered; {} for anything else."""
    if not isinstance(text, str) or not text.startswith(models_config.HEADER_MARK):
        return {}
    try:
        return models_config.labels_of(models_config.parse(text))
    except models_config.ConfigError:
        return {}


# ---------------------------------------------------------------------------------------------
# glue for the role's tasks: registered loop results in, loop lists out


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


def label_steps(plan_, current=None, running=None, allow_new=True):
    """Instances whose label moves need two config writes, as TF Serving requires.

    TF Serving refuses to move an existing label to a version that is not AVAILABLE yet. When a label
    moves on a running server, the role first writes a config that serves the new version and keeps
    the labels where they are (plus the versions they point at), waits for the new versions, then
    writes the final config. ``current`` maps instance -> the models.config text on the host,
    ``running`` lists the instances whose container runs. Without
    --allow_version_labels_for_unavailable_models (``allow_new`` false) new labels wait for the
    second step too. Returns [{name, instance, wait}] where ``instance`` is the first-step plan to
    render and ``wait`` the versions to see AVAILABLE before the second step.
    """
    out = []
    running = set(running or [])
    for inst in plan_ or []:
        if inst.get("state") != "present" or inst["name"] not in running:
            continue
        old = config_labels((current or {}).get(inst["name"]))
        entries, wait = models_config.stage_labels(_entries(inst), old, allow_new=allow_new)
        if entries is None:
            continue
        staged = copy.deepcopy(inst)
        by_name = {entry.name: entry for entry in entries}
        for model in staged["models"]:
            model["labels"] = by_name[model["name"]].version_labels
            if model["policy"] == "specific":
                model["versions"] = by_name[model["name"]].versions
        out.append({"name": inst["name"], "instance": staged, "wait": wait})
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


def image_refs(plan_):
    """Distinct images the present instances run, in a stable order."""
    return sorted({inst["container"]["image"] for inst in plan_ or [] if inst.get("state") == "present"})


def image_repository(ref):
    """registry:port/name:tag -> registry:port/name (a digest reference keeps everything before '@')."""
    ref = str(ref)
    if "@" in ref:
        return ref.split("@", 1)[0]
    head, _unused, last = ref.rpartition("/")
    if ":" in last:
        last = last.split(":", 1)[0]
    return f"{head}/{last}" if head else last


def _with_tag(ref):
    ref = str(ref)
    if "@" in ref:
        return ref
    last = ref.rsplit("/", 1)[-1]
    return ref if ":" in last else ref + ":latest"


def pin_map(refs, images):
    """{ref: repo@sha256:...} for each tag reference found among docker_image_info's images.

    References that are digests already, or whose image has no registry digest (a local build or
    an archive load), are left out: they are used as they are.
    """
    out = {}
    for ref in refs or []:
        if "@" in str(ref):
            continue
        for image in images or []:
            if _with_tag(ref) in [_with_tag(t) for t in (image or {}).get("RepoTags") or []]:
                digest = repo_digest({"images": [image]}, ref)
                if digest:
                    out[ref] = digest
                break
    return out


def missing_images(refs, images):
    """References among ``refs`` that no image of docker_image_info's list carries (tag or digest)."""
    known = set()
    for image in images or []:
        known |= {_with_tag(t) for t in (image or {}).get("RepoTags") or []}
        known |= set((image or {}).get("RepoDigests") or [])
    return [ref for ref in refs or [] if _with_tag(ref) not in known]


def image_map(refs, pins=None):
    """{ref: the reference to run}: the fleet's pinned digest when there is one, else ref itself."""
    pins = pins or {}
    return {ref: pins.get(ref) or ref for ref in refs or []}


def repo_digest(image_info, ref):
    """The repo@sha256:... of ``ref`` from docker_image_info's image, or '' when it has none (local builds)."""
    images = image_info.get("images", []) if isinstance(image_info, dict) and "images" in image_info else [image_info]
    wanted = image_repository(ref)
    for image in images:
        for digest in (image or {}).get("RepoDigests") or []:
            if image_repository(digest) == wanted:
                return digest
    return ""


class FilterModule:
    """tfserving filters."""

    def filters(self):
        return {
            "tfserving_model_refs": model_refs,
            "tfserving_validate": validate,
            "tfserving_plan": plan,
            "tfserving_models_config": render_models_config,
            "tfserving_batching_config": render_batching_config,
            "tfserving_monitoring_config": render_monitoring_config,
            "tfserving_config_labels": config_labels,
            "tfserving_collect_listings": collect_listings,
            "tfserving_collect_dirs": collect_dirs,
            "tfserving_expectations": expectations,
            "tfserving_label_steps": label_steps,
            "tfserving_cleanup_items": cleanup_items,
            "tfserving_unloaded": unloaded,
            "tfserving_image_refs": image_refs,
            "tfserving_image_repository": image_repository,
            "tfserving_repo_digest": repo_digest,
            "tfserving_pin_map": pin_map,
            "tfserving_image_map": image_map,
            "tfserving_missing_images": missing_images,
        }
