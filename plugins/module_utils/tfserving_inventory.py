# Copyright: the tfserving-ansible authors
# Apache License 2.0
"""The collection's inventory rules, shared by its filters: names, keys, defaults, numbers, addresses,
listings, mounts and image references. Pure data, no I/O."""

import ipaddress
import posixpath
import re

# Names end up as container names, directory names and URL path segments.
NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,62}$")
LABEL_RE = re.compile(r"^[A-Za-z][A-Za-z0-9_.-]{0,62}$")
# Version directories being copied in carry this prefix until complete; TF Serving skips them (not numeric).
TEMP_PREFIX = ".tfserving-tmp-"
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


def as_int(value):
    """An int from an int or a string of digits (INI inventories give strings); None otherwise, and for bools."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, str) and value.strip().isdigit():
        return int(value.strip())
    return None


def check_address(bind):
    """The address to reach a server bound to ``bind`` from its own host: a wildcard bind means
    loopback of the same family. ValueError when ``bind`` is no IP address."""
    address = ipaddress.ip_address(str(bind))
    if address.is_unspecified:
        return "::1" if address.version == 6 else "127.0.0.1"
    return str(address)


def section_enabled(section):
    """Whether an instance's batching or monitoring mapping turns it on: ``enabled`` when set, else
    any setting at all."""
    return isinstance(section, dict) and bool(section.get("enabled", bool(section)))


def rest_url(address, port):
    """The REST base URL of a server at ``address`` (an IPv6 address goes in brackets) and ``port``."""
    return "http://{}:{}".format(f"[{address}]" if ":" in address else address, port)


def listing_versions(listing):
    """{version number: entry} of a tfserving_model_versions result; None when the directory is missing."""
    if not listing or not listing.get("exists"):
        return None
    return {int(v["version"]): v for v in listing.get("versions") or []}


def present_instances(instances):
    """The instances of a raw inventory list that should run (state defaults to present); malformed
    entries are skipped, validation reports them."""
    if not isinstance(instances, list):
        return []
    return [inst for inst in instances if isinstance(inst, dict) and inst.get("state", "present") == "present"]


def settings_with_defaults(settings):
    out = dict(SETTINGS_DEFAULTS)
    out.update({k: v for k, v in (settings or {}).items() if v is not None})
    return out


def is_int(value):
    return isinstance(value, int) and not isinstance(value, bool)


def as_version(value):
    """A version number from an int or a string of digits, else None. 0 and negatives are None too."""
    if is_int(value):
        return value if value > 0 else None
    if isinstance(value, str) and VERSION_DIR_RE.match(value.strip()):
        number = int(value.strip())
        return number if number > 0 else None
    return None


def location(host, instance=None, model=None, field=None):
    parts = [f"host '{host}'"]
    if instance is not None:
        parts.append(f"instance '{instance}'")
    if model is not None:
        parts.append(f"model '{model}'")
    if field is not None:
        parts.append(f"field '{field}'")
    return ", ".join(parts)


def model_key(instance, model):
    return f"{instance}/{model}"


def as_port(value):
    """A port number from an int or a string of digits (INI inventories give strings), else None."""
    number = as_int(value)
    return number if number is not None and 1 <= number <= 65535 else None


def as_ip(value):
    try:
        return ipaddress.ip_address(str(value))
    except ValueError:
        return None


def gpu_set(gpus):
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
        if is_int(gpu) and gpu >= 0:
            out.append(str(gpu))
        elif isinstance(gpu, str) and (gpu.isdigit() or GPU_UUID_RE.match(gpu)):
            out.append(gpu)
        else:
            return None
    return tuple(out)


def version_policy(model):
    policy = model.get("version_policy")
    if policy is None:
        return "specific" if model.get("versions") else "latest"
    return policy


def served_versions(policy, model, known):
    """The versions TF Serving will load under this policy, given the versions on disk (None: unknown)."""
    if policy == "specific":
        return sorted({as_version(v) for v in model.get("versions") or []} - {None})
    if known is None:
        return None
    if policy == "all":
        return sorted(known)
    num = model.get("num_versions") or 1
    return sorted(known)[-num:]


def listing_names(listing):
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


def container_mounts(inst, cfg):
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


def host_path_of(base, mounts):
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


def model_kind(model):
    if model.get("source"):
        return "source"
    if model.get("base_path"):
        return "remote"
    return "host"


def flag_value(value):
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)
