"""tfserving_stage_version: a version directory packed on the control node, unpacked on the host.

The packing is read back with tarfile; the action runs in a real ansible-playbook against the control
node (local connection), on the SavedModel TF Serving publishes as test data."""

import filecmp
import os
import stat
import tarfile

import pytest
from ansible_collections.tfserving.fleet.plugins.module_utils.tfserving_stage import pack_version, staging_parts
from conftest import TESTDATA, run_task

VERSION = TESTDATA / "tfserving" / "saved_model_half_plus_two_2_versions" / "00000124"
FILES = ["assets/foo.txt", "saved_model.pb", "variables/variables.data-00000-of-00001", "variables/variables.index"]


def test_a_version_is_packed_under_its_staging_name_with_the_roles_modes_and_no_owner(tmp_path):
    archive = tmp_path / "v.tar"
    packed = pack_version(str(VERSION), ".tfserving-tmp-00000124", str(archive))
    size = sum((VERSION / f).stat().st_size for f in FILES)
    assert packed == {"files": 4, "bytes": size, "saved_model": "saved_model.pb"}
    with tarfile.open(archive) as tar:
        members = {m.name: m for m in tar.getmembers()}
    assert sorted(n for n, m in members.items() if m.isfile()) == [f".tfserving-tmp-00000124/{f}" for f in FILES]
    assert {m.mode for m in members.values() if m.isdir()} == {0o755}
    assert {m.mode for m in members.values() if m.isfile()} == {0o644}
    assert {(m.uid, m.gid, m.uname, m.gname) for m in members.values()} == {(0, 0, "", "")}


def test_executable_files_stay_executable_and_links_are_followed(tmp_path):
    source = tmp_path / "src"
    source.mkdir()
    (source / "run.sh").write_text("#!/bin/sh\n")
    (source / "run.sh").chmod(0o700)
    (source / "link.pb").symlink_to(VERSION / "saved_model.pb")
    pack_version(str(source), "v", str(tmp_path / "v.tar"))
    with tarfile.open(tmp_path / "v.tar") as tar:
        assert tar.getmember("v/run.sh").mode == 0o755
        link = tar.getmember("v/link.pb")
        assert link.isfile() and link.size == (VERSION / "saved_model.pb").stat().st_size


def test_a_file_is_not_a_version_directory(tmp_path):
    with pytest.raises(ValueError, match=r"saved_model\.pb is not a directory on the control node"):
        pack_version(str(VERSION / "saved_model.pb"), ".v", str(tmp_path / "v.tar"))


def test_a_directory_without_a_saved_model_is_packed_and_says_so(tmp_path):
    # TF Serving's bad_half_plus_two: a version directory that holds no SavedModel.
    bad = TESTDATA / "tfserving" / "bad_half_plus_two" / "00000123"
    assert pack_version(str(bad), ".v", str(tmp_path / "v.tar"))["saved_model"] is None


@pytest.mark.parametrize("dest", ["/srv/m/00000124", "/srv/m/..", "/srv/m/.", ".hidden", "/srv/m/v/"])
def test_only_a_hidden_staging_directory_is_a_destination(dest):
    with pytest.raises(ValueError, match=r"is not a hidden staging directory: its name must start with '\.'"):
        staging_parts(dest)


def test_a_staging_directory_is_split_into_parent_and_name():
    assert staging_parts("/srv/m/.tfserving-tmp-00000124/") == ("/srv/m", ".tfserving-tmp-00000124")


def stage(tmp_path, src, check=False, dest=None):
    """The action in a playbook on the control node; returns (rc, its result, the local temp dir)."""
    dest = dest or tmp_path / "model" / ".staged"
    args = {"src": str(src), "dest": str(dest)}
    rc, result = run_task(tmp_path, {"name": "Version is staged", "tfserving.fleet.tfserving_stage_version": args},
                          check=check)
    return rc, result, tmp_path / "tmp"


def test_the_version_arrives_whole_in_a_new_parent_with_its_modes_and_the_archive_is_removed(tmp_path):
    rc, result, local_tmp = stage(tmp_path, VERSION)
    staged = tmp_path / "model" / ".staged"
    assert rc == 0 and result["changed"] is True
    assert (result["files"], result["saved_model"], result["dest"]) == (4, "saved_model.pb", str(staged))
    assert sorted(str(p.relative_to(staged)) for p in staged.rglob("*") if p.is_file()) == FILES
    for path in FILES:
        assert filecmp.cmp(VERSION / path, staged / path, shallow=False), path
        assert stat.S_IMODE((staged / path).stat().st_mode) == 0o644, path
    for directory in (tmp_path / "model", staged, staged / "variables"):
        assert stat.S_IMODE(directory.stat().st_mode) == 0o755, directory
    assert (staged / "saved_model.pb").stat().st_uid == os.getuid()
    assert not list(local_tmp.rglob("*.tar"))


def test_a_staging_directory_an_interrupted_run_left_is_replaced(tmp_path):
    stale = tmp_path / "model" / ".staged"
    (stale / "variables").mkdir(parents=True)
    (stale / "variables" / "partial.tmp").write_text("half a copy")
    rc, result, _ = stage(tmp_path, VERSION)
    assert rc == 0 and result["changed"] is True
    assert sorted(str(p.relative_to(stale)) for p in stale.rglob("*") if p.is_file()) == FILES


def test_check_mode_reports_the_change_and_whether_it_is_a_saved_model_and_writes_nothing(tmp_path):
    bad = TESTDATA / "tfserving" / "bad_half_plus_two" / "00000123"
    rc, result, _ = stage(tmp_path, bad, check=True)
    assert rc == 0 and result["changed"] is True and result["saved_model"] is None
    assert not (tmp_path / "model").exists()


@pytest.mark.parametrize(
    ("what", "message"),
    [
        ("src", "src: {tmp}/missing is not a directory on the control node"),
        ("dest", "dest: {tmp}/model/00000124 is not a hidden staging directory: its name must start with '.'"),
    ],
)
def test_a_missing_source_or_a_visible_destination_fails_naming_it_and_writes_nothing(tmp_path, what, message):
    if what == "src":
        rc, result, _ = stage(tmp_path, tmp_path / "missing")
    else:
        rc, result, _ = stage(tmp_path, VERSION, dest=tmp_path / "model" / "00000124")
    assert rc == 2 and result["failed"] is True and result["changed"] is False
    assert result["msg"].startswith(message.format(tmp=tmp_path))
    assert not (tmp_path / "model").exists()


def test_an_unpack_that_fails_on_the_host_reports_the_hosts_own_error(tmp_path):
    (tmp_path / "model").write_text("a file where the model directory should be")
    rc, result, _ = stage(tmp_path, VERSION)
    assert rc == 2 and result["failed"] is True and result["changed"] is False
    assert result["msg"].startswith(f"the archive could not be unpacked into {tmp_path}/model on the host: ")
    assert "File exists" in result["msg"] or "Not a directory" in result["msg"], result["msg"]
