"""Shared pytest setup: the project's plugins are imported the way Ansible loads them, as the
collection tfserving.fleet (``ansible_collections.tfserving.fleet.plugins...``).

By default the collection is this checkout (collections/ansible_collections/tfserving/fleet links
to the repository root). TFSERVING_COLLECTIONS_PATH names another collections directory, e.g. one
that `ansible-galaxy collection install` filled from the built tarball: the tests then exercise
that installed copy (scripts/collection-test.sh).
"""

import os
import pathlib

from ansible.utils.collection_loader._collection_finder import _AnsibleCollectionFinder

ROOT = pathlib.Path(__file__).resolve().parent.parent
# Real upstream test data (TF Serving models, nvidia-smi captures), vendored with licences.
TESTDATA = ROOT / "tests" / "data"

COLLECTIONS_PATH = pathlib.Path(os.environ.get("TFSERVING_COLLECTIONS_PATH") or ROOT / "collections").resolve()
# The collection under test: plugins/ of this directory are what the tests import.
COLLECTION = COLLECTIONS_PATH / "ansible_collections" / "tfserving" / "fleet"

# The finder ansible-core installs in its own CLIs: our collection first, then the collections the
# `ansible` package bundles (found on sys.path). ansible.cfg's collections_path is not read here.
_AnsibleCollectionFinder(paths=[str(COLLECTIONS_PATH)], scan_sys_paths=True)._install()
