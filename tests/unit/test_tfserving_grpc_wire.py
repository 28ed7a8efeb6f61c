"""The modules' TensorFlow-free gRPC schema against TF Serving's real classes (tensorflow-serving-api).

Importing tensorflow_serving pulls in TensorFlow, hence the `tensorflow` marker.
"""

from __future__ import annotations

from concurrent import futures

import grpc
import pytest
from ansible_collections.tfserving.fleet.plugins.module_utils import tfserving_grpc
from ansible_collections.tfserving.fleet.plugins.module_utils.tfserving_grpc import (
    GrpcClient,
    config_to_text,
    messages,
)
from google.protobuf import descriptor_pb2, text_format
from tensorflow_serving.apis import (
    get_model_metadata_pb2,
    get_model_status_pb2,
    model_management_pb2,
    model_pb2,
    model_service_pb2_grpc,
    prediction_service_pb2_grpc,
    status_pb2,
)
from tensorflow_serving.config import (
    file_system_storage_path_source_pb2,
    log_collector_config_pb2,
    logging_config_pb2,
    model_server_config_pb2,
)

pytestmark = pytest.mark.tensorflow

REAL_MODULES = [
    model_pb2,
    status_pb2,
    get_model_status_pb2,
    get_model_metadata_pb2,
    model_management_pb2,
    model_server_config_pb2,
    file_system_storage_path_source_pb2,
    logging_config_pb2,
    log_collector_config_pb2,
]

RICH_CONFIG = """
model_config_list {
  config {
    name: "half_plus_two"
    base_path: "/models/half_plus_two"
    model_platform: "tensorflow"
    model_version_policy { specific { versions: 123 versions: 124 } }
    version_labels { key: "stable" value: 123 }
    version_labels { key: "canary" value: 124 }
    logging_config {
      log_collector_config { type: "file" filename_prefix: "/tmp/log" }
      sampling_config {
        sampling_rate: 0.25
        attributes: 1
        per_task_sampling_configs { dc: "eu" task_index: 0 sampling_rate: 0.5 }
      }
    }
  }
  config {
    name: "tf2"
    base_path: "gs://bucket/tf2"
    model_platform: "tensorflow"
    model_version_policy { latest { num_versions: 2 } }
  }
  config {
    name: "all"
    base_path: "/models/all"
    model_platform: "tensorflow"
    model_type: TENSORFLOW
    model_version_policy { all {} }
  }
}
"""


def _parse_with_our_schema(text):
    """models.config text as a ModelServerConfig of this module's schema, read by protobuf's own text
    parser: what is compared with TF Serving's classes is the schema alone."""
    msgs = messages()
    return text_format.Parse(text, msgs.ModelServerConfig(), descriptor_pool=msgs.pool)


def _real_messages():
    found = {}
    for module in REAL_MODULES:
        for name, descriptor in module.DESCRIPTOR.message_types_by_name.items():
            found[name] = descriptor
    return found


def _field_view(descriptor):
    proto = descriptor_pb2.DescriptorProto()
    descriptor.CopyToProto(proto)
    return proto


def _fields(proto):
    return sorted(
        (
            f.name,
            f.number,
            f.type,
            f.label,
            f.type_name,
            proto.oneof_decl[f.oneof_index].name if f.HasField("oneof_index") else None,
            f.proto3_optional,
        )
        for f in proto.field
    )


def _compare(mine, theirs, path):
    assert _fields(mine) == _fields(theirs), path
    assert mine.options.map_entry == theirs.options.map_entry, path
    assert sorted((e.name, [(v.name, v.number) for v in e.value]) for e in mine.enum_type) == sorted(
        (e.name, [(v.name, v.number) for v in e.value]) for e in theirs.enum_type
    ), path
    theirs_nested = {n.name: n for n in theirs.nested_type}
    for nested in mine.nested_type:
        assert nested.name in theirs_nested, f"{path}.{nested.name} is not in TF Serving's schema"
        _compare(nested, theirs_nested[nested.name], f"{path}.{nested.name}")


def test_every_message_matches_tf_serving_field_by_field():
    _, serving = tfserving_grpc.file_descriptor_protos()
    theirs = _real_messages()
    assert serving.package == "tensorflow.serving"
    for mine in serving.message_type:
        if mine.name == "FileSystemStoragePathSourceConfig":
            # Only its nested ServableVersionPolicy is used; compare that part.
            real_policy = {n.name: n for n in _field_view(theirs[mine.name]).nested_type}[
                "ServableVersionPolicy"
            ]
            _compare(mine.nested_type[0], real_policy, "ServableVersionPolicy")
            continue
        assert mine.name in theirs, mine.name
        _compare(mine, _field_view(theirs[mine.name]), mine.name)


