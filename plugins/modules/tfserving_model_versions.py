#!/usr/bin/python
# Copyright: the tfserving-ansible authors
# Apache License 2.0
"""List the SavedModel versions of a model directory or archive (read-only)."""


DOCUMENTATION = r"""
---
module: tfserving_model_versions
short_description: List the SavedModel versions in a model directory or a model archive
description:
  - Lists the version directories of a TensorFlow Serving model base path, the way the server's
    file system source sees them, only entries whose name is a number are versions
    (C(00000123) is version 123).
  - The path can also be an archive (tar, tar.gz, tar.bz2, tar.xz or zip) whose version directories
    sit at its top level or under a single top-level directory.
  - For each version it reports whether C(saved_model.pb) or C(saved_model.pbtxt) is present, so
    a caller can refuse to publish an incomplete SavedModel.
  - Read-only. Used by the tfserving role on the control node (sources) and on the hosts (the
    published model repository) before anything changes.
version_added: "0.1.0"
author:
  - tfserving-ansible maintainers (!UNKNOWN)
options:
  path:
    description:
      - The model base path (a directory holding numbered version directories) or an archive.
      - A path that does not exist is not an error; RV(exists) is then false.
    type: path
    required: true
attributes:
  check_mode:
    support: full
    description: Never changes anything.
  diff_mode:
    support: none
    description: Nothing to diff.
"""

EXAMPLES = r"""
- name: Versions of a model on the control node are known
  tfserving.fleet.tfserving_model_versions:
    path: /srv/exports/half_plus_two
  delegate_to: localhost
  register: source

- name: Versions of a model archive are known
  tfserving.fleet.tfserving_model_versions:
    path: /srv/exports/half_plus_two.tar.gz
  delegate_to: localhost
"""

RETURN = r"""
exists:
  description: Whether the path exists.
  returned: always
  type: bool
kind:
  description: C(directory), C(archive) or C(missing).
  returned: always
  type: str
versions:
  description: The version directories, ordered by version number.
  returned: always
  type: list
  elements: dict
  contains:
    name:
      description: The directory name, as found (for example C(00000123)).
      type: str
    version:
      description: The version number TF Serving derives from the name.
      type: int
    saved_model:
      description: C(saved_model.pb) or C(saved_model.pbtxt) when present, else null.
      type: str
    bytes:
      description: Size of the version on disk, the sum of its regular files (for an archive, their
        unpacked sizes). The serving roles estimate a version's GPU memory from it.
      type: int
  sample: [{"name": "00000123", "version": 123, "saved_model": "saved_model.pb", "bytes": 12817}]
other:
  description: Entries that are not versions (TF Serving ignores them), for example hidden temporary
    directories.
  returned: always
  type: list
  elements: str
prefix:
  description: For an archive, the top-level directory that holds the versions (empty when they are at
    the top).
  returned: always
  type: str
unsafe_members:
  description: Archive members that would be written outside the extraction directory (absolute paths,
    C(..), links pointing outside, devices).
  returned: always
  type: list
  elements: str
"""

import os
import posixpath
import re
import tarfile
import zipfile

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.tfserving.fleet.plugins.module_utils.tfserving_common import SAVED_MODEL_FILES

VERSION_RE = re.compile(r"^[0-9]+$")
ARCHIVE_SUFFIXES = (".tar", ".tar.gz", ".tgz", ".tar.bz2", ".tbz2", ".tar.xz", ".txz", ".zip")


def tree_bytes(path):
    """Sum of the sizes of the regular files below path (symbolic links are not followed)."""
    total = 0
    for top, _dirs, files in os.walk(path):
        for name in files:
            full = os.path.join(top, name)
            if os.path.isfile(full) and not os.path.islink(full):
                total += os.path.getsize(full)
    return total


def list_directory(path):
    versions, other = [], []
    for name in sorted(os.listdir(path)):
        full = os.path.join(path, name)
        if VERSION_RE.match(name) and os.path.isdir(full):
            found = next((f for f in SAVED_MODEL_FILES if os.path.isfile(os.path.join(full, f))), None)
            versions.append({"name": name, "version": int(name), "saved_model": found, "bytes": tree_bytes(full)})
        else:
            other.append(name)
    versions.sort(key=lambda v: (v["version"], v["name"]))
    return {"kind": "directory", "versions": versions, "other": other, "prefix": "", "unsafe_members": []}


