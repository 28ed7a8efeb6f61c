"""docs/runbooks/ cannot rot: the commands, variables and outputs the pages show are checked against the
real playbooks, roles and a real TF Serving API.

- Every `ansible-playbook` command of every ```sh block: the playbook exists and passes --syntax-check
  with the sandbox inventory, each -e variable is one a role declares or a playbook reads, each --tags
  tag exists, no option is made up. Every `ansible -m MODULE` names a module Ansible finds. The
  `ansible-inventory` commands of ```sh sandbox blocks run for real against the sandbox inventory.
- ```yaml vars and ```yaml file=NAME blocks: every variable is declared and passes its role's argument
  spec; tfserving_instances passes the serving role's validation, Docker pins suit EL, runtime choices
  pass the version matrix, tfserving_rollout_models the rollout's validation.
- ```sh tfserving blocks run for real against the TF Serving test double, set up as the page's
  scenario describes, and print what the ```json output / ```text output block after them says.
- Preflight refusals quoted in the pages are the messages the nvidia_runtime filters produce.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shlex
import subprocess
import sys

import pytest
import yaml
from ansible.module_utils.common.arg_spec import ArgumentSpecValidator
from ansible_collections.tfserving.fleet.plugins.filter.docker_engine import docker_engine_version_problem
from ansible_collections.tfserving.fleet.plugins.filter.nvidia_runtime import nvidia_runtime_plan
from ansible_collections.tfserving.fleet.plugins.filter.tfserving_config import render_models_config
from ansible_collections.tfserving.fleet.plugins.filter.tfserving_plan import plan as tfserving_plan
from ansible_collections.tfserving.fleet.plugins.filter.tfserving_validate import validate as tfserving_validate
from conftest import ROOT
from tfserving_double.testing import copy_model_version, run_double, start_double

pytestmark = [pytest.mark.integration, pytest.mark.tensorflow]

RUNBOOKS = ROOT / "docs" / "runbooks"
PAGES = sorted(RUNBOOKS.glob("*.md"))
BIN = os.path.dirname(sys.executable)
SANDBOX_ENV = {
    "INVENTORY": "inventories/sandbox",
    "HOST": "tfs-sandbox-1",
    "REST": "http://172.30.0.11:8501",
    "CONTAINER": "tfserving-demo",
    "MODEL_DIR": "/srv/tfserving/models/demo/half_plus_two",
}
REQUIRED_PAGES = {
    "deploy-model-version.md",
    "rollback.md",
    "add-model.md",
    "add-gpu-host.md",
    "replace-failed-host.md",
    "install-offline.md",
    "rotate-registry-credentials.md",
    "troubleshoot-no-versions.md",
    "troubleshoot-labels.md",
    "troubleshoot-gpu-not-visible.md",
    "troubleshoot-driver-too-old.md",
    "troubleshoot-docker-nvidia-mismatch.md",
    "troubleshoot-drift.md",
}
TWO_VERSIONS = "saved_model_half_plus_two_2_versions"


# -- reading the pages -------------------------------------------------------------------------------------


def blocks_of(page):
    """Fenced blocks: {page, lang, tags, attrs, text, line}; fences may be indented (inside list items)."""
    out = []
    lines = page.read_text().splitlines()
    i = 0
    while i < len(lines):
        match = re.match(r"^( *)```(\S*)(.*)$", lines[i])
        if not match:
            i += 1
            continue
        indent, lang, rest = len(match[1]), match[2], match[3].split()
        start = i + 1
        i += 1
        body = []
        while i < len(lines) and not re.match(r"^ *```\s*$", lines[i]):
            body.append(lines[i][indent:] if lines[i][:indent].strip() == "" else lines[i])
            i += 1
        i += 1
        out.append(
            {
                "page": page.name,
                "lang": lang,
                "tags": {w for w in rest if "=" not in w},
                "attrs": dict(w.split("=", 1) for w in rest if "=" in w),
                "text": "\n".join(body) + "\n",
                "line": start,
            }
        )
    return out


ALL_BLOCKS = [b for page in PAGES for b in blocks_of(page)]


def where(block):
    return f"{block['page']}:{block['line']}"


def logical_lines(text):
    """Shell lines with backslash continuations joined, comments dropped."""
    out, current = [], ""
    for raw in text.splitlines():
        line = raw.rstrip()
        if line.endswith("\\"):
            current += line[:-1] + " "
            continue
        current += line
        if current.strip() and not current.strip().startswith("#"):
            out.append(current.strip())
        current = ""
    return out


def commands(text, program):
    """Argument lists of every `program` invocation in a shell text (split on && ; |)."""
    out = []
    for line in logical_lines(text):
        try:
            tokens = shlex.split(line, comments=True)
        except ValueError as err:
            raise AssertionError(f"unparsable shell line: {line!r}: {err}") from err
        part = []
        for token in [*tokens, ";"]:
            if token in ("&&", ";", "|", "||"):
                if part and part[0] == program:
                    out.append(part[1:])
                part = []
            else:
                part.append(token)
    return out


# -- what is declared --------------------------------------------------------------------------------------


def role_specs():
    specs = {}
    for spec_file in sorted((ROOT / "roles").glob("*/meta/argument_specs.yml")):
        options = yaml.safe_load(spec_file.read_text())["argument_specs"]["main"].get("options", {})
        for name, spec in options.items():
            specs[name] = spec
        defaults = spec_file.parent.parent / "defaults" / "main.yml"
        for name in (yaml.safe_load(defaults.read_text()) or {}) if defaults.exists() else {}:
            specs.setdefault(name, None)
    return specs


ROLE_SPECS = role_specs()
_VAR_USE = re.compile(
    r"([a-z_][a-z0-9_]*)\s*\|\s*default\b|\{\{-?\s*([a-z_][a-z0-9_]*)|([a-z_][a-z0-9_]*)\s+is\s+(?:not\s+)?defined"
)


def playbook_variables():
    """Variables the playbooks read (`x | default(...)`, `{{ x`, `x is defined`)."""
    names = set()
    for path in [*(ROOT / "playbooks").glob("*.yml"), *(ROOT / "sandbox").glob("*.yml")]:
        for match in _VAR_USE.finditer(path.read_text()):
            names.add(next(g for g in match.groups() if g))
    return names


PLAYBOOK_VARS = playbook_variables()


def declared(name):
    return name in ROLE_SPECS or name in PLAYBOOK_VARS


def known_tags():
    tags = {"always", "never", "all", "tagged", "untagged"}
    for path in [*(ROOT / "playbooks").glob("*.yml"), *(ROOT / "roles").glob("*/tasks/*.yml")]:
        for match in re.finditer(r"tags:\s*\[([^\]]*)\]", path.read_text()):
            tags |= {t.strip().strip("'\"") for t in match[1].split(",") if t.strip()}
    return tags


# -- ansible-playbook commands -----------------------------------------------------------------------------

FLAGS = {"--check", "-C", "--diff", "-D", "-v", "-vv", "-vvv", "--ask-vault-pass", "-K", "--ask-become-pass"}
WITH_VALUE = {"-i", "--inventory", "-e", "--extra-vars", "-l", "--limit", "-t", "--tags", "--skip-tags"}


def parse_playbook_command(args, block):
    parsed = {"playbooks": [], "extra": [], "tags": []}
    i = 0
    while i < len(args):
        arg = args[i]
        if arg in FLAGS:
            i += 1
        elif arg in WITH_VALUE:
            assert i + 1 < len(args), f"{where(block)}: {arg} without a value"
            value = args[i + 1]
            if arg in ("-e", "--extra-vars"):
                parsed["extra"].append(value)
            elif arg in ("-t", "--tags", "--skip-tags"):
                parsed["tags"] += value.split(",")
            i += 2
        elif arg.startswith("-"):
            pytest.fail(f"{where(block)}: ansible-playbook option {arg} is not one the runbook test knows")
        else:
            parsed["playbooks"].append(arg)
            i += 1
    assert len(parsed["playbooks"]) == 1, f"{where(block)}: expected one playbook in {args}"
    return parsed


def extra_names(value, files):
    """Variable names an -e value sets: name=value pairs, a JSON/YAML mapping, or @file."""
    if value.startswith("@"):
        name = value[1:]
        assert name in files, f"-e {value}: no ```yaml file={name} block on the page"
        return set(yaml.safe_load(files[name]) or {})
    if value.lstrip().startswith("{"):
        data = yaml.safe_load(value)
        assert isinstance(data, dict), value
        return set(data)
    names = set()
    for pair in shlex.split(value):
        assert "=" in pair, f"-e {value!r}: expected name=value"
        names.add(pair.split("=", 1)[0])
    return names


def page_files(page_name):
    return {b["attrs"]["file"]: b["text"] for b in ALL_BLOCKS if b["page"] == page_name and "file" in b["attrs"]}


def playbook_commands():
    out = []
    for block in ALL_BLOCKS:
        if block["lang"] == "sh":
            for args in commands(block["text"], "ansible-playbook"):
                out.append((block, parse_playbook_command(args, block)))
    return out


PLAYBOOK_COMMANDS = playbook_commands()


def run(args, env=None, cwd=ROOT, timeout=180):
    full_env = dict(
        os.environ,
        ANSIBLE_CONFIG=str(ROOT / "ansible.cfg"),
        ANSIBLE_NOCOLOR="1",
        PATH=BIN + os.pathsep + os.environ.get("PATH", ""),
        **(env or {}),
    )
    return subprocess.run(args, cwd=cwd, env=full_env, capture_output=True, text=True, timeout=timeout, check=False)


# -- structure ---------------------------------------------------------------------------------------------


def test_every_task_has_a_page_linked_from_the_index_and_links_resolve():
    names = {p.name for p in PAGES}
    assert REQUIRED_PAGES <= names, sorted(REQUIRED_PAGES - names)
    index = (RUNBOOKS / "README.md").read_text()
    linked = set(re.findall(r"\]\(([a-z0-9-]+\.md)\)", index))
    assert REQUIRED_PAGES <= linked, sorted(REQUIRED_PAGES - linked)
    for page in PAGES:
        for target in re.findall(r"\]\(([^)#]+\.md)(?:#[^)]*)?\)", page.read_text()):
            assert (page.parent / target).resolve().exists(), f"{page.name}: broken link {target}"


def test_every_page_says_how_to_verify_and_back_out():
    for page in PAGES:
        if page.name not in REQUIRED_PAGES:
            continue
        headings = re.findall(r"^#+ (.*)$", page.read_text(), re.M)
        assert any("Verify" in h for h in headings), page.name
        assert any("Back out" in h for h in headings), page.name


def test_every_sh_block_is_valid_shell():
    checked = 0
    for block in ALL_BLOCKS:
        if block["lang"] == "sh":
            proc = subprocess.run(["bash", "-n"], input=block["text"], capture_output=True, text=True, check=False)
            assert proc.returncode == 0, f"{where(block)}: {proc.stderr}"
            checked += 1
    assert checked > 30


# -- ansible commands --------------------------------------------------------------------------------------


def test_every_playbook_command_names_real_playbooks_variables_and_tags():
    tags = known_tags()
    assert len(PLAYBOOK_COMMANDS) > 25
    for block, cmd in PLAYBOOK_COMMANDS:
        playbook = ROOT / cmd["playbooks"][0]
        assert playbook.is_file(), f"{where(block)}: {cmd['playbooks'][0]} does not exist"
        for value in cmd["extra"]:
            for name in extra_names(value, page_files(block["page"])):
                assert declared(name), f"{where(block)}: -e {name} is not a role variable nor read by a playbook"
        for tag in cmd["tags"]:
            assert tag in tags, f"{where(block)}: tag {tag} is in no playbook or role"


def test_every_playbook_command_passes_syntax_check_with_the_sandbox_inventory(tmp_path):
    seen = set()
    for block, cmd in PLAYBOOK_COMMANDS:
        files = page_files(block["page"])
        args = []
        for value in cmd["extra"]:
            if value.startswith("@"):
                path = tmp_path / block["page"] / value[1:]
                path.parent.mkdir(parents=True, exist_ok=True)
                path.write_text(files[value[1:]])
                value = f"@{path}"
            args += ["-e", value]
        key = (cmd["playbooks"][0], tuple(args) if any(a.startswith("@") for a in args) else ())
        if key in seen:
            continue
        seen.add(key)
        proc = run(
            [os.path.join(BIN, "ansible-playbook"), "--syntax-check", "-i", "inventories/sandbox", *args, *key[:1]],
            env={"ANSIBLE_LOCAL_TEMP": str(tmp_path / "ansible-tmp")},
        )
        assert proc.returncode == 0, f"{where(block)}: {key[0]}\n{proc.stdout[-2000:]}{proc.stderr[-2000:]}"
    assert len({k[0] for k in seen}) >= 7


def test_every_ad_hoc_module_exists():
    modules = set()
    for block in ALL_BLOCKS:
        if block["lang"] != "sh":
            continue
        for args in commands(block["text"], "ansible"):
            assert "-m" in args, f"{where(block)}: ansible without -m"
            modules.add(args[args.index("-m") + 1])
    assert {"tfserving.fleet.nvidia_gpu_facts", "ansible.builtin.command"} <= modules
    for module in sorted(modules):
        proc = run([os.path.join(BIN, "ansible-doc"), "-t", "module", "--json", module])
        assert proc.returncode == 0 and module.split(".")[-1] in proc.stdout, (module, proc.stderr[-500:])


def test_sandbox_inventory_commands_run():
    ran = 0
    for block in ALL_BLOCKS:
        if block["lang"] != "sh" or "sandbox" not in block["tags"]:
            continue
        for line in logical_lines(block["text"]):
            if line.startswith("ansible-inventory "):
                proc = run(["bash", "-c", line], env=SANDBOX_ENV)
                assert proc.returncode == 0, f"{where(block)}: {line}\n{proc.stderr[-1000:]}"
                assert proc.stdout.strip()
                ran += 1
    assert ran >= 3


# -- variables shown on the pages --------------------------------------------------------------------------


def check_variables(data, block):
    assert isinstance(data, dict) and data, f"{where(block)}: expected a mapping of variables"
    for name, value in data.items():
        assert declared(name), f"{where(block)}: {name} is not a role variable nor read by a playbook"
        spec = ROLE_SPECS.get(name)
        if spec:
            result = ArgumentSpecValidator({name: spec}).validate({name: value})
            assert not result.error_messages, f"{where(block)}: {result.error_messages}"
    if "tfserving_instances" in data:
        problems = tfserving_validate(data["tfserving_instances"], "runbook", {}, {"gpu_mode": "toolkit"})
        assert problems == [], f"{where(block)}: {problems}"
    if "docker_engine_version" in data:
        assert docker_engine_version_problem(data["docker_engine_version"], "RedHat") == "", where(block)
    if "nvidia_runtime_flavor" in data:
        legacy = data["nvidia_runtime_flavor"] == "legacy"
        result = nvidia_runtime_plan(
            data["docker_engine_version"],
            MATRIX,
            "RedHat",
            os_major="7" if legacy else "9",
            distribution="CentOS" if legacy else "Rocky",
            flavor=data["nvidia_runtime_flavor"],
            nvidia_docker2_version=data.get("nvidia_runtime_nvidia_docker2_version", ""),
            toolkit_version=data.get("nvidia_runtime_toolkit_version", ""),
            cuda_version="11.2",
            driver_version="470.256.02",
        )
        assert result["ok"], f"{where(block)}: {result['error']}"
    if "tfserving_rollout_models" in data:
        from ansible_collections.tfserving.fleet.plugins.filter.tfserving_rollout_targets import (
            validate as rollout_validate,
        )

        assert rollout_validate(data["tfserving_rollout_models"]) == [], where(block)


MATRIX = yaml.safe_load((ROOT / "roles" / "nvidia_runtime" / "vars" / "matrix.yml").read_text())[
    "_nvidia_runtime_matrix"
]


def test_variables_and_files_on_the_pages_are_valid():
    checked = 0
    for block in ALL_BLOCKS:
        if block["lang"] == "yaml" and ("vars" in block["tags"] or "file" in block["attrs"]):
            check_variables(yaml.safe_load(block["text"]), block)
            checked += 1
    assert checked >= 12


def test_quoted_preflight_refusals_are_the_roles_messages():
    template = re.sub(r"\s+", " ", (ROOT / "roles" / "nvidia_runtime" / "tasks" / "preflight.yml").read_text())
    assert "{{ inventory_hostname }}: {{ nvidia_runtime_plan.error }}. Nothing was changed on the host." in template
    quoted = [
        ("troubleshoot-driver-too-old.md", "gpu-k80-01.example.com", "18.09.7", "7", "legacy", "2.0.3", "12.2"),
        (
            "troubleshoot-docker-nvidia-mismatch.md",
            "gpu-k80-01.example.com",
            "18.06.1",
            "7",
            "auto",
            "2.0.3-1.docker17.12.1.ce",
            "11.2",
        ),
        ("troubleshoot-docker-nvidia-mismatch.md", "gpu-k80-01.example.com", "20.10.24", "7", "legacy", "", "11.2"),
        ("troubleshoot-docker-nvidia-mismatch.md", "gpu-t4-01.example.com", "18.09.7", "8", "auto", "", "11.2"),
    ]
    for page, host, docker, major, flavor, nd2, cuda in quoted:
        result = nvidia_runtime_plan(
            docker,
            MATRIX,
            "RedHat",
            os_major=major,
            distribution="CentOS" if major == "7" else "Rocky",
            flavor=flavor,
            nvidia_docker2_version=nd2,
            cuda_version=cuda,
            driver_version="470.256.02",
        )
        assert not result["ok"]
        text = re.sub(r"\s+", " ", (RUNBOOKS / page).read_text())
        assert f"{host}: {result['error']}. Nothing was changed on the host." in text, (page, result["error"])


# -- commands that need one TF Serving server, run against the test double ---------------------------------

DOCKER_SHIM = r"""
docker() {
  # The only Docker command the runbook test stands in for: the logs of "$CONTAINER" are the double's.
  if [ "$1" = logs ]; then
    shift
    while [ "$#" -gt 1 ]; do shift; done
    [ "$1" = "$CONTAINER" ] || { echo "Error: No such container: $1" >&2; return 1; }
    cat "$TFSERVING_TEST_LOG"
  else
    echo "docker $1: not stood in for by the runbook test" >&2
    return 127
  fi
}
"""


def render_config(path, root, models):
    """models.config as the serving role renders it (its filters), with base paths on this machine."""
    settings = {"container_model_path": str(root)}
    item = tfserving_plan([{"name": "test", "models": models}], settings)[0]
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(render_models_config(item))
    os.replace(tmp, path)
    return path


def wait_log(double, text, timeout=60):
    double.wait_for(lambda: text in double.log(), timeout=timeout, what=repr(text))


@contextlib.contextmanager
def scenario_sandbox(root):
    """The sandbox's demo instance: half_plus_two 123/124 (stable 123, canary 124), half_plus_two_cpu."""
    for version in ("00000123", "00000124"):
        copy_model_version(TWO_VERSIONS, version, root / "half_plus_two" / version)
    copy_model_version("saved_model_half_plus_two_cpu", "00000123", root / "half_plus_two_cpu" / "00000123")
    models = [
        {"name": "half_plus_two", "versions": [123, 124], "labels": {"stable": 123, "canary": 124}},
        {"name": "half_plus_two_cpu"},
    ]
    config = render_config(root / "models.config", root, models)
    args = [f"--model_config_file={config}", "--allow_version_labels_for_unavailable_models=true"]
    with start_double(args) as double:
        yield double, {"MODEL_DIR": str(root / "half_plus_two"), "CONFIG": str(config)}


