"""tensorflow_model_server's command-line flags (model_servers/main.cc), parsed the way it parses them.

TF Serving uses tensorflow::Flags: `--name=value`, and for booleans also a bare `--name`. A value that
does not parse makes it print the usage and exit non-zero; an argument that matches no flag makes it
print "unknown argument: X" and the usage, and carry on. The double also accepts `--name value` (two
arguments), which the real binary would report as an unknown argument: test harnesses write it that
way.
"""

from __future__ import annotations

import dataclasses
import re

INT32_MAX = 2**31 - 1
INT64_MAX = 2**63 - 1


@dataclasses.dataclass(frozen=True)
class Flag:
    name: str
    kind: str  # "int32", "int64", "float", "bool", "string"
    default: object
    help: str


FLAGS = (
    Flag("port", "int32", 8500, "Port to listen on for gRPC API"),
    Flag(
        "grpc_socket_path",
        "string",
        "",
        "If non-empty, listen to a UNIX socket for gRPC API on the given path. Can be either relative "
        "or absolute path.",
    ),
    Flag(
        "rest_api_port",
        "int32",
        0,
        "Port to listen on for HTTP/REST API. If set to zero HTTP/REST API will not be exported. This "
        "port must be different than the one specified in --port.",
    ),
    Flag(
        "rest_api_num_threads",
        "int32",
        32,
        "Number of threads for HTTP/REST API processing. If not set, will be auto set based on number "
        "of CPUs.",
    ),
    Flag("rest_api_timeout_in_ms", "int32", 30000, "Timeout for HTTP/REST API calls."),
    Flag("rest_api_enable_cors_support", "bool", False, "Enable CORS headers in response"),
    Flag("enable_batching", "bool", False, "enable batching"),
    Flag(
        "allow_version_labels_for_unavailable_models",
        "bool",
        False,
        "If true, allows assigning unused version labels to models that are not available yet.",
    ),
    Flag(
        "batching_parameters_file",
        "string",
        "",
        "If non-empty, read an ascii BatchingParameters protobuf from the supplied file name and use "
        "the contained values instead of the defaults.",
    ),
    Flag(
        "enable_per_model_batching_parameters",
        "bool",
        False,
        "Enables model specific batching params like batch sizes, timeouts, batching feature flags to "
        "be read from `batching_params.pbtxt` file inside SavedModel.",
    ),
    Flag(
        "model_config_file",
        "string",
        "",
        "If non-empty, read an ascii ModelServerConfig protobuf from the supplied file name, and serve "
        "the models in that file. This config file can be used to specify multiple models to serve and "
        "other advanced parameters including non-default version policy. (If used, --model_name, "
        "--model_base_path are ignored.)",
    ),
    Flag(
        "model_config_file_poll_wait_seconds",
        "int32",
        0,
        "Interval in seconds between each poll of the filesystemfor model_config_file. If unset or set "
        "to zero, poll will be done exactly once and not periodically. Setting this to negative is "
        "reserved for testing purposes only.",
    ),
    Flag("model_name", "string", "default", "name of model (ignored if --model_config_file flag is set)"),
    Flag(
        "model_base_path",
        "string",
        "",
        "path to export (ignored if --model_config_file flag is set, otherwise required)",
    ),
    Flag(
        "num_load_threads",
        "int32",
        0,
        "The number of threads in the thread-pool used to load servables. If set as 0, we don't use a "
        "thread-pool, and servable loads are performed serially in the manager's main work loop.",
    ),
    Flag(
        "num_unload_threads",
        "int32",
        0,
        "The number of threads in the thread-pool used to unload servables. If set as 0, we don't use "
        "a thread-pool, and servable loads are performed serially in the manager's main work loop.",
    ),
    Flag(
        "max_num_load_retries",
        "int32",
        5,
        "maximum number of times it retries loading a model after the first failure, before giving up. "
        "If set to 0, a load is attempted only once. Default: 5",
    ),
    Flag(
        "load_retry_interval_micros",
        "int64",
        60 * 1000 * 1000,
        "The interval, in microseconds, between each servable load retry. If set negative, it doesn't "
        "wait. Default: 1 minute",
    ),
    Flag(
        "file_system_poll_wait_seconds",
        "int32",
        1,
        "Interval in seconds between each poll of the filesystem for new model version. If set to zero "
        "poll will be exactly done once and not periodically. Setting this to negative value will "
        "disable polling entirely causing ModelServer to indefinitely wait for a new model at "
        "startup. Negative values are reserved for testing purposes only.",
    ),
    Flag(
        "flush_filesystem_caches",
        "bool",
        True,
        "If true (the default), filesystem caches will be flushed after the initial load of all "
        "servables, and after each subsequent individual servable reload (if the number of load "
        "threads is 1).",
    ),
    Flag(
        "tensorflow_session_parallelism",
        "int64",
        0,
        "Number of threads to use for running a Tensorflow session. Auto-configured by default.",
    ),
    Flag(
        "tensorflow_intra_op_parallelism",
        "int64",
        0,
        "Number of threads to use to parallelize the execution of an individual op. Auto-configured "
        "by default.",
    ),
    Flag(
        "tensorflow_inter_op_parallelism",
        "int64",
        0,
        "Controls the number of operators that can be executed simultaneously. Auto-configured by default.",
    ),
    Flag("use_alts_credentials", "bool", False, "Use Google ALTS credentials"),
    Flag(
        "ssl_config_file",
        "string",
        "",
        "If non-empty, read an ascii SSLConfig protobuf from the supplied "
        "file name and set up a secure gRPC channel",
    ),
    Flag(
        "platform_config_file",
        "string",
        "",
        "If non-empty, read an ascii PlatformConfigMap protobuf from the supplied file name, and use "
        "that platform config instead of the Tensorflow platform.",
    ),
    Flag(
        "per_process_gpu_memory_fraction",
        "float",
        0.0,
        "Fraction that each process occupies of the GPU memory space the value is between 0.0 and "
        "1.0 (with 0.0 as the default) If 1.0, the server will allocate all the memory when the "
        "server starts, If 0.0, Tensorflow will automatically select a value.",
    ),
    Flag(
        "saved_model_tags",
        "string",
        "serve",
        "Comma-separated set of tags corresponding to the meta graph def to load from SavedModel.",
    ),
    Flag(
        "grpc_channel_arguments",
        "string",
        "",
        "A comma separated list of arguments to be passed to the grpc server. (e.g. "
        "grpc.max_connection_age_ms=2000)",
    ),
    Flag("grpc_max_threads", "int32", 0, "Max grpc server threads to handle grpc messages."),
    Flag(
        "enable_model_warmup",
        "bool",
        True,
        "Enables model warmup, which triggers lazy initializations (such as TF optimizations) at load "
        "time, to reduce first request latency.",
    ),
    Flag(
        "num_request_iterations_for_warmup",
        "int32",
        0,
        "Number of times a request is iterated during warmup replay. This value is used only if > 0.",
    ),
    Flag("version", "bool", False, "Display version"),
    Flag(
        "monitoring_config_file",
        "string",
        "",
        "If non-empty, read an ascii MonitoringConfig protobuf from the supplied file name",
    ),
    Flag(
        "remove_unused_fields_from_bundle_metagraph",
        "bool",
        True,
        "Removes unused fields from MetaGraphDef proto message to save memory.",
    ),
    Flag(
        "prefer_tflite_model",
        "bool",
        False,
        "EXPERIMENTAL; CAN BE REMOVED ANYTIME! Prefer TensorFlow Lite model from `model.tflite` file "
        "in SavedModel directory, instead of the TensorFlow model from `saved_model.pb` file.",
    ),
    Flag(
        "num_tflite_pools",
        "int32",
        1,
        "EXPERIMENTAL; CAN BE REMOVED ANYTIME! Number of TFLite "
        "interpreters in an interpreter pool of TfLiteSession.",
    ),
    Flag(
        "num_tflite_interpreters_per_pool",
        "int32",
        1,
        "EXPERIMENTAL; CAN BE REMOVED ANYTIME! Number "
        "of TFLite interpreters in an interpreter pool of TfLiteSession.",
    ),
    Flag(
        "enable_signature_method_name_check",
        "bool",
        False,
        "Enable method_name check for SignatureDef. Disable this if serving native TF2 regression/"
        "classification models.",
    ),
    Flag(
        "xla_cpu_compilation_enabled",
        "bool",
        False,
        "EXPERIMENTAL; CAN BE REMOVED ANYTIME! Enable XLA:CPU JIT (default is disabled).",
    ),
    Flag("enable_profiler", "bool", True, "Enable profiler service."),
    Flag(
        "thread_pool_factory_config_file",
        "string",
        "",
        "If non-empty, read an ascii ThreadPoolConfig protobuf from the supplied file name.",
    ),
    Flag("mixed_precision", "string", "", "specify mixed_precision mode"),
    Flag("skip_initialize_tpu", "bool", False, "Whether to skip auto initializing TPU."),
    Flag("enable_grpc_healthcheck_service", "bool", False, "Enable the standard gRPC healthcheck service."),
)

