"""Which ansible-core line can manage a host: the controller's ansible-core against the host's Python.

ansible-core 2.17 dropped Python 2.7 and 3.6 on managed hosts (2.19 needs Python >= 3.8 there and
has no yum module); CentOS 7 ships Python 2.7 and 3.6. This project runs under two locked
environments: ansible-core 2.19 (``.venv``, the default) and 2.16 (``.venv-2.16``, ``make venv
ANSIBLE_CORE=2.16``) for fleets with such hosts. 2.16 still manages Python 2.7, but this project's
modules need Python 3.6 or newer, so a host on 2.7 is sent to its python3. ``ansible_support_problem``
returns '' when the pair works, else one message naming the host's Python, the controller's
ansible-core and exactly what to use instead.
"""

from __future__ import annotations

import re

# ansible-core line -> oldest Python on managed hosts, per ansible-core's support matrix (2.16 also
# manages 2.7, but this project's modules do not run there); the lines this project is tested with.
_LINES = {
    (2, 16): (3, 6),
    (2, 19): (3, 8),
}
# The project's own modules and module_utils use f-strings: Python 3.6 (CentOS 7's python3) or newer.
_MODULES_MINIMUM = (3, 6)
_ENVIRONMENTS = {
    (2, 16): "the ansible-core 2.16 environment (make venv ANSIBLE_CORE=2.16; then .venv-2.16/bin/ansible-playbook)",
    (2, 19): "the default ansible-core 2.19 environment (make venv; then .venv/bin/ansible-playbook)",
}


def _version(text) -> tuple[int, ...]:
    return tuple(int(p) for p in re.findall(r"\d+", str(text))[:3])


def ansible_support_problem(controller_version, python_version, host="", distribution="", major=""):
    """'' when ansible-core ``controller_version`` manages a host whose Python is ``python_version``."""
    core = _version(controller_version)[:2]
    label = f"{host}: " if host else ""
    if core not in _LINES:
        lines = " or ".join(f"{a}.{b}.x" for a, b in sorted(_LINES))
        return (
            f"{label}ansible-core {controller_version} is not a line this project is tested with ({lines}); "
            f"use {_ENVIRONMENTS[(2, 19)]}, or {_ENVIRONMENTS[(2, 16)]} for EL7 hosts"
        )
    python = _version(python_version)
    if not python:
        return (
            f"{label}no Python interpreter was found on the host (looked at ansible_python_interpreter, "
            "/usr/bin/python3, /usr/libexec/platform-python, /usr/bin/python); install python3 or set "
            "ansible_python_interpreter"
        )
    minimum = _LINES[core]
    if python[:2] >= minimum:
        return ""
    where = f"{distribution} {major} " if distribution else ""
    found = ".".join(map(str, python))
    if python[:2] < _MODULES_MINIMUM:
        # CentOS 7's /usr/bin/python is 2.7; its python3 package (3.6) runs the modules under 2.16.
        also = "" if core == (2, 16) else f", and use {_ENVIRONMENTS[(2, 16)]} (Python 3.6 needs it)"
        return (
            f"{label}this project's modules cannot run on this {where}host: its Python is {found} and they need "
            f"Python >= {'.'.join(map(str, _MODULES_MINIMUM))}. Fix: install python3 on the host (CentOS 7: yum "
            f"install python3) and set ansible_python_interpreter: /usr/bin/python3 for it{also}"
        )
    fits = [c for c, m in sorted(_LINES.items()) if python[:2] >= m]
    return (
        f"{label}ansible-core {controller_version} cannot manage this {where}host: its Python is {found} and "
        f"ansible-core {core[0]}.{core[1]} needs Python >= {'.'.join(map(str, minimum))} on managed hosts. "
        f"Fix: use {_ENVIRONMENTS[fits[0]]}, or set ansible_python_interpreter to a Python >= 3.8 on the host "
        "(on CentOS 7, rh-python38: /opt/rh/rh-python38/root/usr/bin/python3)"
    )


class FilterModule:
    def filters(self):
        return {"ansible_support_problem": ansible_support_problem}
