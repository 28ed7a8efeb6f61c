"""What a module documents and what it accepts, for the tests that compare the two.

``documented_options`` reads DOCUMENTATION the way ansible-doc does, with the doc fragments of
plugins/doc_fragments merged in (by their FQCNs, through the collection loader of conftest.py);
``argument_spec`` is the spec the module's main() hands to AnsibleModule, whatever shared pieces of
module_utils it is built from. Both read the collection under test (conftest.COLLECTION).
"""

from __future__ import annotations

import importlib.util

from conftest import COLLECTION

MODULES_DIR = COLLECTION / "plugins" / "modules"
FRAGMENTS_DIR = COLLECTION / "plugins" / "doc_fragments"
MODULES = sorted(path.stem for path in MODULES_DIR.glob("*.py"))


def _fragment_loader():
    from ansible.plugins.loader import fragment_loader

    return fragment_loader


def documented_options(name):
    """The options section of module NAME, fragments included."""
    from ansible.utils.plugin_docs import get_docstring

    doc = get_docstring(str(MODULES_DIR / f"{name}.py"), _fragment_loader(), is_module=True)[0]
    return doc.get("options") or {}


def fragment_options(slug):
    """The options of one fragment, as named in extends_documentation_fragment
    (``tfserving.fleet.name`` or ``tfserving.fleet.name.var``)."""
    from ansible.utils.plugin_docs import add_fragments

    doc = {"extends_documentation_fragment": [slug]}
    add_fragments(doc, str(FRAGMENTS_DIR / f"{slug.split('.')[2]}.py"), _fragment_loader(), is_module=True)
    return doc["options"]


class _Captured(Exception):
    def __init__(self, kwargs):
        super().__init__("AnsibleModule constructed")
        self.kwargs = kwargs


def _capture(**kwargs):
    raise _Captured(kwargs)


def argument_spec(name):
    """The argument_spec module NAME passes to AnsibleModule (its main() stops right there).

    A private copy of the module is loaded from the collection under test (its imports of module_utils
    are absolute), so patching its AnsibleModule here leaves the copy other tests import untouched."""
    spec = importlib.util.spec_from_file_location(f"_module_docs_{name}", MODULES_DIR / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    module.AnsibleModule = _capture
    try:
        module.main()
    except _Captured as captured:
        return captured.kwargs["argument_spec"]
    raise AssertionError(f"{name}: main() returned without constructing AnsibleModule")


def _plain(value):
    """Tagged YAML scalars and containers as plain Python values, for readable comparisons."""
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    for kind in (bool, int, float, str):
        if isinstance(value, kind):
            return kind(value)
    return value


def from_docs(options):
    """{option: the facts AnsibleModule enforces} from a documented options section."""
    return {
        name: {
            "type": _plain(option.get("type", "str")),
            "default": _plain(option.get("default")),
            "required": bool(option.get("required", False)),
            "choices": _plain(option.get("choices")),
            "elements": _plain(option.get("elements")),
            "aliases": sorted(_plain(option.get("aliases", []))),
            "suboptions": from_docs(option["suboptions"]) if "suboptions" in option else None,
        }
        for name, option in options.items()
    }


def from_spec(spec):
    """The same facts from an argument spec."""
    return {
        name: {
            "type": option.get("type", "str"),
            "default": _plain(option.get("default")),
            "required": bool(option.get("required", False)),
            "choices": _plain(option.get("choices")),
            "elements": option.get("elements"),
            "aliases": sorted(option.get("aliases", [])),
            "suboptions": from_spec(option["options"]) if "options" in option else None,
        }
        for name, option in spec.items()
    }
