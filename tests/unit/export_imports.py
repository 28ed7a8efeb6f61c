"""Import helpers for the tfserving-export tests (no TensorFlow here).

The Ansible module plugins/modules/tfserving_export.py shares its name with the package it drives.
Importing this helper first makes sure ``tfserving_export`` means the package; the module is
imported by its collection name (``ansible_collections.tfserving.fleet.plugins.modules``), from
the collection under test (tests/conftest.py).
"""

from __future__ import annotations

import importlib

# The package (src/tfserving_export), never a module file of the same name.
importlib.import_module("tfserving_export")


def load_ansible_module():
    """plugins/modules/tfserving_export.py of the collection under test (tests/conftest.py)."""
    return importlib.import_module("ansible_collections.tfserving.fleet.plugins.modules.tfserving_export")
