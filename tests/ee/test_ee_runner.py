"""What AWX / AAP does with this collection: ansible-runner runs playbooks of the INSTALLED collection
inside the execution environment image, with the inventory and the SSH key handed in, and the job
is judged by its events.

- image: tfserving-ansible/ee:latest (execution-environment.yml, built by scripts/ee.sh);
- fleet: the tfs-ee sandbox (two systemd hosts reached over SSH, sandbox/fleets.yml);
- jobs: `tfserving.fleet.site`, then `tfserving.fleet.status`, each `ansible-runner run
  --process-isolation --container-image ...` on a private data directory that holds only what
  AWX would put there: inventory/, env/ssh_key (the machine credential), env/extravars and
  env/envvars. No checkout is mounted: playbooks, roles, modules and the example models all come
  from the collection installed in the image.

Run with `make ee` (scripts/ee.sh, then this file); TFS_EE_KEEP=1 keeps the fleet afterwards.
"""

from __future__ import annotations

import json
import os
import pathlib
import shutil
import subprocess
import sys

import pytest
import yaml

ROOT = pathlib.Path(__file__).resolve().parents[2]
BIN = pathlib.Path(sys.executable).parent
IMAGE = os.environ.get("TFS_EE_IMAGE", "tfserving-ansible/ee:latest")
FLEET = "tfs-ee"
# The collection as the image has it (ansible-builder installs into /usr/share/ansible/collections).
COLLECTION_IN_EE = "/usr/share/ansible/collections/ansible_collections/tfserving/fleet"
INVENTORY = ROOT / "tests" / "ee" / "inventory" / "hosts.yml"

pytestmark = pytest.mark.integration


def checkout_playbook(*args, timeout=600):
    """sandbox/up.yml and down.yml run from the checkout, on this machine (not a job)."""
    env = {**os.environ, "ANSIBLE_CONFIG": str(ROOT / "ansible.cfg"), "ANSIBLE_NOCOLOR": "1"}
    return subprocess.run([str(BIN / "ansible-playbook"), *args], cwd=ROOT, env=env, capture_output=True,
                          text=True, timeout=timeout, check=False)


@pytest.fixture(scope="module")
def fleet():
    proc = checkout_playbook("sandbox/up.yml", "-e", f"sandbox_name={FLEET}")
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-2000:]
    yield yaml.safe_load(INVENTORY.read_text())["all"]["children"]["tfserving_hosts"]
    if not os.environ.get("TFS_EE_KEEP"):
        checkout_playbook("sandbox/down.yml", "-e", f"sandbox_name={FLEET}")


@pytest.fixture(scope="module")
def private_data_dir(tmp_path_factory):
    """The private data directory AWX's job would get (ansible-runner's layout)."""
    base = tmp_path_factory.mktemp("runner")
    (base / "inventory").mkdir()
    shutil.copy(INVENTORY, base / "inventory" / "hosts.yml")
    env = base / "env"
    env.mkdir()
    # The machine credential: ansible-runner loads it into an ssh-agent inside the container.
    shutil.copy(ROOT / ".cache" / "ssh" / "id_ed25519", env / "ssh_key")
    (env / "extravars").write_text(yaml.safe_dump({
        # The example SavedModels shipped in the collection (examples/models).
        "tfs_ee_models": f"{COLLECTION_IN_EE}/examples/models",
        # Reports into the job's directory, not into the (read-only) installed collection.
        "tfserving_status_report_dir": "/runner/artifacts/reports",
    }))
    # What the checkout's ansible.cfg sets and a job template would set as environment.
    (env / "envvars").write_text(yaml.safe_dump({
        "ANSIBLE_PIPELINING": "True",
        "ANSIBLE_GATHERING": "smart",
        "ANSIBLE_INJECT_FACT_VARS": "False",
        "ANSIBLE_HOST_KEY_CHECKING": "False",
        "ANSIBLE_FORKS": "20",
        "ANSIBLE_SSH_ARGS": "-C -o ControlMaster=auto -o ControlPersist=60s -o ServerAliveInterval=15 "
                            "-o ServerAliveCountMax=4",
    }))
    return base


