#!/usr/bin/python
# Copyright: the tfserving-ansible authors
# Apache License 2.0
"""List the SavedModel versions of a model directory or archive (read-only)."""


DOCUMENTATION = r"""
---
module: tfserving_model_versions
short_description: List the SavedModel versions in a model directory or a model archive
description:
  - Lists the version directories of a TensorFlow Serving model base path, the way the server's
    file system source sees them, only entries whose name is a number are versions
    (C(00000123) is version 123).
  - The path can also be an archive (tar, tar.gz, tar.bz2, tar.xz or zip) whose version directories
    sit at its top level or under a single top-level directory.
  - For each version it reports whether C(saved_model.pb) or C(saved_model.pbtxt) is present, so
    a caller can refuse to publish an incomplete SavedModel.
  - Read-only. Used by the tfserving role on the control node (sources) and on the hosts (the
    published model repository) before anything changes.
version_added: "0.1.0"
author:
  - tfserving-ansible maintainers (!UNKNOWN)
options:
  path:
    description:
      - The model base path (a directory holding numbered version directories) or an archive.
      - A path that does not exist is not an error; RV(exists) is then false.
    type: path
    required: true
attributes:
  check_mode:
    support: full
    description: Never changes anything.
  diff_mode:
    support: none
    description: Nothing to diff.
"""

EXAMPLES = r"""
- name: Versions of a model on the control node are known
  tfserving.fleet.tfserving_model_versions:
    path: /srv/exports/half_plus_two
  delegate_to: localhost
  register: source

- name: Versions of a model archive are known
  tfserving.fleet.tfserving_model_versions:
    path: /srv/exports/half_plus_two.tar.gz
  delegate_to: localhost
"""

RETURN = r"""
exists:
  description: Whether the path exists.
  returned: always
  type: bool
kind:
  description: C(directory), C(archive) or C(missing).
  returned: always
  type: str
versions:
  description: The version directories, ordered by version number.
  returned: always
  type: list
  elements: dict
  contains:
    name:
      description: The directory name, as found (for example C(00000123)).
      type: str
    version:
      description: The version number TF Serving derives from the name.
      type: int
    saved_model:
      description: C(saved_model.pb) or C(saved_model.pbtxt) when present, else null.
      type: str
    bytes:
      description: Size of the version on disk, the sum of its regular files (for an archive, their
        unpacked sizes). The serving roles estimate a version's GPU memory from it.
      type: int
  sample: [{"name": "00000123", "version": 123, "saved_model": "saved_model.pb", "bytes": 12817}]
other:
  description: Entries that are not versions (TF Serving ignores them), for example hidden temporary
    directories.
  returned: always
  type: list
  elements: str
prefix:
  description: For an archive, the top-level directory that holds the versions (empty when they are at
    the top).
  returned: always
  type: str
unsafe_members:
  description: Archive members that would be written outside the extraction directory (absolute paths,
    C(..), links pointing outside, devices).
  returned: always
  type: list
  elements: str
"""

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.tfserving.fleet.plugins.module_utils.tfserving_model_versions import (
    MODEL_VERSIONS_SPEC,
    describe,
)


def main():
    module = AnsibleModule(argument_spec=MODEL_VERSIONS_SPEC, supports_check_mode=True)
    result = describe(module.params["path"])
    if result.get("failed"):
        module.fail_json(**result)
    module.exit_json(**result)


if __name__ == "__main__":
    main()
