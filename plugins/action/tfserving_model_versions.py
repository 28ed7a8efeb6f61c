# Copyright: the tfserving-ansible authors
# Apache License 2.0
"""Action of tfserving_model_versions: the listing without a Python module run where it can.

On the control node (sources, once per model and host) the listing runs in Ansible's own process; on
a remote host, a directory is listed with one shell run (LIST_SCRIPT). An archive on a host, a host
without GNU find, a directory the shell cannot enter, and a local connection with another user or
Python are listed by the module, as before.
"""

from ansible.module_utils.common.text.converters import to_text
from ansible.plugins.action import ActionBase
from ansible_collections.tfserving.fleet.plugins.module_utils.tfserving_model_versions import (
    LIST_SCRIPT,
    MODEL_VERSIONS_SPEC,
    describe,
    parse_listing,
)
from ansible_collections.tfserving.fleet.plugins.plugin_utils.tfserving_in_process import runs_here
from ansible_collections.tfserving.fleet.plugins.plugin_utils.tfserving_shell import run_script


class ActionModule(ActionBase):
    def run(self, tmp=None, task_vars=None):
        result = super().run(tmp, task_vars)
        del tmp
        if runs_here(self, task_vars):
            args = self.validate_argument_spec(argument_spec=MODEL_VERSIONS_SPEC)[1]
            result.update(describe(args["path"]))
            return result
        path = str(self._task.args.get("path") or "")
        if path.startswith("/") and self._connection.transport != "local":
            ran = run_script(self, LIST_SCRIPT, path)
            try:
                listing = None if ran["rc"] else parse_listing(to_text(ran["stdout"], errors="surrogate_or_strict"))
            except ValueError:
                listing = None
            if listing is not None:
                result.update(changed=False, path=path, **listing)
                return result
        result.update(self._execute_module(task_vars=task_vars))
        return result
