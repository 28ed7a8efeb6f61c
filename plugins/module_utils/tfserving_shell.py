# Copyright: the tfserving-ansible authors
# Apache License 2.0
"""The answer of a shell run on a host, between two markers, for the collection's actions.

Ansible's ssh connection may run a command that becomes another user in a terminal (``-tt``): line
ends turn into CRLF and sudo's own messages land in the same output. A script prints its answer
between BEGIN and END (wrapped()); answer_lines() finds it.
"""

import re

BEGIN, END = "<<tfserving", "tfserving>>"


def wrapped(script):
    """SCRIPT with its output between the markers."""
    return f'echo "{BEGIN}"; {script}; echo "{END}"'


def answer_lines(stdout):
    """The non-empty lines between the markers, stripped; ValueError when there is no complete answer."""
    found = re.search(re.escape(BEGIN) + r"\s*\n(.*?)" + re.escape(END), stdout, re.DOTALL)
    if not found:
        raise ValueError(f"unexpected output: {stdout[-300:]!r}")
    return [line.strip() for line in found.group(1).splitlines() if line.strip()]
