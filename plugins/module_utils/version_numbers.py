# Copyright: the tfserving-ansible authors
# Apache License 2.0
"""Package version strings compared as numbers, shared by the Docker Engine and NVIDIA runtime filters."""

import re


def version_tuple(version):
    """'3:18.09.2-3.el7' -> (3, 18, 9, 2, 3, 7): every run of digits, for comparing versions."""
    return tuple(int(p) for p in re.findall(r"\d+", str(version)))
