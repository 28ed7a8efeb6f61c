"""models.config and the other text-format files tensorflow_model_server reads, with its checks.

ModelServerConfig comes from tensorflow-serving-api (TF Serving's own schema). MonitoringConfig and
BatchingParameters are not shipped in that package, so they are declared here field for field from
`config/monitoring_config.proto` and `servables/tensorflow/session_bundle_config.proto`.
Validation mirrors `model_servers/server_core.cc` (ValidateModelConfigList, GetPlatform,
ValidateNoModelsChangePlatforms, CreateStoragePathRoutes) and its messages.
"""

from __future__ import annotations

import errno
import logging
import os

from google.protobuf import (
    descriptor_pb2,
    descriptor_pool,
    message_factory,
    text_format,
    wrappers_pb2,  # noqa: F401  (registers google/protobuf/wrappers.proto)
)
from tensorflow_serving.config import model_server_config_pb2

from .errors import Code, TFError, failed_precondition, invalid_argument

LOG = logging.getLogger("tfserving_double")

TENSORFLOW_PLATFORM = "tensorflow"
KNOWN_PLATFORMS = (TENSORFLOW_PLATFORM,)

ModelServerConfig = model_server_config_pb2.ModelServerConfig
ModelConfig = model_server_config_pb2.ModelConfig


def _build_extra_protos():
    """MonitoringConfig and BatchingParameters, declared as TF Serving declares them."""
    pool = descriptor_pool.Default()
    name = "tfserving_double/extra_configs.proto"
    try:
        pool.FindFileByName(name)
    except KeyError:
        fdp = descriptor_pb2.FileDescriptorProto(
            name=name,
            package="tensorflow.serving",
            syntax="proto3",
            dependency=["google/protobuf/wrappers.proto"],
        )
        f = descriptor_pb2.FieldDescriptorProto
        prom = fdp.message_type.add(name="PrometheusConfig")
        prom.field.add(name="enable", number=1, type=f.TYPE_BOOL, label=f.LABEL_OPTIONAL)
        prom.field.add(name="path", number=2, type=f.TYPE_STRING, label=f.LABEL_OPTIONAL)
        mon = fdp.message_type.add(name="MonitoringConfig")
        mon.field.add(
            name="prometheus_config",
            number=1,
            type=f.TYPE_MESSAGE,
            label=f.LABEL_OPTIONAL,
            type_name=".tensorflow.serving.PrometheusConfig",
        )
        batching = fdp.message_type.add(name="BatchingParameters")
        wrapped = [
            ("max_batch_size", 1, "Int64Value"),
            ("batch_timeout_micros", 2, "Int64Value"),
            ("max_enqueued_batches", 3, "Int64Value"),
            ("num_batch_threads", 4, "Int64Value"),
            ("thread_pool_name", 5, "StringValue"),
            ("max_execution_batch_size", 9, "Int64Value"),
        ]
        for field_name, number, wrapper in wrapped:
            batching.field.add(
                name=field_name,
                number=number,
                type=f.TYPE_MESSAGE,
                label=f.LABEL_OPTIONAL,
                type_name=f".google.protobuf.{wrapper}",
            )
        batching.field.add(name="allowed_batch_sizes", number=6, type=f.TYPE_INT64, label=f.LABEL_REPEATED)
        batching.field.add(
            name="pad_variable_length_inputs", number=7, type=f.TYPE_BOOL, label=f.LABEL_OPTIONAL
        )
        batching.field.add(
            name="enable_large_batch_splitting", number=8, type=f.TYPE_BOOL, label=f.LABEL_OPTIONAL
        )
        pool.Add(fdp)
    monitoring = message_factory.GetMessageClass(
        pool.FindMessageTypeByName("tensorflow.serving.MonitoringConfig")
    )
    batching_cls = message_factory.GetMessageClass(
        pool.FindMessageTypeByName("tensorflow.serving.BatchingParameters")
    )
    return monitoring, batching_cls


MonitoringConfig, BatchingParameters = _build_extra_protos()
PROMETHEUS_DEFAULT_PATH = "/monitoring/prometheus/metrics"

_ERRNO_CODES = {
    errno.ENOENT: Code.NOT_FOUND,
    errno.ENOTDIR: Code.FAILED_PRECONDITION,
    errno.EISDIR: Code.FAILED_PRECONDITION,
    errno.EACCES: Code.PERMISSION_DENIED,
    errno.EPERM: Code.PERMISSION_DENIED,
}


