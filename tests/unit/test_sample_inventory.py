"""inventories/sample cannot rot: what users copy must load, validate and render.

- `ansible-inventory --list` loads it; every variable it sets, and every knob it shows commented out,
  is a variable some role declares (or a connection/secret variable); every role variable is there.
- Sibling groups never set the same variable (Ansible would pick one by name order, silently), and
  one group never sets a variable in two of its files.
- ansible-playbook runs each role's meta/argument_specs.yml against every host (validate_argument_spec,
  as playbooks/preflight.yml does), with Ansible's own templating; each commented-out knob is
  validated the same way in Python.
- The OS groups' Docker pins suit EL, and the runtime plan of each GPU host is possible (the version
  matrix choices: nvidia-docker2 on CentOS 7, the toolkit on EL8/9) for a driver its GPUs can run.
- Each host's models.config is rendered by the serving role's filters (tfserving_validate,
  tfserving_plan, tfserving_models_config) and parsed back by the collection's one models.config parser
  (module_utils/tfserving_models_config, itself checked against TF Serving's ModelServerConfig schema).
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys

import pytest
import yaml
from ansible.module_utils.common.arg_spec import ArgumentSpecValidator
from ansible_collections.tfserving.fleet.plugins.filter.docker_engine import docker_engine_version_problem
from ansible_collections.tfserving.fleet.plugins.filter.nvidia_runtime import nvidia_runtime_plan
from ansible_collections.tfserving.fleet.plugins.filter.tfserving_config import render_models_config
from ansible_collections.tfserving.fleet.plugins.filter.tfserving_plan import plan as tfserving_plan
from ansible_collections.tfserving.fleet.plugins.filter.tfserving_validate import validate
from ansible_collections.tfserving.fleet.plugins.module_utils import tfserving_models_config as models_config
from conftest import ROOT
from jinja2.nativetypes import NativeEnvironment

SAMPLE = ROOT / "inventories" / "sample"
GROUP_VARS = SAMPLE / "group_vars"
ROLES = sorted(p.parent.parent for p in (ROOT / "roles").glob("*/meta/argument_specs.yml"))
ROLE_NAMES = [r.name for r in ROLES]
PROJECT_VAR = re.compile(r"^({})_".format("|".join(sorted(ROLE_NAMES, key=len, reverse=True))))
BIN = os.path.dirname(sys.executable)

# What the test assumes about the hosts of each group, beyond the inventory: their OS (what the
# group's name and hosts.yml say) and a driver their GPUs can run (K80: branch 470 is the last).
OS_OF_GROUP = {
    "el7_nvidia_docker2": {"distribution": "CentOS", "major": "7", "path": "legacy"},
    "el_toolkit": {"distribution": "Rocky", "major": "9", "path": "toolkit"},
}
DRIVER_OF_GROUP = {"gpu_k80": "470.256.02", "gpu_t4": "550.127.05", "gpu_a100": "550.127.05"}


def run(args, **kwargs):
    env = dict(
        os.environ,
        ANSIBLE_CONFIG=str(ROOT / "ansible.cfg"),
        ANSIBLE_NOCOLOR="1",
        PATH=BIN + os.pathsep + os.environ.get("PATH", ""),
        **kwargs.pop("env", {}),
    )
    return subprocess.run(args, cwd=ROOT, env=env, capture_output=True, text=True, timeout=180, check=False)


def role_specs():
    """{role: argument_specs main options} and {role: defaults}."""
    specs, defaults = {}, {}
    for role in ROLES:
        specs[role.name] = yaml.safe_load((role / "meta" / "argument_specs.yml").read_text())["argument_specs"][
            "main"
        ].get("options", {})
        path = role / "defaults" / "main.yml"
        defaults[role.name] = (yaml.safe_load(path.read_text()) if path.exists() else None) or {}
    return specs, defaults


SPECS, DEFAULTS = role_specs()
DECLARED = {name: role for role, options in SPECS.items() for name in options}
DECLARED.update({name: role for role, values in DEFAULTS.items() for name in values if name not in DECLARED})


def owner(name):
    """The role whose spec declares `name` (longest prefix wins: tfserving_rollout_ before tfserving_)."""
    return DECLARED.get(name)


def allowed_name(name):
    """Role variables, Ansible's connection variables, and secrets (vault.yml) only."""
    return owner(name) is not None or name.startswith(("ansible_", "vault_"))


