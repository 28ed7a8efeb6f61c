"""Fleet operations on three SSH hosts, checked from the test machine (issue #7, "Must show").

The tests run in file order and each starts from the state the previous one left:
converged fleet (half_plus_two 123 + 124, stable -> 123, canary -> 124) -> rolling deploy of 125 under
load -> corrupt 126 (restored on the first host, the others untouched) -> wrong-answering 127 (caught
by the check model, restored) -> rollback of stable to 124 -> status reports.

New versions are built the way the issue asks: a version directory copied under a new number into a
temporary directory on the control node, passed as the rollout's source. After a rollout that
succeeded, the tests record it the way an operator does: the version directory goes into the model's
source and the inventory's versions and labels change (extra var fleet_half_plus_two).
"""

from __future__ import annotations

import json
import os
import pathlib
import re
import shutil
import subprocess
import sys
import time

import requests

SCENARIO = pathlib.Path(__file__).resolve().parent.parent
PROJECT = SCENARIO.parent.parent
TESTDATA = PROJECT / "tests" / "data" / "tfserving"
sys.path.insert(0, str(PROJECT / "tests"))

from loadgen import LoadGenerator  # noqa: E402

HOSTS = {"tfs-fleet-1": "172.31.0.11", "tfs-fleet-2": "172.31.0.12", "tfs-fleet-3": "172.31.0.13"}
MODEL = "half_plus_two"
PAYLOAD = {"instances": [1.0, 2.0, 5.0]}
EXPECTED = [2.5, 3.0, 4.5]
CHECK = {"instances": PAYLOAD["instances"], "expected": EXPECTED, "previous_expected": EXPECTED}
CONFIG = "/etc/tfserving/main/models.config"
MODEL_DIR = "/srv/tfserving/models/main"


# ---------------------------------------------------------------------------------------------
# helpers


def inventory():
    """The scenario's inventory directory: molecule's file plus the linked hosts.yml and group_vars/."""
    return str(pathlib.Path(os.environ["MOLECULE_INVENTORY_FILE"]).parent)


def ephemeral():
    return pathlib.Path(os.environ["MOLECULE_EPHEMERAL_DIRECTORY"])


def reports():
    return ephemeral() / "reports"


def source_dir():
    return ephemeral() / "model-sources" / MODEL


def playbook(name, extra, timeout=900):
    """ansible-playbook against the scenario's inventory; returns (rc, output, seconds)."""
    extra_file = ephemeral() / f"extra-{name.replace('/', '-')}-{time.monotonic_ns()}.json"
    extra_file.write_text(json.dumps({"tfserving_status_report_dir": str(reports()),
                                      "tfserving_rollout_report_dir": str(reports()), **extra}))
    env = dict(os.environ)
    env.setdefault("ANSIBLE_CONFIG", str(ephemeral() / "ansible.cfg"))
    env["ANSIBLE_NOCOLOR"] = "1"
    env["ANSIBLE_FORCE_COLOR"] = "0"  # molecule sets it, and it wins over NOCOLOR
    began = time.monotonic()
    proc = subprocess.run(
        ["ansible-playbook", "-i", inventory(), str(PROJECT / "playbooks" / name),
         "-e", f"@{extra_file}"],
        capture_output=True, text=True, env=env, timeout=timeout,
    )
    return proc.returncode, proc.stdout + proc.stderr, time.monotonic() - began


def recorded(versions, labels):
    """The inventory's half_plus_two, as an operator records it after a rollout."""
    return {"fleet_half_plus_two": {"versions": versions, "labels": labels}}


def new_version(tmp_path, from_model, from_version, number):
    """A rollout source: one version directory copied under a new number into a temporary directory."""
    source = tmp_path / "rollout-source"
    target = source / f"{number:08d}"
    shutil.copytree(TESTDATA / from_model / from_version, target)
    for path in [target, *target.rglob("*")]:
        path.chmod(0o755 if path.is_dir() else 0o644)
    return source


def load_generator(duration=600):
    """Predictions through the stable label and without a label (the newest version), on every host."""
    urls = []
    for address in HOSTS.values():
        urls += [f"http://{address}:8501/v1/models/{MODEL}/labels/stable:predict",
                 f"http://{address}:8501/v1/models/{MODEL}:predict"]
    return LoadGenerator(urls, PAYLOAD, expected=EXPECTED, interval=0.05, duration=duration, max_requests=200_000)


def label_version(address, label):
    answer = requests.get(f"http://{address}:8501/v1/models/{MODEL}/labels/{label}/metadata", timeout=10)
    assert answer.status_code == 200, answer.text
    return int(answer.json()["model_spec"]["version"])


