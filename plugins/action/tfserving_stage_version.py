# Copyright: the tfserving-ansible authors
# Apache License 2.0
"""Action of tfserving_stage_version: pack on the control node, one transfer, one tar on the host."""

import os
import tempfile

from ansible import constants as C
from ansible.errors import AnsibleAction, AnsibleActionFail
from ansible.plugins.action import ActionBase
from ansible_collections.tfserving.fleet.plugins.module_utils.tfserving_stage import (
    STAGE_VERSION_SPEC,
    UNPACK_SCRIPT,
    pack_version,
    staging_parts,
)
from ansible_collections.tfserving.fleet.plugins.plugin_utils.tfserving_shell import failure_text, run_script


class ActionModule(ActionBase):
    TRANSFERS_FILES = True

    def run(self, tmp=None, task_vars=None):
        result = super().run(tmp, task_vars)
        del tmp
        args = self.validate_argument_spec(argument_spec=STAGE_VERSION_SPEC)[1]
        src, dest = args["src"], args["dest"].rstrip("/")
        result.update(dest=dest, changed=True)
        handle, archive = tempfile.mkstemp(suffix=".tar", dir=C.DEFAULT_LOCAL_TMP)
        os.close(handle)
        try:
            try:
                parent, name = staging_parts(dest)
            except ValueError as exc:
                raise AnsibleActionFail(f"dest: {exc}") from None
            try:
                result.update(pack_version(src, name, archive))
            except (OSError, ValueError) as exc:
                raise AnsibleActionFail(f"src: {exc}") from None
            if not self._task.check_mode:
                self._unpack(archive, parent, dest)
        except AnsibleAction as exc:
            result.update(exc.result, changed=False)
        finally:
            os.unlink(archive)
            self._remove_tmp_path(self._connection._shell.tmpdir)
        return result

    def _unpack(self, archive, parent, dest):
        shell = self._connection._shell
        remote = shell.join_path(shell.tmpdir, "version.tar")
        self._transfer_file(archive, remote)
        self._fixup_perms2((shell.tmpdir, remote))
        # A shell run, not a Python module run (a quarter of a second on the host).
        unpacked = run_script(self, UNPACK_SCRIPT, parent, dest, remote)
        if unpacked["rc"]:
            raise AnsibleActionFail(
                f"the archive could not be unpacked into {parent} on the host: {failure_text(unpacked)}"
            )
