"""The TF Serving test double's model lifecycle: hot updates under load, deletions, corrupt versions,
start-up semantics and configuration polling, each against a real double process and real models."""

from __future__ import annotations

import json
import shutil
import socket
import subprocess
import threading
import time

import pytest
from tfserving_double.testing import (
    TESTDATA,
    Double,
    command,
    copy_model_version,
    double_env,
    free_port,
    run_double,
    start_double,
    write_models_config,
)

pytestmark = [pytest.mark.integration, pytest.mark.tensorflow]

TWO_VERSIONS = "saved_model_half_plus_two_2_versions"


class PredictLoad:
    """Predict requests in a loop on one thread (bounded), recording every non-200 answer."""

    def __init__(self, double, model: str, max_requests: int = 5000):
        self.double = double
        self.model = model
        self.max_requests = max_requests
        self.count = 0
        self.failures: list = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self):
        while not self._stop.is_set() and self.count < self.max_requests:
            code, body = self.double.post(f"/v1/models/{self.model}:predict", {"instances": [1.0, 2.0, 5.0]})
            self.count += 1
            if code != 200 or json.loads(body) != {"predictions": [2.5, 3.0, 4.5]}:
                self.failures.append((code, body))

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join(30)


def test_hot_update_under_load_then_delete_version(tmp_path):
    base = tmp_path / "half_plus_two"
    copy_model_version(TWO_VERSIONS, "00000123", base / "00000123")
    args = ["--model_name=half_plus_two", f"--model_base_path={base}", "--file_system_poll_wait_seconds=1"]
    with start_double(args) as double:
        assert double.version_states("half_plus_two") == {123: "AVAILABLE"}
        seen = []
        with PredictLoad(double, "half_plus_two") as load:
            # Stage the new version beside the model and move it in whole, as a deployment does.
            copy_model_version(TWO_VERSIONS, "00000124", tmp_path / "staging" / "00000124")
            (tmp_path / "staging" / "00000124").rename(base / "00000124")

            def swapped():
                states = double.version_states("half_plus_two")
                seen.append(states)
                return states == {124: "AVAILABLE", 123: "END"}

            double.wait_for(swapped, timeout=60, interval=0.05, what="124 AVAILABLE and 123 END")
            time.sleep(0.5)
        assert load.count > 20, "the load generator hardly ran"
        assert load.failures == []
        # Availability preserved: at every observation some version was AVAILABLE, and 123 only left
        # after 124 had become AVAILABLE.
        assert all("AVAILABLE" in states.values() for states in seen)
        first_123_leaving = next(i for i, s in enumerate(seen) if s.get(123) in ("UNLOADING", "END"))
        assert seen[first_123_leaving].get(124) == "AVAILABLE"

        # Deleting the serving version's directory unloads it; the latest remaining version is served again.
        shutil.rmtree(base / "00000124")
        double.wait_for(
            lambda: double.version_states("half_plus_two") == {124: "END", 123: "AVAILABLE"},
            timeout=60,
            what="124 END after its directory was deleted",
        )
        code, _body = double.post("/v1/models/half_plus_two/versions/124:predict", {"instances": [1.0]})
        assert code == 404
        code, body = double.post("/v1/models/half_plus_two:predict", {"instances": [1.0]})
        assert (code, json.loads(body)) == (200, {"predictions": [2.5]})


def test_corrupt_version_retries_then_ends_while_old_keeps_serving(tmp_path):
    base = tmp_path / "half_plus_two"
    copy_model_version(TWO_VERSIONS, "00000123", base / "00000123")
    args = [
        "--model_name=half_plus_two",
        f"--model_base_path={base}",
        "--file_system_poll_wait_seconds=1",
        "--max_num_load_retries=2",
        "--load_retry_interval_micros=1500000",
    ]
    with start_double(args) as double:
        with PredictLoad(double, "half_plus_two", max_requests=3000) as load:
            copy_model_version("bad_half_plus_two", "00000123", base / "00000124")
            double.wait_for(
                lambda: double.version_states("half_plus_two").get(124) == "LOADING",
                timeout=30,
                interval=0.05,
                what="124 LOADING",
            )
            time.sleep(1.0)  # still retrying: 3 attempts 1.5 s apart
            assert double.version_states("half_plus_two") == {124: "LOADING", 123: "AVAILABLE"}
            double.wait_for(
                lambda: double.version_states("half_plus_two").get(124) == "END",
                timeout=30,
                what="124 END after its retries",
            )
        assert load.failures == []
        assert load.count > 10
        status = double.status("half_plus_two")["model_version_status"]
        assert status[0]["version"] == "124" and status[0]["state"] == "END"
        assert status[0]["status"]["error_code"] == "NOT_FOUND"
        assert status[0]["status"]["error_message"] == (
            "Could not find SavedModel .pb or .pbtxt at supplied export directory path: "
            f"{base / '00000124'}. "
            "Check that the directory exists and that you have the right permissions for accessing it."
        )
        assert status[1] == {
            "version": "123",
            "state": "AVAILABLE",
            "status": {"error_code": "OK", "error_message": ""},
        }
        # The failed version is not retried on later polls.
        time.sleep(3)
        assert double.log().count("Loading servable version {name: half_plus_two version: 124}") == 3
        assert double.version_states("half_plus_two") == {124: "END", 123: "AVAILABLE"}


