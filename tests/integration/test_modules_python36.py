"""The collection's host-side modules executed by a real Python 3.6, the python3 of CentOS 7, under
the ansible-core 2.16 environment that manages EL7 fleets (.venv-2.16).

tests/unit/test_target_python.py proves the modules parse with 3.6's grammar; this runs them: GPU facts
from a vendored nvidia-smi capture, the version listing of a real SavedModel tree, and status and a
prediction against the TF Serving test double (a process on loopback, REST). Python 3.6 comes from
pyenv (the base image of this project's CI machines has 3.6.15 there); where none is installed the
test fails and says how to get one.
"""

import glob
import json
import os
import shutil
import subprocess

import pytest
from conftest import ROOT, TESTDATA, fake_nvidia_smi
from tfserving_double.testing import start_double

pytestmark = [pytest.mark.integration, pytest.mark.tensorflow]

ANSIBLE_216 = ROOT / ".venv-2.16" / "bin" / "ansible-playbook"
MODELS = TESTDATA / "tfserving"


def python36():
    root = os.environ.get("PYENV_ROOT") or os.path.expanduser("~/.pyenv")
    found = sorted(glob.glob(os.path.join(root, "versions", "3.6.*", "bin", "python3.6")))
    return found[-1] if found else shutil.which("python3.6")


@pytest.fixture(scope="module")
def double(tmp_path_factory):
    config = tmp_path_factory.mktemp("double") / "models.config"
    base_path = MODELS / "saved_model_half_plus_two_2_versions"
    config.write_text(
        f'model_config_list {{ config {{ name: "half_plus_two" base_path: "{base_path}" '
        'model_platform: "tensorflow" model_version_policy { specific { versions: 123 } } } }\n'
    )
    with start_double([f"--model_config_file={config}"]) as server:
        yield server


def test_modules_run_under_python_3_6_with_ansible_core_2_16(double, tmp_path):
    interpreter = python36()
    # Not skipped: without it the claim "the modules run on CentOS 7's python3" is untested.
    assert interpreter, "no Python 3.6 on this machine: pyenv install 3.6.15 (or set PYENV_ROOT)"
    assert ANSIBLE_216.exists(), "the 2.16 environment is missing: make venv ANSIBLE_CORE=2.16"
    results = tmp_path / "results.json"
    extra = {
        "ansible_python_interpreter": interpreter,
        "tfserving_test_nvidia_smi": fake_nvidia_smi(tmp_path / "bin", "tesla-t4.xml"),
        "tfserving_test_models": str(MODELS),
        "tfserving_test_rest_port": double.rest_port,
        "tfserving_test_results": str(results),
    }
    env = dict(
        os.environ,
        ANSIBLE_CONFIG=str(ROOT / "ansible.cfg"),
        ANSIBLE_LOCAL_TEMP=str(tmp_path / "ansible-tmp"),
        ANSIBLE_NOCOLOR="1",
        PATH=f"{ANSIBLE_216.parent}{os.pathsep}{os.environ.get('PATH', '')}",
    )
    proc = subprocess.run(
        [
            str(ANSIBLE_216),
            "-i",
            "localhost,",
            "-e",
            json.dumps(extra),
            str(ROOT / "tests" / "integration" / "playbooks" / "modules_python36.yml"),
        ],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    got = json.loads(results.read_text())
    assert got["python"].startswith("3.6.")
    assert got["gpu"]["available"] is True and got["gpu"]["count"] == 1
    assert got["gpu"]["gpus"][0]["name"] == "Tesla T4"
    assert [v["version"] for v in got["versions"]["versions"]] == [123, 124]
    assert [(m["version"], m["state"]) for m in got["status"]["models"]] == [(123, "AVAILABLE")]
    assert got["predict"]["outputs"] == [2.5, 3.0, 4.5]