def states(address, model=MODEL):
    answer = requests.get(f"http://{address}:8501/v1/models/{model}", timeout=10)
    if answer.status_code == 404:
        return {}
    assert answer.status_code == 200, answer.text
    return {int(v["version"]): v["state"] for v in answer.json()["model_version_status"]}


def predicts(address, path):
    answer = requests.post(f"http://{address}:8501/v1/models/{MODEL}{path}:predict", json=PAYLOAD, timeout=30)
    return answer.status_code, answer.json()


def on(name, command):
    """A command on a fleet host over SSH (the test key), its output."""
    proc = subprocess.run(
        ["ssh", "-i", str(PROJECT / ".cache" / "ssh" / "id_ed25519"), "-o", "StrictHostKeyChecking=no",
         "-o", "UserKnownHostsFile=/dev/null", "-o", "LogLevel=ERROR", "-o", "BatchMode=yes",
         f"root@{HOSTS[name]}", command],
        capture_output=True, text=True, timeout=60,
    )
    assert proc.returncode == 0, f"{name}: {command}: {proc.stderr}"
    return proc.stdout


def snapshot(name):
    """models.config bytes and the model repository listing of one host."""
    return on(name, f"sha256sum {CONFIG}"), on(name, f"find {MODEL_DIR} -maxdepth 2 | sort")


def summary(action="rollout"):
    data = json.loads((reports() / f"{action}-summary.json").read_text())
    return data["verdict"], {o["host"]: o for o in data["outcomes"]}


def report(line):
    print(line)  # shown with pytest -s and in the molecule log on failure


# ---------------------------------------------------------------------------------------------
# the converged fleet


def test_converged_fleet_answers_and_status_is_green():
    for address in HOSTS.values():
        assert predicts(address, "/labels/stable") == (200, {"predictions": EXPECTED})
        assert label_version(address, "stable") == 123 and label_version(address, "canary") == 124
    rc, out, _ = playbook("status.yml", {})
    assert rc == 0, out[-3000:]
    data = json.loads((reports() / "fleet-status.json").read_text())
    assert data["summary"]["ok"] and data["summary"]["hosts"] == 3 and data["summary"]["expected"] == 9
    page = (reports() / "fleet-status.html").read_text()
    assert page.startswith("<!DOCTYPE html>") and all(name in page for name in HOSTS)
    report((reports() / "fleet-status.md").read_text())
    # An unchanged fleet rewrites nothing: the reports keep the time the fleet entered this state.
    rc, out, _ = playbook("status.yml", {})
    assert rc == 0, out[-3000:]
    assert re.search(r"^localhost\s+: ok=\d+\s+changed=0 ", out, re.M), out[-1500:]
    assert json.loads((reports() / "fleet-status.json").read_text())["since"] == data["since"]


def test_invalid_rollout_is_refused_before_any_host(tmp_path):
    before = snapshot("tfs-fleet-1")
    rc, out, _ = playbook("deploy_model.yml", {"tfserving_rollout_models": [
        {"model": MODEL, "version": 125, "check": {"instances": [1.0]}}]})
    assert rc != 0
    assert "Nothing was changed" in out and "check needs expected" in out
    assert "tfs-fleet-1" not in out.split("PLAY RECAP")[-1]
    assert snapshot("tfs-fleet-1") == before


# ---------------------------------------------------------------------------------------------
# a good version, rolled while clients send predictions


