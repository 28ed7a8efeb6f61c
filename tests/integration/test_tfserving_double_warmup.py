"""The TF Serving test double replays assets.extra/tf_serving_warmup_requests at load, as TF Serving does
(servables/tensorflow/saved_model_warmup*.cc): before the version is AVAILABLE, with TF Serving's log
lines, and a bad file fails the load with TF Serving's error. Warm-up files are written here with
TensorFlow's TFRecord writer and TF Serving's PredictionLog schema (tensorflow-serving-api)."""

from __future__ import annotations

import json
import time

import pytest
from tfserving_double.testing import copy_model_version, run_double, start_double, write_models_config

pytestmark = [pytest.mark.integration, pytest.mark.tensorflow]

MODEL = "saved_model_half_plus_two_cpu"


def write_warmup(version_dir, samples):
    """Write PredictionLog records (TF Serving's schema) of predict requests on input x, one per sample."""
    import numpy as np
    import tensorflow as tf
    from tensorflow_serving.apis import predict_pb2, prediction_log_pb2

    path = version_dir / "assets.extra" / "tf_serving_warmup_requests"
    path.parent.mkdir(exist_ok=True)
    with tf.io.TFRecordWriter(str(path)) as writer:
        for sample in samples:
            request = predict_pb2.PredictRequest()
            request.model_spec.name = "m"
            request.inputs["x"].CopyFrom(tf.make_tensor_proto(np.array(sample["instances"], dtype=np.float32)))
            log = prediction_log_pb2.PredictionLog(predict_log=prediction_log_pb2.PredictLog(request=request))
            writer.write(log.SerializeToString())


def config_for(tmp_path, base):
    return write_models_config(tmp_path / "models.config", [{"name": "m", "base_path": base}])


def args(config, *extra):
    return [f"--model_config_file={config}", "--file_system_poll_wait_seconds=1",
            "--max_num_load_retries=0", *extra]


def test_warmup_records_run_at_load_before_available(tmp_path):
    version = copy_model_version(MODEL, "00000123", tmp_path / "m" / "00000123")
    write_warmup(version, [{"instances": [1.0, 2.0]}, {"instances": [5.0]}])
    with start_double(args(config_for(tmp_path, tmp_path / "m"), "--num_request_iterations_for_warmup=2")) as double:
        log = double.log()
        path = version / "assets.extra" / "tf_serving_warmup_requests"
        assert f"Starting to read warmup data for model at {path}" in log
        assert f"Finished reading warmup data for model at {path}. Number of warmup records read: 2." in log
        # Warm-up is part of the load: it finishes before the version is announced AVAILABLE.
        assert log.index("Finished reading warmup data") < log.index("Successfully loaded servable version")
        assert double.version_states("m") == {123: "AVAILABLE"}
        code, body = double.post("/v1/models/m:predict", {"instances": [1.0, 2.0, 5.0]})
        assert (code, json.loads(body)) == (200, {"predictions": [2.5, 3.0, 4.5]})


def test_without_a_file_or_with_warmup_off_nothing_is_replayed(tmp_path):
    version = copy_model_version(MODEL, "00000123", tmp_path / "m" / "00000123")
    with start_double(args(config_for(tmp_path, tmp_path / "m"))) as double:
        assert f"No warmup data file found at {version}/assets.extra/tf_serving_warmup_requests" in double.log()
    write_warmup(version, [{"instances": [1.0]}])
    with start_double(args(config_for(tmp_path, tmp_path / "m"), "--enable_model_warmup=false")) as double:
        assert "warmup data" not in double.log()
        assert double.version_states("m") == {123: "AVAILABLE"}


@pytest.mark.parametrize(
    ("content", "error"),
    [
        (b"this is not a TFRecord file at all",
         "DATA_LOSS: corrupted record at 0 (Is this even a TFRecord file?). Please verify your warmup data is "
         "in TFRecord format."),
        (None, "INVALID_ARGUMENT: Failed to parse warmup record: "),
    ],
    ids=["not-tfrecord", "not-predictionlog"],
)
def test_a_bad_warmup_file_fails_the_initial_load_with_tf_servings_error(tmp_path, content, error):
    import tensorflow as tf

    version = copy_model_version(MODEL, "00000123", tmp_path / "m" / "00000123")
    path = version / "assets.extra" / "tf_serving_warmup_requests"
    path.parent.mkdir()
    if content is None:
        with tf.io.TFRecordWriter(str(path)) as writer:
            writer.write(b"\xff\xff\xff not a PredictionLog")
    else:
        path.write_bytes(content)
    result = run_double(args(config_for(tmp_path, tmp_path / "m")))
    assert result.returncode == 255
    assert "Failed to start server. Error: UNKNOWN: 1 servable(s) did not become available: " in result.stdout
    assert "{{name: m version: 123} due to error: " + error in result.stdout


def test_a_request_the_model_refuses_fails_a_hot_load_and_the_old_version_keeps_serving(tmp_path):
    copy_model_version(MODEL, "00000123", tmp_path / "m" / "00000123")
    with start_double(args(config_for(tmp_path, tmp_path / "m"))) as double:
        staged = copy_model_version(MODEL, "00000123", tmp_path / "staging" / "124")
        # A valid PredictionLog whose request names an input the signature lacks.
        write_warmup(staged, [{"instances": [1.0]}])
        import tensorflow as tf
        from tensorflow_serving.apis import prediction_log_pb2

        path = staged / "assets.extra" / "tf_serving_warmup_requests"
        log = prediction_log_pb2.PredictionLog()
        log.ParseFromString(next(iter(tf.compat.v1.io.tf_record_iterator(str(path)))))
        log.predict_log.request.inputs["nope"].CopyFrom(log.predict_log.request.inputs.pop("x"))
        with tf.io.TFRecordWriter(str(path)) as writer:
            writer.write(log.SerializeToString())
        staged.rename(tmp_path / "m" / "00000124")
        double.wait_for(lambda: double.version_states("m").get(124) == "END", what="version 124 END")
        status = {v["version"]: v for v in double.status("m")["model_version_status"]}
        assert status["124"]["status"]["error_code"] == "INVALID_ARGUMENT"
        assert status["124"]["status"]["error_message"].startswith("input tensor alias not found in signature: nope")
        assert double.version_states("m")[123] == "AVAILABLE"
        code, _ = double.post("/v1/models/m:predict", {"instances": [1.0]})
        assert code == 200


def test_cold_start_is_paid_by_warmup_not_by_the_first_client(tmp_path):
    """Test extension (assets.extra/tfserving_double_cold_start_ms): the first run after load is slow."""
    for name, warm in (("cold", False), ("warm", True)):
        version = copy_model_version(MODEL, "00000123", tmp_path / name / "00000123")
        (version / "assets.extra").mkdir(exist_ok=True)
        (version / "assets.extra" / "tfserving_double_cold_start_ms").write_text("1500\n")
        if warm:
            write_warmup(version, [{"instances": [1.0]}])
    config = write_models_config(tmp_path / "models.config", [
        {"name": "cold", "base_path": tmp_path / "cold"}, {"name": "warm", "base_path": tmp_path / "warm"}])
    with start_double(args(config)) as double:
        timings = {}
        for name in ("cold", "warm", "cold"):
            started = time.monotonic()
            code, _ = double.post(f"/v1/models/{name}:predict", {"instances": [1.0]})
            assert code == 200
            timings.setdefault(name, []).append(time.monotonic() - started)
        assert timings["cold"][0] >= 1.5
        assert timings["warm"][0] < 1.0
        assert timings["cold"][1] < 1.0
