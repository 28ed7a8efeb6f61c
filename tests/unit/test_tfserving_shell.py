"""The shell-run helpers the collection's actions share: answers between markers, failures with what they said."""

import pytest
from ansible_collections.tfserving.fleet.plugins.module_utils.tfserving_shell import BEGIN, END, answer_lines, wrapped
from ansible_collections.tfserving.fleet.plugins.plugin_utils.tfserving_shell import failure_text


def test_an_answer_is_found_among_a_terminals_crlf_and_sudo_messages():
    stdout = f"[sudo] password for ops: \r\n{BEGIN}\r\nrenamed\r\n\r\n{END}\r\nShared connection closed.\r\n"
    assert answer_lines(stdout) == ["renamed"]
    assert wrapped("true").startswith(f'echo "{BEGIN}"') and wrapped("true").endswith(f'echo "{END}"')


def test_an_answer_cut_short_is_an_error_showing_the_output():
    with pytest.raises(ValueError, match=r"unexpected output: .*half"):
        answer_lines(f"{BEGIN}\nhalf")


def test_a_failure_keeps_the_commands_error_when_a_terminal_put_it_in_stdout():
    # ssh -tt: the command's stderr arrives in stdout, stderr holds only the connection's own message.
    ran = {"rc": 2, "stdout": "tar: 00000124/assets.extra/padding.bin: Cannot write: No space left on device\r\n",
           "stderr": "Shared connection to 172.28.0.12 closed.\r\n"}
    assert failure_text(ran) == ("tar: 00000124/assets.extra/padding.bin: Cannot write: No space left on device "
                                 "Shared connection to 172.28.0.12 closed.")
    assert failure_text({"rc": 1, "stdout": "", "stderr": "mv: cannot move\n"}) == "mv: cannot move"
