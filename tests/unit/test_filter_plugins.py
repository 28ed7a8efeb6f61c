"""Every filter the roles and playbooks call as ``tfserving.fleet.<name>`` resolves through ansible-core's
own filter loader to a file of the collection under test, and each filter name is defined by one file.

The plugin files can then be split or renamed (issue #15) without a play failing on an unknown filter.
"""

from __future__ import annotations

import importlib
import pathlib
import re

import pytest
from ansible.plugins.loader import filter_loader
from conftest import COLLECTION, ROOT

# A filter call in a template or task: `| tfserving.fleet.x`, or passed by name: map('tfserving.fleet.x').
CALL = re.compile(r"""(?:\|\s*|\(\s*['"])tfserving\.fleet\.(\w+)""")
CONTENT = sorted(p for top in ("roles", "playbooks") for ext in ("*.yml", "*.j2") for p in (ROOT / top).rglob(ext))
CALLED = sorted({name for path in CONTENT for name in CALL.findall(path.read_text())})
# The filters each plugin file of the collection under test registers (its FilterModule).
DEFINED = {
    path.stem: sorted(
        importlib.import_module(f"ansible_collections.tfserving.fleet.plugins.filter.{path.stem}")
        .FilterModule()
        .filters()
    )
    for path in sorted((COLLECTION / "plugins" / "filter").glob("*.py"))
}
# The fleet report and NVIDIA runtime filters, as they were before their files were split: the roles and
# playbooks call them by these names.
SPLIT = {
    "tfserving_fleet_checks", "tfserving_fleet_host_report", "tfserving_fleet_rows", "tfserving_fleet_summary",
    "tfserving_fleet_table", "tfserving_fleet_markdown", "tfserving_fleet_html", "tfserving_fleet_targets",
    "tfserving_fleet_drift", "tfserving_fleet_known_servers", "tfserving_fleet_servers_to_ask",
    "tfserving_fleet_drift_summary", "tfserving_fleet_drift_table",
    "nvidia_runtime_plan", "nvidia_runtime_docker_version", "nvidia_runtime_driver_max_cuda",
    "nvidia_runtime_pins_installed",
}  # fmt: skip


def test_the_roles_and_playbooks_call_filters_of_the_collection():
    assert len(CONTENT) > 50
    assert len(CALLED) > 40 and "tfserving_fleet_rows" in CALLED and "nvidia_runtime_plan" in CALLED


@pytest.mark.parametrize("name", CALLED)
def test_every_filter_called_resolves_through_the_ansible_loader(name):
    plugin = filter_loader.get(f"tfserving.fleet.{name}")
    assert plugin is not None, f"tfserving.fleet.{name} is called under roles/ or playbooks/; no filter file has it"
    assert pathlib.Path(plugin._original_path).resolve().is_relative_to(COLLECTION.resolve())
    assert callable(plugin.j2_function)


@pytest.mark.parametrize("name", sorted(SPLIT))
def test_every_split_filter_keeps_its_name(name):
    plugin = filter_loader.get(f"tfserving.fleet.{name}")
    assert plugin is not None, f"tfserving.fleet.{name} no longer resolves"


def test_each_filter_name_is_defined_by_one_file():
    files = {}
    for stem, names in DEFINED.items():
        for name in names:
            files.setdefault(name, []).append(stem)
    assert {name: stems for name, stems in files.items() if len(stems) > 1} == {}
    assert SPLIT <= set(files)