def group_files():
    return sorted(GROUP_VARS.glob("*/*.yml"))


def commented_knobs(path):
    """[(name, yaml text)] of the knobs a file shows commented out: '# name: value' and the lines after
    it that continue the value ('#   ...', two or more spaces)."""
    out = []
    lines = path.read_text().splitlines()
    i = 0
    while i < len(lines):
        match = re.match(r"^# ([a-z][a-z0-9_]*):(.*)$", lines[i])
        if not match or not PROJECT_VAR.match(match[1]):
            i += 1
            continue
        block = [lines[i][2:]]
        i += 1
        while i < len(lines) and re.match(r"^#   ", lines[i]):
            block.append(lines[i][2:])
            i += 1
        out.append((match[1], "\n".join(block)))
    return out


@pytest.fixture(scope="module")
def inventory():
    proc = run([os.path.join(BIN, "ansible-inventory"), "-i", str(SAMPLE), "--list"])
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout)


@pytest.fixture(scope="module")
def templated(inventory, tmp_path_factory):
    """{host: {role variable: value}} as Ansible templates them, after validate_argument_spec passed."""
    tmp = tmp_path_factory.mktemp("sample-inventory")
    proc = run(
        [
            os.path.join(BIN, "ansible-playbook"),
            "-i",
            str(SAMPLE),
            "-c",
            "local",
            "-e",
            json.dumps({"inventory_test_roles": ROLE_NAMES}),
            str(ROOT / "tests" / "unit" / "playbooks" / "inventory_specs.yml"),
        ],
        env={"ANSIBLE_STDOUT_CALLBACK": "ansible.builtin.json", "ANSIBLE_LOCAL_TEMP": str(tmp)},
    )
    assert proc.returncode == 0, proc.stdout[-6000:] + proc.stderr[-3000:]
    result = json.loads(proc.stdout)
    validated = result["plays"][0]["tasks"][0]["hosts"]
    for host, res in validated.items():
        assert not res.get("failed"), (host, res)
        assert [r["item"] for r in res["results"]] == ROLE_NAMES
    shown = result["plays"][0]["tasks"][1]["hosts"]
    return {host: res["msg"] for host, res in shown.items()}


def all_hosts(inventory):
    return sorted(inventory["_meta"]["hostvars"])


def serving_hosts(inventory):
    def members(group):
        data = inventory.get(group, {})
        out = set(data.get("hosts", []))
        for child in data.get("children", []):
            out |= members(child)
        return out

    return sorted(members("tfserving_hosts"))


def groups_of(inventory, host):
    return sorted(g for g, data in inventory.items() if g != "_meta" and host in data.get("hosts", []))


def ancestors(inventory, group):
    parents = {g for g, data in inventory.items() if g != "_meta" and group in data.get("children", [])}
    out = set(parents) | {"all"}
    for parent in parents:
        out |= ancestors(inventory, parent)
    out.discard(group)
    return out


# -- names -------------------------------------------------------------------------------------------------


def test_every_serving_host_is_in_an_os_group_and_a_hardware_group(inventory):
    hosts = serving_hosts(inventory)
    assert len(hosts) >= 4
    for host in hosts:
        groups = set(groups_of(inventory, host))
        assert len(groups & set(OS_OF_GROUP)) == 1, (host, groups)
        assert len(groups & {*DRIVER_OF_GROUP, "cpu_only"}) == 1, (host, groups)
    assert inventory["canary"]["hosts"] and set(inventory["canary"]["hosts"]) <= set(hosts)


def test_every_variable_set_is_declared(inventory):
    unknown = {
        (host, name)
        for host, hostvars in inventory["_meta"]["hostvars"].items()
        for name in hostvars
        if not allowed_name(name)
    }
    assert not unknown, f"not a variable of any role: {sorted(unknown)}"