def test_enums_match_tf_serving():
    errors, serving = tfserving_grpc.file_descriptor_protos()
    real_code = status_pb2.StatusProto.DESCRIPTOR.fields_by_name["error_code"].enum_type
    assert real_code.full_name == "tensorflow.error.Code"
    assert [(v.name, v.number) for v in errors.enum_type[0].value] == sorted(
        ((v.name, v.number) for v in real_code.values), key=lambda item: item[1]
    )
    real_type = model_server_config_pb2.DESCRIPTOR.enum_types_by_name["ModelType"]
    assert [(v.name, v.number) for v in serving.enum_type[0].value] == [
        (v.name, v.number) for v in real_type.values
    ]


def test_models_config_text_encodes_to_the_same_bytes():
    mine = _parse_with_our_schema(RICH_CONFIG)
    theirs = text_format.Parse(RICH_CONFIG, model_server_config_pb2.ModelServerConfig())
    assert mine.SerializeToString(deterministic=True) == theirs.SerializeToString(deterministic=True)
    back = model_server_config_pb2.ModelServerConfig.FromString(mine.SerializeToString())
    assert back == theirs
    assert text_format.Parse(config_to_text(mine), model_server_config_pb2.ModelServerConfig()) == theirs


def test_the_testdata_config_parses_the_same(tmp_path):
    from conftest import TESTDATA

    text = (TESTDATA / "tfserving" / "good_model_config.txt").read_text()
    mine = _parse_with_our_schema(text)
    theirs = text_format.Parse(text, model_server_config_pb2.ModelServerConfig())
    assert mine.SerializeToString(deterministic=True) == theirs.SerializeToString(deterministic=True)


def test_requests_and_responses_cross_decode():
    msgs = messages()
    request = msgs.GetModelStatusRequest()
    request.model_spec.name = "m"
    request.model_spec.version.value = 124
    request.model_spec.signature_name = "serving_default"
    real_request = get_model_status_pb2.GetModelStatusRequest.FromString(request.SerializeToString())
    assert real_request.model_spec.version.value == 124 and real_request.model_spec.name == "m"

    label = msgs.GetModelMetadataRequest(metadata_field=["signature_def"])
    label.model_spec.name = "m"
    label.model_spec.version_label = "stable"
    real_label = get_model_metadata_pb2.GetModelMetadataRequest.FromString(label.SerializeToString())
    assert real_label.model_spec.WhichOneof("version_choice") == "version_label"
    assert real_label.model_spec.version_label == "stable" and list(real_label.metadata_field) == [
        "signature_def"
    ]

    response = get_model_status_pb2.GetModelStatusResponse()
    entry = response.model_version_status.add(version=123, state=get_model_status_pb2.ModelVersionStatus.END)
    entry.status.error_code = 2
    entry.status.error_message = "load failed"
    mine = msgs.GetModelStatusResponse.FromString(response.SerializeToString())
    assert (mine.model_version_status[0].version, mine.model_version_status[0].state) == (123, 50)
    assert mine.model_version_status[0].status.error_message == "load failed"

    reload_response = model_management_pb2.ReloadConfigResponse()
    reload_response.status.error_code = 9
    reload_response.status.error_message = "Request to assign label to version 124 of model m"
    assert msgs.ReloadConfigResponse.FromString(reload_response.SerializeToString()).status.error_code == 9


class _RealModelService(model_service_pb2_grpc.ModelServiceServicer):
    def __init__(self):
        self.reloads = []

    def GetModelStatus(self, request, context):
        response = get_model_status_pb2.GetModelStatusResponse()
        entry = response.model_version_status.add(
            version=request.model_spec.version.value or 7,
            state=get_model_status_pb2.ModelVersionStatus.AVAILABLE,
        )
        entry.status.error_message = ""
        return response

    def HandleReloadConfigRequest(self, request, context):
        self.reloads.append(request)
        return model_management_pb2.ReloadConfigResponse()


class _RealPredictionService(prediction_service_pb2_grpc.PredictionServiceServicer):
    def GetModelMetadata(self, request, context):
        response = get_model_metadata_pb2.GetModelMetadataResponse()
        response.model_spec.name = request.model_spec.name
        response.model_spec.version.value = 42 if request.model_spec.version_label == "stable" else 0
        response.metadata["signature_def"].Pack(get_model_metadata_pb2.SignatureDefMap())
        return response


def test_client_talks_to_tf_servings_own_generated_servicers():
    service = _RealModelService()
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=2))
    model_service_pb2_grpc.add_ModelServiceServicer_to_server(service, server)
    prediction_service_pb2_grpc.add_PredictionServiceServicer_to_server(_RealPredictionService(), server)
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    client = GrpcClient("127.0.0.1", port, timeout=5)
    try:
        assert client.model_status("m") == [
            {"version": 7, "state": "AVAILABLE", "error_code": "OK", "error_message": ""}
        ]
        assert client.label_version("m", "stable") == 42
        client.reload_config(_parse_with_our_schema(RICH_CONFIG), timeout=5)
    finally:
        client.close()
        server.stop(None)
    received = service.reloads[0].config
    assert received == text_format.Parse(RICH_CONFIG, model_server_config_pb2.ModelServerConfig())
