# Copyright: the tfserving-ansible authors
# Apache License 2.0
"""One shell run on the task's host, for the actions that replace a Python module run doing little."""

import shlex

from ansible.module_utils.common.text.converters import to_text


def run_script(action, script, *args):
    """Run SCRIPT with /bin/sh on ACTION's host (become applies), $1... being ARGS; Ansible's result dict."""
    command = " ".join(shlex.quote(str(a)) for a in ["/bin/sh", "-c", script, "tfserving", *args])
    return action._low_level_execute_command(command, sudoable=True)


def failure_text(ran):
    """What a failed run said: its stdout and its stderr (over ssh with a terminal the command's errors are in
    stdout and stderr holds only the connection's own messages, such as 'Shared connection ... closed')."""
    return " ".join(to_text(ran.get(k) or "").strip() for k in ("stdout", "stderr")).strip()
