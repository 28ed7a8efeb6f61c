#!/usr/bin/env python3
"""Benchmark (not a test): fleet operations on three sandbox hosts reached over SSH.

Starts the sandbox fleet tfs-bench (sandbox/up.yml: three systemd host containers on 172.29.0.0/24,
their own network, so a benchmark never disturbs molecule/fleet), converges it with site.yml (Debian's
docker.io, the TF Serving TEST DOUBLE image from the local registry, half_plus_two 123 + 124), then
measures and prints:

- the no-op re-run time of site.yml on 1 host and on 3 hosts, and their ratio (Ansible's forks run the
  hosts in parallel: the ratio should stay under 1.5);
- a rolling deploy of a new version with playbooks/deploy_model.yml (serial 1): total and per host,
  with the requests a load generator sent during it to every host (stable label and newest version)
  and how many failed;
- the same change done the manual way, host by host: copy the version directory, point models.config
  at it, restart the container, wait until it answers; with the same load, for the failed requests;
- the ratio of the two per host (goal: at most 1.5, with 0 failed requests for the rollout), and TF
  Serving's own floor: how long the server took to load the rolled-out version, from its own log
  timestamps ("Approving load for servable version" -> "Successfully loaded servable version", the
  lines TF Serving's loader harness writes and the test double copies).

`--profile` also prints the slowest tasks of the rollout (Ansible's profile_tasks callback).

Run from the repository root after `make images`: `.venv/bin/python bench/fleet.py [--repeat 2] [--keep]`.
Traffic goes only to the bench hosts (172.29.0.x); the load generator is bounded in time and count.
Exits non-zero only when a step itself fails (a playbook, a host that never answers).
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import pathlib
import re
import resource
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.request

ROOT = pathlib.Path(__file__).resolve().parent.parent
TESTDATA = ROOT / "tests" / "data" / "tfserving"
sys.path.insert(0, str(ROOT / "tests"))

from loadgen import LoadGenerator  # noqa: E402

FLEET = "tfs-bench"
HOSTS = {"tfs-bench-1": "172.29.0.11", "tfs-bench-2": "172.29.0.12", "tfs-bench-3": "172.29.0.13"}
GATEWAY = "172.29.0.1"
MODEL = "half_plus_two"
PAYLOAD = {"instances": [1.0, 2.0, 5.0]}
EXPECTED = [2.5, 3.0, 4.5]

INVENTORY = """---
tfserving_hosts:
  hosts:
{hosts}
  vars:
    ansible_user: root
    ansible_ssh_private_key_file: {key}
    ansible_ssh_common_args: -o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null
    docker_engine_source: distribution
    docker_engine_daemon_options:
      insecure-registries: ["{gateway}:5000"]
    nvidia_runtime_mode: auto
    tfserving_image_cpu: {gateway}:5000/tfserving-double:test
    tfserving_image_gpu: {gateway}:5000/tfserving-double:test
    tfserving_model_config_poll_wait_seconds: 1
    tfserving_verify_timeout: 120
    tfserving_instances:
      - name: main
        grpc_port: 8500
        rest_port: 8501
        gpus: []
        models:
          - name: half_plus_two
            source: {sources}/half_plus_two
            version_policy: specific
            versions: [123, 124]
            labels: {{stable: 123, canary: 124}}
