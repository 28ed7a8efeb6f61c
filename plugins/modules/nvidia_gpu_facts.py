#!/usr/bin/python
# Copyright: the tfserving-ansible contributors
# Apache License 2.0 (see LICENSE)

DOCUMENTATION = r"""
---
module: nvidia_gpu_facts
short_description: Report the NVIDIA GPUs, driver and supported CUDA version of a host
description:
  - Runs C(nvidia-smi -q -x) (and, when that report cannot be read, C(nvidia-smi --query-gpu=...
    --format=csv) with C(nvidia-smi --version)) and returns the GPU count, model names, memory,
    UUIDs, minor numbers, memory in use and free per GPU, the driver version and the highest CUDA
    version the driver supports.
  - A host without C(nvidia-smi), without a loaded driver or without a GPU is not an error; the
    module says so in RV(ansible_facts.nvidia_gpu.reason) with RV(ansible_facts.nvidia_gpu.available=false).
  - Read-only; never reports C(changed).
version_added: "0.1.0"
author:
  - tfserving-ansible maintainers (!UNKNOWN)
options:
  executable:
    description:
      - Path of C(nvidia-smi). By default it is looked up on C(PATH) and in C(/usr/bin),
        C(/usr/local/bin) and C(/usr/local/nvidia/bin).
    type: path
  source:
    description:
      - C(xml) reads C(nvidia-smi -q -x) only; C(csv) reads C(--query-gpu) and C(--version) only;
        C(auto) reads the XML report and falls back to the CSV query when the XML cannot be read.
    type: str
    choices: [auto, xml, csv]
    default: auto
attributes:
  check_mode:
    support: full
    description: Runs the same read-only commands in check mode.
  diff_mode:
    support: none
    description: Reads only; there is nothing to compare.
notes:
  - The C(index) of a GPU is nvidia-smi's enumeration order (PCI bus order), which is what
    C(NVIDIA_VISIBLE_DEVICES) and C(--gpus device=N) mean. The C(minor_number) (C(/dev/nvidiaN))
    may differ. UUIDs are the stable way to name a GPU.
"""

EXAMPLES = r"""
- name: GPU facts are known
  tfserving.fleet.nvidia_gpu_facts:
  register: __gpu

- name: The host has the GPUs it was ordered with
  ansible.builtin.assert:
    that: ansible_facts['nvidia_gpu']['count'] >= 2
    fail_msg: "{{ inventory_hostname }}: {{ ansible_facts['nvidia_gpu']['reason'] }}"
"""

RETURN = r"""
ansible_facts:
  description: Facts set on the host.
  returned: always
  type: dict
  contains:
    nvidia_gpu:
      description: What nvidia-smi reports.
      type: dict
      returned: always
      contains:
        available:
          description: At least one GPU is visible through a loaded driver.
          type: bool
          sample: true
        driver_loaded:
          description: nvidia-smi talked to the kernel driver.
          type: bool
          sample: true
        reason:
          description: Why no GPU is available (null when one is).
          type: str
          sample: nvidia-smi not found (searched PATH, /usr/bin, /usr/local/bin, /usr/local/nvidia/bin)
        nvidia_smi:
          description: Path of the nvidia-smi that was run, null when none was found.
          type: str
          sample: /usr/bin/nvidia-smi
        count:
          description: Number of GPUs.
          type: int
          sample: 4
        attached_gpus:
          description: The GPU count nvidia-smi states in its report header.
          type: int
          sample: 4
        gpus:
          description:
            - One entry per GPU. C(memory_used_mib) and C(memory_free_mib) are the framebuffer memory
              in use and free when nvidia-smi ran (null when it does not say).
          type: list
          elements: dict
          sample:
            - index: 0
              uuid: GPU-d37e67a5-91dd-3774-a5cb-99096249601a
              name: Tesla T4
              memory_total_mib: 15360
              memory_used_mib: 1032
              memory_free_mib: 13939
              pci_bus_id: "00000000:00:1E.0"
              minor_number: 0
              mig_mode: null
        uuids:
          description: GPU UUIDs in index order.
          type: list
          elements: str
        names:
          description: GPU model names in index order.
          type: list
          elements: str
        memory_total_mib:
          description: Framebuffer memory of each GPU in MiB, in index order.
          type: list
          elements: int
        driver_version:
          description: NVIDIA driver version.
          type: str
          sample: 515.105.01
        cuda_version:
          description: Highest CUDA version the driver supports; null when nvidia-smi does not say.
          type: str
          sample: "11.7"
        source:
          description: Which nvidia-smi output the facts come from (xml or csv).
          type: str
          sample: xml
"""

import os

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.tfserving.fleet.plugins.module_utils.nvidia_smi import (
    NvidiaSmiParseError,
    collect,
    empty_facts,
)

_SEARCH = ["/usr/bin", "/usr/local/bin", "/usr/local/nvidia/bin"]


def _locate(module):
    path = module.params["executable"]
    if path:
        return path if os.access(path, os.X_OK) else None
    return module.get_bin_path("nvidia-smi", required=False, opt_dirs=_SEARCH)


def run_module(module):
    nvidia_smi = _locate(module)
    if nvidia_smi is None:
        where = module.params["executable"] or f"PATH, {', '.join(_SEARCH)}"
        facts = empty_facts(
            f"nvidia-smi not found (searched {where}): the NVIDIA driver is not installed", None
        )
    else:

        def run(argv):
            return module.run_command(argv, environ_update={"LC_ALL": "C"})

        try:
            facts = collect(run, nvidia_smi, module.params["source"])
        except NvidiaSmiParseError as exc:
            module.fail_json(
                msg=(
                    f"Expected the output of nvidia-smi ({module.params['source']} report); found: {exc}. "
                    "Fix: run the same nvidia-smi command on the host; if it prints an error, repair the "
                    "driver installation, otherwise report the output to the project."
                ),
                nvidia_smi=nvidia_smi,
            )
    module.exit_json(changed=False, ansible_facts={"nvidia_gpu": facts})


def main():
    module = AnsibleModule(
        argument_spec={
            "executable": {"type": "path"},
            "source": {"type": "str", "choices": ["auto", "xml", "csv"], "default": "auto"},
        },
        supports_check_mode=True,
    )
    run_module(module)


if __name__ == "__main__":
    main()
