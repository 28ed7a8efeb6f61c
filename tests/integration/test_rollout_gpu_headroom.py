"""A rollout whose new version does not fit the free GPU memory of a host is refused before anything changes.

playbooks/deploy_model.yml runs for real against one host, the control node (local connection). Its GPU
is the recorded RTX 3080 (tests/data/nvidia-smi/rtx-3080-v13.xml: 660 MiB free), served by an
``nvidia-smi`` script that prints that capture; the host's TF Serving instance is the TF Serving test
double serving version 123. Rolling out version 124 with ``gpu_memory_mib: 1024`` must refuse the host
in the gather step, naming host, GPU, free and needed memory, with the model repository, the
models.config and what the server serves exactly as before. The same rollout against the T4 capture
(13939 MiB free) passes the headroom check (the rollout then stops further on, where this host has no
Docker engine to hand the new version to; that part is molecule/fleet's).
"""

from __future__ import annotations

import hashlib
import json
import pathlib
import subprocess

import pytest
import yaml
from conftest import ANSIBLE_BIN, ROOT, ansible_env, fake_nvidia_smi, gpu_host_vars, playbook_tasks
from tfserving_double.testing import copy_model_version, start_double, write_models_config

pytestmark = [pytest.mark.integration, pytest.mark.tensorflow]

TWO = "saved_model_half_plus_two_2_versions"
REFUSAL = (
    "host 'gpu-7': GPU 0 (NVIDIA GeForce RTX 3080, GPU-19d6d965-2acc-f646-00f8-4c76979aabb4) has 660 MiB free but "
    "1024 MiB are needed to load instance ranking, model half_plus_two version 124: 1024 MiB (gpu_memory_mib). "
    "Nothing was changed on this host."
)
# What role tfserving renders for this instance (the container reads /models/...).
HOST_CONFIG = """# Managed by Ansible (role tfserving): changes made here are overwritten on the next run.
# Instance: ranking. Protobuf text format (tensorflow.serving.ModelServerConfig).
model_config_list {
  config {
    name: "half_plus_two"
    base_path: "/models/half_plus_two"
    model_platform: "tensorflow"
    model_version_policy {
      specific {
        versions: 123
      }
    }
  }
}
"""


def tree(path):
    """{relative path: sha256} of every file below path, and every directory."""
    out = {}
    for item in sorted(pathlib.Path(path).rglob("*")):
        rel = str(item.relative_to(path))
        out[rel] = hashlib.sha256(item.read_bytes()).hexdigest() if item.is_file() else "dir"
    return out


@pytest.fixture
def fleet(tmp_path):
    """The host's directories, the model's source on the control node, and the double serving 123."""
    models = tmp_path / "models" / "ranking" / "half_plus_two"
    copy_model_version(TWO, "00000123", models / "00000123")
    exports = tmp_path / "exports" / "half_plus_two"
    for version in ("00000123", "00000124"):
        copy_model_version(TWO, version, exports / version)
    (tmp_path / "etc" / "ranking").mkdir(parents=True)
    (tmp_path / "etc" / "ranking" / "models.config").write_text(HOST_CONFIG)
    served = write_models_config(
        tmp_path / "double.config",
        [{"name": "half_plus_two", "base_path": str(models), "policy": "specific { versions: 123 }"}],
    )
    with start_double([f"--model_config_file={served}", "--file_system_poll_wait_seconds=1"]) as double:
        double.wait_for(lambda: double.version_states("half_plus_two") == {123: "AVAILABLE"}, what="123 AVAILABLE")
        yield tmp_path, double


def deploy(root, double, capture):
    model = {
        "name": "half_plus_two",
        "source": str(root / "exports" / "half_plus_two"),
        "versions": [123],
        "gpu_memory_mib": 1024,
    }
    host = {
        **gpu_host_vars(root, model, bind_address="127.0.0.1", rest_port=double.rest_port, grpc_port=double.grpc_port),
        "nvidia_runtime_nvidia_smi_path": fake_nvidia_smi(root, capture),
        "nvidia_runtime_docker_version": "20.10.24",
        "nvidia_runtime_serving_cuda_version": "11.2",
    }
    (root / "inventory.yml").write_text(
        yaml.safe_dump({"all": {"children": {"tfserving_hosts": {"hosts": {"gpu-7": host}}}}})
    )
    rollout = {
        "tfserving_rollout_models": [
            {"model": "half_plus_two", "version": 124, "check": {"instances": [1.0], "expected": [2.5]}}
        ],
        "tfserving_rollout_report_dir": str(root / "reports"),
    }
    argv = [str(ANSIBLE_BIN / "ansible-playbook"), "-i", str(root / "inventory.yml"), "playbooks/deploy_model.yml"]
    argv += ["-e", json.dumps(rollout)]
    env = ansible_env(root)
    proc = subprocess.run(argv, cwd=ROOT, env=env, capture_output=True, text=True, timeout=600, check=False)
    assert proc.stdout.startswith("{"), proc.stdout + proc.stderr
    tasks = [(name, result) for name, _host, result in playbook_tasks(json.loads(proc.stdout))]
    return proc.returncode, tasks


def test_a_version_that_does_not_fit_the_gpu_is_refused_before_anything_changes(fleet):
    root, double = fleet
    before = {"models": tree(root / "models"), "etc": tree(root / "etc")}
    rc, tasks = deploy(root, double, "rtx-3080-v13.xml")
    assert rc == 2
    failed = [(name, r) for name, r in tasks if r.get("failed") and not r.get("ignore_errors")]
    assert failed[0][0] == "New versions fit the free memory of the GPUs their instances see"
    assert failed[0][1]["msg"][0].startswith(REFUSAL)
    # Nothing on the host changed before the refusal, and nothing after it (no restore was needed).
    steps = [name for name, _ in tasks]
    assert "New versions are staged beside their model" not in steps
    # Only the summary on the control node (this host is the control node here) was written.
    changed = [name for name, r in tasks if r.get("changed")]
    assert changed == ["Report directory exists", "Rollout summary is written as Markdown and JSON"], changed
    assert {"models": tree(root / "models"), "etc": tree(root / "etc")} == before
    assert double.version_states("half_plus_two") == {123: "AVAILABLE"}
    summary = json.loads((root / "reports" / "rollout-summary.json").read_text())
    [outcome] = summary["outcomes"]
    assert outcome["host"] == "gpu-7" and outcome["result"] == "refused"
    assert REFUSAL in outcome["detail"]
    assert "REFUSED" in (root / "reports" / "rollout-summary.md").read_text()


def test_the_same_version_passes_the_headroom_check_on_the_t4(fleet):
    root, double = fleet
    _rc, tasks = deploy(root, double, "tesla-t4.xml")
    checks = [r for name, r in tasks if name == "New versions fit the free memory of the GPUs their instances see"]
    assert checks and not checks[0].get("failed")
    # The rollout went on to publish the version (and was restored further on: no Docker here).
    assert "New versions are staged beside their model" in [name for name, _ in tasks]
    [outcome] = json.loads((root / "reports" / "rollout-summary.json").read_text())["outcomes"]
    assert outcome["result"] != "refused", outcome
    assert double.version_states("half_plus_two")[123] == "AVAILABLE"
