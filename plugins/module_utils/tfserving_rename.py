# Copyright: the tfserving-ansible authors
# Apache License 2.0
"""A directory renamed into place on a host with one shell run, for the action tfserving_rename.

A command task (mv -T with creates) costs a Python module run on the host; role tfserving renames
every published version into place this way, and a rollout moves each checked version once more.
"""

from ansible_collections.tfserving.fleet.plugins.module_utils.tfserving_shell import answer_lines, wrapped

# The options of tfserving_rename (its module file documents them, its action plugin takes them).
RENAME_SPEC = dict(
    # Host paths: not expanded on the control node the way type=path would.
    src=dict(type="str", required=True),
    dest=dict(type="str", required=True),
)

# Run on the host: "exists" when DEST ($2) is there already (nothing to do), "missing" when SRC ($1) is
# not there either, "renamed" after one rename(2); with $3 = check, only what would happen.
RENAME_SCRIPT = wrapped(
    'if [ -e "$2" ] || [ -L "$2" ]; then echo exists; '
    'elif ! [ -e "$1" ] && ! [ -L "$1" ]; then echo missing; '
    'elif [ "$3" = check ]; then echo would-rename; '
    'else mv -T -- "$1" "$2" && echo renamed; fi'
)
ANSWERS = ("exists", "missing", "would-rename", "renamed")


def parse_answer(stdout):
    """The word RENAME_SCRIPT answered; ValueError when the output holds no complete answer."""
    lines = answer_lines(stdout)
    if len(lines) != 1 or lines[0] not in ANSWERS:
        raise ValueError(f"unexpected output: {stdout[-300:]!r}")
    return lines[0]
