"""Version numbering, idempotence and atomic publishing of tfserving-export (no TensorFlow needed)."""

from __future__ import annotations

import json
import os

import export_imports  # noqa: F401  (the package, not the module of the same name)
import pytest

from tfserving_export import repository
from tfserving_export.errors import ExportError


def make_version(base, name, fingerprint=None):
    path = base / name
    (path / "variables").mkdir(parents=True)
    (path / "saved_model.pb").write_bytes(b"")
    if fingerprint:
        repository.write_provenance(path, {"fingerprint": fingerprint, "source": "/src/model.pb"})
    return path


def test_numbering_follows_tf_serving_rules(tmp_path):
    assert repository.plan_version(tmp_path / "new", None, "fp").version == 1
    make_version(tmp_path, "00000003")
    make_version(tmp_path, "1")
    (tmp_path / "latest").mkdir()  # not numeric: TF Serving ignores it, so do we
    (tmp_path / "9").write_text("a file is not a version")
    (tmp_path / ".tfserving-export-abc").mkdir()
    plan = repository.plan_version(tmp_path, None, "fp")
    assert (plan.version, plan.path, plan.changed, plan.existing_versions) == (4, tmp_path / "4", True, [1, 3])


def test_the_latest_version_holding_the_same_export_means_no_change(tmp_path):
    make_version(tmp_path, "1", fingerprint="same")
    make_version(tmp_path, "2", fingerprint="other")
    assert repository.plan_version(tmp_path, None, "other").changed is False
    plan = repository.plan_version(tmp_path, None, "same")  # only the latest counts
    assert plan.changed is True and plan.version == 3
    assert repository.plan_version(tmp_path, 1, "same").changed is False


def test_a_taken_version_is_refused_with_what_holds_it(tmp_path):
    make_version(tmp_path, "1")
    with pytest.raises(ExportError) as info:
        repository.plan_version(tmp_path, 1, "fp")
    assert "version 1 already exists" in str(info.value)
    assert "a model not written by tfserving-export" in str(info.value) and "Fix:" in str(info.value)
    make_version(tmp_path, "2", fingerprint="x")
    with pytest.raises(ExportError, match=r"an export of /src/model\.pb"):
        repository.plan_version(tmp_path, 2, "fp")
    with pytest.raises(ExportError, match="expected a non-negative integer"):
        repository.plan_version(tmp_path, -1, "fp")


def test_a_base_path_that_is_a_file_is_refused(tmp_path):
    target = tmp_path / "model"
    target.write_text("")
    with pytest.raises(ExportError, match="is not a directory"):
        repository.plan_version(target, None, "fp")


def test_staging_leaves_nothing_behind_on_error_including_created_parents(tmp_path):
    base = tmp_path / "repo" / "team" / "model"
    with pytest.raises(RuntimeError), repository.staging(base) as scratch:
        assert scratch.parent == base and scratch.name.startswith(repository.STAGING_PREFIX)
        (scratch / "half-written").write_text("x")
        raise RuntimeError("conversion failed")
    assert list(tmp_path.iterdir()) == []


def test_staging_keeps_an_existing_base_path_and_its_versions(tmp_path):
    make_version(tmp_path, "1")
    with pytest.raises(RuntimeError), repository.staging(tmp_path):
        raise RuntimeError("boom")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["1"]


def test_publish_renames_a_readable_version_and_refuses_a_version_that_appeared(tmp_path):
    with repository.staging(tmp_path) as scratch:
        staged = make_version(scratch, "savedmodel", fingerprint="fp")
        plan = repository.plan_version(tmp_path, None, "fp")
        published = repository.publish(staged, plan)
    assert published == tmp_path / "1"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["1"]
    mask = os.umask(0)
    os.umask(mask)
    assert (published.stat().st_mode & 0o777) == (0o777 & ~mask)
    assert json.loads((published / repository.PROVENANCE_PATH).read_text())["fingerprint"] == "fp"

    with pytest.raises(ExportError, match="appeared while the export ran"), repository.staging(tmp_path) as scratch:
        staged = make_version(scratch, "savedmodel")
        plan = repository.plan_version(tmp_path, 5, "fp2")
        make_version(tmp_path, "5")  # another writer wins the race
        repository.publish(staged, plan)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["1", "5"]


def test_a_base_path_that_cannot_be_created_is_an_export_error(tmp_path):
    blocker = tmp_path / "models"
    blocker.write_text("a file where a directory should be")
    with pytest.raises(ExportError) as info, repository.staging(blocker / "resnet"):
        pass
    assert f"cannot create the model base path {blocker / 'resnet'}" in str(info.value)
    assert blocker.read_text() == "a file where a directory should be"
