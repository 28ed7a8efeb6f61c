"""What the tfserving role asks of SELinux and firewalld (plugins/filter/tfserving_host_access.py):
the ports it opens and closes, the file-context rules it writes, and the refusals of bad options.
The filters are pure data; the role runs against the control node. Both under both ansible-core lines."""

import json
import os
import pathlib
import subprocess
import sys

import pytest
import yaml
from ansible_collections.tfserving.fleet.plugins.filter.tfserving_host_access import (
    tfserving_firewalld_ports,
    tfserving_host_access_problems,
    tfserving_selinux_fcontexts,
)
from conftest import ROOT

BIN = pathlib.Path(sys.executable).parent


def test_present_instances_open_grpc_and_rest_ports_with_defaults():
    instances = [
        {"name": "a", "models": []},
        {"name": "b", "grpc_port": 9500, "rest_port": "9501", "monitoring": {"enabled": True}},
    ]
    assert tfserving_firewalld_ports(instances) == {
        "open": ["8500/tcp", "8501/tcp", "9500/tcp", "9501/tcp"],
        "close": [],
    }


def test_removed_instances_close_their_ports_unless_a_present_instance_publishes_them():
    instances = [
        {"name": "new", "grpc_port": 8500, "rest_port": 8501},
        {"name": "old", "state": "absent", "grpc_port": 8600, "rest_port": 8501},
        {"name": "older", "state": "absent"},
    ]
    assert tfserving_firewalld_ports(instances) == {"open": ["8500/tcp", "8501/tcp"], "close": ["8600/tcp"]}


def test_no_instances_touch_no_ports_and_bad_ports_are_left_to_validation():
    assert tfserving_firewalld_ports([]) == {"open": [], "close": []}
    assert tfserving_firewalld_ports(None) == {"open": [], "close": []}
    # validate.yml (tfserving_validate) refuses these before firewalld.yml runs; never 'True/tcp'.
    assert tfserving_firewalld_ports([{"name": "x", "grpc_port": True, "rest_port": 70000}]) == {
        "open": [],
        "close": [],
    }


def test_fcontext_rules_cover_each_root_and_everything_below_it():
    assert tfserving_selinux_fcontexts(["/srv/tfserving/models", "/etc/tfserving/"]) == [
        {"path": "/srv/tfserving/models", "target": "/srv/tfserving/models(/.*)?"},
        {"path": "/etc/tfserving", "target": "/etc/tfserving(/.*)?"},
    ]


def test_fcontext_rules_escape_regex_characters_and_drop_duplicates():
    assert tfserving_selinux_fcontexts(["/data/tf.serving+1/models", "/data/tf.serving+1/models/"]) == [
        {"path": "/data/tf.serving+1/models", "target": r"/data/tf\.serving\+1/models(/.*)?"},
    ]


def test_default_options_are_valid():
    assert tfserving_host_access_problems("gpu-01", "public", "container_file_t") == []
    assert tfserving_host_access_problems("gpu-01", "trusted-internal", "svirt_sandbox_file_t") == []


def test_zone_that_is_not_a_string_is_refused_with_variable_value_and_fix():
    assert tfserving_host_access_problems("gpu-01", ["public"], "container_file_t") == [
        "gpu-01: tfserving_firewalld_zone is ['public'] (a list); expected the name of one firewalld zone as a "
        "string (letters, digits, '_', '-', at most 17 characters), such as public or internal. Fix: set "
        "tfserving_firewalld_zone: public (the default) or the zone of the interface clients reach the servers on "
        "(firewall-cmd --get-active-zones)."
    ]


def test_zone_names_firewalld_cannot_hold_are_refused():
    for zone in ("", "public zone", "a-zone-name-longer-than-17", "public;drop", 8500, None):
        problems = tfserving_host_access_problems("gpu-01", zone, "container_file_t")
        assert len(problems) == 1 and problems[0].startswith(f"gpu-01: tfserving_firewalld_zone is {zone!r} ("), zone


def test_selinux_type_must_be_a_type_name():
    assert tfserving_host_access_problems("gpu-01", "public", "system_u:object_r:container_file_t:s0") == [
        "gpu-01: tfserving_selinux_type is 'system_u:object_r:container_file_t:s0' (a string); expected an SELinux "
        "file type name ending in _t. Fix: set tfserving_selinux_type: container_file_t (the default, from "
        "container-selinux)."
    ]


# ------------------------------------------------------------- the role, run against the control node


def run_role(tmp_path, extra, check):
    """Role tfserving on the control node (local connection, facts gathered: no SELinux, no firewalld)."""
    inventory = {
        "all": {
            "hosts": {
                "gpu-01": {
                    "ansible_connection": "local",
                    "ansible_python_interpreter": sys.executable,
                    "tfserving_model_root": str(tmp_path / "models"),
                    "tfserving_config_root": str(tmp_path / "etc"),
                    "tfserving_state_dir": str(tmp_path / "state"),
                    "tfserving_monitoring_export_dir": "",
                    "tfserving_instances": [],
                }
            }
        }
    }
    play = [{"hosts": "all", "gather_facts": True, "roles": [{"role": "tfserving.fleet.tfserving"}]}]
    (tmp_path / "play.yml").write_text(yaml.safe_dump(play))
    (tmp_path / "inventory.yml").write_text(yaml.safe_dump(inventory))
    env = dict(os.environ)
    env.update(
        {
            "ANSIBLE_CONFIG": str(ROOT / "ansible.cfg"),
            "ANSIBLE_STDOUT_CALLBACK": "ansible.builtin.json",
            "ANSIBLE_LOCAL_TEMP": str(tmp_path / "tmp"),
            "PATH": f"{BIN}:{env.get('PATH', '')}",
        }
    )
    argv = [str(BIN / "ansible-playbook"), "-i", str(tmp_path / "inventory.yml"), str(tmp_path / "play.yml")]
    argv += ["-e", json.dumps(extra)] + (["--check"] if check else [])
    proc = subprocess.run(argv, cwd=ROOT, env=env, capture_output=True, text=True, timeout=300, check=False)
    out = json.loads(proc.stdout)
    tasks = [
        (task["task"]["name"].split(" : ", 1)[-1], result)
        for play_ in out["plays"]
        for task in play_["tasks"]
        for result in task["hosts"].values()
    ]
    return proc.returncode, tasks


@pytest.mark.parametrize("check", [False, True])
def test_a_zone_that_is_not_a_string_stops_the_role_before_anything_changes(tmp_path, check):
    rc, tasks = run_role(tmp_path, {"tfserving_firewalld_zone": ["public"]}, check)
    failed = [(name, r) for name, r in tasks if r.get("failed")]
    assert rc == 2 and [name for name, _ in failed] == ["SELinux and firewalld options are valid"]
    assert failed[0][1]["msg"][0].startswith("gpu-01: tfserving_firewalld_zone is ['public'] (a list); expected")
    assert not any(r.get("changed") for _, r in tasks)
    assert not (tmp_path / "models").exists() and not (tmp_path / "etc").exists()


def test_nothing_runs_where_selinux_is_absent_and_firewalld_is_not_running(tmp_path):
    rc, tasks = run_role(tmp_path, {}, check=True)
    ran = {name: r for name, r in tasks}
    assert rc == 0
    assert ran["Model and config trees are readable by containers under SELinux"].get("skipped")
    assert ran["Services on the host are known"].get("failed") is None
    for name in (
        "Serving ports of the instances are open in zone public",
        "Ports of removed instances are closed in zone public",
    ):
        assert ran[name].get("skipped"), name
