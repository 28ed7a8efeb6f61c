# Copyright: the tfserving-ansible authors
# Apache License 2.0
"""Action of tfserving_reload_config: on the control node the reload runs in Ansible's own process.

Role tfserving sends every reload from the control node (grpcio is there, not on the hosts), three
per host in a rollout; elsewhere, or where grpcio or protobuf do not import here, the module runs.
"""

from ansible.plugins.action import ActionBase
from ansible_collections.tfserving.fleet.plugins.plugin_utils.tfserving_in_process import runs_here


class ActionModule(ActionBase):
    def run(self, tmp=None, task_vars=None):
        result = super().run(tmp, task_vars)
        del tmp
        # Imported here, in the task's worker process: Ansible's main process loads action plugins too,
        # and grpcio must not be imported in a process that forks afterwards.
        from ansible_collections.tfserving.fleet.plugins.module_utils.tfserving_grpc import HAS_GRPC, HAS_PROTOBUF

        if not (HAS_GRPC and HAS_PROTOBUF and runs_here(self, task_vars)):
            result.update(self._execute_module(task_vars=task_vars))
            return result
        from ansible_collections.tfserving.fleet.plugins.module_utils.tfserving_reload import (
            RELOAD_MUTUALLY_EXCLUSIVE,
            RELOAD_REQUIRED_ONE_OF,
            RELOAD_SPEC,
            Caller,
            Finished,
            reload_config,
        )

        params = self.validate_argument_spec(
            argument_spec=RELOAD_SPEC,
            required_one_of=RELOAD_REQUIRED_ONE_OF,
            mutually_exclusive=RELOAD_MUTUALLY_EXCLUSIVE,
        )[1]
        try:
            reload_config(Caller(params, check_mode=self._task.check_mode, diff=self._task.diff))
        except Finished as done:
            result.update(done.result)
        return result
