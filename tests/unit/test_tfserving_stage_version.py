"""tfserving_stage_version: a version directory packed on the control node, unpacked on the host.

The packing is read back with tarfile; the action runs in a real ansible-playbook against the control
node (local connection), on the SavedModel TF Serving publishes as test data."""

import filecmp
import json
import os
import stat
import subprocess
import sys
import tarfile

import pytest
import yaml
from ansible_collections.tfserving.fleet.plugins.module_utils.tfserving_stage import pack_version
from conftest import ANSIBLE_BIN, ROOT, TESTDATA, ansible_env, playbook_tasks

VERSION = TESTDATA / "tfserving" / "saved_model_half_plus_two_2_versions" / "00000124"
FILES = ["assets/foo.txt", "saved_model.pb", "variables/variables.data-00000-of-00001", "variables/variables.index"]


def test_a_version_is_packed_under_its_staging_name_with_the_roles_modes_and_no_owner(tmp_path):
    archive = tmp_path / "v.tar"
    files, size = pack_version(str(VERSION), ".tfserving-tmp-00000124", str(archive))
    assert files == 4 and size == sum((VERSION / f).stat().st_size for f in FILES)
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


@pytest.mark.parametrize(
    ("src", "name", "message"),
    [
        (VERSION / "saved_model.pb", "v", "is not a directory on the control node"),
        (VERSION, "a/b", "is not a directory name"),
        (VERSION, "..", "is not a directory name"),
    ],
)
def test_what_cannot_be_packed_is_refused(tmp_path, src, name, message):
    with pytest.raises(ValueError, match=message):
        pack_version(str(src), name, str(tmp_path / "v.tar"))


def stage(tmp_path, src, check=False):
    """The action in a playbook on the control node; returns (rc, its result, the local temp dir)."""
    (tmp_path / "model").mkdir(exist_ok=True)
    task = {
        "name": "Version is staged",
        "tfserving.fleet.tfserving_stage_version": {"src": str(src), "dest": str(tmp_path / "model" / "staged")},
    }
    play = [{"hosts": "all", "gather_facts": False, "tasks": [task]}]
    (tmp_path / "play.yml").write_text(yaml.safe_dump(play))
    inventory = {"all": {"hosts": {"h": {"ansible_connection": "local", "ansible_python_interpreter": sys.executable}}}}
    (tmp_path / "inventory.yml").write_text(yaml.safe_dump(inventory))
    argv = [str(ANSIBLE_BIN / "ansible-playbook"), "-i", str(tmp_path / "inventory.yml"), str(tmp_path / "play.yml")]
    proc = subprocess.run(
        argv + (["--check"] if check else []),
        cwd=ROOT, env=ansible_env(tmp_path), capture_output=True, text=True, timeout=120, check=False,
    )
    [(_, _, result)] = playbook_tasks(json.loads(proc.stdout))
    return proc.returncode, result, tmp_path / "tmp"


def test_the_version_arrives_whole_with_its_modes_and_the_archive_is_removed(tmp_path):
    rc, result, local_tmp = stage(tmp_path, VERSION)
    staged = tmp_path / "model" / "staged"
    assert rc == 0 and result["changed"] is True and (result["files"], result["dest"]) == (4, str(staged))
    assert not filecmp.dircmp(VERSION, staged).diff_files
    for path in FILES:
        assert filecmp.cmp(VERSION / path, staged / path, shallow=False), path
        assert stat.S_IMODE((staged / path).stat().st_mode) == 0o644, path
    assert stat.S_IMODE((staged / "variables").stat().st_mode) == 0o755
    assert (staged / "saved_model.pb").stat().st_uid == os.getuid()
    assert not [p for p in local_tmp.rglob("*.tar")]


def test_check_mode_reports_the_change_and_writes_nothing(tmp_path):
    rc, result, _ = stage(tmp_path, VERSION, check=True)
    assert rc == 0 and result["changed"] is True and result["files"] == 4
    assert list((tmp_path / "model").iterdir()) == []


def test_a_missing_source_fails_naming_it_and_writes_nothing(tmp_path):
    rc, result, _ = stage(tmp_path, tmp_path / "missing")
    assert rc == 2 and result["failed"] is True and result["changed"] is False
    assert result["msg"] == f"src: {tmp_path / 'missing'} is not a directory on the control node"
    assert list((tmp_path / "model").iterdir()) == []