def io_error(path: str, err: OSError) -> TFError:
    """tensorflow::IOError(): "<path>; <strerror>" with the code its errno maps to."""
    code = _ERRNO_CODES.get(err.errno, Code.UNKNOWN)
    return TFError(code, f"{path}; {os.strerror(err.errno) if err.errno else err}")


def parse_text_file(path: str, message_cls):
    """server.cc ParseProtoTextFile(): read a text-format proto or fail with TF Serving's status."""
    try:
        with open(path, "rb") as handle:
            data = handle.read()
    except OSError as err:
        raise io_error(path, err) from err
    message = message_cls()
    try:
        text_format.Parse(data.decode("utf-8", errors="replace"), message)
    except text_format.ParseError as err:
        LOG.error("[libprotobuf ERROR] Error parsing text-format %s: %s", message.DESCRIPTOR.full_name, err)
        raise invalid_argument("Invalid protobuf file: '", path, "'") from err
    return message


def build_single_model_config(model_name: str, model_base_path: str):
    """server.cc BuildSingleModelConfig(): what --model_name/--model_base_path mean."""
    LOG.info(
        "Building single TensorFlow model file config:  model_name: %s model_base_path: %s",
        model_name,
        model_base_path,
    )
    config = ModelServerConfig()
    model = config.model_config_list.config.add()
    model.name = model_name
    model.base_path = model_base_path
    model.model_platform = TENSORFLOW_PLATFORM
    return config


def uri_is_relative_path(uri: str) -> bool:
    """server_core.cc UriIsRelativePath(): no scheme, no host and not an absolute path."""
    scheme, sep, _rest = uri.partition("://")
    if sep and scheme:
        return False
    return not uri.startswith("/")


def validate_model_config_list(config_list) -> None:
    names = set()
    for model in config_list.config:
        if model.name in names:
            raise invalid_argument("Illegal to list model ", model.name, " multiple times in config list")
        names.add(model.name)
    for model in config_list.config:
        if uri_is_relative_path(model.base_path):
            raise invalid_argument(
                "Expected model ",
                model.name,
                " to have an absolute path or URI; got base_path()=",
                model.base_path,
            )


def get_platform(model) -> str:
    """server_core.cc GetPlatform()."""
    if model.model_type != 0:
        LOG.warning(
            "Deprecated ModelServerConfig::model_type field used. Prefer ModelServerConfig::model_platform."
        )
        if model.model_platform:
            raise invalid_argument(
                "Illegal setting both ModelServerConfig::model_type (deprecated) and "
                "ModelServerConfig::model_platform."
            )
        if model.model_type == 1:  # ModelType::TENSORFLOW
            platform = TENSORFLOW_PLATFORM
        else:
            raise invalid_argument(
                "ModelServerConfig::model_type choice ", model.model_type, " not supported."
            )
    else:
        platform = model.model_platform
    if not platform:
        raise invalid_argument(
            "Illegal setting neither ModelServerConfig::model_type (deprecated) nor "
            "ModelServerConfig::model_platform."
        )
    return platform


def validate_no_models_change_platforms(old_list, new_list) -> None:
    old_platforms = {model.name: get_platform(model) for model in old_list.config}
    for model in new_list.config:
        if model.name not in old_platforms:
            continue
        new_platform = get_platform(model)
        if new_platform != old_platforms[model.name]:
            raise invalid_argument(
                "Illegal to change a model's platform. For model ",
                model.name,
                " platform was ",
                old_platforms[model.name],
                " and new platform requested is ",
                new_platform,
            )


def check_routes(config_list) -> None:
    """server_core.cc CreateStoragePathRoutes(): every model needs a platform this server has."""
    for model in config_list.config:
        platform = get_platform(model)
        if platform not in KNOWN_PLATFORMS:
            raise invalid_argument("Model ", model.name, " requests unsupported platform ", platform)


def check_transition(old_config, new_config) -> None:
    """ServerCore::ReloadConfig(): only ModelConfigList -> ModelConfigList is legal."""
    old_case = old_config.WhichOneof("config") if old_config is not None else None
    new_case = new_config.WhichOneof("config")
    if old_case is not None and not (old_case == new_case == "model_config_list"):
        raise failed_precondition(
            "Cannot transition to requested config. It is only legal to transition "
            "from one ModelConfigList to another."
        )


def version_policy_kind(model) -> str:
    """The servable version policy a model asks for: latest (the default), all or specific."""
    return model.model_version_policy.WhichOneof("policy_choice") or "latest"
