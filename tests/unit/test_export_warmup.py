"""tfserving-export warm-up requests: assets.extra/tf_serving_warmup_requests as TF Serving reads it.

The file is read back with TensorFlow's TFRecord reader and TF Serving's own PredictionLog schema
(tensorflow-serving-api), the way saved_model_warmup_util.cc reads it at load.
"""

from __future__ import annotations

import json

import numpy as np
import pytest
from conftest import TESTDATA
from export_models import frozen_graph, tf, writable_copy

from tfserving_export.cli import main

pytestmark = pytest.mark.tensorflow

HALF_PLUS_TWO = TESTDATA / "tfserving" / "saved_model_half_plus_two_cpu" / "00000123"


def read_logs(version_dir):
    from tensorflow_serving.apis import prediction_log_pb2

    path = version_dir / "assets.extra" / "tf_serving_warmup_requests"
    logs = []
    for record in tf.compat.v1.io.tf_record_iterator(str(path)):
        log = prediction_log_pb2.PredictionLog()
        log.ParseFromString(record)
        logs.append(log)
    return logs


def test_warmup_writes_prediction_log_records_with_the_sample_inputs(tmp_path, capsys):
    version = writable_copy(HALF_PLUS_TWO, tmp_path / "half_plus_two" / "123")
    samples = tmp_path / "samples.json"
    samples.write_text(json.dumps([
        {"instances": [1.0, 2.0, 5.0]},
        {"signature_name": "serving_default", "inputs": {"x": [[3.0], [4.0]]}},
    ]))
    assert main(["warmup", str(version), "--requests", str(samples), "--model-name", "half_plus_two",
                 "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["records"] == 2
    assert result["path"] == str(version / "assets.extra" / "tf_serving_warmup_requests")

    first, second = read_logs(version)
    for log in (first, second):
        assert log.WhichOneof("log_type") == "predict_log"
        assert log.predict_log.request.model_spec.name == "half_plus_two"
        assert log.predict_log.request.model_spec.signature_name == "serving_default"
    x = first.predict_log.request.inputs["x"]
    assert tf.dtypes.as_dtype(x.dtype) == tf.float32
    np.testing.assert_array_equal(tf.make_ndarray(x), np.array([1.0, 2.0, 5.0], dtype=np.float32))
    np.testing.assert_array_equal(tf.make_ndarray(second.predict_log.request.inputs["x"]),
                                  np.array([[3.0], [4.0]], dtype=np.float32))


def test_export_with_warmup_requests_publishes_them_inside_the_version(tmp_path, capsys):
    source, reference = frozen_graph(tmp_path / "frozen.pb")
    samples = tmp_path / "samples.json"
    samples.write_text(json.dumps({"instances": [{"features": row} for row in reference["x"][:2].tolist()]}))
    base = tmp_path / "models" / "classifier"
    code = main(["from-graphdef", str(source), "--base-path", str(base), "--input", "features=input:0",
                 "--output", "scores=head/probs:0", "--warmup-requests", str(samples), "--json"])
    assert code == 0, capsys.readouterr().err
    result = json.loads(capsys.readouterr().out)
    assert result["warmup"] == {"path": str(base / "1" / "assets.extra" / "tf_serving_warmup_requests"),
                                "records": 1}
    (log,) = read_logs(base / "1")
    np.testing.assert_allclose(tf.make_ndarray(log.predict_log.request.inputs["features"]), reference["x"][:2])
    assert log.predict_log.request.model_spec.name == "classifier"
    # Nothing but the published version in the base path (the staging directory is gone).
    assert sorted(p.name for p in base.iterdir()) == ["1"]

    # Same source, same samples: nothing changes. Other samples: a new version.
    assert main(["from-graphdef", str(source), "--base-path", str(base), "--input", "features=input:0",
                 "--output", "scores=head/probs:0", "--warmup-requests", str(samples)]) == 0
    assert "unchanged" in capsys.readouterr().out
    samples.write_text(json.dumps({"instances": [{"features": [0.0, 0.0, 0.0]}]}))
    assert main(["from-graphdef", str(source), "--base-path", str(base), "--input", "features=input:0",
                 "--output", "scores=head/probs:0", "--warmup-requests", str(samples)]) == 0
    assert "wrote version 2" in capsys.readouterr().out


def test_samples_the_model_refuses_are_refused_and_nothing_is_left(tmp_path, capsys):
    version = writable_copy(HALF_PLUS_TWO, tmp_path / "m" / "123")
    samples = tmp_path / "samples.json"
    samples.write_text(json.dumps({"instances": ["not a number"]}))
    assert main(["warmup", str(version), "--requests", str(samples)]) == 1
    assert "does not convert to float32" in capsys.readouterr().err
    samples.write_text(json.dumps({"inputs": {"y": [1.0]}}))
    assert main(["warmup", str(version), "--requests", str(samples)]) == 1
    assert "inputs do not match signature 'serving_default'" in capsys.readouterr().err
    samples.write_text(json.dumps({"instances": [1.0], "inputs": {"x": [1.0]}}))
    assert main(["warmup", str(version), "--requests", str(samples)]) == 1
    assert "exactly one of" in capsys.readouterr().err
    assert not (version / "assets.extra" / "tf_serving_warmup_requests").exists()


def test_more_records_than_tf_serving_replays_are_refused(tmp_path, capsys):
    version = writable_copy(HALF_PLUS_TWO, tmp_path / "m" / "123")
    samples = tmp_path / "samples.json"
    samples.write_text(json.dumps([{"instances": [1.0]}] * 1001))
    assert main(["warmup", str(version), "--requests", str(samples)]) == 1
    assert "at most 1000" in capsys.readouterr().err