def test_failed_initial_load_exits_non_zero(tmp_path):
    base = tmp_path / "bad"
    copy_model_version("bad_half_plus_two", "00000123", base / "00000123")
    result = run_double(
        [
            "--model_name=bad",
            f"--model_base_path={base}",
            "--max_num_load_retries=0",
            f"--port={free_port()}",
        ],
        timeout=120,
    )
    assert result.returncode == 255
    assert result.stdout == (
        "Failed to start server. Error: UNKNOWN: 1 servable(s) did not become available: "
        "{{{name: bad version: 123} due to error: NOT_FOUND: Could not find SavedModel .pb or .pbtxt at "
        f"supplied export directory path: {base / '00000123'}. Check that the directory exists and that you "
        "have the right permissions for accessing it.}, }\n"
    )
    assert "TF Serving TEST DOUBLE" in result.stderr


def _listening(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.5):
            return True
    except OSError:
        return False


def test_ports_open_only_after_initial_loads_settle(tmp_path):
    base = tmp_path / "half_plus_two"
    base.mkdir()
    args = ["--model_name=half_plus_two", f"--model_base_path={base}", "--file_system_poll_wait_seconds=1"]
    grpc_port, rest_port = free_port(), free_port()
    log = tmp_path / "double.log"
    with open(log, "wb") as out:
        process = subprocess.Popen(
            command([*args, f"--port={grpc_port}", f"--rest_api_port={rest_port}"]),
            stdout=out,
            stderr=subprocess.STDOUT,
            env=double_env(),
        )
    double = Double(process, grpc_port, rest_port, log)
    try:
        # A model without versions blocks start-up: no port opens, the log says why.
        double.wait_for(
            lambda: "No versions of servable half_plus_two found under base path" in double.log(),
            timeout=60,
            what="the no-versions warning",
        )
        time.sleep(1.5)
        assert process.poll() is None
        assert not _listening(rest_port) and not _listening(grpc_port)
        copy_model_version(TWO_VERSIONS, "00000123", base / "00000123")
        double.wait_for(lambda: _listening(rest_port), timeout=60, what="the REST port")
        assert _listening(grpc_port)
        assert double.version_states("half_plus_two") == {123: "AVAILABLE"}
        log_text = double.log()
        assert log_text.index("Successfully loaded servable version") < log_text.index(
            "Running gRPC ModelServer"
        )
    finally:
        double.stop()


CONFIG_REJECTIONS = [
    ("bad_syntax", None, "INVALID_ARGUMENT: Invalid protobuf file: '{config}'"),
    (
        "duplicate",
        [{"name": "m", "base_path": "{base}"}, {"name": "m", "base_path": "{base}"}],
        "INVALID_ARGUMENT: Illegal to list model m multiple times in config list",
    ),
    (
        "relative",
        [{"name": "m", "base_path": "models/m"}],
        "INVALID_ARGUMENT: Expected model m to have an absolute path or URI; got base_path()=models/m",
    ),
    (
        "empty_platform",
        [{"name": "m", "base_path": "{base}", "platform": ""}],
        "INVALID_ARGUMENT: Illegal setting neither ModelServerConfig::model_type (deprecated) nor "
        "ModelServerConfig::model_platform.",
    ),
    (
        "unknown_platform",
        [{"name": "m", "base_path": "{base}", "platform": "pytorch"}],
        "INVALID_ARGUMENT: Model m requests unsupported platform pytorch",
    ),
    (
        "startup_label",
        [{"name": "m", "base_path": "{base}", "labels": {"stable": 123}}],
        "FAILED_PRECONDITION: Request to assign label to version 123 of model m, which is not currently "
        "available "
        "for inference",
    ),
]


