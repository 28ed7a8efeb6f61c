#!/usr/bin/python
# Copyright: the tfserving-ansible authors
# Apache License 2.0
"""Documentation and argument spec of the action plugin tfserving_rename (plugins/action)."""


DOCUMENTATION = r"""
---
module: tfserving_rename
short_description: Rename a directory into place on a host with one shell run
description:
  - Renames O(src) to O(dest) on the host with one C(rename(2)) (C(mv -T)), unless O(dest) exists
    already, the way an M(ansible.builtin.command) task running C(mv -T) with C(creates) would, but
    with a shell run instead of a Python module run. Role C(tfserving) renames every staged model
    version into place with it, and role C(tfserving_rollout) moves each checked version from its
    check model into the model.
  - Both paths are on the same file system (a rename, not a copy), so TF Serving never sees half a
    version.
  - Reports C(changed) when it renamed. Fails when neither O(dest) nor O(src) exists.
  - Runs as an action plugin on the control node; the host needs C(sh) and GNU C(mv).
version_added: "0.1.0"
author:
  - tfserving-ansible maintainers (!UNKNOWN)
options:
  src:
    description: The directory to rename, an absolute path on the host.
    type: str
    required: true
  dest:
    description: Its new name, an absolute path on the same file system; nothing happens when it exists.
    type: str
    required: true
attributes:
  check_mode:
    support: full
    description: Reports the rename when O(dest) does not exist (also when O(src) is not there yet, as in
      a check-mode run that staged nothing); renames nothing.
  diff_mode:
    support: none
    description: A rename has no content to diff.
seealso:
  - module: ansible.builtin.command
  - module: tfserving.fleet.tfserving_stage_version
"""

EXAMPLES = r"""
- name: Version 7 is renamed into place
  tfserving.fleet.tfserving_rename:
    src: /srv/tfserving/models/main/mnist/.tfserving-tmp-00000007
    dest: /srv/tfserving/models/main/mnist/00000007
"""

RETURN = r"""
src:
  description: The directory renamed.
  returned: success
  type: str
dest:
  description: Its name now.
  returned: success
  type: str
"""

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.tfserving.fleet.plugins.module_utils.tfserving_rename import RENAME_SPEC


def main():
    module = AnsibleModule(argument_spec=RENAME_SPEC, supports_check_mode=True)
    module.fail_json(msg="tfserving_rename runs as an action plugin on the control node; call it from a task")


if __name__ == "__main__":
    main()
