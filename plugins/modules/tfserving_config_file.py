#!/usr/bin/python
# Copyright: the tfserving-ansible authors
# Apache License 2.0
"""Documentation and argument spec of the action plugin tfserving_config_file (plugins/action)."""


DOCUMENTATION = r"""
---
module: tfserving_config_file
short_description: Write a text file (a TF Serving config, a report) on a host with shell runs only
description:
  - Makes the file O(dest) on the host hold O(content) with the mode O(mode), the way
    M(ansible.builtin.template) would, but without a Python module run on the host. Reading the file is
    one shell run, and only when the content or the mode differ, the content is transferred and renamed
    over the file in one more. A template or copy task costs two Python module runs (a stat and a
    copy); role C(tfserving) writes every C(models.config) through this, three times per host in a
    rollout, and role C(tfserving_rollout) its summary reports on the control node.
  - The new content is written to a temporary file beside O(dest) and renamed over it, so TF Serving's
    config poll never reads half a file. The file belongs to the user the task runs as (become applies).
  - The directory of O(dest) must exist.
  - Runs as an action plugin on the control node; the host needs C(sh), C(stat), C(base64), C(mktemp)
    and C(mv) (coreutils).
version_added: "0.1.0"
author:
  - tfserving-ansible maintainers (!UNKNOWN)
options:
  dest:
    description: The file on the host, an absolute path.
    type: str
    required: true
  content:
    description: What the file holds, text (UTF-8).
    type: str
    required: true
  mode:
    description: The file's mode, octal (C(0644)).
    type: str
    default: "0644"
attributes:
  check_mode:
    support: full
    description: Reads the file and reports whether it would change; writes nothing.
  diff_mode:
    support: full
    description: The file's content before and after (and its mode when that changes).
seealso:
  - module: ansible.builtin.template
  - module: tfserving.fleet.tfserving_reload_config
"""

EXAMPLES = r"""
- name: Model configuration of instance main is in place
  tfserving.fleet.tfserving_config_file:
    dest: /etc/tfserving/main/models.config
    content: "{{ instance | tfserving.fleet.tfserving_models_config }}"
    mode: "0644"
"""

RETURN = r"""
dest:
  description: The file on the host.
  returned: always
  type: str
  sample: /etc/tfserving/main/models.config
"""

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.tfserving.fleet.plugins.module_utils.tfserving_config_file import CONFIG_FILE_SPEC


def main():
    module = AnsibleModule(argument_spec=CONFIG_FILE_SPEC, supports_check_mode=True)
    module.fail_json(msg="tfserving_config_file runs as an action plugin on the control node; call it from a task")


if __name__ == "__main__":
    main()
