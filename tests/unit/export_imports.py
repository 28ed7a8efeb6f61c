"""Import helpers for the tfserving-export tests (no TensorFlow here).

tests/conftest.py puts plugins/modules first on sys.path for the module tests, and the Ansible
module plugins/modules/tfserving_export.py shares its name with the package it drives. Importing
this helper first makes ``tfserving_export`` mean the package; the module is loaded by path under
a name of its own. Ansible runs the module from its own payload, where no such clash exists.
"""

from __future__ import annotations

import importlib
import importlib.util
import os
import pathlib
import sys

ROOT = pathlib.Path(__file__).resolve().parents[2]
MODULE_PATH = ROOT / "plugins" / "modules" / "tfserving_export.py"


def _import_package() -> None:
    current = sys.modules.get("tfserving_export")
    if current is not None and hasattr(current, "__path__"):
        return
    sys.modules.pop("tfserving_export", None)
    modules_dir = str(MODULE_PATH.parent)
    saved = list(sys.path)
    sys.path[:] = [p for p in sys.path if os.path.abspath(p or ".") != modules_dir]
    try:
        importlib.import_module("tfserving_export")
    finally:
        sys.path[:] = saved


_import_package()


def load_ansible_module():
    """plugins/modules/tfserving_export.py, imported as ``tfserving_export_ansible_module``."""
    spec = importlib.util.spec_from_file_location("tfserving_export_ansible_module", MODULE_PATH)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module
