# Copyright: the tfserving-ansible authors
# Apache License 2.0
"""TF Serving's gRPC API with grpcio and protobuf only, never TensorFlow.

Why descriptors built at runtime, and not hand-encoded bytes or tensorflow-serving-api:

- ``tensorflow-serving-api`` has the real generated classes but depends on the whole TensorFlow
  package (its ``status_pb2`` imports ``tensorflow.core.protobuf.error_codes_pb2``), which a GPU
  host running TF Serving in a container does not have and should not get.
- Hand-encoding would cover the few request messages, but ``tfserving_reload_config`` sends whole
  ModelServerConfig messages (nested version policies and label maps) and prints them back as text;
  that needs a real message schema. models.config text is read by tfserving_models_config.parse,
  the collection's one parser of it.
- So this file declares, as ``FileDescriptorProto`` data, the subset of TF Serving's schema the
  modules use, with TF Serving's own package (``tensorflow.serving``), message names, field names,
  field numbers, types and oneofs (from ``apis/model.proto``, ``apis/status.proto``,
  ``apis/get_model_status.proto``, ``apis/get_model_metadata.proto``,
  ``apis/model_management.proto``, ``config/model_server_config.proto``,
  ``config/file_system_storage_path_source.proto``, ``config/logging_config.proto``,
  ``config/log_collector_config.proto``) and TensorFlow's ``tensorflow.error.Code`` enum. They are
  loaded into a private ``DescriptorPool``, so they never clash with the real classes if both are
  imported in one process. ``google.protobuf.text_format`` prints a ModelServerConfig, and the wire
  bytes are the ones TF Serving expects. ``tests/unit/test_tfserving_grpc_wire.py``
  compares every descriptor and encoded message with tensorflow-serving-api's real classes.

Metadata (``GetModelMetadataResponse.metadata``) stays an opaque ``google.protobuf.Any``: the
modules only read ``model_spec.version`` from it, to resolve version labels.
"""

import traceback

from ansible_collections.tfserving.fleet.plugins.module_utils.tfserving_common import (
    ERROR_CODE_NAMES,
    INVALID,
    MALFORMED,
    NOT_FOUND,
    REJECTED,
    STATE_NAMES,
    UNREACHABLE,
    TFServingError,
    version_status,
)

GRPC_IMPORT_ERROR = None
PROTOBUF_IMPORT_ERROR = None
try:
    import grpc

    HAS_GRPC = True
except ImportError:
    HAS_GRPC = False
    GRPC_IMPORT_ERROR = traceback.format_exc()
try:
    from google.protobuf import (
        any_pb2,
        descriptor_pb2,
        descriptor_pool,
        message_factory,
        text_format,
        wrappers_pb2,
    )

    HAS_PROTOBUF = True
except ImportError:
    HAS_PROTOBUF = False
    PROTOBUF_IMPORT_ERROR = traceback.format_exc()

MODEL_SERVICE = "/tensorflow.serving.ModelService/"
PREDICTION_SERVICE = "/tensorflow.serving.PredictionService/"

# --- the schema ------------------------------------------------------------------------------
# (name, number, type, label, type_name or None, oneof index or None[, json_name]) per field.
# Types and labels are FieldDescriptorProto names without their TYPE_ / LABEL_ prefix.
_OPT, _REP = "OPTIONAL", "REPEATED"
_SERVING = ".tensorflow.serving."
_POLICY = _SERVING + "FileSystemStoragePathSourceConfig.ServableVersionPolicy"

_ERROR_CODES = [
    *sorted(ERROR_CODE_NAMES.items()),
    (20, "DO_NOT_USE_RESERVED_FOR_FUTURE_EXPANSION_USE_DEFAULT_IN_SWITCH_INSTEAD_"),
]

