"""Shared pytest setup: make the project's plugins importable the way Ansible loads them."""

import pathlib
import sys

import ansible.module_utils

ROOT = pathlib.Path(__file__).resolve().parent.parent
# Real upstream test data (TF Serving models, nvidia-smi captures), vendored with licences.
TESTDATA = ROOT / "tests" / "data"

# Modules import `ansible.module_utils.<name>`; ansible.cfg points module_utils at this directory.
_utils = str(ROOT / "plugins" / "module_utils")
if _utils not in ansible.module_utils.__path__:
    ansible.module_utils.__path__.append(_utils)
for sub in ("plugins/modules", "plugins/filter"):
    path = str(ROOT / sub)
    if path not in sys.path:
        sys.path.insert(0, path)
