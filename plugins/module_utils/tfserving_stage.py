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

from ansible_collections.tfserving.fleet.plugins.module_utils.tfserving_common import SAVED_MODEL_FILES

# The options of tfserving_stage_version (its module file documents them, its action plugin takes them).
STAGE_VERSION_SPEC = dict(
    src=dict(type="path", required=True),
    # A path on the host: not expanded on the control node the way type=path would.
    dest=dict(type="str", required=True),
)

# Run on the host: the parent made (0755), a stale staging directory replaced, the archive unpacked.
UNPACK_SCRIPT = 'set -e; mkdir -p -m 0755 -- "$1"; rm -rf -- "$2"; tar -x --no-same-owner -f "$3" -C "$1"'


def staging_parts(dest):
    """(parent, name) of the staging directory DEST; ValueError unless its name is hidden (.name)."""
    parent, name = os.path.split(dest.rstrip("/"))
    if not parent or not name.startswith(".") or name in (".", ".."):
        raise ValueError(
            f"{dest} is not a hidden staging directory: its name must start with '.' (TF Serving ignores "
            "such names, and an existing one is replaced)"
        )
    return parent, name


def _normalized(info):
    executable = info.isdir() or info.mode & (stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH)
    info.mode = 0o755 if executable else 0o644
    info.uid = info.gid = 0
    info.uname = info.gname = ""
    return info


def pack_version(src, name, archive):
    """Write the directory SRC (links followed) to the tar file ARCHIVE as NAME/...

    Returns {files, bytes, saved_model}: what it packed, and the SavedModel file at its top
    (saved_model.pb or saved_model.pbtxt; None when there is none). Raises ValueError when SRC is
    not a directory."""
    if not os.path.isdir(src):
        raise ValueError(f"{src} is not a directory on the control node")
    packed = {"files": 0, "bytes": 0, "saved_model": None}
    with tarfile.open(archive, "w", dereference=True) as tar:
        tar.add(src, arcname=name, filter=_normalized)
        for member in tar.getmembers():
            if member.isfile():
                packed["files"] += 1
                packed["bytes"] += member.size
    for candidate in SAVED_MODEL_FILES:
        if os.path.isfile(os.path.join(src, candidate)):
            packed["saved_model"] = candidate
            break
    return packed
