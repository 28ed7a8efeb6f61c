"""tfserving-export from-onnx (the 'onnx' extra): an ONNX model built here, checked against ONNX Runtime."""

from __future__ import annotations

import json

import numpy as np

# The 'onnx' extra is a hard requirement of the test suite (scripts/venv.sh installs it): a missing
# package fails the import here instead of skipping the from-onnx tests.
import onnx2tf  # noqa: F401  (from-onnx imports it; fail early and by name)
import onnxruntime
import pytest
from export_models import onnx_conv_model, tf, tree

from tfserving_export.cli import main

pytestmark = pytest.mark.tensorflow


@pytest.fixture(scope="module")
def onnx_model(tmp_path_factory):
    path = onnx_conv_model(tmp_path_factory.mktemp("onnx") / "convnet.onnx")
    pixels = np.random.default_rng(5).standard_normal((3, 2, 6, 6)).astype(np.float32)
    features, probability = onnxruntime.InferenceSession(str(path)).run(None, {"pixels": pixels})
    return path, {"pixels": pixels, "features": features, "probability": probability}


def test_onnx_model_keeps_its_nchw_layout_takes_the_new_names_and_answers_like_onnx_runtime(
        onnx_model, tmp_path, capsys):
    source, reference = onnx_model
    base = tmp_path / "convnet"
    code = main(["from-onnx", str(source), "-o", str(base), "--input", "image=pixels",
                 "--output", "embedding=features", "--json"])
    result = json.loads(capsys.readouterr().out)
    assert code == 0, result
    assert result["signature"]["inputs"]["image"]["shape"] == [-1, 2, 6, 6]
    assert set(result["signature"]["outputs"]) == {"embedding", "probability"}
    assert result["verification"]["verified"] is True

    signature = tf.saved_model.load(str(base / "1"), tags=["serve"]).signatures["serving_default"]
    out = signature(image=tf.constant(reference["pixels"]))
    np.testing.assert_allclose(out["embedding"].numpy(), reference["features"], rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(out["probability"].numpy(), reference["probability"], rtol=1e-4, atol=1e-5)
    assert [p for p in tree(base) if p.startswith(".")] == []  # onnx2tf's scratch files are gone


def test_channels_last_takes_nhwc_input(onnx_model, tmp_path, capsys):
    source, reference = onnx_model
    base = tmp_path / "nhwc"
    assert main(["from-onnx", str(source), "-o", str(base), "--channels-last", "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["signature"]["inputs"]["pixels"]["shape"] == [-1, 6, 6, 2]
    signature = tf.saved_model.load(str(base / "1")).signatures["serving_default"]
    out = signature(pixels=tf.constant(np.moveaxis(reference["pixels"], 1, -1)))
    np.testing.assert_allclose(out["probability"].numpy(), reference["probability"], rtol=1e-4, atol=1e-5)


def test_a_file_that_is_not_onnx_and_an_unsupported_operator_are_refused(tmp_path, capsys):
    import onnx
    from onnx import TensorProto, helper

    garbage = tmp_path / "model.onnx"
    garbage.write_bytes(b"definitely not protobuf")
    base = tmp_path / "m"
    assert main(["from-onnx", str(garbage), "-o", str(base)]) == 1
    assert f"{garbage} is not a valid ONNX model" in capsys.readouterr().err

    node = helper.make_node("Frobnicate", ["x"], ["y"], domain="com.example")
    graph = helper.make_graph([node], "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["n", 3])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["n", 3])])
    custom = tmp_path / "custom.onnx"
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13),
                                                      helper.make_opsetid("com.example", 1)]), str(custom))
    assert main(["from-onnx", str(custom), "-o", str(base)]) == 1
    err = capsys.readouterr().err
    assert "onnx2tf could not convert" in err and "Frobnicate" in err
    assert not base.exists()
