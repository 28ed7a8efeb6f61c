"""playbooks/preflight.yml with the sample inventory's EL7 group (el7_nvidia_docker2 + gpu_k80:
host gpu-k80-01.example.com) passes under the running ansible-core line; `make unit-2.16` runs it
under 2.16, the line that group is managed from.

The host is this machine presenting as CentOS 7.9: ansible-playbook runs in a private mount namespace
(unshare -m) where /etc is a copy carrying the release files of images/el-host/identity/centos-7, so
fact gathering reports distribution CentOS 7 as on the real host. Two things differ from a real EL7
host and are overridden on the command line: the connection (local) and the interpreter (this
environment's Python; CentOS 7's own 2.7/3.6 is covered by test_ansible_support.py and listed as a
known gap in docs/ansible-core-lines.md). The GPUs are a stand-in nvidia-smi printing a two-GPU
Tesla K80 report (one K80 board), driver 470. The model sources the group names
(/srv/model-exports/{ranker,fraud}) are copies of TF Serving's half_plus_two test SavedModel, mounted
over /srv in the same namespace.
"""

import json
import os
import pathlib
import shutil
import subprocess
import sys

from conftest import ROOT

BIN = pathlib.Path(sys.executable).parent
MODEL = ROOT / "tests" / "data" / "tfserving" / "saved_model_half_plus_two_cpu" / "00000123"
IDENTITY = ROOT / "images" / "el-host" / "identity" / "centos-7"
K80_GPU = """  <gpu id="00000000:00:1{n}.0">
    <product_name>Tesla K80</product_name>
    <uuid>GPU-00000000-0000-0000-0000-0000000000e{n}</uuid>
    <minor_number>{n}</minor_number>
    <pci><pci_bus_id>00000000:00:1{n}.0</pci_bus_id></pci>
    <fb_memory_usage><total>11441 MiB</total></fb_memory_usage>
  </gpu>
"""
K80_REPORT = (
    '<?xml version="1.0" ?>\n<nvidia_smi_log>\n  <driver_version>470.239.06</driver_version>\n'
    "  <cuda_version>11.4</cuda_version>\n  <attached_gpus>2</attached_gpus>\n"
    + K80_GPU.format(n=0)
    + K80_GPU.format(n=1)
    + "</nvidia_smi_log>\n"
)


def centos7_etc(tmp_path):
    """A copy of /etc that names CentOS 7.9 (and no longer Debian)."""
    etc = tmp_path / "etc"
    shutil.copytree("/etc", etc, symlinks=True, ignore_dangling_symlinks=True, dirs_exist_ok=True)
    for name in ("os-release", "debian_version", "lsb-release"):
        (etc / name).unlink(missing_ok=True)
    shutil.copy(IDENTITY / "os-release", etc / "os-release")
    shutil.copy(IDENTITY / "redhat-release", etc / "redhat-release")
    shutil.copy(IDENTITY / "redhat-release", etc / "centos-release")
    return etc


def model_exports(tmp_path):
    """/srv as the group's inventory expects it: ranker versions 41 and 42, fraud version 1."""
    srv = tmp_path / "srv"
    for model, version in (("ranker", 41), ("ranker", 42), ("fraud", 1)):
        shutil.copytree(MODEL, srv / "model-exports" / model / str(version))
    return srv


def test_preflight_of_the_el7_group_passes_under_the_running_line(tmp_path):
    etc = centos7_etc(tmp_path)
    srv = model_exports(tmp_path)
    (tmp_path / "k80.xml").write_text(K80_REPORT)
    smi = tmp_path / "nvidia-smi"
    smi.write_text(f'#!/bin/sh\n[ "$*" = "-q -x" ] || exit 2\ncat "{tmp_path / "k80.xml"}"\n')
    smi.chmod(0o755)
    env = {
        **os.environ,
        "ANSIBLE_CONFIG": str(ROOT / "ansible.cfg"),
        "ANSIBLE_STDOUT_CALLBACK": "ansible.builtin.json",
        "ANSIBLE_LOCAL_TEMP": str(tmp_path / "tmp"),
        "PATH": f"{BIN}:{os.environ.get('PATH', '')}",
    }
    extra = {
        "ansible_connection": "local",
        "ansible_python_interpreter": sys.executable,
        "nvidia_runtime_nvidia_smi_path": str(smi),
    }
    playbook = [
        str(BIN / "ansible-playbook"),
        "-i",
        str(ROOT / "inventories" / "sample"),
        str(ROOT / "playbooks" / "preflight.yml"),
        "--limit",
        "gpu-k80-01.example.com",
        "-e",
        json.dumps(extra),
    ]
    script = 'mount --bind "$1" /etc && mount --bind "$2" /srv && shift 2 && exec "$@"'
    proc = subprocess.run(
        ["unshare", "-m", "sh", "-c", script, "sh", str(etc), str(srv), *playbook],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    out = json.loads(proc.stdout)
    results = {
        task["task"]["name"].split(" : ", 1)[-1]: result
        for play in out["plays"]
        for task in play["tasks"]
        for result in task["hosts"].values()
    }
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-2000:]
    assert out["stats"]["gpu-k80-01.example.com"]["failures"] == 0
    assert out["stats"]["gpu-k80-01.example.com"]["changed"] == 0
    facts = results["Facts are gathered"]["ansible_facts"]
    assert (facts["ansible_distribution"], facts["ansible_distribution_version"]) == ("CentOS", "7.9")
    for name in (
        "The controller's ansible-core can manage the host's Python",
        "Inventory matches each role's argument spec",
        "Serving inventory is deployable on this host",
    ):
        assert name in results and not results[name].get("failed"), name
    # The EL7 group's plan: docker-ce 18.09.7 with its nvidia-docker2 build, the legacy runtime.
    plan_tasks = [r for n, r in results.items() if "ansible_facts" in r and "nvidia_runtime_plan" in r["ansible_facts"]]
    plan = plan_tasks[-1]["ansible_facts"]["nvidia_runtime_plan"] if plan_tasks else {}
    assert "nvidia-docker2-2.0.3-3.docker18.09.7.ce" in json.dumps(plan), plan
