# Copyright: the tfserving-ansible authors
# Apache License 2.0
"""A models.config written on a host with shell runs only, for the action tfserving_config_file.

A template task costs two Python module runs on the host (a stat and a copy, ~0.25 s each); a
rollout writes every instance's config three times per host. Reading the file is one shell run;
writing it is a transfer and one more, and only happens when the content or the mode differ.
"""

import base64
import re

from ansible_collections.tfserving.fleet.plugins.module_utils.tfserving_shell import answer_lines, wrapped

# The options of tfserving_config_file (its module file documents them, its action plugin takes them).
CONFIG_FILE_SPEC = dict(
    # Host paths: not expanded on the control node the way type=path would.
    dest=dict(type="str", required=True),
    content=dict(type="str", required=True),
    mode=dict(type="str", default="0644"),
)

# Run on the host: "absent", or the file's octal mode and its content in base64 (the answer may come
# through a terminal, module_utils/tfserving_shell.py).
READ_SCRIPT = wrapped('if [ -f "$1" ]; then stat -c %a -- "$1" && base64 < "$1"; else echo absent; fi')

# Run on the host: the new content ($2, a transferred file) goes to a temporary file beside the config
# and is renamed over it (one rename(2): TF Serving's config poll never reads half a file). An empty $2
# only sets the mode.
WRITE_SCRIPT = (
    'set -e; if [ -z "$2" ]; then chmod "$3" -- "$1"; exit 0; fi; '
    'tmp=$(mktemp "$(dirname -- "$1")/.$(basename -- "$1").XXXXXX"); trap \'rm -f -- "$tmp"\' EXIT; '
    'cat -- "$2" > "$tmp"; chmod "$3" -- "$tmp"; mv -f -- "$tmp" "$1"; trap - EXIT'
)


def parse_mode(mode):
    """The octal MODE string ("0644", "644") as an int; ValueError when it is not one."""
    text = str(mode).strip()
    if not text.isdigit() or any(c in "89" for c in text) or not 0 <= int(text, 8) <= 0o7777:
        raise ValueError(f"mode must be an octal file mode such as '0644', got {mode!r}")
    return int(text, 8)


def parse_read(stdout):
    """(mode, content) of READ_SCRIPT's output; (None, None) when the file is absent.

    ValueError when the output holds no complete answer."""
    lines = answer_lines(stdout)
    if lines == ["absent"]:
        return None, None
    if not lines or not re.fullmatch(r"[0-7]{1,4}", lines[0]):
        raise ValueError(f"unexpected output: {stdout[-300:]!r}")
    return int(lines[0], 8), base64.b64decode("".join(lines[1:])).decode("utf-8")
