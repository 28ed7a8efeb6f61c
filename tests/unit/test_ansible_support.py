"""Controller ansible-core against the managed host's Python (plugins/filter/ansible_support.py),
on the fact sets of the hosts this project manages. playbooks/preflight.yml uses the same filter."""

import os
import pathlib
import subprocess
import sys

import pytest
from ansible.release import __version__ as ANSIBLE_CORE
from ansible_collections.tfserving.fleet.plugins.filter.ansible_support import ansible_support_problem

# What fact gathering (or preflight's raw probe) reports on each kind of host.
EL7 = {"distribution": "CentOS", "major": "7", "python": "3.6.8"}
EL7_PY2 = {"distribution": "CentOS", "major": "7", "python": "2.7.5"}
EL7_SCL = {"distribution": "CentOS", "major": "7", "python": "3.8.13"}  # rh-python38 as interpreter
EL8_PLATFORM = {"distribution": "Rocky", "major": "8", "python": "3.6.8"}  # /usr/libexec/platform-python
EL9 = {"distribution": "Rocky", "major": "9", "python": "3.9.18"}
BOOKWORM = {"distribution": "Debian", "major": "12", "python": "3.11.2"}


def problem(core, facts, host="gpu-k80-01"):
    return ansible_support_problem(core, facts["python"], host, facts["distribution"], facts["major"])


def test_el7_under_2_19_is_told_to_use_the_2_16_environment():
    assert problem("2.19.3", EL7) == (
        "gpu-k80-01: ansible-core 2.19.3 cannot manage this CentOS 7 host: its Python is 3.6.8 and ansible-core "
        "2.19 needs Python >= 3.8 on managed hosts. Fix: use the ansible-core 2.16 environment (make venv "
        "ANSIBLE_CORE=2.16; then .venv-2.16/bin/ansible-playbook), or set ansible_python_interpreter to a Python "
        ">= 3.8 on the host (on CentOS 7, rh-python38: /opt/rh/rh-python38/root/usr/bin/python3)"
    )


@pytest.mark.parametrize("facts", [EL7, EL8_PLATFORM])
def test_old_pythons_pass_under_2_16_and_fail_under_2_19(facts):
    assert problem("2.16.14", facts) == ""
    message = problem("2.19.0", facts)
    assert "make venv ANSIBLE_CORE=2.16" in message and f"its Python is {facts['python']}" in message


@pytest.mark.parametrize("facts", [EL7_SCL, EL9, BOOKWORM])
@pytest.mark.parametrize("core", ["2.16.14", "2.19.3"])
def test_current_pythons_pass_on_both_lines(facts, core):
    assert problem(core, facts) == ""


def test_python_2_7_is_sent_to_python3_under_2_16():
    # ansible-core 2.16 itself manages 2.7, but the project's modules use f-strings (Python >= 3.6).
    assert problem("2.16.14", EL7_PY2) == (
        "gpu-k80-01: this project's modules cannot run on this CentOS 7 host: its Python is 2.7.5 and they need "
        "Python >= 3.6. Fix: install python3 on the host (CentOS 7: yum install python3) and set "
        "ansible_python_interpreter: /usr/bin/python3 for it"
    )


@pytest.mark.parametrize("python", ["2.7.5", "2.6.6"])
def test_python_2_under_2_19_needs_python3_and_the_2_16_environment(python):
    message = problem("2.19.3", {"distribution": "CentOS", "major": "7", "python": python})
    assert f"its Python is {python} and they need Python >= 3.6" in message
    assert "ansible_python_interpreter: /usr/bin/python3 for it, and use the ansible-core 2.16 environment" in message


@pytest.mark.parametrize("core", ["2.17.5", "2.18.1", "2.20.0", "2.15.13"])
def test_other_ansible_core_lines_are_named_with_both_environments(core):
    message = problem(core, BOOKWORM)
    assert message.startswith(f"gpu-k80-01: ansible-core {core} is not a line this project is tested with")
    assert "make venv ANSIBLE_CORE=2.16" in message and "2.16.x or 2.19.x" in message


def test_no_python_found_names_the_fix():
    assert "install python3 or set ansible_python_interpreter" in ansible_support_problem("2.19.3", "", "h")


def test_the_running_controller_is_a_supported_line():
    # make fast runs under .venv (2.19) and, with ANSIBLE_CORE=2.16, under .venv-2.16.
    assert problem(ANSIBLE_CORE, BOOKWORM) == ""


def test_el7_fact_set_under_the_running_controller():
    # Under .venv (2.19) the CentOS 7 host (python3, 3.6) is sent to the 2.16 environment; under
    # .venv-2.16 (make unit ANSIBLE_CORE=2.16) the same host passes. Its /usr/bin/python (2.7) fails both.
    verdict = problem(ANSIBLE_CORE, EL7)
    if ANSIBLE_CORE.startswith("2.16."):
        assert verdict == ""
    else:
        assert "Fix: use the ansible-core 2.16 environment (make venv ANSIBLE_CORE=2.16" in verdict
    assert "set ansible_python_interpreter: /usr/bin/python3" in problem(ANSIBLE_CORE, EL7_PY2)


@pytest.mark.parametrize("playbook", ["site.yml", "deploy_model.yml", "rollback.yml", "status.yml"])
def test_playbooks_parse_under_the_running_controller(playbook):
    # The same inventory and playbooks serve both lines: each must at least parse under this one.
    root = pathlib.Path(__file__).resolve().parents[2]
    env = {**os.environ, "ANSIBLE_CONFIG": str(root / "ansible.cfg")}
    proc = subprocess.run(
        [str(pathlib.Path(sys.executable).parent / "ansible-playbook"), "-i", str(root / "inventories" / "sample"),
         str(root / "playbooks" / playbook), "--syntax-check"],
        capture_output=True, text=True, env=env, cwd=root, check=False, timeout=120,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
