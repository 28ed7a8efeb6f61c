"""The fault suite's figures: every fault test records one line, printed at the end of the run (in the
terminal summary, so `make test` shows them whatever pytest captures) and written as JSON beside the
scenario's other state."""

from __future__ import annotations

import json
import os
import pathlib

FIGURES: list[dict] = []


def record(fault, **figures):
    """Keep the figures of one fault (requests sent and failed, seconds until every model is AVAILABLE)."""
    FIGURES.append({"fault": fault, **figures})
    print(f"FAULT {fault}: {figures}")


def pytest_terminal_summary(terminalreporter):
    if not FIGURES:
        return
    terminalreporter.section("fault suite figures")
    for row in FIGURES:
        parts = [f"{k}={v}" for k, v in row.items() if k != "fault"]
        terminalreporter.write_line(f"{row['fault']}: " + ", ".join(parts))
    directory = os.environ.get("MOLECULE_EPHEMERAL_DIRECTORY")
    if directory:
        path = pathlib.Path(directory) / "fault-figures.json"
        path.write_text(json.dumps(FIGURES, indent=1) + "\n")
        terminalreporter.write_line(f"figures written to {path}")
