# Copyright: the tfserving-ansible authors
# Apache License 2.0
"""A version directory of the control node packed as one tar archive, for tfserving_stage_version.

Copying a SavedModel file by file costs two module runs per file on the host (a stat and a copy)
and one per directory; one archive costs one transfer and one ``tar`` run, whatever the file count.
The archive holds the directory under the name it gets on the host, with the modes the role's copy
gave (u=rwX,g=rX,o=rX) and no owner, so the host's user owns what it unpacks.
"""

import os
import stat
import tarfile

# The options of tfserving_stage_version (its module file documents them, its action plugin takes them).
STAGE_VERSION_SPEC = dict(
    src=dict(type="path", required=True),
    dest=dict(type="path", required=True),
)


def _normalized(info):
    executable = info.isdir() or info.mode & (stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH)
    info.mode = 0o755 if executable else 0o644
    info.uid = info.gid = 0
    info.uname = info.gname = ""
    return info


def pack_version(src, name, archive):
    """Write the directory SRC (links followed) to the tar file ARCHIVE as NAME/...

    Returns (files, bytes) of what it packed. Raises ValueError when SRC is not a directory or NAME
    is not a plain directory name."""
    if not os.path.isdir(src):
        raise ValueError(f"{src} is not a directory on the control node")
    if not name or name in (".", "..") or "/" in name:
        raise ValueError(f"{name!r} is not a directory name")
    files = size = 0
    with tarfile.open(archive, "w", dereference=True) as tar:
        tar.add(src, arcname=name, filter=_normalized)
        for member in tar.getmembers():
            if member.isfile():
                files += 1
                size += member.size
    return files, size
