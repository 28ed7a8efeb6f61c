"""tfserving_model_status, tfserving_reload_config and tfserving_predict run through ansible-playbook
(localhost, connection local) against the TF Serving test double running as a process.

The double loads the real SavedModels of tests/data/tfserving with TensorFlow; the modules
talk to it over loopback, REST and gRPC, exactly as they would to tensorflow_model_server.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys

import pytest
from conftest import ROOT, TESTDATA
from tfserving_double.testing import start_double

pytestmark = [pytest.mark.integration, pytest.mark.tensorflow]

PLAYBOOKS = ROOT / "tests" / "integration" / "playbooks"
MODELS = TESTDATA / "tfserving"
TF2_PATH = MODELS / "saved_model_half_plus_two_tf2_cpu"

STARTUP_CONFIG = f"""\
model_config_list {{
  config {{
    name: "half_plus_two"
    base_path: "{MODELS / "saved_model_half_plus_two_2_versions"}"
    model_platform: "tensorflow"
    model_version_policy {{ specific {{ versions: 123 versions: 124 }} }}
  }}
}}
"""


@pytest.fixture(scope="module")
def double(tmp_path_factory):
    config = tmp_path_factory.mktemp("double") / "models.config"
    config.write_text(STARTUP_CONFIG)
    with start_double([f"--model_config_file={config}", "--file_system_poll_wait_seconds=1"]) as server:
        yield server


def playbook(double, tmp_path, name, **extra):
    """Run one playbook; return (exit code, recorded results or None, output)."""
    results = tmp_path / f"{name}.json"
    extra_vars = {
        "tfserving_test_rest_port": double.rest_port,
        "tfserving_test_grpc_port": double.grpc_port,
        "tfserving_test_models": str(MODELS),
        "tfserving_test_results": str(results),
        "ansible_python_interpreter": sys.executable,
        **extra,
    }
    env = dict(
        os.environ,
        ANSIBLE_CONFIG=str(ROOT / "ansible.cfg"),
        ANSIBLE_LOCAL_TEMP=str(tmp_path / "ansible-tmp"),
        ANSIBLE_NOCOLOR="1",
        PATH=os.path.dirname(sys.executable) + os.pathsep + os.environ.get("PATH", ""),
    )
    proc = subprocess.run(
        [
            os.path.join(os.path.dirname(sys.executable), "ansible-playbook"),
            "-i",
            "localhost,",
            "-e",
            json.dumps(extra_vars),
            str(PLAYBOOKS / f"{name}.yml"),
        ],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    recorded = json.loads(results.read_text()) if results.exists() else None
    return proc.returncode, recorded, proc.stdout + proc.stderr


def test_status_by_version_and_by_label(double, tmp_path):
    rc, results, output = playbook(double, tmp_path, "modules_status")
    assert rc == 0, output
    assert results["labels"]["changed"] is True and results["labels"]["reloads"] == 1
    by_label = {row["label"]: row for row in results["by_label"]["models"]}
    assert (by_label["stable"]["version"], by_label["stable"]["state"]) == (123, "AVAILABLE")
    assert (by_label["canary"]["version"], by_label["canary"]["state"]) == (124, "AVAILABLE")
    assert results["by_version"]["rounds"] == 1
    statuses = results["by_version"]["statuses"]["half_plus_two"]
    assert [(s["version"], s["state"]) for s in statuses] == [(124, "AVAILABLE"), (123, "AVAILABLE")]
    # The status API ignores labels; the module asked the server, and the server agrees with the config.
    code, raw = double.get("/v1/models/half_plus_two/labels/canary/metadata")
    assert code == 200 and json.loads(raw)["model_spec"]["version"] == "124"
    assert results["labels_again"]["changed"] is False and results["labels_again"]["reloads"] == 0


def test_reload_adds_then_removes_a_model(double, tmp_path):
    rc, results, output = playbook(double, tmp_path, "modules_reload")
    assert rc == 0, output
    assert results["add_check"]["differences"] == [
        {
            "model": "half_plus_two_tf2",
            "change": "add",
            "detail": f"not served (unknown model); wanted from {TF2_PATH}",
        }
    ]
    assert "half_plus_two_tf2: not known to the server" in results["add_check"]["diff"]["before"]
    assert results["add"]["reloads"] == 1
    assert results["remove"]["differences"] == [
        {"model": "half_plus_two_tf2", "change": "remove", "detail": "serves [123], wanted absent"}
    ]
    # Unloaded without a restart: the server lists the removed model's version as END.
    assert double.version_states("half_plus_two_tf2") == {123: "END"}
    assert double.version_states("half_plus_two") == {123: "AVAILABLE", 124: "AVAILABLE"}
    assert double.process.poll() is None


def test_predict_passes_on_the_right_answer(double, tmp_path):
    rc, results, output = playbook(
        double, tmp_path, "modules_predict", tfserving_test_expected=[2.5, 3.0, 4.5]
    )
    assert rc == 0, output
    assert results["outputs"] == [2.5, 3.0, 4.5]
    assert results["latency_ms"] > 0


def test_predict_fails_on_a_wrong_expectation_with_a_readable_message(double, tmp_path):
    rc, results, output = playbook(
        double, tmp_path, "modules_predict", tfserving_test_expected=[2.5, 3.5, 4.5]
    )
    assert rc == 2, output
    assert results is None  # the play stopped at the failed check
    assert (
        "Model half_plus_two answered [2.5, 3.0, 4.5], which differs from the expected [2.5, 3.5, 4.5] "
        "(tolerance 1e-06, relative 0.0): at [1]: expected 3.5, got 3.0 (differs by 0.5)."
    ) in output
    assert "Traceback" not in output


def test_predict_on_an_unknown_label_quotes_the_server(double, tmp_path):
    rc, _, output = playbook(
        double,
        tmp_path,
        "modules_predict",
        tfserving_test_expected=[2.5, 3.0, 4.5],
        tfserving_test_label="nope",
    )
    assert rc == 2, output
    assert "Unrecognized servable version label: nope" in output


def test_labels_on_a_version_not_loaded_yet_move_in_two_reloads(tmp_path):
    """TF Serving refuses a label on a version that is not AVAILABLE: the module serves 124 first."""
    base = tmp_path / "half_plus_two"
    shutil.copytree(MODELS / "saved_model_half_plus_two_2_versions" / "00000123", base / "00000123")
    shutil.copytree(MODELS / "saved_model_half_plus_two_2_versions" / "00000124", base / "00000124")
    config = tmp_path / "models.config"
    config.write_text(
        STARTUP_CONFIG.replace(str(MODELS / "saved_model_half_plus_two_2_versions"), str(base)).replace(
            "versions: 123 versions: 124", "versions: 123"
        )
    )
    with start_double([f"--model_config_file={config}", "--file_system_poll_wait_seconds=1"]) as server:
        assert server.version_states("half_plus_two") == {123: "AVAILABLE"}
        rc, results, output = playbook(
            server, tmp_path, "modules_status", tfserving_test_hp2_base_path=str(base)
        )
        assert rc == 0, output
        assert results["labels"]["reloads"] == 2
        assert 'key: "canary"' not in results["labels"]["staged_config_text"]
        assert 'key: "stable"' in results["labels"]["staged_config_text"]
        code, raw = server.get("/v1/models/half_plus_two/labels/canary/metadata")
        assert code == 200 and json.loads(raw)["model_spec"]["version"] == "124"


def test_reload_that_never_returns_ends_at_its_deadline(tmp_path):
    """A base_path that does not exist makes TF Serving (and the double) never answer the reload."""
    config = tmp_path / "models.config"
    config.write_text(STARTUP_CONFIG)
    with start_double([f"--model_config_file={config}", "--file_system_poll_wait_seconds=1"]) as server:
        rc, _, output = playbook(server, tmp_path, "modules_reload_missing_path")
        assert rc == 2, output
        assert "The server did not finish the reload within" in output
        assert "never when a base_path does not exist" in output
        assert "/nonexistent/tfserving/missing" in output
        # The server itself still serves what it served before.
        assert server.version_states("half_plus_two") == {123: "AVAILABLE", 124: "AVAILABLE"}
