"""Code that runs on managed hosts parses as Python 3.6, CentOS 7's python3.

Modules and their module_utils run under the host's interpreter. EL7 hosts are managed from the
ansible-core 2.16 environment with /usr/bin/python3 (3.6); yum's own bindings exist for the system
Python 2.7 only, and ansible-core's yum module re-executes itself there. So a 3.7+ construct in a
module (``from __future__ import annotations`` above all, or a walrus) breaks EL7 hosts while every
test on this machine's Python still passes: this test parses each file with Python 3.6's grammar.
"""

import ast
import pathlib

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[2]
TARGET_FILES = sorted([*ROOT.glob("plugins/modules/*.py"), *ROOT.glob("plugins/module_utils/*.py")])


@pytest.mark.parametrize("path", TARGET_FILES, ids=lambda p: str(p.relative_to(ROOT)))
def test_host_side_code_parses_as_python_3_6(path):
    source = path.read_text()
    ast.parse(source, filename=str(path), feature_version=(3, 6))
    # The grammar check cannot see this one: 3.6 refuses it only when the module is imported.
    assert "from __future__ import annotations" not in source, (
        f"{path.relative_to(ROOT)}: 'from __future__ import annotations' needs Python 3.7; "
        "host-side code must import on CentOS 7's Python 3.6"
    )


def test_the_check_sees_every_module():
    assert len([p for p in TARGET_FILES if p.parent.name == "modules"]) >= 6
