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


def fake_nvidia_smi(directory, capture, name="nvidia-smi"):
    """An ``nvidia-smi`` in ``directory`` that prints the real ``-q -x`` capture ``capture`` of
    tests/data/nvidia-smi (and refuses other arguments); returns its path as a string."""
    directory = pathlib.Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    script = directory / name
    script.write_text(
        "#!/bin/sh\n"
        f'if [ "$*" = "-q -x" ]; then cat "{TESTDATA / "nvidia-smi" / capture}"; exit 0; fi\n'
        'echo "unexpected arguments: $*" >&2; exit 2\n'
    )
    script.chmod(0o755)
    return str(script)
