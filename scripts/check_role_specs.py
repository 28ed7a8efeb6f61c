"""Every role's meta/argument_specs.yml must declare exactly the variables of defaults/main.yml,
with the same default values, and its README must name every option (nested keys such as
tfserving_instances[].models[].labels included), so the documented interface cannot drift from the
real one."""

import pathlib
import re
import sys

import yaml

ROOT = pathlib.Path(__file__).resolve().parent.parent


def problems_for(role: pathlib.Path) -> list[str]:
    spec_file = role / "meta" / "argument_specs.yml"
    defaults_file = role / "defaults" / "main.yml"
    if not spec_file.exists():
        return [f"{role.name}: meta/argument_specs.yml is missing"]
    defaults = yaml.safe_load(defaults_file.read_text()) if defaults_file.exists() else {}
    defaults = defaults or {}
    options = yaml.safe_load(spec_file.read_text())["argument_specs"]["main"].get("options", {})
    out = []
    for name in sorted(set(defaults) - set(options)):
        out.append(f"{role.name}: {name} is in defaults/main.yml but not in meta/argument_specs.yml")
    for name in sorted(set(options) - set(defaults)):
        if options[name].get("required"):
            continue
        out.append(f"{role.name}: {name} is in meta/argument_specs.yml but not in defaults/main.yml")
    for name in sorted(set(options) & set(defaults)):
        if "default" in options[name] and options[name]["default"] != defaults[name]:
            out.append(
                f"{role.name}: {name} default differs: argument_specs {options[name]['default']!r}"
                f" vs defaults {defaults[name]!r}"
            )
    out += readme_problems(role, spec_file)
    return out


def _nested(options, path=()):
    """(dotted path, name) of every sub-option below the top-level variables, depth first."""
    for name, option in (options or {}).items():
        if path:
            yield ".".join((*path, name)), name
        yield from _nested((option or {}).get("options"), (*path, name))


def readme_problems(role: pathlib.Path, spec_file: pathlib.Path) -> list[str]:
    """Options of every entry point, and their nested keys, that the README does not name."""
    readme = role / "README.md"
    if not readme.exists():
        return [f"{role.name}: README.md is missing"]
    text = readme.read_text()
    out = []
    for entry, spec in (yaml.safe_load(spec_file.read_text())["argument_specs"] or {}).items():
        options = (spec or {}).get("options") or {}
        for name in options:
            if name not in text:
                out.append(f"{role.name}: {name} (entry point {entry}) is not documented in README.md")
        for dotted, name in _nested(options):
            if not re.search(rf"(?<![\w-]){re.escape(name)}(?![\w-])", text):
                out.append(f"{role.name}: key {dotted} (entry point {entry}) is not documented in README.md")
    return sorted(set(out))


def main() -> int:
    problems = [p for role in sorted((ROOT / "roles").iterdir()) if role.is_dir() for p in problems_for(role)]
    for p in problems:
        print(p)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
