# Copyright: the tfserving-ansible authors
# Apache License 2.0
"""Action of tfserving_rename: one shell run on the host, instead of a command module run."""

from ansible.errors import AnsibleActionFail
from ansible.module_utils.common.text.converters import to_text
from ansible.plugins.action import ActionBase
from ansible_collections.tfserving.fleet.plugins.module_utils.tfserving_rename import (
    RENAME_SCRIPT,
    RENAME_SPEC,
    parse_answer,
)
from ansible_collections.tfserving.fleet.plugins.plugin_utils.tfserving_shell import failure_text, run_script


class ActionModule(ActionBase):
    TRANSFERS_FILES = False

    def run(self, tmp=None, task_vars=None):
        result = super().run(tmp, task_vars)
        del tmp
        args = self.validate_argument_spec(argument_spec=RENAME_SPEC)[1]
        src, dest = args["src"], args["dest"]
        for name, path in (("src", src), ("dest", dest)):
            if not path.startswith("/"):
                raise AnsibleActionFail(f"{name} must be an absolute path on the host, got {path!r}")
        mode = "check" if self._task.check_mode else "run"
        ran = run_script(self, RENAME_SCRIPT, src, dest, mode)
        output = to_text(ran.get("stdout"), errors="surrogate_or_strict")
        try:
            answer = parse_answer(output)
        except ValueError:
            raise AnsibleActionFail(
                f"could not rename {src} to {dest} on the host: {failure_text(ran)}"
            ) from None
        if answer == "missing" and not self._task.check_mode:
            raise AnsibleActionFail(f"could not rename {src} to {dest} on the host: {src} does not exist")
        result.update(src=src, dest=dest, changed=answer in ("renamed", "would-rename") or answer == "missing")
        return result
