"""tfserving-export inspect and validate on TF Serving's own test models, and on damaged copies."""

from __future__ import annotations

import json

import pytest
from conftest import TESTDATA
from export_models import writable_copy

from tfserving_export.cli import main

pytestmark = pytest.mark.tensorflow

TF = TESTDATA / "tfserving"
HALF_PLUS_TWO = TF / "saved_model_half_plus_two_cpu" / "00000123"


def test_inspect_json_lists_serving_default_with_x_and_y(capsys):
    assert main(["inspect", str(HALF_PLUS_TWO), "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["version"] == 123
    (graph,) = report["meta_graphs"]
    assert graph["tags"] == ["serve"]
    serving_default = graph["signatures"]["serving_default"]
    assert serving_default["method_name"] == "tensorflow/serving/predict"
    assert serving_default["inputs"] == {
        "x": {"dtype": "float32", "dtype_enum": "DT_FLOAT", "shape": [-1, 1], "tensor": "x:0", "encoding": "name"}
    }
    assert serving_default["outputs"] == {
        "y": {"dtype": "float32", "dtype_enum": "DT_FLOAT", "shape": [-1, 1], "tensor": "y:0", "encoding": "name"}
    }
    # The other signatures tests/data/tfserving/README.md lists are there too.
    assert {"regress_x_to_y", "regress_x_to_y2", "classify_x_to_y"} <= set(graph["signatures"])


def test_inspect_text_lists_serving_default_with_x_and_y(capsys):
    assert main(["inspect", str(HALF_PLUS_TWO)]) == 0
    text = capsys.readouterr().out
    block = text[text.index("signature 'serving_default'"):]
    assert "x: float32 (DT_FLOAT) shape [-1, 1] <- x:0" in block
    assert "y: float32 (DT_FLOAT) shape [-1, 1] -> y:0" in block
    assert "MetaGraph tags: serve" in text


def test_inspect_on_a_base_path_shows_the_latest_version(capsys):
    assert main(["inspect", str(TF / "saved_model_half_plus_two_2_versions"), "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["version"] == 124 and report["path"].endswith("00000124")


def test_inspect_on_a_directory_that_is_not_a_savedmodel_says_what_is_missing(capsys):
    bad = TF / "bad_half_plus_two" / "00000123"
    assert main(["inspect", str(bad)]) == 1
    err = capsys.readouterr().err
    assert f"{bad} is not a SavedModel" in err
    assert "expected saved_model.pb or saved_model.pbtxt" in err and "found checkpoint, export, export.meta" in err


def test_validate_accepts_the_test_model_and_runs_it(capsys):
    assert main(["validate", str(HALF_PLUS_TWO), "--run", "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["valid"] is True
    checks = {c["name"]: c for c in result["versions"][0]["checks"]}
    assert [c["status"] for c in checks.values()] == ["pass"] * 7
    assert "y [1, 1]" in checks["run"]["detail"]


def test_validate_a_tf2_model_and_a_base_path_with_two_versions(capsys):
    assert main(["validate", str(TF / "saved_model_half_plus_two_tf2_cpu" / "00000123")]) == 0
    assert capsys.readouterr().out.splitlines()[-1].startswith("VALID:")
    assert main(["validate", str(TF / "saved_model_half_plus_two_2_versions"), "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert [v["version"] for v in result["versions"]] == [123, 124] and result["valid"] is True


def test_validate_rejects_the_bad_model_with_the_reason(capsys):
    assert main(["validate", str(TF / "bad_half_plus_two")]) == 1
    last = capsys.readouterr().out.splitlines()[-1]
    assert last.startswith("INVALID:") and "SavedModel file failed" in last and "saved_model.pb" in last


def test_validate_names_a_missing_signature_and_a_wrong_tag_set(capsys):
    assert main(["validate", str(HALF_PLUS_TWO), "--signature-name", "predict_images"]) == 1
    out = capsys.readouterr().out
    assert "expected signature 'predict_images'" in out and "serving_default" in out
    assert main(["validate", str(HALF_PLUS_TWO), "--tags", "serve,gpu"]) == 1
    out = capsys.readouterr().out
    assert "exactly the tag set ['gpu', 'serve']" in out and "found tag sets [['serve']]" in out


def test_validate_catches_missing_variables_and_a_corrupt_graph_file(tmp_path, capsys):
    copy = writable_copy(HALF_PLUS_TWO, tmp_path / "1")
    for item in (copy / "variables").iterdir():
        item.unlink()
    assert main(["validate", str(copy)]) == 1
    assert "[fail] variables: expected" in capsys.readouterr().out

    corrupt = writable_copy(HALF_PLUS_TWO, tmp_path / "2")
    (corrupt / "saved_model.pb").write_bytes(b"\x0a\xff\xff\xff garbage")
    assert main(["validate", str(corrupt)]) == 1
    assert "is not a valid SavedModel protobuf" in capsys.readouterr().out


def test_validate_warns_about_a_directory_tf_serving_would_not_see(tmp_path, capsys):
    copy = writable_copy(HALF_PLUS_TWO, tmp_path / "latest")
    assert main(["validate", str(copy)]) == 0  # loadable, but...
    out = capsys.readouterr().out
    assert "[warn] version directory: 'latest' is not a number" in out


def test_validate_and_inspect_a_path_that_does_not_exist(tmp_path, capsys):
    assert main(["validate", str(tmp_path / "nothing")]) == 1
    assert "does not exist" in capsys.readouterr().out
    assert main(["inspect", str(tmp_path / "nothing")]) == 1
    assert "does not exist" in capsys.readouterr().err
