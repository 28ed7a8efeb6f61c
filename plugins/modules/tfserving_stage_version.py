#!/usr/bin/python
# Copyright: the tfserving-ansible authors
# Apache License 2.0
"""Documentation and argument spec of the action plugin tfserving_stage_version (plugins/action)."""


DOCUMENTATION = r"""
---
module: tfserving_stage_version
short_description: Copy a model version directory from the control node to a host as one archive
description:
  - Packs the directory O(src) of the control node into one tar archive, transfers it and unpacks it
    on the host as the directory O(dest), in one shell run whatever the number of files. The
    builtin M(ansible.builtin.copy) costs two module runs per file and one per directory, seconds per
    SavedModel.
  - O(dest) is a staging directory, hidden (its name starts with C(.)) so that TF Serving never takes
    it for a version. Its parent is created (0755) when missing, and an O(dest) left by an interrupted
    run is replaced. Role C(tfserving) stages versions as C(.tfserving-tmp-<version>) beside the
    model, checks them, then renames them into place.
  - Files get the modes C(u=rwX,g=rX,o=rX) (0644, or 0755 when executable), directories 0755; the
    host's user owns what is unpacked. Links in O(src) are followed.
  - Reports which SavedModel file the version holds (RV(saved_model)), so that the caller can refuse a
    directory that is not a SavedModel before renaming it into place.
  - Always reports C(changed) (call it for versions that are not on the host yet).
  - Runs as an action plugin on the control node; the host needs C(sh) and C(tar).
version_added: "0.1.0"
author:
  - tfserving-ansible maintainers (!UNKNOWN)
options:
  src:
    description: The version directory on the control node (for example C(/srv/exports/mnist/00000007)).
    type: path
    required: true
  dest:
    description: The staging directory it becomes on the host, an absolute path; its name must start
      with C(.).
    type: str
    required: true
attributes:
  check_mode:
    support: full
    description: Packs O(src) (so a missing source fails and RV(saved_model) is known) and reports the
      change; transfers nothing.
  diff_mode:
    support: none
    description: A model version is binary data.
notes:
  - The archive is written to Ansible's temporary directory on the control node and removed after the
    transfer.
seealso:
  - module: ansible.builtin.copy
"""

EXAMPLES = r"""
- name: Version 7 is staged beside its model
  tfserving.fleet.tfserving_stage_version:
    src: /srv/exports/mnist/00000007
    dest: /srv/tfserving/models/main/mnist/.tfserving-tmp-00000007
"""

RETURN = r"""
dest:
  description: The directory on the host.
  returned: always
  type: str
files:
  description: Regular files packed.
  returned: success
  type: int
bytes:
  description: Their size in bytes.
  returned: success
  type: int
saved_model:
  description: C(saved_model.pb) or C(saved_model.pbtxt), the file TF Serving loads, when O(src) holds
    one at its top; null otherwise.
  returned: success
  type: str
"""

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.tfserving.fleet.plugins.module_utils.tfserving_stage import STAGE_VERSION_SPEC


def main():
    module = AnsibleModule(argument_spec=STAGE_VERSION_SPEC, supports_check_mode=True)
    module.fail_json(msg="tfserving_stage_version runs as an action plugin on the control node; call it from a task")


if __name__ == "__main__":
    main()
