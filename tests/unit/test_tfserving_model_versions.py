"""tfserving_model_versions (the module) on real test models, archives built from them, and bad input."""

from __future__ import annotations

import io
import json
import os
import shutil
import subprocess
import sys
import tarfile
import zipfile

import pytest
from ansible.module_utils.testing import patch_module_args
from ansible_collections.tfserving.fleet.plugins.module_utils import tfserving_model_versions as tmv
from ansible_collections.tfserving.fleet.plugins.modules import tfserving_model_versions as module
from conftest import TESTDATA, other_python, run_task

TF = TESTDATA / "tfserving"


def size_of(path):
    """What du --apparent-size -b would say for the regular files below path."""
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file() and not f.is_symlink())


def run_main(capsys, args):
    with patch_module_args(args), pytest.raises(SystemExit) as exit_info:
        module.main()
    return exit_info.value.code, json.loads(capsys.readouterr().out)


def test_lists_the_two_versions_of_the_test_model(capsys):
    code, result = run_main(capsys, {"path": str(TF / "saved_model_half_plus_two_2_versions")})
    assert code == 0
    assert result["changed"] is False and result["exists"] is True and result["kind"] == "directory"
    two = TF / "saved_model_half_plus_two_2_versions"
    assert result["versions"] == [
        {"name": "00000123", "version": 123, "saved_model": "saved_model.pb", "bytes": size_of(two / "00000123")},
        {"name": "00000124", "version": 124, "saved_model": "saved_model.pb", "bytes": size_of(two / "00000124")},
    ]
    assert all(v["bytes"] > 10_000 for v in result["versions"])


def test_reports_a_version_without_saved_model():
    result = tmv.inspect(str(TF / "bad_half_plus_two"))
    assert result["versions"] == [
        {
            "name": "00000123",
            "version": 123,
            "saved_model": None,
            "bytes": size_of(TF / "bad_half_plus_two" / "00000123"),
        }
    ]


def test_non_numeric_entries_are_not_versions(tmp_path):
    shutil.copytree(TF / "saved_model_half_plus_two_cpu" / "00000123", tmp_path / "7")
    (tmp_path / ".tfserving-tmp-8").mkdir()
    (tmp_path / "latest").mkdir()
    (tmp_path / "9").write_text("a file, not a version directory")
    result = tmv.inspect(str(tmp_path))
    assert [v["version"] for v in result["versions"]] == [7]
    assert result["other"] == [".tfserving-tmp-8", "9", "latest"]


def test_a_missing_path_is_not_an_error(capsys, tmp_path):
    code, result = run_main(capsys, {"path": str(tmp_path / "nope")})
    assert code == 0
    assert result["exists"] is False and result["kind"] == "missing" and result["versions"] == []


def test_a_plain_file_fails_with_what_was_expected(capsys, tmp_path):
    path = tmp_path / "model.txt"
    path.write_text("not a model")
    code, result = run_main(capsys, {"path": str(path)})
    assert code == 1 and result["failed"] is True
    assert "expected" in result["msg"] and "tar/zip archive" in result["msg"]


@pytest.mark.parametrize("suffix,mode", [(".tar.gz", "w:gz"), (".tar", "w"), (".tar.xz", "w:xz")])
def test_tar_archive_with_versions_under_one_top_directory(tmp_path, suffix, mode):
    archive = tmp_path / ("model" + suffix)
    with tarfile.open(archive, mode) as tar:
        tar.add(TF / "saved_model_half_plus_two_2_versions", arcname="half_plus_two")
    result = tmv.inspect(str(archive))
    assert result["kind"] == "archive" and result["prefix"] == "half_plus_two"
    two = TF / "saved_model_half_plus_two_2_versions"
    assert [(v["name"], v["saved_model"], v["bytes"]) for v in result["versions"]] == [
        ("00000123", "saved_model.pb", size_of(two / "00000123")),
        ("00000124", "saved_model.pb", size_of(two / "00000124")),
    ]
    assert result["unsafe_members"] == []


def test_tar_archive_with_versions_at_the_top(tmp_path):
    archive = tmp_path / "model.tgz"
    with tarfile.open(archive, "w:gz") as tar:
        tar.add(TF / "saved_model_half_plus_two_cpu" / "00000123", arcname="./00000123")
    result = tmv.inspect(str(archive))
    assert result["prefix"] == "" and [v["version"] for v in result["versions"]] == [123]


def test_zip_archive(tmp_path):
    archive = tmp_path / "model.zip"
    src = TF / "saved_model_half_plus_two_tf2_cpu"
    with zipfile.ZipFile(archive, "w") as zf:
        for path in sorted(src.rglob("*")):
            zf.write(path, arcname=str(path.relative_to(src.parent)))
    result = tmv.inspect(str(archive))
    assert result["prefix"] == "saved_model_half_plus_two_tf2_cpu"
    # Unpacked sizes: what the version takes on the host once published.
    assert result["versions"] == [
        {"name": "00000123", "version": 123, "saved_model": "saved_model.pb", "bytes": size_of(src / "00000123")}
    ]


