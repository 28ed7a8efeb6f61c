"""The repository as the collection tfserving.fleet: metadata that agrees with itself, plugins
imported from the collection under test, and no own plugin or role called by its bare name."""

from __future__ import annotations

import pathlib
import re
import tomllib

import ansible_collections.tfserving.fleet.plugins.modules.tfserving_model_status as status_module
import yaml
from conftest import COLLECTION, COLLECTIONS_PATH, ROOT

GALAXY = yaml.safe_load((ROOT / "galaxy.yml").read_text())
RUNTIME = yaml.safe_load((ROOT / "meta" / "runtime.yml").read_text())
PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())

MODULES = sorted(p.stem for p in (ROOT / "plugins" / "modules").glob("*.py"))
ROLES = sorted(p.name for p in (ROOT / "roles").iterdir() if (p / "tasks").is_dir())
FILTERS = sorted(
    name
    for path in (ROOT / "plugins" / "filter").glob("*.py")
    for name in re.findall(r'^\s+"(\w+)": \w+,$', path.read_text(), re.M)
)
# Where Ansible content of this repository lives (not docs: prose may name a module in passing).
CONTENT = [
    *sorted((ROOT / "roles").rglob("*.yml")),
    *sorted((ROOT / "roles").rglob("*.j2")),
    *sorted((ROOT / "playbooks").glob("*.yml")),
    *sorted((ROOT / "molecule").rglob("*.yml")),
    *sorted((ROOT / "tests" / "integration" / "playbooks").glob("*.yml")),
    *sorted((ROOT / "tests" / "unit" / "playbooks").glob("*.yml")),
]


def test_plugins_come_from_the_collection_under_test():
    assert pathlib.Path(status_module.__file__).resolve().is_relative_to(COLLECTION.resolve())
    assert COLLECTION.resolve() == (COLLECTIONS_PATH / "ansible_collections" / "tfserving" / "fleet").resolve()


def test_requires_ansible_spans_both_tested_lines():
    # 2.19: pyproject.toml (.venv); 2.16: requirements/ansible-core-2.16.txt (.venv-2.16, EL7 fleets).
    assert RUNTIME["requires_ansible"] == ">=2.16.0,<2.20.0"
    assert "ansible-core>=2.19,<2.20" in PYPROJECT["project"]["dependencies"]
    pins = (ROOT / "requirements" / "ansible-core-2.16.txt").read_text()
    assert re.search(r"^ansible-core==2\.16\.\d+$", pins, re.M)


def test_galaxy_metadata():
    assert (GALAXY["namespace"], GALAXY["name"]) == ("tfserving", "fleet")
    assert GALAXY["version"] == PYPROJECT["project"]["version"]
    assert GALAXY["license"] == [PYPROJECT["project"]["license"]]
    assert set(GALAXY["dependencies"]) == {"community.docker", "community.general", "ansible.posix"}
    for ignored in (".venv", ".cache", "collections", "molecule", "tests/unit", "tests/integration"):
        assert ignored in GALAXY["build_ignore"]


def test_the_checkout_link_is_the_repository_root():
    link = ROOT / "collections" / "ansible_collections" / "tfserving" / "fleet"
    assert link.is_symlink() and link.resolve() == ROOT


def test_no_own_module_role_or_filter_is_called_by_its_bare_name():
    module = re.compile(r"^\s*(?:- )?(" + "|".join(MODULES) + r"):(?:\s|$)")
    role = re.compile(r"^\s*(?:- )?(?:role|name):\s+(" + "|".join(ROLES) + r")\s*$")
    filter_ = re.compile(r"(?:\|\s*|map\(['\"]|select\(['\"])(" + "|".join(FILTERS) + r")\b")
    offenders = []
    for path in CONTENT:
        lines = path.read_text().splitlines()
        for number, line in enumerate(lines, 1):
            context = "\n".join(lines[max(0, number - 4):number - 1])
            if (module.match(line) or filter_.search(line)
                    or (role.match(line) and ("role:" in line or re.search(r"(include|import)_role:", context)))):
                offenders.append(f"{path.relative_to(ROOT)}:{number}: {line.strip()}")
    assert not offenders, "\n".join(offenders)
    assert len(CONTENT) > 50 and len(FILTERS) > 40 and len(MODULES) >= 6 and len(ROLES) == 4
