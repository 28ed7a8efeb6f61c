"""tfserving_config_file: a models.config written on the host with shell runs, as a template would.

The helpers are tested on the output the host's shell gives (also through a terminal, the way
Ansible's ssh connection runs a command that may become another user); the action runs in a real
ansible-playbook against the control node (local connection)."""

import stat
import subprocess

import pytest
from ansible_collections.tfserving.fleet.plugins.module_utils.tfserving_config_file import (
    READ_SCRIPT,
    parse_mode,
    parse_read,
)
from conftest import run_task

CONFIG = 'model_config_list {\n  config {\n    name: "half_plus_two"\n    base_path: "/models/half_plus_two"\n  }\n}\n'


def read(path):
    proc = subprocess.run(["/bin/sh", "-c", READ_SCRIPT, "read", str(path)], capture_output=True, text=True, check=True)
    return parse_read(proc.stdout)


def test_the_read_script_gives_the_mode_and_the_exact_content(tmp_path):
    path = tmp_path / "models.config"
    path.write_text(CONFIG + "no newline at the end")
    path.chmod(0o640)
    assert read(path) == (0o640, CONFIG + "no newline at the end")
    path.write_text("")
    assert read(path) == (0o640, "")
    assert read(tmp_path / "missing") == (None, None)


def test_terminal_line_ends_and_sudo_messages_do_not_change_what_is_read():
    encoded = "bW9kZWxfY29uZmlnX2xpc3Qge30K"  # base64 of "model_config_list {}\n"
    output = f"sudo: unable to resolve host gpu-7\r\n<<tfserving\r\n644\r\n{encoded}\r\ntfserving>>\r\n"
    assert parse_read(output) == (0o644, "model_config_list {}\n")
    assert parse_read("<<tfserving\r\nabsent\r\ntfserving>>\r\n") == (None, None)


@pytest.mark.parametrize("output", ["", "<<tfserving\n644\n", "<<tfserving\nnot a mode\ntfserving>>\n"])
def test_an_incomplete_answer_is_an_error(output):
    with pytest.raises(ValueError, match="unexpected output"):
        parse_read(output)


@pytest.mark.parametrize(("mode", "value"), [("0644", 0o644), ("644", 0o644), ("0600", 0o600)])
def test_modes_are_octal(mode, value):
    assert parse_mode(mode) == value


@pytest.mark.parametrize("mode", ["u=rw", "0648", "", "99999"])
def test_a_mode_that_is_not_octal_is_refused(mode):
    with pytest.raises(ValueError, match="mode must be an octal file mode such as '0644'"):
        parse_mode(mode)


def write(tmp_path, content=CONFIG, mode=None, dest=None, check=False, diff=False):
    """The action in a playbook on the control node; returns (rc, its result)."""
    args = {"dest": str(dest or tmp_path / "etc" / "models.config"), "content": content}
    if mode:
        args["mode"] = mode
    task = {"name": "Model configuration is in place", "tfserving.fleet.tfserving_config_file": args}
    return run_task(tmp_path, task, check=check, diff=diff)


def test_a_new_file_is_written_whole_with_its_mode_then_left_alone(tmp_path):
    (tmp_path / "etc").mkdir()
    path = tmp_path / "etc" / "models.config"
    rc, result = write(tmp_path)
    assert rc == 0 and result["changed"] is True and result["dest"] == str(path)
    assert path.read_text() == CONFIG and stat.S_IMODE(path.stat().st_mode) == 0o644
    inode = path.stat().st_ino
    rc, result = write(tmp_path)
    assert rc == 0 and result["changed"] is False
    assert path.stat().st_ino == inode
    assert sorted(p.name for p in (tmp_path / "etc").iterdir()) == ["models.config"]


def test_a_changed_content_replaces_the_file_by_rename_and_diff_shows_both(tmp_path):
    (tmp_path / "etc").mkdir()
    path = tmp_path / "etc" / "models.config"
    path.write_text("model_config_list {\n}\n")
    inode = path.stat().st_ino
    rc, result = write(tmp_path, diff=True)
    assert rc == 0 and result["changed"] is True
    assert result["diff"]["before"] == "model_config_list {\n}\n" and result["diff"]["after"] == CONFIG
    assert result["diff"]["before_header"] == result["diff"]["after_header"] == str(path)
    assert path.read_text() == CONFIG and path.stat().st_ino != inode
    assert sorted(p.name for p in (tmp_path / "etc").iterdir()) == ["models.config"]


def test_a_mode_alone_is_corrected_in_place(tmp_path):
    (tmp_path / "etc").mkdir()
    path = tmp_path / "etc" / "models.config"
    path.write_text(CONFIG)
    path.chmod(0o600)
    inode = path.stat().st_ino
    rc, result = write(tmp_path, diff=True)
    assert rc == 0 and result["changed"] is True
    assert (result["diff"]["before_mode"], result["diff"]["after_mode"]) == ("0600", "0644")
    assert stat.S_IMODE(path.stat().st_mode) == 0o644 and path.stat().st_ino == inode


def test_check_mode_reports_the_change_and_its_diff_and_writes_nothing(tmp_path):
    (tmp_path / "etc").mkdir()
    path = tmp_path / "etc" / "models.config"
    path.write_text("old\n")
    rc, result = write(tmp_path, check=True, diff=True)
    assert rc == 0 and result["changed"] is True
    assert (result["diff"]["before"], result["diff"]["after"]) == ("old\n", CONFIG)
    assert path.read_text() == "old\n"


@pytest.mark.parametrize(
    ("case", "message"),
    [
        ("missing directory", "could not write {tmp}/etc/models.config on the host"),
        ("relative", "dest must be an absolute path on the host, got 'etc/models.config'"),
        ("mode", "mode must be an octal file mode such as '0644', got 'rw'"),
    ],
)
def test_bad_input_fails_naming_it_and_writes_nothing(tmp_path, case, message):
    if case == "missing directory":
        rc, result = write(tmp_path)
    elif case == "relative":
        rc, result = write(tmp_path, dest="etc/models.config")
    else:
        (tmp_path / "etc").mkdir()
        rc, result = write(tmp_path, mode="rw")
    assert rc == 2 and result["failed"] is True
    assert result["msg"].startswith(message.format(tmp=tmp_path))
    assert not (tmp_path / "etc" / "models.config").exists()
