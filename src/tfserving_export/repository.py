"""A model's base path as TF Serving sees it: numbered version directories, written atomically.

TF Serving lists the base path every ``--file_system_poll_wait_seconds`` and treats every child
whose name is all digits as a version (``00000123`` is version 123). A half-written version
directory would be picked up and fail to load, so an export is staged in a hidden directory beside
the versions (``.tfserving-export-*``, not numeric, so the server ignores it) and renamed into
place only once it is complete and has loaded. Nothing is left behind when anything fails.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import pathlib
import shutil
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass, field

from tfserving_export.errors import ExportError

STAGING_PREFIX = ".tfserving-export-"
# TF Serving copies nothing from assets.extra/ into the serving graph; it is the conventional place
# for files that travel with a version (warm-up requests live there too).
PROVENANCE_PATH = pathlib.Path("assets.extra") / "tfserving_export.json"


def list_versions(base_path: pathlib.Path) -> dict[int, pathlib.Path]:
    """Return {version: directory} for the numeric children of base_path, as TF Serving reads them."""
    if not base_path.is_dir():
        return {}
    versions: dict[int, pathlib.Path] = {}
    for child in base_path.iterdir():
        if child.name.isdigit() and child.is_dir():
            versions[int(child.name)] = child
    return versions


def sha256_file(path: pathlib.Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def fingerprint(source_sha256: str, params: dict) -> str:
    """A stable identity for 'this source file converted with these parameters'."""
    blob = json.dumps({"source_sha256": source_sha256, "params": params}, sort_keys=True)
    return hashlib.sha256(blob.encode()).hexdigest()


def read_provenance(version_dir: pathlib.Path) -> dict | None:
    """The provenance record tfserving-export left in a version, or None (foreign or unreadable)."""
    try:
        return json.loads((version_dir / PROVENANCE_PATH).read_text())
    except (OSError, ValueError):
        return None


@dataclass
class Plan:
    """What an export will do: write ``version`` into ``path``, or nothing (``changed`` is False)."""

    base_path: pathlib.Path
    version: int
    path: pathlib.Path
    changed: bool
    fingerprint: str
    existing_versions: list[int] = field(default_factory=list)
    reason: str = ""


def plan_version(base_path: pathlib.Path, version: int | None, fp: str) -> Plan:
    """Decide the version directory of an export.

    Without a version: the next free number (latest + 1), unless the latest version already holds
    an export with the same fingerprint (then nothing changes, so repeated runs are idempotent).
    With a version: that number, which must be free or already hold this very export.
    """
    if base_path.exists() and not base_path.is_dir():
        raise ExportError(
            f"model base path {base_path} is not a directory",
            expected="a directory that holds (or will hold) numbered version directories",
            found="a file",
            fix="point base_path at the model's directory, for example /srv/models/my_model",
        )
    versions = list_versions(base_path)
    existing = sorted(versions)
    if version is None:
        if existing:
            latest = existing[-1]
            record = read_provenance(versions[latest])
            if record and record.get("fingerprint") == fp:
                return Plan(base_path, latest, versions[latest], False, fp, existing,
                            f"version {latest} already holds this export")
            target = latest + 1
        else:
            target = 1
        return Plan(base_path, target, base_path / str(target), True, fp, existing,
                    f"next free version is {target}")
    if version < 0:
        raise ExportError(
            "invalid version number",
            expected="a non-negative integer (TF Serving versions are int64 directory names)",
            found=str(version),
            fix="pass a version such as 1, or none to take the next free number",
        )
    if version in versions:
        record = read_provenance(versions[version])
        if record and record.get("fingerprint") == fp:
            return Plan(base_path, version, versions[version], False, fp, existing,
                        f"version {version} already holds this export")
        what = (
            f"an export of {record.get('source', 'another model')}" if record else "a model not written by "
            "tfserving-export"
        )
        raise ExportError(
            f"version {version} already exists in {base_path}",
            expected="a free version number (versions are immutable once TF Serving may have loaded them)",
            found=f"{versions[version]} holding {what}",
            fix="omit the version to take the next free number, or choose an unused one",
        )
    return Plan(base_path, version, base_path / str(version), True, fp, existing,
                f"version {version} is free")


@contextlib.contextmanager
def staging(base_path: pathlib.Path) -> Iterator[pathlib.Path]:
    """A hidden scratch directory inside base_path; removed (with base_path if we made it) on error."""
    created = []
    probe = base_path
    while not probe.exists():
        created.append(probe)
        probe = probe.parent
    try:
        base_path.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ExportError(
            f"cannot create the model base path {base_path}",
            expected="a writable location",
            found=exc.strerror or str(exc),
            fix="create the directory or fix its permissions",
        ) from exc
    if not os.access(base_path, os.W_OK):
        raise ExportError(
            f"model base path {base_path} is not writable",
            expected="write permission for the user running tfserving-export",
            found="no write permission",
            fix="run as the directory's owner or change its permissions",
        )
    scratch = pathlib.Path(tempfile.mkdtemp(prefix=STAGING_PREFIX, dir=base_path))
    try:
        yield scratch
    except BaseException:
        shutil.rmtree(scratch, ignore_errors=True)
        for directory in created:  # innermost first
            with contextlib.suppress(OSError):
                directory.rmdir()
        raise
    shutil.rmtree(scratch, ignore_errors=True)


def write_provenance(model_dir: pathlib.Path, record: dict) -> None:
    target = model_dir / PROVENANCE_PATH
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(json.dumps(record, indent=2, sort_keys=True) + "\n")


def _make_readable(tree: pathlib.Path) -> None:
    """mkdtemp makes 0700 directories; the server (often another user) must read the version."""
    umask = os.umask(0)
    os.umask(umask)
    dir_mode = 0o777 & ~umask
    for root, dirs, _files in os.walk(tree):
        for name in dirs:
            os.chmod(os.path.join(root, name), dir_mode)
    os.chmod(tree, dir_mode)


def publish(staged_model: pathlib.Path, plan: Plan) -> pathlib.Path:
    """Rename a complete, validated SavedModel into its version directory (atomic on one filesystem)."""
    _make_readable(staged_model)
    raced = ExportError(
        f"version directory {plan.path} appeared while the export ran",
        expected="the version to stay free until the export finished",
        found="another writer created it",
        fix="run one export per model at a time, then retry",
    )
    if plan.path.exists():
        raise raced
    try:
        os.rename(staged_model, plan.path)
    except OSError as exc:  # ENOTEMPTY/EEXIST: lost the race between the check and the rename
        raise raced from exc
    return plan.path
