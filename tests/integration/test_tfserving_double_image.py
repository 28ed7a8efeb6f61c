"""The TF Serving test double's container image (tfserving-double:test): built offline by
tests/tfserving_double/build-image.sh, started the way tensorflow/serving is, and answering the same
bytes over its published ports as the double process does."""

from __future__ import annotations

import json
import pathlib
import subprocess
import time
import urllib.error
import urllib.request

import grpc
import numpy as np
import pytest
import tensorflow as tf
from tensorflow_serving.apis import predict_pb2, prediction_service_pb2_grpc
from tfserving_double.testing import copy_model_version, write_models_config

pytestmark = [pytest.mark.integration, pytest.mark.tensorflow]

IMAGE = "tfserving-double:test"
BUILD = pathlib.Path(__file__).resolve().parents[1] / "tfserving_double" / "build-image.sh"
TWO_VERSIONS = "saved_model_half_plus_two_2_versions"


def docker(*args, check=True, timeout=120) -> str:
    result = subprocess.run(["docker", *args], capture_output=True, text=True, timeout=timeout, check=False)
    if check and result.returncode != 0:
        raise AssertionError(f"docker {' '.join(args)} failed: {result.stderr}")
    return result.stdout.strip()


@pytest.fixture(scope="module")
def image():
    result = subprocess.run([str(BUILD)], capture_output=True, text=True, timeout=900, check=False)
    assert result.returncode == 0, result.stdout + result.stderr
    return IMAGE


class Container:
    def __init__(self, image, models_dir, env=(), args=()):
        command = [
            "run",
            "-d",
            "-p",
            "127.0.0.1::8500",
            "-p",
            "127.0.0.1::8501",
            "-v",
            f"{models_dir}:/models:ro",
        ]
        for item in env:
            command += ["-e", item]
        self.id = docker(*command, image, *args)
        self.rest = int(docker("port", self.id, "8501/tcp").splitlines()[0].rsplit(":", 1)[1])
        self.grpc = int(docker("port", self.id, "8500/tcp").splitlines()[0].rsplit(":", 1)[1])

    def request(self, path, body=None):
        data = json.dumps(body).encode() if body is not None else None
        req = urllib.request.Request(f"http://127.0.0.1:{self.rest}{path}", data=data)
        try:
            with urllib.request.urlopen(req, timeout=10) as resp:
                return resp.status, resp.read()
        except urllib.error.HTTPError as err:
            return err.code, err.read()

    def wait_ready(self, model, timeout=90):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                code, _body = self.request(f"/v1/models/{model}")
                if code == 200:
                    return
            except (urllib.error.URLError, ConnectionError, OSError):
                pass
            if docker("inspect", "-f", "{{.State.Running}}", self.id) != "true":
                break
            time.sleep(0.5)
        raise AssertionError(f"container did not serve {model}:\n{self.logs()}")

    def logs(self):
        return subprocess.run(["docker", "logs", self.id], capture_output=True, text=True, check=False).stderr

    def remove(self):
        docker("rm", "-f", self.id, check=False)


def test_image_is_labelled_and_shaped_like_tensorflow_serving(image):
    config = json.loads(docker("image", "inspect", image))[0]["Config"]
    assert config["Entrypoint"] == ["/usr/bin/tf_serving_entrypoint.sh"]
    assert "MODEL_NAME=model" in config["Env"] and "MODEL_BASE_PATH=/models" in config["Env"]
    assert set(config["ExposedPorts"]) == {"8500/tcp", "8501/tcp"}
    assert config["Labels"]["tfserving-ansible.test-double"] == "true"
    assert "TEST DOUBLE" in config["Labels"]["org.opencontainers.image.title"]
    version = docker("run", "--rm", "--entrypoint", "/usr/bin/tensorflow_model_server", image, "--version")
    assert "TF Serving TEST DOUBLE" in version
    # The shape of tensorflow_model_server --version (model_servers/main.cc), which status.yml reads.
    lines = version.splitlines()
    assert lines[0].startswith("TensorFlow ModelServer: ") and lines[1].startswith("TensorFlow Library: ")


def test_container_serves_the_same_answers_over_published_ports(image, tmp_path):
    models = tmp_path / "models"
    copy_model_version(TWO_VERSIONS, "00000123", models / "half_plus_two" / "00000123")
    container = Container(image, models, env=["MODEL_NAME=half_plus_two"])
    try:
        container.wait_ready("half_plus_two")
        code, body = container.request("/v1/models/half_plus_two")
        assert code == 200
        assert body == (
            b'{\n "model_version_status": [\n  {\n   "version": "123",\n   "state": "AVAILABLE",\n'
            b'   "status": {\n    "error_code": "OK",\n    "error_message": ""\n   }\n  }\n ]\n}\n'
        )
        code, body = container.request("/v1/models/half_plus_two:predict", {"instances": [1.0, 2.0, 5.0]})
        assert (code, body) == (200, b'{\n    "predictions": [2.5, 3.0, 4.5\n    ]\n}')
        with grpc.insecure_channel(f"127.0.0.1:{container.grpc}") as channel:
            request = predict_pb2.PredictRequest()
            request.model_spec.name = "half_plus_two"
            request.inputs["x"].CopyFrom(tf.make_tensor_proto(np.array([1.0, 2.0, 5.0], dtype=np.float32)))
            response = prediction_service_pb2_grpc.PredictionServiceStub(channel).Predict(request, timeout=30)
        assert tf.make_ndarray(response.outputs["y"]).tolist() == [2.5, 3.0, 4.5]
        assert "TF Serving TEST DOUBLE" in container.logs()
    finally:
        container.remove()


def test_container_arguments_are_appended(image, tmp_path):
    """--model_config_file passed as a container argument overrides the single-model flags."""
    models = tmp_path / "models"
    copy_model_version(TWO_VERSIONS, "00000123", models / "a" / "00000123")
    copy_model_version("saved_model_half_plus_three", "00000123", models / "b" / "00000123")
    write_models_config(
        models / "models.config",
        [
            {"name": "a", "base_path": "/models/a"},
            {"name": "b", "base_path": "/models/b"},
        ],
    )
    container = Container(image, models, args=["--model_config_file=/models/models.config"])
    try:
        container.wait_ready("b")
        code, body = container.request("/v1/models/b:predict", {"instances": [1.0]})
        assert (code, json.loads(body)) == (200, {"predictions": [3.5]})
        code, body = container.request("/v1/models/a:predict", {"instances": [1.0]})
        assert (code, json.loads(body)) == (200, {"predictions": [2.5]})
        code, body = container.request("/v1/models/model")
        assert (code, json.loads(body)) == (404, {"error": "Could not find any versions of model model"})
    finally:
        container.remove()