def test_every_commented_knob_is_a_declared_variable_with_a_valid_value():
    seen = 0
    for path in group_files():
        for name, text in commented_knobs(path):
            seen += 1
            role = owner(name)
            assert role, f"{path.relative_to(ROOT)}: '# {name}:' is not a variable of any role"
            value = yaml.safe_load(text)
            assert list(value) == [name], (path, text)
            result = ArgumentSpecValidator({name: SPECS[role][name]}).validate(value)
            assert not result.error_messages, (path, name, result.error_messages)
    assert seen > 40


def test_every_role_variable_is_present_set_or_commented():
    present = set()
    for path in group_files():
        present |= set(yaml.safe_load(path.read_text()) or {})
        present |= {name for name, _ in commented_knobs(path)}
    missing = sorted(set(DECLARED) - present)
    assert not missing, f"role variables missing from inventories/sample/group_vars: {missing}"


def test_no_variable_is_set_twice_in_a_group_or_by_sibling_groups(inventory):
    by_group = {}
    for path in group_files():
        names = set(yaml.safe_load(path.read_text()) or {})
        group = path.parent.name
        assert group in inventory or group == "all", f"group_vars/{group} is not a group of hosts.yml"
        twice = names & by_group.get(group, set())
        assert not twice, f"group_vars/{group}: {sorted(twice)} set in two files (the later file wins silently)"
        by_group.setdefault(group, set()).update(names)
    for host in all_hosts(inventory):
        groups = groups_of(inventory, host)
        for name in {n for g in groups for n in by_group.get(g, ())}:
            setters = [g for g in groups if name in by_group.get(g, ())]
            for a in setters:
                for b in setters:
                    if a < b and a not in ancestors(inventory, b) and b not in ancestors(inventory, a):
                        pytest.fail(f"{host}: {name} is set by sibling groups {a} and {b}")


# -- what Ansible makes of it ------------------------------------------------------------------------------


def test_argument_specs_pass_for_every_host_with_ansible_templating(inventory, templated):
    assert sorted(templated) == all_hosts(inventory)
    for host in serving_hosts(inventory):
        values = templated[host]
        assert values["tfserving_instances"], host
        assert "{{" not in json.dumps(values), (host, values)
        assert values["tfserving_registry_password"] == "CHANGE-ME"


def test_docker_pins_and_runtime_plans_follow_the_matrix(inventory, templated):
    matrix = yaml.safe_load((ROOT / "roles" / "nvidia_runtime" / "vars" / "matrix.yml").read_text())[
        "_nvidia_runtime_matrix"
    ]
    paths = {}
    for host in serving_hosts(inventory):
        values = templated[host]
        groups = groups_of(inventory, host)
        os_group = next(g for g in groups if g in OS_OF_GROUP)
        facts = OS_OF_GROUP[os_group]
        version = values.get("docker_engine_version", "")
        assert version, f"{host}: no Docker pin (the runtime is matched to it)"
        assert docker_engine_version_problem(version, "RedHat", values.get("docker_engine_source", "docker")) == ""
        if values.get("nvidia_runtime_mode", "auto") == "disabled":
            continue
        hw_group = next(g for g in groups if g in DRIVER_OF_GROUP)
        result = nvidia_runtime_plan(
            values.get("nvidia_runtime_docker_version") or version,
            matrix,
            "RedHat",
            os_major=facts["major"],
            distribution=facts["distribution"],
            flavor=values.get("nvidia_runtime_flavor", "auto"),
            nvidia_docker2_version=values.get("nvidia_runtime_nvidia_docker2_version", ""),
            toolkit_version=values.get("nvidia_runtime_toolkit_version", ""),
            cuda_version=values["nvidia_runtime_serving_cuda_version"],
            driver_version=DRIVER_OF_GROUP[hw_group],
        )
        assert result["ok"], f"{host}: {result['error']}"
        assert result["path"] == facts["path"], host
        paths[host] = result
    legacy = [p for p in paths.values() if p["path"] == "legacy"]
    assert legacy and {
        "nvidia-docker2-2.0.3-3.docker18.09.7.ce",
        "nvidia-container-runtime-2.0.0-3.docker18.09.7",
    } <= set(legacy[0]["packages"])
    assert any(p["path"] == "toolkit" for p in paths.values())


