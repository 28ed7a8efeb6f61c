"""scripts/check_role_specs.py (run by `make lint`): defaults, argument specs and README of each role agree."""

from __future__ import annotations

import importlib.util
import subprocess
import sys
import textwrap

from conftest import ROOT

SCRIPT = ROOT / "scripts" / "check_role_specs.py"
_spec = importlib.util.spec_from_file_location("check_role_specs", SCRIPT)
check = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(check)

SPEC = """\
argument_specs:
  main:
    options:
      demo_items:
        type: list
        elements: dict
        default: []
        options:
          name: {type: str, required: true}
          weight: {type: int}
          limits:
            type: dict
            options:
              max_rate: {type: int}
      demo_port:
        type: int
        default: 8501
  extra:
    options:
      demo_mode: {type: str, default: fast}
"""
DEFAULTS = "demo_items: []\ndemo_port: 8501\n"
README = """\
# demo
| `demo_items` | `[]` | Items; keys `name`, `weight`, `limits` (`max_rate`). |
| `demo_port` | `8501` | Port. |
| `demo_mode` | `fast` | Mode of the extra entry point. |
"""


def make_role(tmp_path, spec=SPEC, defaults=DEFAULTS, readme=README):
    role = tmp_path / "demo"
    (role / "meta").mkdir(parents=True)
    (role / "defaults").mkdir()
    (role / "meta" / "argument_specs.yml").write_text(spec)
    (role / "defaults" / "main.yml").write_text(defaults)
    if readme is not None:
        (role / "README.md").write_text(readme)
    return role


def test_the_projects_roles_pass():
    proc = subprocess.run([sys.executable, str(SCRIPT)], capture_output=True, text=True, check=False)
    assert (proc.returncode, proc.stdout) == (0, "")


def test_a_consistent_role_passes(tmp_path):
    assert check.problems_for(make_role(tmp_path)) == []


def test_undocumented_nested_keys_and_options_of_every_entry_point_are_reported(tmp_path):
    readme = README.replace("`max_rate`", "rate").replace(
        "| `demo_mode` | `fast` | Mode of the extra entry point. |\n", ""
    )
    problems = check.problems_for(make_role(tmp_path, readme=readme))
    assert problems == [
        "demo: demo_mode (entry point extra) is not documented in README.md",
        "demo: key demo_items.limits.max_rate (entry point main) is not documented in README.md",
    ]


def test_a_key_is_matched_as_a_whole_word(tmp_path):
    """`weight` inside `weights` or `max-weight` does not count as documented."""
    readme = README.replace("`weight`", "`weights`, `max-weight`")
    assert check.problems_for(make_role(tmp_path, readme=readme)) == [
        "demo: key demo_items.weight (entry point main) is not documented in README.md"
    ]


def test_defaults_and_specs_must_agree(tmp_path):
    defaults = textwrap.dedent("""\
        demo_items: []
        demo_port: 8500
        demo_stray: true
        """)
    problems = check.problems_for(make_role(tmp_path, defaults=defaults))
    assert problems == [
        "demo: demo_stray is in defaults/main.yml but not in meta/argument_specs.yml",
        "demo: demo_port default differs: argument_specs 8501 vs defaults 8500",
    ]


def test_a_missing_readme_is_reported(tmp_path):
    assert check.problems_for(make_role(tmp_path, readme=None)) == ["demo: README.md is missing"]