_MESSAGES = {
    "ModelSpec": {
        "fields": [
            ("name", 1, "STRING", _OPT, None, None),
            ("version", 2, "MESSAGE", _OPT, ".google.protobuf.Int64Value", 0),
            ("version_label", 4, "STRING", _OPT, None, 0),
            ("signature_name", 3, "STRING", _OPT, None, None),
        ],
        "oneofs": ["version_choice"],
    },
    "StatusProto": {
        "fields": [
            ("error_code", 1, "ENUM", _OPT, ".tensorflow.error.Code", None, "error_code"),
            ("error_message", 2, "STRING", _OPT, None, None, "error_message"),
        ],
    },
    "GetModelStatusRequest": {
        "fields": [("model_spec", 1, "MESSAGE", _OPT, ".tensorflow.serving.ModelSpec", None)],
    },
    "ModelVersionStatus": {
        "fields": [
            ("version", 1, "INT64", _OPT, None, None),
            ("state", 2, "ENUM", _OPT, ".tensorflow.serving.ModelVersionStatus.State", None),
            ("status", 3, "MESSAGE", _OPT, ".tensorflow.serving.StatusProto", None),
        ],
        "enums": {"State": sorted(STATE_NAMES.items())},
    },
    "GetModelStatusResponse": {
        "fields": [
            ("model_version_status", 1, "MESSAGE", _REP, ".tensorflow.serving.ModelVersionStatus", None,
             "model_version_status"),
        ],
    },
    "GetModelMetadataRequest": {
        "fields": [
            ("model_spec", 1, "MESSAGE", _OPT, ".tensorflow.serving.ModelSpec", None),
            ("metadata_field", 2, "STRING", _REP, None, None),
        ],
    },
    "GetModelMetadataResponse": {
        "fields": [
            ("model_spec", 1, "MESSAGE", _OPT, ".tensorflow.serving.ModelSpec", None),
            ("metadata", 2, "MESSAGE", _REP, _SERVING + "GetModelMetadataResponse.MetadataEntry", None),
        ],
        "maps": {"MetadataEntry": ("STRING", "MESSAGE", ".google.protobuf.Any")},
    },
    "FileSystemStoragePathSourceConfig": {
        "fields": [],
        "nested": {
            "ServableVersionPolicy": {
                "fields": [
                    ("latest", 100, "MESSAGE", _OPT, _POLICY + ".Latest", 0),
                    ("all", 101, "MESSAGE", _OPT, _POLICY + ".All", 0),
                    ("specific", 102, "MESSAGE", _OPT, _POLICY + ".Specific", 0),
                ],
                "oneofs": ["policy_choice"],
                "nested": {
                    "Latest": {"fields": [("num_versions", 1, "UINT32", _OPT, None, None)]},
                    "All": {"fields": []},
                    "Specific": {"fields": [("versions", 1, "INT64", _REP, None, None)]},
                },
            },
        },
    },
    "LogCollectorConfig": {
        "fields": [
            ("type", 1, "STRING", _OPT, None, None),
            ("filename_prefix", 2, "STRING", _OPT, None, None),
        ],
    },
    "PerTaskSamplingConfig": {
        "fields": [
            ("dc", 1, "STRING", _OPT, None, None),
            ("task_index", 2, "INT32", _OPT, None, 0),
            ("sampling_rate", 3, "DOUBLE", _OPT, None, None),
        ],
        "oneofs": ["_task_index"],
        "proto3_optional": {"task_index"},
    },
    "SamplingConfig": {
        "fields": [
            ("sampling_rate", 1, "DOUBLE", _OPT, None, None),
            ("per_task_sampling_configs", 3, "MESSAGE", _REP, _SERVING + "PerTaskSamplingConfig", None),
            ("attributes", 2, "INT32", _OPT, None, None),
        ],
        "enums": {
            "Attributes": [(0, "ATTR_DEFAULT"), (1, "ATTR_REQUEST_ORIGIN"), (2, "ATTR_REQUEST_CRITICALITY")],
        },
    },
    "LoggingConfig": {
        "fields": [
            ("log_collector_config", 1, "MESSAGE", _OPT, ".tensorflow.serving.LogCollectorConfig", None),
            ("sampling_config", 2, "MESSAGE", _OPT, ".tensorflow.serving.SamplingConfig", None),
            ("custom_logging_config", 3, "MESSAGE", _OPT, ".google.protobuf.Any", None),
        ],
    },
    "ModelConfig": {
        "fields": [
            ("name", 1, "STRING", _OPT, None, None),
            ("base_path", 2, "STRING", _OPT, None, None),
            ("model_type", 3, "ENUM", _OPT, ".tensorflow.serving.ModelType", None),
            ("model_platform", 4, "STRING", _OPT, None, None),
            ("model_version_policy", 7, "MESSAGE", _OPT, _POLICY, None),
            ("version_labels", 8, "MESSAGE", _REP, _SERVING + "ModelConfig.VersionLabelsEntry", None),
            ("logging_config", 6, "MESSAGE", _OPT, ".tensorflow.serving.LoggingConfig", None),
        ],
        "maps": {"VersionLabelsEntry": ("STRING", "INT64", None)},
    },
    "ModelConfigList": {
        "fields": [("config", 1, "MESSAGE", _REP, ".tensorflow.serving.ModelConfig", None)],
    },
    "ModelServerConfig": {
        "fields": [
            ("model_config_list", 1, "MESSAGE", _OPT, ".tensorflow.serving.ModelConfigList", 0),
            ("custom_model_config", 2, "MESSAGE", _OPT, ".google.protobuf.Any", 0),
        ],
        "oneofs": ["config"],
    },
    "ReloadConfigRequest": {
        "fields": [
            ("config", 1, "MESSAGE", _OPT, ".tensorflow.serving.ModelServerConfig", None),
            ("metric_names", 2, "STRING", _REP, None, None),
        ],
    },
    "Metric": {
        "fields": [
            ("name", 1, "STRING", _OPT, None, None),
            ("int64_value_increase", 2, "INT64", _OPT, None, 0),
        ],
        "oneofs": ["value_increase"],
    },
    "ReloadConfigResponse": {
        "fields": [
            ("status", 1, "MESSAGE", _OPT, ".tensorflow.serving.StatusProto", None),
            ("metric", 2, "MESSAGE", _REP, ".tensorflow.serving.Metric", None),
        ],
    },
}
_TOP_ENUMS = {"ModelType": [(0, "MODEL_TYPE_UNSPECIFIED"), (1, "TENSORFLOW"), (2, "OTHER")]}

