"""The TF Serving test double's gRPC API with tensorflow-serving-api's own stubs: ModelService
(GetModelStatus, HandleReloadConfigRequest) and PredictionService (Predict, GetModelMetadata, Classify,
Regress), including reloads that add and remove models and the version-label availability rule."""

from __future__ import annotations

import time

import grpc
import numpy as np
import pytest
import tensorflow as tf
from tensorflow_serving.apis import (
    classification_pb2,
    get_model_metadata_pb2,
    get_model_status_pb2,
    model_management_pb2,
    model_service_pb2_grpc,
    predict_pb2,
    prediction_service_pb2_grpc,
    regression_pb2,
)
from tensorflow_serving.config import model_server_config_pb2
from tfserving_double.testing import copy_model_version, start_double, write_models_config

pytestmark = [pytest.mark.integration, pytest.mark.tensorflow]

TWO_VERSIONS = "saved_model_half_plus_two_2_versions"
AVAILABLE, END = 30, 50


@pytest.fixture(scope="module")
def repo(tmp_path_factory):
    root = tmp_path_factory.mktemp("grpc")
    for version in ("00000123", "00000124"):
        copy_model_version(TWO_VERSIONS, version, root / "half_plus_two" / version)
    copy_model_version("saved_model_half_plus_three", "00000123", root / "half_plus_three" / "00000123")
    copy_model_version("saved_model_counter", "00000123", root / "counter" / "00000123")
    return root


def config_proto(models):
    config = model_server_config_pb2.ModelServerConfig()
    for name, base_path, policy, labels in models:
        entry = config.model_config_list.config.add(
            name=name, base_path=str(base_path), model_platform="tensorflow"
        )
        if policy:
            entry.model_version_policy.specific.versions.extend(policy)
        for label, version in labels.items():
            entry.version_labels[label] = version
    return config


@pytest.fixture(scope="module")
def double(repo):
    config = write_models_config(
        repo / "models.config",
        [
            {"name": "half_plus_two", "base_path": repo / "half_plus_two"},
            {"name": "counter", "base_path": repo / "counter"},
        ],
    )
    with start_double([f"--model_config_file={config}", "--file_system_poll_wait_seconds=1"]) as server:
        yield server


@pytest.fixture(scope="module")
def channel(double):
    with grpc.insecure_channel(double.grpc_target) as chan:
        grpc.channel_ready_future(chan).result(timeout=30)
        yield chan


@pytest.fixture
def prediction(channel):
    return prediction_service_pb2_grpc.PredictionServiceStub(channel)


@pytest.fixture
def models(channel):
    return model_service_pb2_grpc.ModelServiceStub(channel)


def status_of(models, name, version=None):
    request = get_model_status_pb2.GetModelStatusRequest()
    request.model_spec.name = name
    if version is not None:
        request.model_spec.version.value = version
    response = models.GetModelStatus(request, timeout=10)
    return [(v.version, v.state, v.status.error_code) for v in response.model_version_status]


def test_get_model_status(models):
    assert status_of(models, "half_plus_two") == [(124, AVAILABLE, 0)]
    with pytest.raises(grpc.RpcError) as caught:
        status_of(models, "half_plus_two", 7)
    assert caught.value.code() == grpc.StatusCode.NOT_FOUND
    assert caught.value.details() == "Could not find version 7 of model half_plus_two"


def test_predict(prediction):
    request = predict_pb2.PredictRequest()
    request.model_spec.name = "half_plus_two"
    request.inputs["x"].CopyFrom(tf.make_tensor_proto(np.array([1.0, 2.0, 5.0], dtype=np.float32)))
    response = prediction.Predict(request, timeout=10)
    assert response.model_spec.name == "half_plus_two"
    assert response.model_spec.version.value == 124
    assert response.model_spec.signature_name == "serving_default"
    assert list(response.outputs) == ["y"]
    assert tf.make_ndarray(response.outputs["y"]).tolist() == [2.5, 3.0, 4.5]
    assert list(response.outputs["y"].float_val) == [2.5, 3.0, 4.5]  # AsProtoField, as TF Serving answers