@contextlib.contextmanager
def scenario_no_versions(root):
    """A running server (half_plus_two) to which models.config adds bert, whose version directory is v1."""
    copy_model_version(TWO_VERSIONS, "00000123", root / "half_plus_two" / "00000123")
    copy_model_version(TWO_VERSIONS, "00000123", root / "bert" / "v1")
    config = render_config(root / "models.config", root, [{"name": "half_plus_two"}])
    args = [
        f"--model_config_file={config}",
        "--model_config_file_poll_wait_seconds=1",
        "--file_system_poll_wait_seconds=1",
    ]
    with start_double(args) as double:
        render_config(config, root, [{"name": "half_plus_two"}, {"name": "bert", "base_path": str(root / "bert")}])
        wait_log(double, "No versions of servable bert found under base path")
        yield double, {"MODEL_DIR": str(root / "bert"), "CONFIG": str(config)}


def ranker(root, versions):
    for version in versions:
        copy_model_version(TWO_VERSIONS, "00000123", root / "ranker" / f"{version:08d}")


@contextlib.contextmanager
def scenario_labels_startup(root):
    """A labelled models.config on a server started without --allow_version_labels_for_unavailable_models."""
    ranker(root, [41])
    config = render_config(
        root / "models.config", root, [{"name": "ranker", "versions": [41], "labels": {"stable": 41}}]
    )
    result = run_double([f"--model_config_file={config}"], timeout=120)
    assert result.returncode == 255, result.stdout + result.stderr
    log = root / "container.log"
    log.write_text(result.stderr + result.stdout)
    yield None, {"CONFIG": str(config), "TFSERVING_TEST_LOG": str(log), "REST": "http://127.0.0.1:9"}