def test_unsafe_archive_members_are_reported(tmp_path):
    archive = tmp_path / "evil.tar"
    with tarfile.open(archive, "w") as tar:
        data = b"x"
        for name in ("1/saved_model.pb", "../../etc/cron.d/x", "/abs/file"):
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
        link = tarfile.TarInfo("1/variables")
        link.type = tarfile.SYMTYPE
        link.linkname = "../../../../etc"
        tar.addfile(link)
    result = tmv.inspect(str(archive))
    assert result["unsafe_members"] == ["../../etc/cron.d/x", "/abs/file", "1/variables"]
    assert [v["version"] for v in result["versions"]] == [1]


def test_check_mode_is_supported(capsys):
    code, result = run_main(capsys, {"path": str(TF / "saved_model_half_plus_two_cpu"), "_ansible_check_mode": True})
    assert code == 0 and result["changed"] is False and result["versions"][0]["version"] == 123


# -- the action plugin: in Ansible's own process on the control node, else the module ----------------
def list_in_playbook(tmp_path, path, interpreter):
    """The task on the control node (delegated to the implicit localhost); returns (rc, result)."""
    task = {
        "name": "Versions are listed",
        "tfserving.fleet.tfserving_model_versions": {"path": str(path)},
        "delegate_to": "localhost",
        "vars": {"ansible_python_interpreter": interpreter},
    }
    return run_task(tmp_path, task, implicit_localhost=True)


def test_on_the_control_node_the_listing_runs_in_process_and_equals_the_module_run(tmp_path):
    two = TF / "saved_model_half_plus_two_2_versions"
    rc, here = list_in_playbook(tmp_path, two, sys.executable)
    assert rc == 0 and "invocation" not in here  # no module run: the module would echo its arguments
    rc, module_run = list_in_playbook(tmp_path, two, other_python(tmp_path))
    assert rc == 0 and module_run["invocation"]["module_args"] == {"path": str(two)}
    del module_run["invocation"]
    # AnsibleModule.exit_json adds the file attributes of a result's "path"; nothing reads them.
    added = set(module_run) - set(here)
    assert added == {"gid", "group", "mode", "owner", "size", "state", "uid"}
    assert here == {key: value for key, value in module_run.items() if key not in added}
    assert [v["version"] for v in here["versions"]] == [123, 124]


def test_in_process_a_path_that_is_no_model_fails_as_the_module_does(tmp_path):
    (tmp_path / "notes.txt").write_text("not a model")
    rc, result = list_in_playbook(tmp_path, tmp_path / "notes.txt", sys.executable)
    assert rc == 2 and result["failed"] is True and "invocation" not in result
    assert result["msg"] == (
        f"expected {tmp_path}/notes.txt to be a model directory or a tar/zip archive of version directories; "
        f"reading it failed: {tmp_path}/notes.txt is neither a directory nor a tar or zip archive"
    )
    assert os.path.exists(tmp_path / "notes.txt")


# -- the shell listing of a directory on a host ----------------------------------------------------------
def shell_listing(path):
    proc = subprocess.run(["/bin/sh", "-c", tmv.LIST_SCRIPT, "list", str(path)], capture_output=True, check=False)
    assert proc.returncode == 0, proc.stderr
    return tmv.parse_listing(proc.stdout.decode("utf-8", errors="surrogateescape"))


def test_the_shell_listing_of_a_directory_equals_the_modules(tmp_path):
    tree = tmp_path / "model"
    shutil.copytree(TF / "saved_model_half_plus_two_2_versions", tree)
    shutil.copytree(TF / "bad_half_plus_two" / "00000123", tree / "00000007")  # no SavedModel
    (tree / "00000009").mkdir()
    (tree / "00000009" / "saved_model.pbtxt").write_text("saved_model_schema_version: 1\n")
    (tree / "00000011").symlink_to(tree / "00000123")  # a link to a version is a version
    (tree / "00000012").write_text("a file, not a version")
    (tree / ".tfserving-tmp-00000125").mkdir()
    (tree / "notes with spaces.txt").write_text("x")
    (tree / "dangling").symlink_to(tmp_path / "nowhere")
    (tree / "00000124" / "variables" / "loop").symlink_to(tree)  # not followed by either
    expected = tmv.inspect(str(tree))
    assert [v["version"] for v in expected["versions"]] == [7, 9, 11, 123, 124]
    assert shell_listing(tree) == expected
    (tmp_path / "empty").mkdir()
    assert shell_listing(tmp_path / "empty") == tmv.inspect(str(tmp_path / "empty"))
    assert shell_listing(tmp_path / "missing") == tmv.inspect(str(tmp_path / "missing"))


def test_a_file_is_left_to_the_module_and_a_broken_answer_is_an_error(tmp_path):
    (tmp_path / "model.tar").write_bytes(b"")
    assert shell_listing(tmp_path / "model.tar") is None
    with pytest.raises(ValueError, match="unexpected output"):
        tmv.parse_listing("<<tfserving\ndirectory\nv bad\ntfserving>>\n")
    with pytest.raises(ValueError, match="unexpected output"):
        tmv.parse_listing("find: unknown predicate\n")