@pytest.mark.parametrize(
    ("case", "models", "expected"), CONFIG_REJECTIONS, ids=[c[0] for c in CONFIG_REJECTIONS]
)
def test_bad_config_exits_non_zero_with_the_real_message(tmp_path, case, models, expected):
    base = tmp_path / "m"
    copy_model_version(TWO_VERSIONS, "00000123", base / "00000123")
    config = tmp_path / "models.config"
    if models is None:
        shutil.copy(TESTDATA / "bad_model_config.txt", config)
    else:
        write_models_config(
            config,
            [
                {k: (str(v).format(base=base) if k == "base_path" else v) for k, v in m.items()}
                for m in models
            ],
        )
    result = run_double([f"--model_config_file={config}"], timeout=120)
    assert result.returncode == 255, result.stderr
    assert result.stdout == "Failed to start server. Error: " + expected.format(config=config) + "\n"


def test_startup_label_allowed_with_flag_and_default_model_name(tmp_path):
    """--allow_version_labels_for_unavailable_models lets start-up labels through; without --model_name the
    model is called "default" (its metadata equals TF Serving's golden file)."""
    base = tmp_path / "half_plus_two"
    copy_model_version("saved_model_half_plus_two_cpu", "00000123", base / "00000123")
    with start_double([f"--model_base_path={base}"]) as double:
        code, body = double.get("/v1/models/default/metadata")
        assert code == 200
        assert json.loads(body) == json.loads((TESTDATA / "half_plus_two_model_metadata.json").read_text())
    config = write_models_config(
        tmp_path / "models.config", [{"name": "m", "base_path": base, "labels": {"stable": 123}}]
    )
    with start_double(
        [f"--model_config_file={config}", "--allow_version_labels_for_unavailable_models"]
    ) as double:
        code, body = double.post("/v1/models/m/labels/stable:predict", {"instances": [1.0]})
        assert (code, json.loads(body)) == (200, {"predictions": [2.5]})


def test_config_file_polling_adds_and_removes_models(tmp_path):
    for name in ("a", "b"):
        copy_model_version(TWO_VERSIONS, "00000123", tmp_path / name / "00000123")
    config = tmp_path / "models.config"
    write_models_config(config, [{"name": "a", "base_path": tmp_path / "a"}])
    args = [
        f"--model_config_file={config}",
        "--model_config_file_poll_wait_seconds=1",
        "--file_system_poll_wait_seconds=1",
    ]
    with start_double(args) as double:
        assert double.version_states("b") == {}
        write_models_config(
            config, [{"name": "a", "base_path": tmp_path / "a"}, {"name": "b", "base_path": tmp_path / "b"}]
        )
        double.wait_for(lambda: double.version_states("b") == {123: "AVAILABLE"}, timeout=60, what="model b")
        write_models_config(config, [{"name": "b", "base_path": tmp_path / "b"}])
        double.wait_for(
            lambda: double.version_states("a") == {123: "END"}, timeout=60, what="model a unloaded"
        )
        code, body = double.post("/v1/models/a:predict", {"instances": [1.0]})
        assert (code, json.loads(body)) == (404, {"error": "Servable not found for request: Latest(a)"})
        # A broken config file is logged and ignored; the server keeps its last good config.
        config.write_text("model_config_list { config { name: ")
        double.wait_for(
            lambda: "Failed to read ModelServerConfig file: Invalid protobuf file" in double.log(),
            timeout=30,
            what="the parse error in the log",
        )
        assert double.version_states("b") == {123: "AVAILABLE"}


def test_version_policies_all_and_specific(tmp_path):
    for version in ("00000123", "00000124"):
        copy_model_version(TWO_VERSIONS, version, tmp_path / "all" / version)
        copy_model_version(TWO_VERSIONS, version, tmp_path / "specific" / version)
    (tmp_path / "all" / "not_a_version").mkdir()
    config = write_models_config(
        tmp_path / "models.config",
        [
            {"name": "all", "base_path": tmp_path / "all", "policy": "all {}"},
            {
                "name": "specific",
                "base_path": tmp_path / "specific",
                "policy": "specific { versions: 123 versions: 9 }",
            },
        ],
    )
    with start_double([f"--model_config_file={config}", "--file_system_poll_wait_seconds=1"]) as double:
        assert double.version_states("all") == {124: "AVAILABLE", 123: "AVAILABLE"}
        assert double.version_states("specific") == {123: "AVAILABLE"}
        assert (
            "Version 9 of servable specific, which was requested to be served as a 'specific' version in the "
            "servable's version policy, was not found in the file system"
        ) in double.log()