SCHEMA_FILE = "tfserving_ansible/tensorflow_serving_subset.proto"
ERROR_CODES_FILE = "tfserving_ansible/tensorflow_error_codes.proto"


def _enum(proto, name, values):
    enum = proto.add(name=name)
    for number, value_name in values:
        enum.value.add(name=value_name, number=number)


def _message(proto, name, spec):
    msg = proto.add(name=name)
    for oneof in spec.get("oneofs", []):
        msg.oneof_decl.add(name=oneof)
    for field in spec["fields"]:
        fname, number, ftype, label, type_name, oneof = field[:6]
        fd = msg.field.add(
            name=fname,
            number=number,
            type=descriptor_pb2.FieldDescriptorProto.Type.Value("TYPE_" + ftype),
            label=descriptor_pb2.FieldDescriptorProto.Label.Value("LABEL_" + label),
        )
        if type_name:
            fd.type_name = type_name
        if oneof is not None:
            fd.oneof_index = oneof
        if len(field) > 6:
            fd.json_name = field[6]
        if fname in spec.get("proto3_optional", ()):
            fd.proto3_optional = True
    for entry_name, (key_type, value_type, value_type_name) in spec.get("maps", {}).items():
        entry = msg.nested_type.add(name=entry_name)
        entry.options.map_entry = True
        entry.field.add(
            name="key", number=1, label=descriptor_pb2.FieldDescriptorProto.LABEL_OPTIONAL,
            type=descriptor_pb2.FieldDescriptorProto.Type.Value("TYPE_" + key_type),
        )
        value = entry.field.add(
            name="value", number=2, label=descriptor_pb2.FieldDescriptorProto.LABEL_OPTIONAL,
            type=descriptor_pb2.FieldDescriptorProto.Type.Value("TYPE_" + value_type),
        )
        if value_type_name:
            value.type_name = value_type_name
    for enum_name, values in spec.get("enums", {}).items():
        _enum(msg.enum_type, enum_name, values)
    for nested_name, nested_spec in spec.get("nested", {}).items():
        _message(msg.nested_type, nested_name, nested_spec)