def test_rolling_deploy_under_load_has_zero_failed_requests(tmp_path):
    source = new_version(tmp_path, "saved_model_half_plus_two_2_versions", "00000124", 125)
    rollout = {
        "tfserving_rollout_models": [
            {"model": MODEL, "version": 125, "source": str(source), "labels": ["stable", "canary"],
             "keep_previous": 1, "check": CHECK}],
        # A canary host first, then the other two together.
        "tfserving_rollout_serial": [1, 2],
    }
    with load_generator() as load:
        time.sleep(2)  # traffic flows before the rollout starts
        rc, out, seconds = playbook("deploy_model.yml", rollout)
        time.sleep(2)
    result = load.result
    report(f"rollout of 3 hosts: {seconds:.0f} s; requests sent {result['sent']}, failed {result['failed']}, "
           f"p99 {result['latency_ms']['p99']} ms")
    assert rc == 0, out[-4000:]
    assert result["failed"] == 0, result["first_failures"]
    assert result["stopped_by"] == "stop" and result["sent"] > 600
    assert all(v["sent"] > 100 for v in result["per_url"].values()), result["per_url"]
    verdict, outcomes = summary()
    assert verdict == "ROLLOUT COMPLETE: every host deployed"
    assert {h: o["result"] for h, o in outcomes.items()} == dict.fromkeys(HOSTS, "deployed")
    for address in HOSTS.values():
        assert states(address) == {125: "AVAILABLE", 124: "AVAILABLE", 123: "END"}
        assert label_version(address, "stable") == 125 and label_version(address, "canary") == 125
        assert predicts(address, "") == (200, {"predictions": EXPECTED})
        # The check model is gone from the server's config (TF Serving lists it as END).
        assert set(states(address, f"{MODEL}.rollout").values()) <= {"END"}
    for name in HOSTS:
        listing = on(name, f"ls -A {MODEL_DIR}")
        assert f"{MODEL}.rollout" not in listing
    # Recorded as an operator does: the version joins the model's source, the inventory moves on.
    shutil.copytree(source / "00000125", source_dir() / "00000125")
    rc, out, _ = playbook("status.yml", recorded([124, 125], {"stable": 125, "canary": 125}))
    assert rc == 0, out[-3000:]


# ---------------------------------------------------------------------------------------------
# bad versions: the first batch is restored, the rest is never touched


def test_corrupt_version_is_restored_on_the_first_batch_and_stops_the_rollout(tmp_path):
    # TF Serving's bad_half_plus_two: not a SavedModel. Refused on the host before anything loads it.
    source = new_version(tmp_path, "bad_half_plus_two", "00000123", 126)
    before = {name: snapshot(name) for name in HOSTS}
    rollout = {
        "tfserving_rollout_models": [
            {"model": MODEL, "version": 126, "source": str(source), "labels": ["stable", "canary"], "check": CHECK}],
        "tfserving_rollout_serial": 1,
        **recorded([124, 125], {"stable": 125, "canary": 125}),
    }
    with load_generator() as load:
        time.sleep(2)
        rc, out, seconds = playbook("deploy_model.yml", rollout)
        time.sleep(2)
    result = load.result
    report(f"corrupt version: stopped after {seconds:.0f} s; requests sent {result['sent']}, failed {result['failed']}")
    assert rc != 0, out[-4000:]
    verdict, outcomes = summary()
    assert verdict.startswith("ROLLOUT STOPPED: a batch failed and was restored")
    assert outcomes["tfs-fleet-1"]["result"] == "rolled_back"
    detail = outcomes["tfs-fleet-1"]["detail"]
    assert detail.startswith("publish step failed") and "holds no saved_model.pb or saved_model.pbtxt" in detail
    assert "label stable -> 125" in detail and "AVAILABLE again" in detail
    assert outcomes["tfs-fleet-2"]["result"] == "untouched" and outcomes["tfs-fleet-3"]["result"] == "untouched"
    # The summary is in the play output too, with the failing host's reason.
    assert verdict in out and "tfs-fleet-1  ROLLED BACK" in out and "tfs-fleet-2  untouched" in out
    assert result["failed"] == 0, result["first_failures"]
    # Every host serves what it served before, byte for byte on disk, and answers with 125.
    assert {name: snapshot(name) for name in HOSTS} == before
    for address in HOSTS.values():
        assert states(address)[125] == "AVAILABLE" and 126 not in states(address)
        assert label_version(address, "stable") == 125
        assert predicts(address, "/labels/stable") == (200, {"predictions": EXPECTED})


