"""The bad-input catalogue (docs/bad-inputs.md) and its test agree one to one.

The page is parsed: each entry gives a host's variables, the task that must refuse them and the exact
error. One run of ``playbooks/site.yml --check`` over one host per entry (the control node, reached
with the local connection, ``gpu-NN`` for entry NN) must stop every host at its task, with exactly its
error, with nothing reported changed before. Check mode keeps the control node safe should a refusal
ever go missing; the fixtures the inputs point at are checked unchanged afterwards.
"""

from __future__ import annotations

import hashlib
import json
import os
import pathlib
import re
import shutil
import subprocess
import sys
import tarfile

import pytest
import yaml

ROOT = pathlib.Path(__file__).resolve().parents[2]
DOC = ROOT / "docs" / "bad-inputs.md"
TESTDATA = ROOT / "tests" / "data"
PLACEHOLDER = "{{ fixtures }}"
# What the issue asks the catalogue to cover, and base paths (what TF Serving hangs on).
CATEGORIES = {
    "inventory values", "model files", "versions", "ports", "GPU ids", "image references", "credentials",
    "Docker versions", "daemon options", "GPU mode", "base paths",
}  # fmt: skip
# A password from the catalogue that must never be printed.
SECRET = "s3cr3t-never-printed"

ENTRY_RE = re.compile(
    r"^## (?P<number>\d+)\. (?P<title>[^\n]+)\n\n"
    r"Category: (?P<category>[^\n]+)\n\n"
    r"(?:(?!```|## )[^\n]*\n)*?"  # optional prose
    r"```yaml\n(?P<vars>.*?)```\n\n"
    r"Refused by: `(?P<task>[^`]+)`\n\n"
    r"```text\n(?P<error>.*?)```\n",
    re.M | re.S,
)


def catalogue():
    text = DOC.read_text()
    entries = []
    for match in ENTRY_RE.finditer(text):
        entries.append(
            {
                "number": int(match["number"]),
                "host": "gpu-{:02d}".format(int(match["number"])),
                "title": match["title"],
                "category": match["category"],
                "vars": yaml.safe_load(match["vars"]),
                "task": match["task"],
                "error": match["error"].rstrip("\n").split("\n"),
            }
        )
    # Every "## N." heading is an entry the pattern read: nothing on the page escapes the test.
    assert [int(n) for n in re.findall(r"^## (\d+)\. ", text, re.M)] == [e["number"] for e in entries]
    return entries


ENTRIES = catalogue()


def test_the_catalogue_covers_what_the_issue_asks():
    assert len(ENTRIES) >= 20
    assert [e["number"] for e in ENTRIES] == list(range(1, len(ENTRIES) + 1))
    assert {e["category"] for e in ENTRIES} == CATEGORIES
    assert all(isinstance(e["vars"], dict) and e["vars"] for e in ENTRIES)
    assert all(e["error"] and "TODO" not in e["error"] for e in ENTRIES)


def _build_fixtures(root):
    tf = TESTDATA / "tfserving"
    shutil.copytree(tf / "saved_model_half_plus_two_2_versions", root / "half_plus_two")
    shutil.copytree(tf / "bad_half_plus_two", root / "no_savedmodel")
    shutil.copytree(tf / "saved_model_half_plus_two_cpu" / "00000123", root / "unversioned" / "v1")
    shutil.copytree(tf / "saved_model_half_plus_two_cpu" / "00000123", root / "twice" / "00000123")
    shutil.copytree(tf / "saved_model_half_plus_two_cpu" / "00000123", root / "twice" / "123")
    with tarfile.open(root / "escape.tar.gz", "w:gz") as archive:
        archive.add(tf / "saved_model_half_plus_two_cpu" / "00000123", arcname="00000123")
        archive.add(tf / "saved_model_half_plus_two_cpu" / "00000123" / "saved_model.pb", arcname="../../etc/cron.d/x")
    (root / "shared").mkdir()  # the mount source exists, the model directory below it does not
    smi = root / "nvidia-smi-t4"
    smi.write_text(
        "#!/bin/sh\n"
        "# nvidia-smi of a host with one Tesla T4 (driver 515.105.01, CUDA 11.7): a real report.\n"
        f'case "$*" in *-q*) exec cat "{TESTDATA}/nvidia-smi/tesla-t4.xml" ;; esac\n'
        "exit 9\n"
    )
    smi.chmod(0o755)