def test_the_legacy_group_is_refused_on_el8_so_the_split_is_needed(templated, inventory):
    """The EL7 choices are not just valid: they are only valid there."""
    matrix = yaml.safe_load((ROOT / "roles" / "nvidia_runtime" / "vars" / "matrix.yml").read_text())[
        "_nvidia_runtime_matrix"
    ]
    host = inventory["el7_nvidia_docker2"]["hosts"][0]
    values = templated[host]
    result = nvidia_runtime_plan(
        values["docker_engine_version"],
        matrix,
        "RedHat",
        os_major="8",
        distribution="Rocky",
        flavor=values["nvidia_runtime_flavor"],
        nvidia_docker2_version=values["nvidia_runtime_nvidia_docker2_version"],
    )
    assert not result["ok"] and "not Rocky 8" in result["error"]


def settings_for(host, values, gpu_mode):
    """The role's own _tfserving_settings (roles/tfserving/vars/main.yml), templated from the role's
    defaults overlaid with the host's values."""
    template = yaml.safe_load((ROOT / "roles" / "tfserving" / "vars" / "main.yml").read_text())["_tfserving_settings"]
    context = {**DEFAULTS["tfserving"], **values, "inventory_hostname": host, "_tfserving_gpu_mode": gpu_mode}
    env = NativeEnvironment()
    return {key: env.from_string(str(value)).render(context) for key, value in template.items()}


def gpu_mode_for(values, os_group):
    """What tfserving_gpu_mode auto turns into on a host whose GPU runtime preflight passed."""
    if values.get("tfserving_gpu_mode", "auto") != "auto":
        return values["tfserving_gpu_mode"]
    if values.get("nvidia_runtime_mode", "auto") == "disabled":
        return "none"
    return OS_OF_GROUP[os_group]["path"]


def test_models_config_renders_for_every_instance_of_every_host(inventory, templated):
    rendered = 0
    definitions = {}
    for host in serving_hosts(inventory):
        values = templated[host]
        os_group = next(g for g in groups_of(inventory, host) if g in OS_OF_GROUP)
        mode = gpu_mode_for(values, os_group)
        settings = settings_for(host, values, mode)
        instances = values["tfserving_instances"]
        assert validate(instances, host, {}, settings) == [], host
        planned = tfserving_plan(instances, settings)
        for inst, item in zip(instances, planned, strict=True):
            if item["state"] != "present":
                continue
            text = render_models_config(item)
            models = models_config.parse(text)
            assert models_config.validate(models) == [], (host, inst["name"])
            assert [m.name for m in models] == sorted(m["name"] for m in inst["models"])
            for model in models:
                assert model.model_platform == "tensorflow"
                assert model.base_path.startswith("/")
                served = set(model.versions)
                if model.policy == "specific":
                    assert set(model.version_labels.values()) <= served, (host, model.name)
            container = item["container"]
            if inst.get("gpus"):
                if mode == "toolkit":
                    assert container["device_requests"][0]["device_ids"] == [str(g) for g in inst["gpus"]]
                    assert container["image"] == values["tfserving_image_gpu"]
                elif mode == "legacy":
                    assert container["runtime"] == "nvidia"
                    assert container["env"]["NVIDIA_VISIBLE_DEVICES"] == ",".join(str(g) for g in inst["gpus"])
            else:
                assert not container["device_requests"] and container["runtime"] is None
                assert container["image"] == values["tfserving_image_cpu"]
            for model in inst["models"]:
                key = model.get("source") or model.get("base_path")
                definitions.setdefault((model["name"], key), []).append((host, inst["name"], model))
            rendered += 1
    assert rendered >= 10
    # A model served on several hosts is one model: the same versions and labels everywhere, or a
    # rollout and status would see a different fleet than the inventory meant.
    for (name, _), places in definitions.items():
        first = places[0][2]
        for host, instance, model in places[1:]:
            assert model == first, f"model {name} differs on {host}/{instance}: {model} vs {first}"


def test_the_sample_is_not_the_sandbox():
    """Users copy the sample: it must not point at the sandbox's registry, addresses or test double."""
    text = "\n".join(p.read_text() for p in [SAMPLE / "hosts.yml", *group_files()])
    for needle in ("172.30.0", "tfserving-double", "sandbox", ":latest"):
        assert needle not in text, needle