def file_descriptor_protos():
    """The two FileDescriptorProtos of the schema subset (error codes, then tensorflow.serving)."""
    errors = descriptor_pb2.FileDescriptorProto(
        name=ERROR_CODES_FILE, package="tensorflow.error", syntax="proto3"
    )
    _enum(errors.enum_type, "Code", _ERROR_CODES)
    serving = descriptor_pb2.FileDescriptorProto(
        name=SCHEMA_FILE,
        package="tensorflow.serving",
        syntax="proto3",
        dependency=[wrappers_pb2.DESCRIPTOR.name, any_pb2.DESCRIPTOR.name, ERROR_CODES_FILE],
    )
    for name, spec in _MESSAGES.items():
        _message(serving.message_type, name, spec)
    for name, values in _TOP_ENUMS.items():
        _enum(serving.enum_type, name, values)
    return errors, serving


class _Messages:
    """Message classes by short name: ``messages().ModelServerConfig()``."""

    def __init__(self):
        self.pool = descriptor_pool.DescriptorPool()
        for dep in (wrappers_pb2, any_pb2):
            self.pool.AddSerializedFile(dep.DESCRIPTOR.serialized_pb)
        for fdp in file_descriptor_protos():
            self.pool.AddSerializedFile(fdp.SerializeToString())
        for name in _MESSAGES:
            setattr(self, name, self._class("tensorflow.serving." + name))
        self.ServableVersionPolicy = self._class(_POLICY[1:])

    def _class(self, full_name):
        descriptor = self.pool.FindMessageTypeByName(full_name)
        if hasattr(message_factory, "GetMessageClass"):
            return message_factory.GetMessageClass(descriptor)
        return message_factory.MessageFactory(self.pool).GetPrototype(descriptor)  # protobuf < 4.21


_MESSAGES_CACHE = []


def messages():
    if not _MESSAGES_CACHE:
        _MESSAGES_CACHE.append(_Messages())
    return _MESSAGES_CACHE[0]


# --- models.config -----------------------------------------------------------------------------
def config_to_text(config):
    """A ModelServerConfig message as protobuf text (what a reload sent, for the module's result)."""
    return text_format.MessageToString(config)


def config_message(entries):
    """The ModelServerConfig message of tfserving_models_config.ModelEntry items, in their order."""
    config = messages().ModelServerConfig()
    for entry in entries:
        message = config.model_config_list.config.add(
            name=entry.name, base_path=entry.base_path, model_platform=entry.model_platform or ""
        )
        if entry.policy == "all":
            message.model_version_policy.all.SetInParent()
        elif entry.policy == "specific":
            message.model_version_policy.specific.versions.extend(entry.versions)
        elif entry.model_version_policy["latest"].get("num_versions") is not None:
            message.model_version_policy.latest.num_versions = entry.model_version_policy["latest"]["num_versions"]
        for label, version in entry.version_labels.items():
            message.version_labels[label] = version
    return config


# --- the client --------------------------------------------------------------------------------
_KINDS = {
    "UNAVAILABLE": UNREACHABLE,
    "DEADLINE_EXCEEDED": UNREACHABLE,
    "NOT_FOUND": NOT_FOUND,
    "INVALID_ARGUMENT": INVALID,
}