def _tree_digest(root):
    digest = hashlib.sha256()
    for path in sorted(root.rglob("*")):
        digest.update(str(path.relative_to(root)).encode())
        if path.is_file():
            digest.update(path.read_bytes())
    return digest.hexdigest()


def run_catalogue(work):
    """One site.yml run over every entry's host: (fixtures dir, JSON callback result, raw output)."""
    fixtures = work / "fixtures"
    fixtures.mkdir()
    _build_fixtures(fixtures)
    before = _tree_digest(fixtures)
    host_dirs = [pathlib.Path(p) for p in ("/srv/tfserving", "/etc/tfserving", "/var/lib/tfserving")]
    existed = {p: p.exists() for p in host_dirs}

    inventory = {
        "all": {
            "children": {
                "tfserving_hosts": {
                    "hosts": {e["host"]: e["vars"] for e in ENTRIES},
                    "vars": {
                        "ansible_connection": "local",
                        "ansible_python_interpreter": "{{ ansible_playbook_python }}",
                        "fixtures": str(fixtures),
                        "docker_engine_source": "distribution",
                    },
                }
            }
        }
    }
    (work / "hosts.yml").write_text(yaml.safe_dump(inventory, sort_keys=False))
    env = dict(os.environ)
    env.update(
        ANSIBLE_CONFIG=str(ROOT / "ansible.cfg"),
        ANSIBLE_STDOUT_CALLBACK="json",
        ANSIBLE_NOCOLOR="1",
        ANSIBLE_LOCAL_TEMP=str(work / "tmp"),
        ANSIBLE_RETRY_FILES_ENABLED="0",
        PATH=f"{pathlib.Path(sys.executable).parent}:{env['PATH']}",
    )
    # --check always: a refusal that went missing must not change the control node either.
    proc = subprocess.run(
        ["ansible-playbook", "-i", str(work / "hosts.yml"), str(ROOT / "playbooks" / "site.yml"), "--check"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert proc.returncode != 0, proc.stdout[-3000:]
    result = json.loads(proc.stdout)
    assert _tree_digest(fixtures) == before, "the run changed the model fixtures"
    assert {p: p.exists() for p in host_dirs} == existed, "the run created the role's directories"
    return fixtures, result, proc.stdout + proc.stderr


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    return run_catalogue(tmp_path_factory.mktemp("bad-inputs"))


def _failed_tasks(result, host):
    out = []
    for play in result["plays"]:
        for task in play["tasks"]:
            outcome = task["hosts"].get(host)
            if outcome and (outcome.get("failed") or outcome.get("unreachable")):
                out.append((task["task"]["name"], outcome))
    return out


def test_every_host_of_the_run_is_a_catalogue_entry(run):
    _, result, output = run
    assert sorted(result["stats"]) == sorted(e["host"] for e in ENTRIES)
    assert SECRET not in output


@pytest.mark.parametrize("entry", ENTRIES, ids=[f"{e['number']:02d}-{e['category']}" for e in ENTRIES])
def test_bad_input_is_refused_with_the_documented_error_before_any_change(run, entry):
    fixtures, result, _ = run
    host = entry["host"]
    stats = result["stats"][host]
    assert stats["changed"] == 0, stats
    assert stats["failures"] == 1 and stats["unreachable"] == 0, stats
    failed = _failed_tasks(result, host)
    assert len(failed) == 1, failed
    task, outcome = failed[0]
    assert task == entry["task"], outcome.get("msg")
    expected = [line.replace(PLACEHOLDER, str(fixtures)) for line in entry["error"]]
    if "results" in outcome:  # a loop: the error is the failed item's
        items = [r for r in outcome["results"] if r.get("failed")]
        assert len(items) == 1, outcome["results"]
        outcome = items[0]
    msg = outcome["msg"]
    actual = msg if isinstance(msg, list) else msg.split("\n")
    assert actual == expected
