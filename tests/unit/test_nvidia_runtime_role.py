"""The nvidia_runtime role's preflight, run for real by ansible-playbook against localhost.

The preflight only reads, so it runs without check mode too. GPU hosts are stood in for by an
nvidia-smi script that prints a real ``nvidia-smi -q -x`` report from tests/data/nvidia-smi; a host
without a GPU is this machine itself with nvidia_runtime_nvidia_smi_path pointing nowhere.
Each run takes about two seconds.
"""

import json
import subprocess
import sys

import pytest
from conftest import ANSIBLE_BIN, ROOT, ansible_env, fake_nvidia_smi

PLAY = """
- hosts: localhost
  connection: local
  gather_facts: true
  tasks:
    - name: Preflight of the GPU runtime role runs
      ansible.builtin.include_role:
        name: tfserving.fleet.nvidia_runtime
        tasks_from: preflight
    - name: Published facts are shown
      ansible.builtin.debug:
        msg:
          available: "{{ nvidia_runtime_gpu_available }}"
          mode: "{{ nvidia_runtime_gpu_mode }}"
          daemon: "{{ nvidia_runtime_docker_daemon_options }}"
          plan: "{{ nvidia_runtime_plan }}"
"""


@pytest.fixture(scope="module")
def workdir(tmp_path_factory):
    path = tmp_path_factory.mktemp("nvidia_runtime_role")
    (path / "play.yml").write_text(PLAY)
    return path


def run(workdir, extra, check=False):
    env = ansible_env(workdir)
    argv = [
        str(ANSIBLE_BIN / "ansible-playbook"),
        "-i",
        "localhost,",
        "-e",
        f"ansible_python_interpreter={sys.executable}",
        "-e",
        json.dumps(extra),
        str(workdir / "play.yml"),
    ] + (["--check"] if check else [])
    proc = subprocess.run(argv, cwd=ROOT, env=env, capture_output=True, text=True, timeout=120, check=False)
    out = json.loads(proc.stdout)
    results = [
        (task["task"]["name"].removeprefix("tfserving.fleet.nvidia_runtime : "), task["hosts"]["localhost"])
        for play in out["plays"]
        for task in play["tasks"]
        if "localhost" in task["hosts"]
    ]
    return proc.returncode, results


def failure(results):
    failed = [(name, r) for name, r in results if r.get("failed")]
    assert len(failed) == 1, failed
    return failed[0]


def published(results):
    return next(r["msg"] for name, r in results if name == "Published facts are shown")


NO_SMI = "/nonexistent/bin/nvidia-smi"


def test_required_without_driver_fails_naming_host_and_what_is_missing(workdir):
    rc, results = run(workdir, {"nvidia_runtime_mode": "required", "nvidia_runtime_nvidia_smi_path": NO_SMI})
    name, result = failure(results)
    assert rc == 2
    assert name == "Host without a usable GPU fails in mode required"
    assert result["msg"].startswith(
        f"localhost: nvidia_runtime_mode is 'required' but nvidia-smi not found (searched {NO_SMI}): "
        "the NVIDIA driver is not installed."
    )
    assert "Nothing was changed on the host." in result["msg"]
    # Only read-only tasks ran before the failure.
    assert [r.get("changed", False) for _, r in results] == [False] * len(results)


def test_required_fails_the_same_in_check_mode(workdir):
    rc, results = run(
        workdir, {"nvidia_runtime_mode": "required", "nvidia_runtime_nvidia_smi_path": NO_SMI}, check=True
    )
    assert rc == 2 and failure(results)[0] == "Host without a usable GPU fails in mode required"


def test_auto_without_gpu_publishes_cpu_mode(workdir):
    rc, results = run(workdir, {"nvidia_runtime_mode": "auto", "nvidia_runtime_nvidia_smi_path": NO_SMI})
    assert rc == 0
    assert published(results) == {"available": False, "mode": "none", "daemon": {}, "plan": {}}


def test_disabled_never_looks_for_gpus(workdir):
    rc, results = run(workdir, {"nvidia_runtime_mode": "disabled"})
    assert rc == 0
    assert published(results)["mode"] == "none"
    looked = [r for name, r in results if name == "GPUs and driver of the host are known"]
    assert looked and all(r.get("skipped") for r in looked)


def test_t4_host_gets_the_toolkit_plan(workdir):
    smi = fake_nvidia_smi(workdir, "tesla-t4.xml")
    rc, results = run(
        workdir,
        {
            "nvidia_runtime_mode": "required",
            "nvidia_runtime_nvidia_smi_path": smi,
            "nvidia_runtime_docker_version": "20.10.24",
            "nvidia_runtime_serving_cuda_version": "11.2",
            "nvidia_runtime_register_docker_runtime": True,
        },
    )
    assert rc == 0, results
    facts = published(results)
    assert (facts["available"], facts["mode"]) == (True, "toolkit")
    assert facts["daemon"] == {"runtimes": {"nvidia": {"path": "nvidia-container-runtime", "runtimeArgs": []}}}
    assert facts["plan"]["packages"][0] == "nvidia-container-toolkit=1.17.8-1"  # this machine is Debian
    assert facts["plan"]["cuda"]["driver_max_cuda"] == "11.7"


def test_t4_host_refuses_a_cuda_12_image(workdir):
    smi = fake_nvidia_smi(workdir, "tesla-t4.xml")
    rc, results = run(
        workdir,
        {
            "nvidia_runtime_nvidia_smi_path": smi,
            "nvidia_runtime_docker_version": "20.10.24",
            "nvidia_runtime_serving_cuda_version": "12.2",
        },
    )
    name, result = failure(results)
    assert rc == 2 and name == "Runtime plan is possible"
    assert result["msg"] == (
        "localhost: driver 515.105.01 supports CUDA up to 11.7, but the serving image is built on CUDA 12.2; "
        "nearest valid choices: upgrade to a driver >= 535.54.03, or serve an image built on CUDA <= 11.7. "
        "Nothing was changed on the host."
    )


def test_k80_host_refuses_legacy_docker_on_a_new_distribution(workdir):
    smi = fake_nvidia_smi(workdir, "nvidia_smi_out_of_order.xml")
    rc, results = run(
        workdir,
        {
            "nvidia_runtime_nvidia_smi_path": smi,
            "nvidia_runtime_docker_version": "5:18.09.2~3-0~debian-stretch",
            "nvidia_runtime_serving_cuda_version": "",
        },
    )
    name, result = failure(results)
    assert rc == 2 and name == "Runtime plan is possible"
    assert "nvidia-docker2 for Docker 18.09.2 was built only for Debian 9; Ubuntu 16, 18" in result["msg"]


def test_min_gpus_counts_the_gpus_of_the_report(workdir):
    smi = fake_nvidia_smi(workdir, "tesla-t4.xml")
    rc, results = run(
        workdir,
        {"nvidia_runtime_mode": "required", "nvidia_runtime_min_gpus": 2, "nvidia_runtime_nvidia_smi_path": smi},
    )
    name, result = failure(results)
    assert rc == 2 and name == "Host without a usable GPU fails in mode required"
    assert "but only 1 GPU(s) are visible" in result["msg"]
