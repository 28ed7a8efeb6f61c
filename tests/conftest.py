"""Shared pytest setup: the project's plugins are imported the way Ansible loads them, as the
collection tfserving.fleet (``ansible_collections.tfserving.fleet.plugins...``).

By default the collection is this checkout (collections/ansible_collections/tfserving/fleet links
to the repository root). TFSERVING_COLLECTIONS_PATH names another collections directory, e.g. one
that `ansible-galaxy collection install` filled from the built tarball: the tests then exercise
that installed copy (scripts/collection-test.sh).
"""

import json
import os
import pathlib
import subprocess
import sys

import yaml
from ansible.utils.collection_loader._collection_finder import _AnsibleCollectionFinder

ROOT = pathlib.Path(__file__).resolve().parent.parent
# Real upstream test data (TF Serving models, nvidia-smi captures), vendored with licences.
TESTDATA = ROOT / "tests" / "data"

COLLECTIONS_PATH = pathlib.Path(os.environ.get("TFSERVING_COLLECTIONS_PATH") or ROOT / "collections").resolve()
# The collection under test: plugins/ of this directory are what the tests import.
COLLECTION = COLLECTIONS_PATH / "ansible_collections" / "tfserving" / "fleet"

# The finder ansible-core installs in its own CLIs: our collection first, then the collections the
# `ansible` package bundles (found on sys.path). ansible.cfg's collections_path is not read here.
_AnsibleCollectionFinder(paths=[str(COLLECTIONS_PATH)], scan_sys_paths=True)._install()


def fake_nvidia_smi(directory, capture, name="nvidia-smi"):
    """An ``nvidia-smi`` in ``directory`` that prints the real ``-q -x`` capture ``capture`` of
    tests/data/nvidia-smi (and refuses other arguments); returns its path as a string."""
    directory = pathlib.Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    script = directory / name
    script.write_text(
        "#!/bin/sh\n"
        f'if [ "$*" = "-q -x" ]; then cat "{TESTDATA / "nvidia-smi" / capture}"; exit 0; fi\n'
        'echo "unexpected arguments: $*" >&2; exit 2\n'
    )
    script.chmod(0o755)
    return str(script)


# The ansible-playbook (and ansible-inventory, ...) of the Python running the tests.
ANSIBLE_BIN = pathlib.Path(sys.executable).parent


def ansible_env(workdir, path_prefix=None):
    """The environment of an ansible-playbook run against this checkout: its ansible.cfg, the JSON
    callback, a local temp directory below ``workdir``, and on PATH ``path_prefix`` (e.g. the directory
    of a fake nvidia-smi), then the test Python's executables."""
    env = dict(os.environ)
    env.update(
        {
            "ANSIBLE_CONFIG": str(ROOT / "ansible.cfg"),
            "ANSIBLE_STDOUT_CALLBACK": "ansible.builtin.json",
            "ANSIBLE_LOCAL_TEMP": str(pathlib.Path(workdir) / "tmp"),
            "PATH": ":".join(p for p in (path_prefix, str(ANSIBLE_BIN), env.get("PATH", "")) if p),
        }
    )
    return env


def playbook_tasks(output):
    """[(task name without its role prefix, host, result)] of the JSON callback's ``output``, in run order."""
    return [
        (task["task"]["name"].split(" : ", 1)[-1], host, result)
        for play in output["plays"]
        for task in play["tasks"]
        for host, result in task["hosts"].items()
    ]


def gpu_host_vars(root, model, **instance):
    """Host variables of 'gpu-7', the control node as a GPU host of role tfserving (toolkit mode), whose
    directories are below ``root``: one instance 'ranking' on GPU 0 that serves ``model``; ``instance``
    adds to or overrides that instance's fields (ports, bind address)."""
    return {
        "ansible_connection": "local",
        "ansible_python_interpreter": sys.executable,
        "tfserving_gpu_mode": "toolkit",
        "tfserving_model_root": str(root / "models"),
        "tfserving_config_root": str(root / "etc"),
        "tfserving_state_dir": str(root / "state"),
        "tfserving_monitoring_export_dir": "",
        "tfserving_instances": [{"name": "ranking", "gpus": [0], **instance, "models": [model]}],
    }


def _install_patch_module_args_for_ansible_core_2_16():
    """ansible-core 2.16 has no ``ansible.module_utils.testing`` (2.19 added it); the module tests use
    its ``patch_module_args``. Under 2.16 the same context manager, as 2.19 writes it minus the JSON
    profile 2.16 does not have, stands in, so those tests run on both lines unchanged."""
    import contextlib
    import json
    import sys
    import types
    from unittest import mock

    try:
        import ansible.module_utils.testing  # noqa: F401
    except ImportError:
        from ansible.module_utils import basic

        @contextlib.contextmanager
        def patch_module_args(args=None):
            if not isinstance(args, (dict, type(None))):
                raise TypeError("The `args` arg must be a dict or None.")
            encoded = json.dumps({"ANSIBLE_MODULE_ARGS": args or {}}).encode()
            with mock.patch.object(basic, "_ANSIBLE_ARGS", encoded):
                yield

        shim = types.ModuleType("ansible.module_utils.testing")
        shim.patch_module_args = patch_module_args
        sys.modules["ansible.module_utils.testing"] = shim


_install_patch_module_args_for_ansible_core_2_16()


def run_task(workdir, task, *, check=False, diff=False, implicit_localhost=False):
    """One task in a real ansible-playbook run from ``workdir``; returns (exit code, the task's result).

    The task runs on host 'h', the control node reached with the local connection and the tests'
    Python, or with ``implicit_localhost`` on Ansible's implicit localhost (no inventory: the task
    may delegate to localhost and set its own interpreter)."""
    workdir = pathlib.Path(workdir)
    play = [{"hosts": "localhost" if implicit_localhost else "all", "gather_facts": False, "tasks": [task]}]
    (workdir / "play.yml").write_text(yaml.safe_dump(play))
    argv = [str(ANSIBLE_BIN / "ansible-playbook"), str(workdir / "play.yml")]
    if not implicit_localhost:
        host = {"ansible_connection": "local", "ansible_python_interpreter": sys.executable}
        inventory = {"all": {"hosts": {"h": host}}}
        (workdir / "inventory.yml").write_text(yaml.safe_dump(inventory))
        argv += ["-i", str(workdir / "inventory.yml")]
    argv += (["--check"] if check else []) + (["--diff"] if diff else [])
    proc = subprocess.run(
        argv, cwd=ROOT, env=ansible_env(workdir), capture_output=True, text=True, timeout=120, check=False
    )
    [(_, _, result)] = playbook_tasks(json.loads(proc.stdout))
    return proc.returncode, result


def other_python(workdir):
    """The tests' Python under another path: a module then runs as a module, with that interpreter."""
    wrapper = pathlib.Path(workdir) / "python"
    wrapper.write_text(f'#!/bin/sh\nexec {sys.executable} "$@"\n')
    wrapper.chmod(0o755)
    return str(wrapper)