@contextlib.contextmanager
def scenario_labels_reload(root):
    """A running server whose models.config is edited to move stable to 42 before 42 is loaded."""
    ranker(root, [41, 42])
    config = render_config(
        root / "models.config", root, [{"name": "ranker", "versions": [41], "labels": {"stable": 41}}]
    )
    args = [
        f"--model_config_file={config}",
        "--model_config_file_poll_wait_seconds=1",
        "--file_system_poll_wait_seconds=1",
        "--allow_version_labels_for_unavailable_models=true",
    ]
    with start_double(args) as double:
        render_config(config, root, [{"name": "ranker", "versions": [41, 42], "labels": {"stable": 42, "canary": 42}}])
        wait_log(double, "failed to ReloadConfig: Request to assign label to version 42")
        yield double, {"CONFIG": str(config)}


SCENARIOS = {
    ("README.md", None): scenario_sandbox,
    ("deploy-model-version.md", "sandbox"): scenario_sandbox,
    ("rollback.md", "sandbox"): scenario_sandbox,
    ("troubleshoot-no-versions.md", None): scenario_no_versions,
    ("troubleshoot-labels.md", "startup"): scenario_labels_startup,
    ("troubleshoot-labels.md", "reload"): scenario_labels_reload,
}


def tfserving_groups():
    """{(page, scenario): [(block, expected output block or None)]} in page order."""
    groups = {}
    for page in PAGES:
        blocks = blocks_of(page)
        for pos, block in enumerate(blocks):
            if block["lang"] == "sh" and "tfserving" in block["tags"]:
                following = blocks[pos + 1] if pos + 1 < len(blocks) else None
                expected = following if following is not None and "output" in following["tags"] else None
                key = (page.name, block["attrs"].get("scenario"))
                groups.setdefault(key, []).append((block, expected))
    return groups