def test_predict_errors(prediction):
    request = predict_pb2.PredictRequest()
    request.model_spec.name = "half_plus_two"
    request.model_spec.signature_name = "nope"
    request.inputs["x"].CopyFrom(tf.make_tensor_proto(np.array([1.0], dtype=np.float32)))
    with pytest.raises(grpc.RpcError) as caught:
        prediction.Predict(request, timeout=10)
    assert caught.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    assert caught.value.details() == 'Serving signature key "nope" not found.'
    request.model_spec.signature_name = ""
    request.inputs["z"].CopyFrom(tf.make_tensor_proto(np.array([1.0], dtype=np.float32)))
    with pytest.raises(grpc.RpcError) as caught:
        prediction.Predict(request, timeout=10)
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert caught.value.details() == (
        "input size does not match signature: 2!=1 len({x,z}) != len({x}). "
        "Sent extra: {z}. Missing but required: {}."
    )
    request.model_spec.name = "nope"
    with pytest.raises(grpc.RpcError) as caught:
        prediction.Predict(request, timeout=10)
    assert caught.value.code() == grpc.StatusCode.NOT_FOUND
    assert caught.value.details() == "Servable not found for request: Latest(nope)"


def test_predict_runs_a_stateful_model(prediction):
    def call(signature, delta=None):
        request = predict_pb2.PredictRequest()
        request.model_spec.name = "counter"
        request.model_spec.signature_name = signature
        if delta is not None:
            request.inputs["delta"].CopyFrom(tf.make_tensor_proto(np.float32(delta)))
        return tf.make_ndarray(prediction.Predict(request, timeout=10).outputs["output"]).item()

    call("reset_counter")
    assert call("incr_counter") == 1.0
    assert call("incr_counter_by", 3.0) == 4.0
    assert call("get_counter") == 4.0


def test_get_model_metadata(prediction):
    request = get_model_metadata_pb2.GetModelMetadataRequest()
    request.model_spec.name = "half_plus_two"
    request.metadata_field.append("signature_def")
    response = prediction.GetModelMetadata(request, timeout=10)
    assert response.model_spec.version.value == 124
    signatures = get_model_metadata_pb2.SignatureDefMap()
    response.metadata["signature_def"].Unpack(signatures)
    assert sorted(signatures.signature_def) == [
        "classify_x2_to_y3",
        "classify_x_to_y",
        "regress_x2_to_y3",
        "regress_x_to_y",
        "regress_x_to_y2",
        "serving_default",
    ]
    assert signatures.signature_def["serving_default"].inputs["x"].name == "x:0"
    request.ClearField("metadata_field")
    with pytest.raises(grpc.RpcError) as caught:
        prediction.GetModelMetadata(request, timeout=10)
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert caught.value.details() == "GetModelMetadataRequest must specify at least one metadata_field"


def _example(x):
    return tf.train.Example(
        features=tf.train.Features(feature={"x": tf.train.Feature(float_list=tf.train.FloatList(value=[x]))})
    )


def test_classify_and_regress(prediction):
    request = regression_pb2.RegressionRequest()
    request.model_spec.name = "half_plus_two"
    request.model_spec.signature_name = "regress_x_to_y"
    request.input.example_list.examples.extend([_example(80.0), _example(4.0)])
    response = prediction.Regress(request, timeout=10)
    assert [r.value for r in response.result.regressions] == [42.0, 4.0]
    request = classification_pb2.ClassificationRequest()
    request.model_spec.name = "half_plus_two"
    request.model_spec.signature_name = "classify_x_to_y"
    request.input.example_list.examples.append(_example(80.0))
    response = prediction.Classify(request, timeout=10)
    assert [(c.label, c.score) for c in response.result.classifications[0].classes] == [("", 42.0)]


def reload(models, config, timeout=60):
    request = model_management_pb2.ReloadConfigRequest()
    request.config.CopyFrom(config)
    return models.HandleReloadConfigRequest(request, timeout=timeout)