class GrpcClient:
    """ModelService and the metadata call of PredictionService on one server (host:port)."""

    def __init__(self, host, port, timeout=10.0, tls=False, ca_path=None, use_proxy=True):
        if ":" in host and not host.startswith("["):
            host = f"[{host}]"
        self.target = f"{host}:{int(port)}"
        self.timeout = timeout
        self.request_timeout = timeout  # the configured bound; `timeout` may shrink near a deadline
        options = [("grpc.enable_http_proxy", 1 if use_proxy else 0)]
        if tls:
            root = None
            if ca_path:
                with open(ca_path, "rb") as handle:
                    root = handle.read()
            credentials = grpc.ssl_channel_credentials(root)
            self.channel = grpc.secure_channel(self.target, credentials, options=options)
        else:
            self.channel = grpc.insecure_channel(self.target, options=options)
        self.msgs = messages()

    def close(self):
        self.channel.close()

    def call(self, method, request, response_class, timeout=None):
        rpc = self.channel.unary_unary(
            method,
            request_serializer=lambda message: message.SerializeToString(),
            response_deserializer=response_class.FromString,
        )
        timeout = self.timeout if timeout is None else timeout
        try:
            return rpc(request, timeout=timeout)
        except grpc.RpcError as err:
            code = err.code() if hasattr(err, "code") else None
            name = code.name if code is not None else "UNKNOWN"
            details = (err.details() if hasattr(err, "details") else None) or ""
            if name == "DEADLINE_EXCEEDED":
                details = f"no answer within {timeout}s"
            raise TFServingError(
                _KINDS.get(name, REJECTED),
                f"gRPC {method} on {self.target} failed with {name}: {details}",
                code=name,
                server_message=details,
                url=self.target,
            ) from None

    def _spec(self, name, version=None, label=None):
        spec = self.msgs.ModelSpec(name=name)
        if version is not None:
            spec.version.value = int(version)
        elif label is not None:
            spec.version_label = label
        return spec

    def model_status(self, name):
        """Every version the server knows of model NAME, as version_status dicts, newest first."""
        request = self.msgs.GetModelStatusRequest(model_spec=self._spec(name))
        response = self.call(MODEL_SERVICE + "GetModelStatus", request, self.msgs.GetModelStatusResponse)
        result = []
        for entry in response.model_version_status:
            if entry.state not in STATE_NAMES:
                raise TFServingError(
                    MALFORMED,
                    f"gRPC GetModelStatus on {self.target} answered state number {entry.state} for version "
                    f"{entry.version} of model {name}, which TF Serving does not define.",
                    url=self.target,
                )
            result.append(
                version_status(
                    entry.version,
                    STATE_NAMES[entry.state],
                    ERROR_CODE_NAMES.get(entry.status.error_code, str(entry.status.error_code)),
                    entry.status.error_message,
                )
            )
        result.sort(key=lambda s: -s["version"])
        return result

    def label_version(self, name, label):
        """The version LABEL points at, resolved by the server (GetModelMetadata on the label).

        GetModelStatus ignores ModelSpec.version_label (GetModelStatusImpl only checks
        has_version()), so the metadata call is what resolves a label on the server.
        """
        request = self.msgs.GetModelMetadataRequest(
            model_spec=self._spec(name, label=label), metadata_field=["signature_def"]
        )
        response = self.call(
            PREDICTION_SERVICE + "GetModelMetadata", request, self.msgs.GetModelMetadataResponse
        )
        if not response.model_spec.HasField("version"):
            raise TFServingError(
                MALFORMED,
                f"gRPC GetModelMetadata on {self.target} answered without model_spec.version for label "
                f"{label} of model {name}.",
                url=self.target,
            )
        return response.model_spec.version.value

    def reload_config(self, config, timeout):
        """HandleReloadConfigRequest with a deadline; raise TFServingError when the server refuses."""
        request = self.msgs.ReloadConfigRequest(config=config)
        method = MODEL_SERVICE + "HandleReloadConfigRequest"
        response = self.call(method, request, self.msgs.ReloadConfigResponse, timeout=timeout)
        if response.status.error_code != 0:
            name = ERROR_CODE_NAMES.get(response.status.error_code, str(response.status.error_code))
            raise TFServingError(
                REJECTED,
                f"gRPC HandleReloadConfigRequest on {self.target} answered {name}: "
                f"{response.status.error_message}",
                code=name,
                server_message=response.status.error_message,
                url=self.target,
            )
        return response