TFSERVING_GROUPS = tfserving_groups()


def documented_values(page_name):
    """The page's ```sh env values (production examples), to map onto the test's."""
    values = {}
    for block in ALL_BLOCKS:
        if block["page"] == page_name and block["lang"] == "sh" and "env" in block["tags"]:
            for line in logical_lines(block["text"]):
                name, _, value = line.partition("=")
                values[name] = value
    return values


def json_values(text):
    decoder, pos, out = json.JSONDecoder(), 0, []
    text = text.strip()
    while pos < len(text):
        value, pos = decoder.raw_decode(text, pos)
        out.append(value)
        while pos < len(text) and text[pos].isspace():
            pos += 1
    return out


def test_every_tfserving_block_has_a_scenario():
    assert set(TFSERVING_GROUPS) <= set(SCENARIOS), sorted(set(TFSERVING_GROUPS) - set(SCENARIOS))
    assert set(SCENARIOS) <= set(TFSERVING_GROUPS), "a scenario without blocks"
    assert sum(len(v) for v in TFSERVING_GROUPS.values()) >= 12


@pytest.mark.parametrize(
    "key", sorted(TFSERVING_GROUPS, key=lambda k: (k[0], k[1] or "")), ids=lambda k: f"{k[0]}:{k[1] or '-'}"
)
def test_tfserving_blocks_run_against_the_test_double(key, tmp_path):
    page, _ = key
    documented = documented_values(page)
    with SCENARIOS[key](tmp_path / "models") as (double, extra):
        env = {
            "REST": double.rest_url if double else "",
            "CONTAINER": documented.get("CONTAINER", "tfserving-test"),
            "TFSERVING_TEST_LOG": str(double.log_path) if double else "",
            **extra,
        }
        for block, expected in TFSERVING_GROUPS[key]:
            proc = run(
                ["bash", "-e", "-o", "pipefail", "-c", DOCKER_SHIM + block["text"]],
                env=env,
                cwd=tmp_path,
                timeout=200,
            )
            assert proc.returncode == 0, f"{where(block)}: exit {proc.returncode}\n{proc.stdout}\n{proc.stderr}"
            if expected is None:
                assert proc.stdout == "", f"{where(block)}: printed output the page does not show:\n{proc.stdout}"
                continue
            want = expected["text"]
            # The page shows its production values (```sh env); the test's stand in for them.
            for name, value in sorted(documented.items(), key=lambda kv: -len(kv[1])):
                if name in env and value:
                    want = want.replace(value, env[name])
            if expected["lang"] == "json":
                assert json_values(proc.stdout) == json_values(want), f"{where(block)}:\n{proc.stdout}"
            else:
                got = [line.rstrip() for line in proc.stdout.strip().splitlines()]
                assert got == [line.rstrip() for line in want.strip().splitlines()], f"{where(block)}:\n{proc.stdout}"
        if double:
            assert double.process.poll() is None, "the double stopped during the page's commands"