def run_job(data_dir, playbook, ident):
    argv = [
        str(BIN / "ansible-runner"), "run", str(data_dir),
        "--playbook", playbook, "--ident", ident,
        "--process-isolation", "--process-isolation-executable", "docker",
        "--container-image", IMAGE,
        # The job container joins the fleet's network, as a container group's pods reach theirs.
        "--container-option=--network=" + FLEET,
        "--quiet",
    ]
    proc = subprocess.run(argv, capture_output=True, text=True, timeout=900, check=False)
    artifacts = data_dir / "artifacts" / ident
    rc = int((artifacts / "rc").read_text()) if (artifacts / "rc").exists() else None
    events = [json.loads(p.read_text()) for p in sorted((artifacts / "job_events").glob("*.json"),
                                                        key=lambda p: int(p.name.split("-")[0]))]
    return proc, rc, events


def stats(events):
    final = [e for e in events if e.get("event") == "playbook_on_stats"]
    assert final, "no playbook_on_stats event"
    return final[-1]["event_data"]


def test_image_has_the_collection_and_its_dependencies():
    proc = subprocess.run(
        ["docker", "run", "--rm", IMAGE, "ansible-galaxy", "collection", "list", "--format", "json"],
        capture_output=True, text=True, timeout=120, check=False)
    assert proc.returncode == 0, proc.stderr[-2000:]
    found = {name for path in json.loads(proc.stdout).values() for name in path}
    assert {"tfserving.fleet", "community.docker", "community.general", "ansible.posix"} <= found
    doc = subprocess.run(["docker", "run", "--rm", IMAGE, "ansible-doc", "tfserving.fleet.tfserving_model_status"],
                         capture_output=True, text=True, timeout=120, check=False)
    assert doc.returncode == 0 and COLLECTION_IN_EE in doc.stdout, doc.stderr[-2000:]


def test_site_then_status_in_the_ee_show_every_model_available(fleet, private_data_dir):
    hosts = sorted(fleet["hosts"])

    proc, rc, events = run_job(private_data_dir, "tfserving.fleet.site", "site")
    assert rc == 0, proc.stdout[-4000:] + proc.stderr[-2000:]
    summary = stats(events)
    assert sorted(summary["ok"]) == hosts
    assert not summary["failures"] and not summary["dark"], summary
    print(f"site: {summary['ok']} ok, {summary['changed'] or 'nothing'} changed")

    proc, rc, events = run_job(private_data_dir, "tfserving.fleet.status", "status")
    assert rc == 0, proc.stdout[-4000:] + proc.stderr[-2000:]
    # The status module's own answer for each host, from the job's events (what AWX shows per task).
    answers = {e["event_data"]["host"]: e["event_data"]["res"]["models"] for e in events
               if e.get("event") == "runner_item_on_ok"
               and "tfserving.fleet.tfserving_model_status"
               in (e["event_data"].get("resolved_action"), e["event_data"].get("task_action"))}
    assert sorted(answers) == hosts
    models = fleet["vars"]["tfserving_instances"][0]["models"]
    versions = sum(len(m.get("versions") or [None]) for m in models)
    labels = {(m["name"], label, version) for m in models for label, version in (m.get("labels") or {}).items()}
    for host, answer in sorted(answers.items()):
        print("\n".join(f"{host} {a['name']} v{a['version']} {a.get('label') or ''}: {a['state']}" for a in answer))
        assert all(a["state"] == "AVAILABLE" and a["available"] for a in answer), answer
        assert len([a for a in answer if not a.get("label")]) == versions, answer
        assert {(a["name"], a["label"], a["version"]) for a in answer if a.get("label")} == labels, answer
    report = json.loads((private_data_dir / "artifacts" / "reports" / "fleet-status.json").read_text())
    assert report["summary"]["as_expected"] == report["summary"]["expected"] == versions * len(hosts)