"""


def env(extra=None):
    out = dict(os.environ, **(extra or {}))
    out["PATH"] = f"{ROOT / '.venv' / 'bin'}:{out.get('PATH', '')}"
    out["ANSIBLE_CONFIG"] = str(ROOT / "ansible.cfg")
    out["ANSIBLE_NOCOLOR"] = "1"
    return out


def run(args, what, check=True, timeout=1800, extra_env=None):
    began = time.monotonic()
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    proc = subprocess.run(args, cwd=ROOT, env=env(extra_env), capture_output=True, text=True, timeout=timeout)
    seconds = time.monotonic() - began
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    # CPU seconds of ansible-playbook and its workers on the control node (not the hosts' module runs).
    proc.controller_cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    if check and proc.returncode != 0:
        print(f"bench: {what} failed (exit {proc.returncode}):\n{(proc.stdout + proc.stderr)[-4000:]}", file=sys.stderr)
        sys.exit(1)
    return proc, seconds


def playbook(inventory, name, *extra, what=None, check=True, extra_env=None):
    return run(
        ["ansible-playbook", "-i", str(inventory), str(ROOT / "playbooks" / name), *extra],
        what or name,
        check=check,
        extra_env=extra_env,
    )


def changed_total(output):
    return sum(int(n) for n in re.findall(r"^\S+\s*:\s*ok=\d+\s+changed=(\d+)", output, re.MULTILINE))


def copy_version(version_src, dest):
    shutil.copytree(version_src, dest)
    for path in [dest, *dest.rglob("*")]:
        path.chmod(0o755 if path.is_dir() else 0o644)


def load():
    urls = []
    for address in HOSTS.values():
        urls += [
            f"http://{address}:8501/v1/models/{MODEL}/labels/stable:predict",
            f"http://{address}:8501/v1/models/{MODEL}:predict",
        ]
    return LoadGenerator(urls, PAYLOAD, expected=EXPECTED, interval=0.05, duration=900, max_requests=300_000)


def serves(address, version):
    try:
        with urllib.request.urlopen(f"http://{address}:8501/v1/models/{MODEL}", timeout=2) as answer:
            listed = json.loads(answer.read())["model_version_status"]
    except (OSError, ValueError, KeyError):
        return False
    return any(int(v["version"]) == version and v["state"] == "AVAILABLE" for v in listed)


def manual_rollout(inventory, version_dir, number):
    """The manual procedure, host by host: copy, edit models.config, restart, wait until it answers."""
    per_host = []
    for name, address in HOSTS.items():
        began = time.monotonic()
        copy = {"src": f"{version_dir}/", "dest": f"/srv/tfserving/models/main/{MODEL}/{number:08d}/"}
        run(
            ["ansible", "-i", str(inventory), name, "-m", "ansible.builtin.copy", "-a", json.dumps(copy)],
            f"copy to {name}",
        )
        # What people do by hand: point the config at the new version, restart the server.
        script = (
            f"sed -i -E 's/(versions|value): 125$/\\1: {number}/' /etc/tfserving/main/models.config"
            " && docker restart tfserving-main"
        )
        run(
            ["ansible", "-i", str(inventory), name, "-m", "ansible.builtin.shell", "-a", json.dumps({"cmd": script})],
            f"restart on {name}",
        )
        deadline = time.monotonic() + 300
        while not serves(address, number):
            if time.monotonic() > deadline:
                print(f"bench: {name} never served version {number} after its restart", file=sys.stderr)
                sys.exit(1)
            time.sleep(0.2)
        per_host.append(time.monotonic() - began)
    return per_host


LOAD_LINE = re.compile(
    r"^(?P<at>\S+) .*(?P<what>Approving load|Successfully loaded) (?:for )?servable version "
    r"\{name: (?P<name>\S+) version: (?P<version>\d+)\}"
)


def _timestamp(text):
    # docker logs --timestamps: RFC 3339 with nanoseconds; datetime takes microseconds.
    head, _, frac = text.rstrip("Z").partition(".")
    return datetime.datetime.fromisoformat(f"{head}.{(frac + '000000')[:6]}")


def load_seconds(inventory, host, model, version):
    """Seconds the server on HOST took to load MODEL VERSION (the last load), from its log timestamps."""
    proc, _ = run(
        [
            "ansible",
            "-i",
            str(inventory),
            host,
            "-m",
            "ansible.builtin.shell",
            "-a",
            "docker logs --timestamps tfserving-main 2>&1 | grep -E 'Approving load|Successfully loaded'",
        ],
        f"server log of {host}",
    )
    approved = loaded = None
    for line in proc.stdout.splitlines():
        found = LOAD_LINE.match(line.strip())
        if not found or found["name"] != model or int(found["version"]) != version:
            continue
        if found["what"] == "Approving load":
            approved, loaded = _timestamp(found["at"]), None
        elif approved is not None:
            loaded = _timestamp(found["at"])
    return (loaded - approved).total_seconds() if approved and loaded else None


def slowest_tasks(output, count=12):
    """The profile_tasks recap: [(seconds, task)] of the slowest tasks."""
    timed = re.findall(r"^(.+?) -+ (\d+\.\d+)s$", output, re.MULTILINE)
    return sorted(((float(s), t.strip()) for t, s in timed), reverse=True)[:count]


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeat", type=int, default=1, help="no-op re-runs per fleet size (the best is kept)")
    parser.add_argument("--keep", action="store_true", help="leave the bench fleet running")
    parser.add_argument("--profile", action="store_true", help="print the slowest tasks of the rollout")
    args = parser.parse_args()
    try:
        with urllib.request.urlopen("http://127.0.0.1:5000/v2/tfserving-double/tags/list", timeout=5) as answer:
            assert "test" in json.loads(answer.read())["tags"]
    except (OSError, AssertionError, ValueError, KeyError):
        print("bench: the test double image is not in the local registry; run `make images` first", file=sys.stderr)
        return 1

    work = pathlib.Path(tempfile.mkdtemp(prefix="tfs-bench-"))
    figures = []
    try:
        sources = work / "model-sources"
        for version in ("00000123", "00000124"):
            copy_version(TESTDATA / "saved_model_half_plus_two_2_versions" / version, sources / MODEL / version)
        inventory = work / "hosts.yml"
        inventory.write_text(
            INVENTORY.format(
                hosts="\n".join(f"    {n}:\n      ansible_host: {a}" for n, a in HOSTS.items()),
                key=ROOT / ".cache" / "ssh" / "id_ed25519",
                gateway=GATEWAY,
                sources=sources,
            )
        )

        print(f"== fleet benchmark: {len(HOSTS)} sandbox hosts over SSH ({FLEET}), TF Serving TEST DOUBLE image")
        run(["ansible-playbook", "sandbox/up.yml", "-e", f"sandbox_name={FLEET}"], "sandbox/up.yml")
        run(
            [
                "ansible",
                "-i",
                str(inventory),
                "all",
                "-m",
                "ansible.builtin.shell",
                "-a",
                "systemctl is-system-running --wait || true",
            ],
            "waiting for systemd",
        )

        _, seconds = playbook(inventory, "site.yml", what="first converge")
        figures.append(("site.yml first converge, 3 hosts", f"{seconds:.1f} s"))

        noop = {}
        for size, limit in ((1, ["--limit", "tfs-bench-1"]), (3, [])):
            best = None
            for _ in range(max(1, args.repeat)):
                proc, seconds = playbook(inventory, "site.yml", *limit, what=f"no-op site.yml on {size} host(s)")
                changed = changed_total(proc.stdout)
                if best is None or seconds < best[0]:
                    best = (seconds, proc.controller_cpu)
            noop[size] = best[0]
            figures.append(
                (
                    f"site.yml no-op re-run, {size} host(s)",
                    f"{best[0]:.1f} s (control node CPU {best[1]:.1f} s)"
                    + (f"  ({changed} task(s) changed!)" if changed else ""),
                )
            )
        figures.append(("ratio 3 hosts / 1 host", f"{noop[3] / noop[1]:.2f} (target < 1.5)"))
        # The three hosts are containers on this machine: their module runs share its CPUs with the
        # control node, which a real fleet does not.
        figures.append(("  this machine", f"{os.cpu_count()} CPU(s), load average {os.getloadavg()[0]:.1f}"))

        rollout_source = work / "rollout-source"
        copy_version(TESTDATA / "saved_model_half_plus_two_2_versions" / "00000124", rollout_source / "00000125")
        rollout = work / "rollout.json"
        rollout.write_text(
            json.dumps(
                {
                    "tfserving_rollout_models": [
                        {
                            "model": MODEL,
                            "version": 125,
                            "source": str(rollout_source),
                            "labels": ["stable", "canary"],
                            "keep_previous": 1,
                            "check": {"instances": PAYLOAD["instances"], "expected": EXPECTED},
                        }
                    ],
                    "tfserving_rollout_serial": 1,
                    "tfserving_rollout_report_dir": str(work / "reports"),
                }
            )
        )
        profile = {"ANSIBLE_CALLBACKS_ENABLED": "ansible.posix.profile_tasks"} if args.profile else None
        with load() as traffic:
            time.sleep(2)
            proc, seconds = playbook(
                inventory, "deploy_model.yml", "-e", f"@{rollout}", what="deploy_model.yml", extra_env=profile
            )
            time.sleep(2)
        result = traffic.result
        rollout_per_host = seconds / len(HOSTS)
        rollout_failed = result["failed"]
        figures.append(
            ("deploy_model.yml, 3 hosts, serial 1", f"{seconds:.1f} s total, {rollout_per_host:.1f} s per host")
        )
        figures.append(
            (
                "  requests during the rollout",
                f"{result['sent']} sent, {result['failed']} failed (p99 {result['latency_ms']['p99']} ms)",
            )
        )
        slowest = slowest_tasks(proc.stdout) if args.profile else []
        loads = [load_seconds(inventory, name, MODEL, 125) for name in HOSTS]
        checks = [load_seconds(inventory, name, f"{MODEL}.rollout", 125) for name in HOSTS]

        manual_version = work / "manual" / "00000126"
        copy_version(TESTDATA / "saved_model_half_plus_two_2_versions" / "00000124", manual_version)
        with load() as traffic:
            time.sleep(2)
            per_host = manual_rollout(inventory, manual_version, 126)
            time.sleep(2)
        result = traffic.result
        figures.append(
            (
                "manual (copy + restart), 3 hosts",
                f"{sum(per_host):.1f} s total, {sum(per_host) / len(per_host):.1f} s per host",
            )
        )
        figures.append(
            (
                "  requests during the manual rollout",
                f"{result['sent']} sent, {result['failed']} failed "
                f"({', '.join(f'{k}: {v}' for k, v in list(result['errors'].items())[:3])})",
            )
        )
        manual_per_host = sum(per_host) / len(per_host)
        ratio = rollout_per_host / manual_per_host
        met = ratio <= 1.5 and rollout_failed == 0 and result["failed"] > 0
        figures.append(
            (
                "rollout / manual, per host",
                f"{ratio:.2f} (goal <= 1.5 with 0 failed for the rollout: {'met' if met else 'NOT met'})",
            )
        )
        known = [x for x in loads if x is not None]
        figures.append(
            (
                "TF Serving's floor: load of 125",
                (
                    f"{sum(known) / len(known):.2f} s per host on average (server log timestamps; "
                    f"{', '.join('?' if x is None else f'{x:.2f}' for x in loads)})"
                )
                if known
                else "not found in the server logs",
            )
        )
        known = [x for x in checks if x is not None]
        if known:
            figures.append(("  and as the check model", f"{sum(known) / len(known):.2f} s per host on average"))
        for task_seconds, task in slowest:
            figures.append((f"  slow task {task[:70]}", f"{task_seconds:.1f} s"))
    finally:
        if not args.keep:
            run(
                ["ansible-playbook", "sandbox/down.yml", "-e", f"sandbox_name={FLEET}"], "sandbox/down.yml", check=False
            )
        shutil.rmtree(work, ignore_errors=True)

    width = max(len(k) for k, _ in figures)
    for key, value in figures:
        print(f"{key.ljust(width)}  {value}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
