# Copyright: the tfserving-ansible authors
# Apache License 2.0
"""Whether an action plugin may do its module's work in Ansible's own process.

A module run on the control node starts a Python, unpacks and compiles its module_utils and imports
its libraries: a quarter to half a second of CPU per task. Where the module would run as this user
with this Python (local connection, no become, Ansible's interpreter), the collection's actions that
run every time on the control node call the module's code directly; anywhere else the module runs.
"""

import os
import sys


def runs_here(action, task_vars):
    """True when ACTION (an ActionBase) would run its module with this process's user and Python."""
    if action._connection.transport != "local" or action._play_context.become:
        return False
    host_vars = task_vars or {}
    if action._task.delegate_to:
        host_vars = host_vars.get("ansible_delegated_vars", {}).get(action._task.delegate_to, host_vars)
    interpreter = str(action._templar.template(host_vars.get("ansible_python_interpreter") or ""))
    return bool(interpreter) and os.path.realpath(interpreter) == os.path.realpath(sys.executable)