def test_wrong_answers_fail_a_two_host_batch_which_is_restored_as_a_whole(tmp_path):
    # One batch of two hosts. tfs-fleet-1 gets a real SavedModel that answers 0.5 * x + 3: it loads, as
    # the check model, and fails the check. tfs-fleet-2 gets a good version and deploys, then is
    # restored with its batch. tfs-fleet-3 is never touched. (The source is per host: the rollout is
    # templated on each host.)
    base = tmp_path / "per-host"
    shutil.copytree(new_version(tmp_path / "bad", "saved_model_half_plus_three", "00000123", 127),
                    base / "tfs-fleet-1")
    shutil.copytree(new_version(tmp_path / "good", "saved_model_half_plus_two_2_versions", "00000124", 127),
                    base / "tfs-fleet-2")
    before = {name: snapshot(name) for name in HOSTS}
    rollout = {
        "tfserving_rollout_models": [
            {"model": MODEL, "version": 127, "source": f"{base}/{{{{ inventory_hostname }}}}",
             "labels": ["stable", "canary"], "check": CHECK}],
        "tfserving_rollout_serial": [2, 1],
        **recorded([124, 125], {"stable": 125, "canary": 125}),
    }
    with load_generator() as load:
        time.sleep(2)
        rc, out, seconds = playbook("deploy_model.yml", rollout)
        time.sleep(2)
    result = load.result
    report(f"wrong answers: stopped after {seconds:.0f} s; requests sent {result['sent']}, failed {result['failed']}")
    assert rc != 0, out[-4000:]
    verdict, outcomes = summary()
    assert verdict.startswith("ROLLOUT STOPPED: a batch failed and was restored")
    first, second = outcomes["tfs-fleet-1"], outcomes["tfs-fleet-2"]
    assert first["result"] == "rolled_back" and second["result"] == "rolled_back"
    assert first["detail"].startswith("check step failed") and "answered [3.5, 4.0, 5.5]" in first["detail"]
    assert second["detail"].startswith("Deployed, but its batch failed (tfs-fleet-1 did not deploy)")
    assert outcomes["tfs-fleet-3"]["result"] == "untouched"
    # The check model kept the wrong answers away from every client.
    assert result["failed"] == 0, result["first_failures"]
    assert {name: snapshot(name) for name in HOSTS} == before
    for address in HOSTS.values():
        assert states(address)[125] == "AVAILABLE" and states(address).get(127) in (None, "END")
        assert label_version(address, "stable") == 125 and label_version(address, "canary") == 125
        assert predicts(address, "") == (200, {"predictions": EXPECTED})
    rc, out, _ = playbook("status.yml", recorded([124, 125], {"stable": 125, "canary": 125}))
    assert rc == 0, out[-3000:]


# ---------------------------------------------------------------------------------------------
# rollback and the status report


def test_rollback_points_stable_back_to_124_everywhere():
    rc, out, seconds = playbook("rollback.yml", {
        "tfserving_rollback_model": MODEL, "tfserving_rollback_version": 124, "tfserving_rollback_labels": ["stable"],
        "tfserving_rollback_check": {"instances": PAYLOAD["instances"], "expected": EXPECTED},
        **recorded([124, 125], {"stable": 125, "canary": 125})})
    report(f"rollback of 3 hosts: {seconds:.0f} s")
    assert rc == 0, out[-4000:]
    verdict, outcomes = summary("rollback")
    assert verdict == "ROLLBACK COMPLETE: every host deployed"
    assert all(o["record"] == [{"instance": "main", "model": MODEL, "version_policy": "specific",
                                "versions": [124, 125], "labels": {"canary": 125, "stable": 124}}]
               for o in outcomes.values())
    for address in HOSTS.values():
        assert label_version(address, "stable") == 124 and label_version(address, "canary") == 125
        assert predicts(address, "/labels/stable") == (200, {"predictions": EXPECTED})
    rc, out, _ = playbook("status.yml", recorded([124, 125], {"stable": 124, "canary": 125}))
    assert rc == 0, out[-3000:]


def test_rollback_to_a_version_the_hosts_do_not_have_is_refused():
    rc, out, _ = playbook("rollback.yml", {
        "tfserving_rollback_model": MODEL, "tfserving_rollback_version": 999,
        **recorded([124, 125], {"stable": 124, "canary": 125})})
    assert rc != 0
    assert "tfs-fleet-1  REFUSED (nothing changed)" in out
    verdict, outcomes = summary("rollback")
    assert verdict.startswith("ROLLBACK STOPPED: refused before any change")
    assert "version 999 is not on the host" in outcomes["tfs-fleet-1"]["detail"]
    assert label_version(HOSTS["tfs-fleet-1"], "stable") == 124


def test_status_fails_and_reports_what_the_inventory_expects_but_is_missing():
    rc, out, _ = playbook("status.yml", recorded([124, 125, 999], {"stable": 124, "canary": 125}))
    assert rc != 0
    assert "Not as the inventory expects" in out
    data = json.loads((reports() / "fleet-status.json").read_text())
    failing = [(r["host"], r["version"]) for r in data["rows"] if r["result"] == "FAIL"]
    assert failing == [(name, 999) for name in HOSTS]
    # Per host: 124 (stable), 125 (canary) and half_plus_two_cpu as expected; 999 missing.
    assert data["summary"]["as_expected"] == 9 and data["summary"]["expected"] == 12
    page = (reports() / "fleet-status.html").read_text()
    assert page.count('<tr class="FAIL">') == 3
    report((reports() / "fleet-status.md").read_text())
