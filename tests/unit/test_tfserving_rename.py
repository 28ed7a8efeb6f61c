"""tfserving_rename: a directory renamed into place with one shell run, as `mv -T` with `creates` would.

The answer parser is tested on what the host's shell prints (also through a terminal); the action runs
in a real ansible-playbook against the control node (local connection)."""

import subprocess

import pytest
from ansible_collections.tfserving.fleet.plugins.module_utils.tfserving_rename import RENAME_SCRIPT, parse_answer
from conftest import run_task


def script(src, dest, mode="run"):
    proc = subprocess.run(["/bin/sh", "-c", RENAME_SCRIPT, "rename", str(src), str(dest), mode],
                          capture_output=True, text=True, check=False)
    return parse_answer(proc.stdout)


def test_the_script_renames_once_and_then_finds_the_destination(tmp_path):
    (tmp_path / ".staged" / "variables").mkdir(parents=True)
    (tmp_path / ".staged" / "saved_model.pb").write_text("pb")
    assert script(tmp_path / ".staged", tmp_path / "00000124", "check") == "would-rename"
    assert (tmp_path / ".staged").is_dir() and not (tmp_path / "00000124").exists()
    assert script(tmp_path / ".staged", tmp_path / "00000124") == "renamed"
    assert (tmp_path / "00000124" / "saved_model.pb").read_text() == "pb"
    assert not (tmp_path / ".staged").exists()
    assert script(tmp_path / ".staged", tmp_path / "00000124") == "exists"
    assert script(tmp_path / ".other", tmp_path / "00000125") == "missing"


def test_terminal_line_ends_and_sudo_messages_do_not_change_the_answer():
    assert parse_answer("sudo: unable to resolve host gpu-7\r\n<<tfserving\r\nrenamed\r\ntfserving>>\r\n") == "renamed"


@pytest.mark.parametrize("output", ["", "<<tfserving\nrenamed\n", "<<tfserving\nmv: cannot move\ntfserving>>\n"])
def test_an_incomplete_answer_is_an_error(output):
    with pytest.raises(ValueError, match="unexpected output"):
        parse_answer(output)


def rename(tmp_path, src, dest, check=False):
    """The action in a playbook on the control node; returns (rc, its result)."""
    args = {"src": str(src), "dest": str(dest)}
    return run_task(tmp_path, {"name": "Version is renamed into place", "tfserving.fleet.tfserving_rename": args},
                    check=check)


def test_a_staged_version_is_renamed_into_place_then_left_alone(tmp_path):
    model = tmp_path / "model"
    (model / ".staged").mkdir(parents=True)
    (model / ".staged" / "saved_model.pb").write_text("pb")
    rc, result = rename(tmp_path, model / ".staged", model / "00000124")
    assert rc == 0 and result["changed"] is True
    assert (result["src"], result["dest"]) == (str(model / ".staged"), str(model / "00000124"))
    assert sorted(p.name for p in model.iterdir()) == ["00000124"]
    rc, result = rename(tmp_path, model / ".staged", model / "00000124")
    assert rc == 0 and result["changed"] is False
    assert (model / "00000124" / "saved_model.pb").read_text() == "pb"


def test_check_mode_reports_the_rename_even_before_anything_was_staged_and_renames_nothing(tmp_path):
    model = tmp_path / "model"
    model.mkdir()
    rc, result = rename(tmp_path, model / ".staged", model / "00000124", check=True)
    assert rc == 0 and result["changed"] is True
    (model / ".staged").mkdir()
    rc, result = rename(tmp_path, model / ".staged", model / "00000124", check=True)
    assert rc == 0 and result["changed"] is True
    assert sorted(p.name for p in model.iterdir()) == [".staged"]


@pytest.mark.parametrize(
    ("case", "message"),
    [
        ("missing", "could not rename {tmp}/model/.staged to {tmp}/model/00000124 on the host: "
                    "{tmp}/model/.staged does not exist"),
        ("relative", "dest must be an absolute path on the host, got 'model/00000124'"),
    ],
)
def test_bad_input_fails_naming_it_and_renames_nothing(tmp_path, case, message):
    model = tmp_path / "model"
    model.mkdir()
    if case == "missing":
        rc, result = rename(tmp_path, model / ".staged", model / "00000124")
    else:
        (model / ".staged").mkdir()
        rc, result = rename(tmp_path, model / ".staged", "model/00000124")
    assert rc == 2 and result["failed"] is True
    assert result["msg"] == message.format(tmp=tmp_path)
    assert not (model / "00000124").exists()
