# Copyright: the tfserving-ansible authors
# Apache License 2.0
"""The SavedModel versions of a model directory or archive, for tfserving_model_versions.

The module runs this on a host; its action plugin runs it in Ansible's own process when the task runs
on the control node (sources are listed there for every model of every host), without a Python
module run.
"""

import base64
import os
import posixpath
import re
import tarfile
import zipfile

from ansible_collections.tfserving.fleet.plugins.module_utils.tfserving_common import SAVED_MODEL_FILES
from ansible_collections.tfserving.fleet.plugins.module_utils.tfserving_shell import answer_lines, wrapped

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


# The options of tfserving_model_versions (its module and its action plugin take them).
MODEL_VERSIONS_SPEC = {"path": {"type": "path", "required": True}}


def describe(path):
    """The module's result for PATH: the listing, or failed with a message naming PATH."""
    try:
        return dict(changed=False, path=path, **inspect(path))
    except (OSError, ValueError, tarfile.TarError, zipfile.BadZipFile) as exc:
        return dict(
            failed=True,
            changed=False,
            path=path,
            msg=f"expected {path} to be a model directory or a tar/zip archive of version directories; "
            f"reading it failed: {exc}",
        )


# -- the same listing of a directory on a host, with one shell run -------------------------------------
# A Python module run costs a quarter of a second per model and host; validate.yml lists every model of
# every host on each run. The answer (module_utils/tfserving_shell.py): "missing", "file" (an archive:
# the module lists it), or "directory" and one
# line per entry, its name in base64: "v NAME SAVED_MODEL BYTES" for a numbered directory (SAVED_MODEL
# is "-" without one), "o NAME" for anything else. Exits 3 where GNU find or the directory cannot be
# used: the caller runs the module instead.
LIST_SCRIPT = wrapped(
    'find / -maxdepth 0 -printf "" 2>/dev/null || exit 3; '
    'if [ -d "$1" ]; then echo directory; cd -- "$1" || exit 3; '
    "for e in * .[!.]* ..?*; do "
    '  if ! [ -e "$e" ] && ! [ -L "$e" ]; then continue; fi; '
    "  n=$(printf '%s' \"$e\" | base64 | tr -d '\\n\\r'); "
    '  case $e in *[!0-9]*) echo "o $n"; continue;; esac; '
    '  if ! [ -d "$e" ]; then echo "o $n"; continue; fi; '
    "  m=-; for f in " + " ".join(SAVED_MODEL_FILES) + '; do if [ -f "$e/$f" ]; then m=$f; break; fi; done; '
    "  b=$(find \"$e/\" -type f -printf '%s\\n' 2>/dev/null | awk '{s+=$1} END {printf \"%d\", s}'); "
    '  echo "v $n $m $b"; '
    "done; "
    'elif [ -e "$1" ] || [ -L "$1" ]; then echo file; else echo missing; fi'
)


def parse_listing(stdout):
    """inspect()'s answer from LIST_SCRIPT's output; None for a file (list it with the module).

    ValueError when the output holds no complete answer."""
    lines = answer_lines(stdout)
    if not lines or lines[0] not in ("missing", "file", "directory"):
        raise ValueError(f"unexpected output: {stdout[-300:]!r}")
    if lines[0] == "missing":
        return {"exists": False, "kind": "missing", "versions": [], "other": [], "prefix": "", "unsafe_members": []}
    if lines[0] == "file":
        return None
    versions, other = [], []
    for line in lines[1:]:
        fields = line.split(" ")
        try:
            name = base64.b64decode(fields[1], validate=True).decode("utf-8", errors="surrogateescape")
            if fields[0] == "v" and len(fields) == 4:
                found = None if fields[2] == "-" else fields[2]
                versions.append({"name": name, "version": int(name), "saved_model": found, "bytes": int(fields[3])})
            elif fields[0] == "o" and len(fields) == 2:
                other.append(name)
            else:
                raise ValueError(line)
        except (ValueError, IndexError):
            raise ValueError(f"unexpected output: {line!r}") from None
    versions.sort(key=lambda v: (v["version"], v["name"]))
    return {
        "kind": "directory",
        "versions": versions,
        "other": sorted(other),
        "prefix": "",
        "unsafe_members": [],
        "exists": True,
    }
