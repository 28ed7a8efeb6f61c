"""docs/clients/ against the TF Serving test double: the REST client, the tensorflow-serving-api gRPC
client and the grpcio-only gRPC client call half_plus_two by name, signature, version and label, as
commands (the way the README shows them) and as modules.

The double serves saved_model_half_plus_two_2_versions (TF Serving's own test model, y = 0.5x + 2):
versions 123 and 124, labels stable=123, canary=124.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
from conftest import ROOT
from tfserving_double.testing import copy_model_version, start_double, write_models_config

pytestmark = [pytest.mark.integration, pytest.mark.tensorflow]

CLIENTS = ROOT / "docs" / "clients"
if str(CLIENTS) not in sys.path:
    sys.path.insert(0, str(CLIENTS))

import grpc  # noqa: E402
import grpc_client_no_tf  # noqa: E402
import rest_client  # noqa: E402

MODEL = "half_plus_two"
X = [1.0, 2.0, 5.0]
Y = [2.5, 3.0, 4.5]


@pytest.fixture(scope="module")
def double(tmp_path_factory):
    root = tmp_path_factory.mktemp("clients")
    for version in ("00000123", "00000124"):
        copy_model_version("saved_model_half_plus_two_2_versions", version, root / MODEL / version)
    config = write_models_config(
        root / "models.config",
        [
            {
                "name": MODEL,
                "base_path": root / MODEL,
                "policy": "specific { versions: 123 versions: 124 }",
                "labels": {"stable": 123, "canary": 124},
            }
        ],
    )
    with start_double([f"--model_config_file={config}", "--allow_version_labels_for_unavailable_models"]) as server:
        yield server


def cli(script, *args):
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3")
    proc = subprocess.run(
        [sys.executable, str(CLIENTS / script), *args], capture_output=True, text=True, timeout=120, env=env
    )
    return proc.returncode, proc.stdout.strip(), proc.stderr


# -- REST --------------------------------------------------------------------------------------------------


def test_rest_command_predicts_by_name_signature_and_label(double):
    base = ["--url", double.rest_url, "--model", MODEL, "--signature", "serving_default"]
    assert cli("rest_client.py", *base, "--instances", json.dumps(X))[:2] == (0, json.dumps(Y))
    assert cli("rest_client.py", *base, "--label", "stable", "--instances", json.dumps(X))[:2] == (0, json.dumps(Y))
    assert cli("rest_client.py", *base, "--version", "124", "--instances", "[[1.0], [3.0]]")[:2] == (
        0,
        "[[2.5], [3.5]]",
    )


def test_rest_command_status_and_errors(double):
    code, out, _ = cli("rest_client.py", "--url", double.rest_url, "--model", MODEL, "--status")
    assert code == 0
    assert [(v["version"], v["state"]) for v in json.loads(out)] == [("124", "AVAILABLE"), ("123", "AVAILABLE")]
    code, out, _ = cli("rest_client.py", "--url", double.rest_url, "--model", MODEL, "--status", "--label", "canary")
    assert (code, json.loads(out)) == (0, {"label": "canary", "version": 124})
    code, out, err = cli(
        "rest_client.py", "--url", double.rest_url, "--model", MODEL, "--version", "125", "--instances", "[1.0]"
    )
    assert (code, out) == (1, "")
    assert err.strip() == f"{MODEL}: HTTP 404: Servable not found for request: Specific({MODEL}, 125)"


def test_rest_client_module(double):
    client = rest_client.TFServingREST(double.rest_url, timeout=10)
    assert client.predict(MODEL, X) == Y
    assert client.predict(MODEL, {"x": X}, columnar=True) == Y
    assert client.predict(MODEL, X, label="canary") == Y
    assert client.available_versions(MODEL) == [123, 124]
    assert [v["version"] for v in client.status(MODEL, version=123)] == ["123"]
    # TF Serving's status ignores labels; the metadata call resolves them.
    assert (client.label_version(MODEL, "stable"), client.label_version(MODEL, "canary")) == (123, 124)
    signatures = client.metadata(MODEL)["metadata"]["signature_def"]["signature_def"]
    assert {"serving_default", "regress_x_to_y", "classify_x_to_y"} <= set(signatures)
    with pytest.raises(rest_client.TFServingError) as err:
        client.predict(MODEL, X, label="nope")
    assert (err.value.status, err.value.message) == (400, "Unrecognized servable version label: nope")
    with pytest.raises(rest_client.TFServingError) as err:
        client.status("nope")
    assert (err.value.status, err.value.message) == (404, "Could not find any versions of model nope")
    with pytest.raises(ValueError):
        client.predict(MODEL, X, version=123, label="stable")


# -- gRPC with tensorflow-serving-api ----------------------------------------------------------------------


def test_grpc_command_predicts_and_reports_status(double):
    base = ["--target", double.grpc_target, "--model", MODEL]
    code, out, err = cli(
        "grpc_client.py", *base, "--signature", "serving_default", "--input", "x", "--values", json.dumps(X)
    )
    assert (code, json.loads(out or "null")) == (0, {"y": Y}), err[-2000:]
    code, out, err = cli("grpc_client.py", *base, "--status")
    assert (code, json.loads(out or "null")) == (0, [[124, "AVAILABLE"], [123, "AVAILABLE"]]), err[-2000:]
    code, out, err = cli("grpc_client.py", *base, "--status", "--label", "stable")
    assert (code, json.loads(out or "null")) == (0, {"label": "stable", "version": 123}), err[-2000:]


def test_grpc_client_module_by_version_and_label(double):
    import grpc_client
    import numpy as np

    with grpc.insecure_channel(double.grpc_target) as channel:
        out = grpc_client.predict(channel, MODEL, {"x": np.array(X, np.float32)}, version=123)
        assert out["y"].tolist() == Y
        out = grpc_client.predict(channel, MODEL, {"x": np.array([[1.0], [3.0]], np.float32)}, label="canary")
        assert out["y"].tolist() == [[2.5], [3.5]]
        assert grpc_client.model_status(channel, MODEL, version=124) == [(124, "AVAILABLE")]
        assert grpc_client.label_version(channel, MODEL, "canary") == 124
        with pytest.raises(grpc.RpcError) as err:
            grpc_client.predict(channel, MODEL, {"x": np.array(X, np.float32)}, version=125)
        assert err.value.code() == grpc.StatusCode.NOT_FOUND
        assert err.value.details() == f"Servable not found for request: Specific({MODEL}, 125)"


# -- gRPC with grpcio only ---------------------------------------------------------------------------------


def test_grpc_no_tf_command(double):
    base = ["--target", double.grpc_target, "--model", MODEL, "--input", "x"]
    assert cli("grpc_client_no_tf.py", *base, "--values", json.dumps(X))[:2] == (0, json.dumps({"y": Y}))
    code, out, _ = cli("grpc_client_no_tf.py", *base, "--label", "canary", "--values", "[[1.0], [2.0]]")
    assert (code, json.loads(out)) == (0, {"y": [[2.5], [3.0]]})
    code, out, err = cli("grpc_client_no_tf.py", "--target", double.grpc_target, "--model", "nope", "--values", "[1.0]")
    assert (code, out) == (1, "")
    assert err.strip() == "nope: NOT_FOUND: Servable not found for request: Latest(nope)"


def test_grpc_no_tf_module_signature_and_deadline(double):
    with grpc.insecure_channel(double.grpc_target) as channel:
        assert grpc_client_no_tf.predict(channel, MODEL, {"x": X}, signature_name="serving_default") == {"y": Y}
        assert grpc_client_no_tf.predict(channel, MODEL, {"x": X}, version=124) == {"y": Y}
        with pytest.raises(grpc.RpcError) as err:
            grpc_client_no_tf.predict(channel, MODEL, {"x": X}, signature_name="no_such_signature")
        assert err.value.code() == grpc.StatusCode.FAILED_PRECONDITION
        assert err.value.details() == 'Serving signature key "no_such_signature" not found.'
    with pytest.raises(ValueError, match="ragged"):
        grpc_client_no_tf.predict(None, MODEL, {"x": [[1.0], [1.0, 2.0]]})


def test_grpc_no_tf_client_never_imports_tensorflow():
    code = (
        "import sys; sys.path.insert(0, sys.argv[1]); import grpc_client_no_tf; "
        "loaded = sorted(m for m in sys.modules if m.split('.')[0] in ('tensorflow', 'tensorflow_serving', 'numpy')); "
        "print(loaded)"
    )
    proc = subprocess.run([sys.executable, "-c", code, str(CLIENTS)], capture_output=True, text=True, timeout=60)
    assert (proc.returncode, proc.stdout.strip()) == (0, "[]"), proc.stderr


def test_grpc_no_tf_messages_are_tf_servings_on_the_wire():
    """Bytes of the grpcio-only messages parse as tensorflow-serving-api's, and back; both tensor encodings
    (typed values, packed tensor_content) of every dtype the client reads decode to the same values."""
    import numpy as np
    import tensorflow as tf
    from tensorflow.core.framework import tensor_pb2
    from tensorflow_serving.apis import predict_pb2

    mine = grpc_client_no_tf.PredictRequest()
    mine.model_spec.name = MODEL
    mine.model_spec.signature_name = "serving_default"
    mine.model_spec.version_label = "canary"
    tensor = mine.inputs["x"]
    tensor.dtype = grpc_client_no_tf.DT_FLOAT
    tensor.tensor_shape.dim.add(size=3)
    tensor.float_val.extend(X)
    real = predict_pb2.PredictRequest.FromString(mine.SerializeToString())
    assert real.model_spec.version_label == "canary" and real.model_spec.signature_name == "serving_default"
    assert tf.make_ndarray(real.inputs["x"]).tolist() == X
    assert real.SerializeToString(deterministic=True) == mine.SerializeToString(deterministic=True)

    values = {
        np.float32: ("float_val", [[0.5, 1.5], [2.5, -3.0]]),
        np.float64: ("double_val", [[0.25, 1e300], [2.0, -3.0]]),
        np.int32: ("int_val", [[1, -2], [3, 2**31 - 1]]),
        np.int64: ("int64_val", [[1, -2], [3, 2**40]]),
        np.bool_: ("bool_val", [[True, False], [False, True]]),
    }
    for dtype, (field, data) in values.items():
        array = np.array(data, dtype)
        # Packed little-endian bytes, as tf.make_tensor_proto writes numeric arrays.
        packed = tensor_pb2.TensorProto(dtype=tf.as_dtype(dtype).as_datatype_enum, tensor_content=array.tobytes())
        packed.tensor_shape.CopyFrom(tf.TensorShape(array.shape).as_proto())
        # Typed fields, as TF Serving's Tensor::AsProtoField writes them (and the double does).
        typed = tensor_pb2.TensorProto(dtype=packed.dtype, tensor_shape=packed.tensor_shape)
        getattr(typed, field).extend(np.array(data, dtype).flatten().tolist())
        # The TensorProto shorthand: trailing values equal to the last one may be left out.
        short = tensor_pb2.TensorProto(dtype=packed.dtype, tensor_shape=packed.tensor_shape)
        getattr(short, field).extend([data[0][0], data[0][1], data[1][0], data[1][1]][:3])
        if data[1][0] == data[1][1]:
            raise AssertionError("test data must differ in the last two values")
        for name, proto in (("packed", packed), ("typed", typed)):
            response = predict_pb2.PredictResponse()
            response.outputs["y"].CopyFrom(proto)
            parsed = grpc_client_no_tf.PredictResponse.FromString(response.SerializeToString())
            assert grpc_client_no_tf._decode(parsed.outputs["y"]) == data, (dtype, name)
            assert np.array_equal(tf.make_ndarray(proto), np.array(data, dtype))
        response = predict_pb2.PredictResponse()
        response.outputs["y"].CopyFrom(short)
        parsed = grpc_client_no_tf.PredictResponse.FromString(response.SerializeToString())
        expected = [data[0], [data[1][0], data[1][0]]]
        assert grpc_client_no_tf._decode(parsed.outputs["y"]) == expected, dtype
        assert tf.make_ndarray(short).tolist() == expected