def _clean(name):
    name = name.replace("\\", "/")
    while name.startswith("./"):
        name = name[2:]
    return name


def _unsafe(name):
    if name.startswith("/") or re.match(r"^[A-Za-z]:", name):
        return True
    return ".." in name.split("/")


def archive_members(path):
    """[(name, is_dir, unsafe, size)] of a tar or zip archive (size: unpacked bytes of a regular file)."""
    out = []
    if zipfile.is_zipfile(path):
        with zipfile.ZipFile(path) as archive:
            for info in archive.infolist():
                name = _clean(info.filename)
                out.append((name.rstrip("/"), info.is_dir(), _unsafe(name), 0 if info.is_dir() else info.file_size))
        return out
    with tarfile.open(path) as archive:
        for member in archive.getmembers():
            name = _clean(member.name)
            unsafe = _unsafe(name) or member.isdev()
            if member.issym() or member.islnk():
                target = member.linkname
                joined = posixpath.normpath(posixpath.join(posixpath.dirname(name), target))
                unsafe = unsafe or target.startswith("/") or joined.startswith("..")
            out.append((name.rstrip("/"), member.isdir(), unsafe, member.size if member.isfile() else 0))
    return out


def list_archive(path):
    members = [m for m in archive_members(path) if m[0] not in ("", ".")]
    unsafe = sorted({name for name, _unused, bad, _size in members if bad})
    safe = [(name, size) for name, _is_dir, bad, size in members if not bad]
    tops = {name.split("/")[0] for name, _unused in safe}
    prefix = ""
    if not any(VERSION_RE.match(t) for t in tops) and len(tops) == 1:
        prefix = next(iter(tops))
    found = {}
    other = set()
    for name, size in safe:
        rel = name[len(prefix) + 1 :] if prefix else name
        if prefix and not name.startswith(prefix + "/"):
            continue
        parts = rel.split("/")
        if not parts[0]:
            continue
        if not VERSION_RE.match(parts[0]):
            other.add(parts[0])
            continue
        entry = found.setdefault(
            parts[0], {"name": parts[0], "version": int(parts[0]), "saved_model": None, "bytes": 0}
        )
        entry["bytes"] += size
        if len(parts) == 2 and parts[1] in SAVED_MODEL_FILES and entry["saved_model"] is None:
            entry["saved_model"] = parts[1]
    versions = sorted(found.values(), key=lambda v: (v["version"], v["name"]))
    return {
        "kind": "archive",
        "versions": versions,
        "other": sorted(other),
        "prefix": prefix,
        "unsafe_members": unsafe,
    }


def is_archive(path):
    return os.path.isfile(path) and (
        path.endswith(ARCHIVE_SUFFIXES) or tarfile.is_tarfile(path) or zipfile.is_zipfile(path)
    )


def inspect(path):
    if not os.path.exists(path):
        return {
            "exists": False,
            "kind": "missing",
            "versions": [],
            "other": [],
            "prefix": "",
            "unsafe_members": [],
        }
    if os.path.isdir(path):
        result = list_directory(path)
    elif is_archive(path):
        result = list_archive(path)
    else:
        raise ValueError(f"{path} is neither a directory nor a tar or zip archive")
    result["exists"] = True
    return result


def main():
    module = AnsibleModule(argument_spec={"path": {"type": "path", "required": True}}, supports_check_mode=True)
    path = module.params["path"]
    try:
        result = inspect(path)
    except (OSError, ValueError, tarfile.TarError, zipfile.BadZipFile) as exc:
        module.fail_json(
            msg=f"expected {path} to be a model directory or a tar/zip archive of version directories; "
            f"reading it failed: {exc}",
            path=path,
        )
    module.exit_json(changed=False, path=path, **result)


if __name__ == "__main__":
    main()
