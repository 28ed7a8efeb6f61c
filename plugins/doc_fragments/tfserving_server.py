# Copyright: the tfserving-ansible authors
# Apache License 2.0
"""The TF Serving server a module talks to, whatever the protocol (argument spec: SERVER_SPEC in
plugins/module_utils/tfserving_common.py)."""


class ModuleDocFragment:
    DOCUMENTATION = r"""
options:
  host:
    description: Address of the TF Serving server, as seen from the host the module runs on.
    type: str
    default: 127.0.0.1
"""
