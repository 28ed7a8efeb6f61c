"""The tfserving_export Ansible module: main() driven with patch_module_args, real conversions."""

from __future__ import annotations

import json
import sys

import numpy as np
import pytest
from ansible.module_utils.testing import patch_module_args
from export_imports import load_ansible_module
from export_models import frozen_graph, keras_sequential, tf, tree

pytestmark = pytest.mark.tensorflow

module = load_ansible_module()


def run_main(capsys, args):
    with patch_module_args(args), pytest.raises(SystemExit) as exit_info:
        module.main()
    return exit_info.value.code, json.loads(capsys.readouterr().out)


@pytest.fixture(scope="module")
def frozen(tmp_path_factory):
    return frozen_graph(tmp_path_factory.mktemp("graph") / "frozen.pb")


def graphdef_args(source, base, **extra):
    return {"format": "graphdef", "src": str(source), "base_path": str(base),
            "inputs": {"features": "input:0"}, "outputs": {"probabilities": "head/probs:0"}, **extra}


def test_check_mode_says_what_would_be_written_and_writes_nothing(frozen, tmp_path, capsys):
    source, _ = frozen
    base = tmp_path / "repo" / "classifier"
    code, result = run_main(capsys, graphdef_args(source, base, _ansible_check_mode=True, _ansible_diff=True))
    assert code == 0, result
    assert result["changed"] is True and result["version"] == 1 and result["path"] == str(base / "1")
    assert result["msg"] == f"would write version 1 to {base / '1'} (next free version is 1)"
    assert result["diff"]["before"] == "" and result["diff"]["after"] == "1/\n"
    assert not (tmp_path / "repo").exists()


def test_export_then_rerun_is_idempotent(frozen, tmp_path, capsys):
    source, reference = frozen
    base = tmp_path / "classifier"
    code, result = run_main(capsys, graphdef_args(source, base, _ansible_diff=True))
    assert code == 0, result
    assert result["changed"] is True and result["version"] == 1
    assert result["signature"]["inputs"]["features"]["shape"] == [-1, 3]
    assert result["verification"]["verified"] is True
    assert result["diff"]["after"] == "1/\n"
    graph = tf.Graph()
    with graph.as_default(), tf.compat.v1.Session(graph=graph) as session:
        meta = tf.compat.v1.saved_model.loader.load(session, ["serve"], str(base / "1"))
        sig = meta.signature_def["serving_default"]
        probs = session.run(sig.outputs["probabilities"].name, {sig.inputs["features"].name: reference["x"]})
    np.testing.assert_allclose(probs, reference["probs"], rtol=1e-6, atol=1e-6)

    code, again = run_main(capsys, graphdef_args(source, base))
    assert code == 0 and again["changed"] is False and again["version"] == 1
    code, checked = run_main(capsys, graphdef_args(source, base, _ansible_check_mode=True))
    assert code == 0 and checked["changed"] is False


def test_keras_source_with_an_explicit_version(tmp_path, capsys):
    source = tmp_path / "seq.keras"
    keras_sequential().save(source)
    base = tmp_path / "seq"
    code, result = run_main(capsys, {"format": "keras", "src": str(source), "base_path": str(base),
                                     "version": 42, "outputs": {"scores": "logits"}})
    assert code == 0, result
    assert result["path"] == str(base / "42") and list(result["signature"]["outputs"]) == ["scores"]


def test_failures_say_what_was_wrong_and_write_nothing(frozen, tmp_path, capsys):
    source, _ = frozen
    base = tmp_path / "repo" / "m"
    code, result = run_main(capsys, graphdef_args(tmp_path / "missing.pb", base))
    assert code == 1 and result["failed"] is True
    assert f"source model {tmp_path / 'missing.pb'} does not exist" in result["msg"]
    code, result = run_main(capsys, graphdef_args(source, base, inputs={"features": "nope:0"}))
    assert code == 1 and "input tensor 'nope:0' is not in the graph" in result["msg"]
    assert "Traceback" not in result["msg"]
    code, result = run_main(capsys, {"format": "graphdef", "src": str(source), "base_path": str(base)})
    assert code == 1 and "format=graphdef needs the tensors to feed and fetch" in result["msg"]
    code, result = run_main(capsys, graphdef_args(source, base, inputs={"bad name!": "input:0"}))
    assert code == 1 and "invalid input mapping" in result["msg"]
    assert tree(tmp_path / "repo") == []


@pytest.mark.parametrize("missing,says", [
    ("tensorflow", "Failed to import the required Python library (tensorflow)"),
    ("tfserving_export.api", "Failed to import the required Python library (tfserving_export)"),
])
def test_missing_python_libraries_are_reported_with_the_install_command(frozen, tmp_path, capsys, monkeypatch,
                                                                         missing, says):
    source, _ = frozen
    monkeypatch.setitem(sys.modules, missing, None)  # makes `import <missing>` raise ImportError
    code, result = run_main(capsys, graphdef_args(source, tmp_path / "m"))
    assert code == 1 and says in result["msg"]
    assert "pip install 'tfserving-ansible[export]'" in result["msg"]
    assert not (tmp_path / "m").exists()


def test_onnx_without_onnx2tf_names_the_onnx_extra(tmp_path, capsys, monkeypatch):
    source = tmp_path / "model.onnx"
    source.write_bytes(b"")
    monkeypatch.setitem(sys.modules, "onnx2tf", None)
    code, result = run_main(capsys, {"format": "onnx", "src": str(source), "base_path": str(tmp_path / "m")})
    assert code == 1 and "(onnx2tf)" in result["msg"] and "tfserving-ansible[onnx]" in result["msg"]
