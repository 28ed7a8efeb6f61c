"""Role tfserving, run for real by ansible-playbook against the control node (local connection).

- GPU memory headroom: a GPU host is stood in for by an ``nvidia-smi`` script on PATH that prints a real
  ``nvidia-smi -q -x`` capture. Adding a model to a GPU instance whose GPU has too little free memory
  (the RTX 3080 capture: 660 MiB free) fails in the validate step, before the role creates a
  directory; the same inventory on the T4 capture (13939 MiB free) passes the check.
- Monitoring hand-off: three hosts (all the control node); the file_sd file lists every instance with
  monitoring enabled, the second run changes nothing, check mode reports the change without writing.
"""

from __future__ import annotations

import json
import pathlib
import shutil
import subprocess
import sys

import pytest
import yaml
from conftest import ANSIBLE_BIN, ROOT, TESTDATA, ansible_env, fake_nvidia_smi, gpu_host_vars, playbook_tasks

MODEL = TESTDATA / "tfserving" / "saved_model_half_plus_two_2_versions"


def run(workdir, play, inventory, extra=None, check=False, path_prefix=None):
    (workdir / "play.yml").write_text(yaml.safe_dump(play, sort_keys=False))
    (workdir / "inventory.yml").write_text(yaml.safe_dump(inventory, sort_keys=False))
    argv = [str(ANSIBLE_BIN / "ansible-playbook"), "-i", str(workdir / "inventory.yml"), str(workdir / "play.yml")]
    argv += ["-e", json.dumps(extra or {})] + (["--check", "--diff"] if check else [])
    env = ansible_env(workdir, path_prefix)
    proc = subprocess.run(argv, cwd=ROOT, env=env, capture_output=True, text=True, timeout=300, check=False)
    out = json.loads(proc.stdout)
    return proc.returncode, playbook_tasks(out), out["stats"]


# ------------------------------------------------------------------------------------ GPU headroom



def gpu_host(tmp_path, **model):
    exports = tmp_path / "exports" / "half_plus_two"
    if not exports.exists():
        shutil.copytree(MODEL, exports)
    model = {"name": "half_plus_two", "source": str(exports), "versions": [124], **model}
    return {"all": {"hosts": {"gpu-7": gpu_host_vars(tmp_path, model, rest_port=18501, grpc_port=18500)}}}


ROLE_PLAY = [{"hosts": "all", "gather_facts": False, "roles": [{"role": "tfserving.fleet.tfserving"}]}]
VALIDATE_PLAY = [
    {
        "hosts": "all",
        "gather_facts": False,
        "tasks": [
            {"ansible.builtin.include_role": {"name": "tfserving.fleet.tfserving", "tasks_from": "validate.yml"}}
        ],
    }
]


@pytest.mark.parametrize("check", [False, True])
def test_a_model_that_does_not_fit_the_gpu_is_refused_before_anything_changes(tmp_path, check):
    smi = pathlib.Path(fake_nvidia_smi(tmp_path / "bin", "rtx-3080-v13.xml")).parent
    rc, tasks, _ = run(tmp_path, ROLE_PLAY, gpu_host(tmp_path, gpu_memory_mib=1024), check=check, path_prefix=str(smi))
    failed = [(name, r) for name, _, r in tasks if r.get("failed")]
    assert rc == 2 and [name for name, _ in failed] == [
        "New versions fit the free memory of the GPUs their instances see"
    ]
    assert failed[0][1]["msg"] == [
        "host 'gpu-7': GPU 0 (NVIDIA GeForce RTX 3080, GPU-19d6d965-2acc-f646-00f8-4c76979aabb4) has 660 MiB free "
        "but 1024 MiB are needed to load instance ranking, model half_plus_two version 124: 1024 MiB "
        "(gpu_memory_mib). Nothing was changed on this host. Fix: free memory on that GPU (retire versions or "
        "models no longer needed, stop other processes), give the instance a GPU with room (gpus), or, when the "
        "estimate is too high, set gpu_memory_mib in the model entry or lower tfserving_gpu_memory_factor."
    ]
    assert not any(r.get("changed") for _, _, r in tasks)
    assert not (tmp_path / "models").exists() and not (tmp_path / "etc").exists()


def test_the_estimate_is_size_on_disk_times_the_factor(tmp_path):
    smi = pathlib.Path(fake_nvidia_smi(tmp_path / "bin", "rtx-3080-v13.xml")).parent
    size = sum(f.stat().st_size for f in (MODEL / "00000124").rglob("*") if f.is_file())
    # A factor that makes this small test model need 700 MiB: more than the 660 MiB free.
    factor = 700 * 1024 * 1024 / size
    rc, tasks, _ = run(
        tmp_path, VALIDATE_PLAY, gpu_host(tmp_path), {"tfserving_gpu_memory_factor": factor}, path_prefix=str(smi)
    )
    failed = [r for _, _, r in tasks if r.get("failed")]
    assert rc == 2 and "has 660 MiB free but 700 MiB are needed" in failed[0]["msg"][0]
    assert f"({size / 1024:.1f} KiB on disk x {factor:g})" in failed[0]["msg"][0]


