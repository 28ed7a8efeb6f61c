# Copyright: the tfserving-ansible authors
# Apache License 2.0
"""Action of tfserving_config_file: read with one shell run, write (when different) with a transfer and one more."""

from ansible.errors import AnsibleActionFail
from ansible.module_utils.common.text.converters import to_text
from ansible.plugins.action import ActionBase
from ansible_collections.tfserving.fleet.plugins.module_utils.tfserving_config_file import (
    CONFIG_FILE_SPEC,
    READ_SCRIPT,
    WRITE_SCRIPT,
    parse_mode,
    parse_read,
)
from ansible_collections.tfserving.fleet.plugins.plugin_utils.tfserving_shell import failure_text, run_script


class ActionModule(ActionBase):
    TRANSFERS_FILES = False

    def run(self, tmp=None, task_vars=None):
        result = super().run(tmp, task_vars)
        del tmp
        args = self.validate_argument_spec(argument_spec=CONFIG_FILE_SPEC)[1]
        dest, content = args["dest"], args["content"]
        try:
            mode = parse_mode(args["mode"])
        except ValueError as exc:
            raise AnsibleActionFail(str(exc)) from None
        if not dest.startswith("/"):
            raise AnsibleActionFail(f"dest must be an absolute path on the host, got {dest!r}")
        try:
            before_mode, before = parse_read(self._shell("read", READ_SCRIPT, dest))
        except ValueError as exc:
            raise AnsibleActionFail(f"could not read {dest} on the host: {exc}") from None
        write_content = before != content
        result.update(dest=dest, changed=write_content or before_mode != mode)
        if self._task.diff and result["changed"]:
            result["diff"] = {
                "before_header": dest,
                "after_header": dest,
                "before": before or "",
                "after": content,
            }
            if before_mode is not None and before_mode != mode:
                result["diff"].update(before_mode=f"{before_mode:04o}", after_mode=f"{mode:04o}")
        if result["changed"] and not self._task.check_mode:
            try:
                remote = ""
                if write_content:
                    shell = self._connection._shell
                    self._make_tmp_path()
                    remote = shell.join_path(shell.tmpdir, "content")
                    self._transfer_data(remote, content)
                    self._fixup_perms2((shell.tmpdir, remote))
                self._shell("write", WRITE_SCRIPT, dest, remote, f"{mode:04o}")
            finally:
                self._remove_tmp_path(self._connection._shell.tmpdir)
        return result

    def _shell(self, what, script, *args):
        ran = run_script(self, script, *args)
        if ran["rc"]:
            raise AnsibleActionFail(
                f"could not {what} {args[0]} on the host: {failure_text(ran)}"
            )
        return to_text(ran["stdout"], errors="surrogate_or_strict")