_BY_NAME = {flag.name: flag for flag in FLAGS}


class FlagError(Exception):
    """A flag value that tensorflow::Flags would refuse (the server prints its usage and exits)."""


@dataclasses.dataclass
class ParsedArgs:
    values: dict
    unknown: list

    def __getattr__(self, name):
        try:
            return self.__dict__["values"][name]
        except KeyError as err:
            raise AttributeError(name) from err


def usage(program: str = "tensorflow_model_server") -> str:
    lines = [f"usage: {program}", "Flags:"]
    for flag in FLAGS:
        default = flag.default
        if flag.kind == "bool":
            default = "true" if default else "false"
        elif flag.kind == "string":
            default = f'"{default}"'
        lines.append(f"\t--{flag.name}={default}\t{flag.kind}\t{flag.help}")
    return "\n".join(lines) + "\n"


_INT_RE = re.compile(r"^[+-]?\d+$")


def _convert(flag: Flag, raw: str):
    if flag.kind in ("int32", "int64"):
        text = raw.strip()
        if not _INT_RE.match(text):
            raise FlagError(f"Couldn't interpret value {raw} for flag {flag.name}.")
        value = int(text)
        limit = INT32_MAX if flag.kind == "int32" else INT64_MAX
        if not -limit - 1 <= value <= limit:
            raise FlagError(f"Couldn't interpret value {raw} for flag {flag.name}.")
        return value
    if flag.kind == "float":
        try:
            return float(raw)
        except ValueError as err:
            raise FlagError(f"Couldn't interpret value {raw} for flag {flag.name}.") from err
    if flag.kind == "bool":
        lowered = raw.lower()
        if lowered in ("true", "1"):
            return True
        if lowered in ("false", "0"):
            return False
        raise FlagError(f"Couldn't interpret value {raw} for flag {flag.name}.")
    return raw


def parse(argv: list[str]) -> ParsedArgs:
    """Parse argv (without the program name). Raises FlagError for malformed values."""
    values = {flag.name: flag.default for flag in FLAGS}
    unknown = []
    i = 0
    while i < len(argv):
        arg = argv[i]
        i += 1
        match = re.match(r"^--([A-Za-z0-9_]+)(?:=(.*))?$", arg, re.DOTALL)
        flag = _BY_NAME.get(match.group(1)) if match else None
        if flag is None:
            unknown.append(arg)
            continue
        raw = match.group(2)
        if raw is None:
            if flag.kind == "bool":
                values[flag.name] = True
                continue
            if i >= len(argv):
                raise FlagError(f"Missing value for flag {flag.name}.")
            raw = argv[i]
            i += 1
        values[flag.name] = _convert(flag, raw)
    return ParsedArgs(values=values, unknown=unknown)