def test_the_same_model_fits_the_t4_and_validation_passes(tmp_path):
    smi = pathlib.Path(fake_nvidia_smi(tmp_path / "bin", "tesla-t4.xml")).parent
    rc, tasks, _ = run(tmp_path, VALIDATE_PLAY, gpu_host(tmp_path, gpu_memory_mib=1024), path_prefix=str(smi))
    assert rc == 0, [t for t in tasks if t[2].get("failed")]
    names = [name for name, _, _ in tasks]
    assert "New versions fit the free memory of the GPUs their instances see" in names


def test_a_bad_factor_is_refused_naming_variable_value_and_fix(tmp_path):
    rc, tasks, _ = run(tmp_path, VALIDATE_PLAY, gpu_host(tmp_path), {"tfserving_gpu_memory_factor": "two"})
    failed = [(name, r) for name, _, r in tasks if r.get("failed")]
    assert rc == 2 and failed[0][0] == "GPU memory factor is a positive number"
    assert failed[0][1]["msg"] == (
        "gpu-7: tfserving_gpu_memory_factor is 'two'; expected a positive number, the GPU memory a model version "
        "needs per byte of its size on disk (default 2.0). Set it to your models' measured ratio, or set "
        "gpu_memory_mib in a model entry."
    )


def test_the_check_can_be_turned_off(tmp_path):
    smi = pathlib.Path(fake_nvidia_smi(tmp_path / "bin", "rtx-3080-v13.xml")).parent
    rc, tasks, _ = run(
        tmp_path,
        VALIDATE_PLAY,
        gpu_host(tmp_path, gpu_memory_mib=1024),
        {"tfserving_gpu_memory_check": False},
        path_prefix=str(smi),
    )
    assert rc == 0
    assert all(r.get("skipped") for name, _, r in tasks if name == "Free memory of this host's GPUs is known")


# ------------------------------------------------------------------------------------ monitoring


def fleet(export_dir):
    def host(address, instances):
        return {"ansible_connection": "local", "ansible_python_interpreter": sys.executable,
                "ansible_host": address, "tfserving_instances": instances}  # fmt: skip

    return {
        "all": {
            "vars": {"tfserving_monitoring_export_dir": str(export_dir)},
            "hosts": {
                "gpu-1": host("10.0.0.11", [
                    {"name": "ranking", "rest_port": 8501, "monitoring": {"enabled": True}, "models": []},
                    {"name": "batch", "rest_port": 9501, "bind_address": "10.1.0.11",
                     "monitoring": {"enabled": True, "path": "/metrics"}, "models": []},
                    {"name": "quiet", "rest_port": 7501, "models": []},
                ]),
                "gpu-2": host("10.0.0.12", [
                    {"name": "ranking", "rest_port": 8501, "monitoring": {"enabled": True}, "models": []},
                    {"name": "old", "state": "absent", "monitoring": {"enabled": True}},
                ]),
                "gpu-3": host("10.0.0.13", [
                    {"name": "ranking", "rest_port": 8601, "bind_address": "::",
                     "monitoring": {"enabled": True}, "models": []},
                ]),
            },
        }
    }  # fmt: skip


MONITORING_PLAY = [
    {
        "hosts": "all",
        "gather_facts": False,
        "tasks": [
            {"ansible.builtin.include_role": {"name": "tfserving.fleet.tfserving", "tasks_from": "monitoring.yml"}}
        ],
    }
]


def test_file_sd_lists_every_instance_endpoint_and_a_rerun_changes_nothing(tmp_path):
    export = tmp_path / "monitoring"
    rc, tasks, stats = run(tmp_path, MONITORING_PLAY, fleet(export), check=True)
    assert rc == 0 and stats["gpu-1"]["changed"] == 3
    assert not export.exists()  # check mode reports, writes nothing
    rc, tasks, stats = run(tmp_path, MONITORING_PLAY, fleet(export))
    assert rc == 0 and stats["gpu-1"]["changed"] == 3
    assert json.loads((export / "tfserving-targets.json").read_text()) == [
        {"labels": {"__metrics_path__": "/metrics", "tfserving_host": "gpu-1",
                    "tfserving_instance": "batch"}, "targets": ["10.1.0.11:9501"]},
        {"labels": {"__metrics_path__": "/monitoring/prometheus/metrics", "tfserving_host": "gpu-1",
                    "tfserving_instance": "ranking"}, "targets": ["10.0.0.11:8501"]},
        {"labels": {"__metrics_path__": "/monitoring/prometheus/metrics", "tfserving_host": "gpu-2",
                    "tfserving_instance": "ranking"}, "targets": ["10.0.0.12:8501"]},
        {"labels": {"__metrics_path__": "/monitoring/prometheus/metrics", "tfserving_host": "gpu-3",
                    "tfserving_instance": "ranking"}, "targets": ["10.0.0.13:8601"]},
    ]  # fmt: skip
    assert (export / "tfserving-alerts.yml").read_text() == (
        ROOT / "roles" / "tfserving" / "files" / "tfserving-alerts.yml"
    ).read_text()
    rc, tasks, stats = run(tmp_path, MONITORING_PLAY, fleet(export))
    assert rc == 0 and sum(s["changed"] for s in stats.values()) == 0
    rc, tasks, stats = run(tmp_path, MONITORING_PLAY, fleet(export), check=True)
    assert rc == 0 and sum(s["changed"] for s in stats.values()) == 0
    # Every task ran once for the play, on the control node.
    assert {host for name, host, _ in tasks if name.startswith("Prometheus file_sd")} == {"gpu-1"}