def eventually(probe, expected, timeout=30.0):
    deadline = time.monotonic() + timeout
    while True:
        value = probe()
        if value == expected or time.monotonic() > deadline:
            return value
        time.sleep(0.1)


def test_reload_adds_and_removes_models_and_enforces_labels(models, prediction, repo):
    two, three, counter = repo / "half_plus_two", repo / "half_plus_three", repo / "counter"
    both = [123, 124]
    # Add half_plus_three and pin half_plus_two to 123: the call returns once the new model is loaded.
    response = reload(
        models,
        config_proto(
            [
                ("half_plus_two", two, [123], {}),
                ("half_plus_three", three, None, {}),
                ("counter", counter, None, {}),
            ]
        ),
    )
    assert response.status.error_code == 0
    assert status_of(models, "half_plus_three") == [(123, AVAILABLE, 0)]
    assert eventually(lambda: status_of(models, "half_plus_two"), [(124, END, 0), (123, AVAILABLE, 0)]) == [
        (124, END, 0),
        (123, AVAILABLE, 0),
    ]
    # Loading 124 and labelling it in the same change is refused: labels need an AVAILABLE version.
    with pytest.raises(grpc.RpcError) as caught:
        reload(
            models,
            config_proto(
                [
                    ("half_plus_two", two, both, {"canary": 124}),
                    ("half_plus_three", three, None, {}),
                    ("counter", counter, None, {}),
                ]
            ),
        )
    assert caught.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    assert caught.value.details() == (
        "Request to assign label to version 124 of model half_plus_two, which is "
        "not currently available for inference"
    )
    # The documented way: serve both versions first, then point the labels.
    reload(
        models,
        config_proto(
            [
                ("half_plus_two", two, both, {}),
                ("half_plus_three", three, None, {}),
                ("counter", counter, None, {}),
            ]
        ),
    )
    assert eventually(
        lambda: status_of(models, "half_plus_two"), [(124, AVAILABLE, 0), (123, AVAILABLE, 0)]
    ) == [(124, AVAILABLE, 0), (123, AVAILABLE, 0)]
    reload(
        models,
        config_proto(
            [
                ("half_plus_two", two, both, {"stable": 123, "canary": 124}),
                ("half_plus_three", three, None, {}),
                ("counter", counter, None, {}),
            ]
        ),
    )
    request = predict_pb2.PredictRequest()
    request.model_spec.name = "half_plus_two"
    request.inputs["x"].CopyFrom(tf.make_tensor_proto(np.array([1.0], dtype=np.float32)))
    for label, version in (("stable", 123), ("canary", 124)):
        request.model_spec.version_label = label
        assert prediction.Predict(request, timeout=10).model_spec.version.value == version
    # Remove half_plus_three: its version is unloaded and stays listed as END.
    reload(
        models,
        config_proto(
            [("half_plus_two", two, both, {"stable": 123, "canary": 124}), ("counter", counter, None, {})]
        ),
    )
    assert eventually(lambda: status_of(models, "half_plus_three"), [(123, END, 0)]) == [(123, END, 0)]
    # A config that is not a ModelConfigList is refused.
    with pytest.raises(grpc.RpcError) as caught:
        reload(models, model_server_config_pb2.ModelServerConfig())
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert caught.value.details() == (
        "ServerModelConfig type not supported by HandleReloadConfigRequest. Only "
        "ModelConfigList is currently supported"
    )


def test_reload_of_a_missing_base_path_hangs_until_the_deadline(models, repo):
    """TF Serving waits for new models to load; a missing base path never loads (callers need a deadline)."""
    config = config_proto(
        [
            ("half_plus_two", repo / "half_plus_two", [123, 124], {}),
            ("counter", repo / "counter", None, {}),
            ("ghost", repo / "does-not-exist", None, {}),
        ]
    )
    with pytest.raises(grpc.RpcError) as caught:
        reload(models, config, timeout=3)
    assert caught.value.code() == grpc.StatusCode.DEADLINE_EXCEEDED
