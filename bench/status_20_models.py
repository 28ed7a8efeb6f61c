#!/usr/bin/env python3
"""Benchmark (not a test): how long a status check of 20 already-AVAILABLE models on one server takes.

Starts the TF Serving TEST DOUBLE (tests/tfserving_double) as a process with 20 copies of
half_plus_two in a temporary directory, waits until it answers, then times the status check of
tfserving_model_status: one round of requests (timeout=0, so no sleep and no retry), over REST and
over gRPC, several times each, plus the same check run as an Ansible task through ansible-playbook
(which adds Ansible's own start-up and module transfer).

Run from the repository root: `.venv/bin/python bench/status_20_models.py [--models 20] [--repeat 20]`.
Prints figures; exits non-zero only when the check itself fails.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import pathlib
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request

ROOT = pathlib.Path(__file__).resolve().parent.parent
TESTDATA = ROOT / "tests" / "data" / "tfserving"
MODEL = TESTDATA / "saved_model_half_plus_two_cpu"


def free_port():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def write_repository(root, count):
    """COUNT copies of half_plus_two, one directory each, and the models.config listing them."""
    entries = []
    for index in range(count):
        name = f"half_plus_two_{index:02d}"
        shutil.copytree(MODEL, root / name)
        entries.append(
            f'  config {{ name: "{name}" base_path: "{root / name}" model_platform: "tensorflow" }}'
        )
    config = root / "models.config"
    config.write_text("model_config_list {\n" + "\n".join(entries) + "\n}\n")
    return [f"half_plus_two_{index:02d}" for index in range(count)], config


@contextlib.contextmanager
def double(config, start_timeout=300):
    grpc_port, rest_port = free_port(), free_port()
    env = dict(os.environ, PYTHONPATH=str(ROOT / "tests") + os.pathsep + os.environ.get("PYTHONPATH", ""))
    log = tempfile.TemporaryFile()
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "tfserving_double",
            f"--port={grpc_port}",
            f"--rest_api_port={rest_port}",
            f"--model_config_file={config}",
            "--file_system_poll_wait_seconds=1",
        ],
        stdout=log,
        stderr=subprocess.STDOUT,
        env=env,
    )
    try:
        deadline = time.monotonic() + start_timeout
        while True:
            if process.poll() is not None:
                log.seek(0)
                raise SystemExit(
                    f"the test double exited with {process.returncode}:\n{log.read().decode()[-3000:]}"
                )
            try:
                with urllib.request.urlopen(
                    f"http://127.0.0.1:{rest_port}/v1/models/half_plus_two_00", timeout=2
                ):
                    break
            except OSError:
                if time.monotonic() > deadline:
                    raise SystemExit("the test double did not open its REST port in time") from None
                time.sleep(0.5)
        yield grpc_port, rest_port
    finally:
        process.terminate()
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        log.close()


def one_round(client, names):
    """The module's own check: every model's newest version AVAILABLE, one round, no sleep."""
    from ansible_collections.tfserving.fleet.plugins.module_utils.tfserving_common import Backoff
    from ansible_collections.tfserving.fleet.plugins.module_utils.tfserving_status import OK, Expectation, wait_for

    expectations = [Expectation(name) for name in names]
    backoff = Backoff(0, delay=1.0)
    started = time.perf_counter()
    outcome, _ = wait_for(client, expectations, backoff)
    seconds = time.perf_counter() - started
    if outcome != OK or backoff.rounds != 1:
        raise SystemExit(f"status check failed: {[e.reason for e in expectations if e.outcome != OK]}")
    return seconds


def time_playbook(rest_port, names, workdir):
    playbook = workdir / "status.yml"
    models = json.dumps([{"name": name} for name in names])
    playbook.write_text(
        "- name: Status of every model\n  hosts: localhost\n  connection: local\n  gather_facts: false\n"
        "  tasks:\n    - name: Every model is AVAILABLE\n      tfserving.fleet.tfserving_model_status:\n"
        f"        rest_port: {rest_port}\n        timeout: 0\n        models: {models}\n"
    )
    env = dict(
        os.environ,
        ANSIBLE_CONFIG=str(ROOT / "ansible.cfg"),
        PATH=str(pathlib.Path(sys.executable).parent) + os.pathsep + os.environ["PATH"],
    )
    started = time.perf_counter()
    subprocess.run(
        [
            "ansible-playbook",
            "-i",
            "localhost,",
            "-e",
            f"ansible_python_interpreter={sys.executable}",
            str(playbook),
        ],
        check=True,
        env=env,
        cwd=ROOT,
        stdout=subprocess.DEVNULL,
    )
    return time.perf_counter() - started


def report(label, samples):
    ms = sorted(s * 1000 for s in samples)
    print(
        f"{label:<44} median {statistics.median(ms):8.2f} ms   min {ms[0]:8.2f} ms   max {ms[-1]:8.2f} ms"
        f"   ({len(ms)} runs)"
    )


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", type=int, default=20)
    parser.add_argument("--repeat", type=int, default=20)
    args = parser.parse_args()

    # The checkout as the collection tfserving.fleet (collections/ links back to the root).
    from ansible.utils.collection_loader._collection_finder import _AnsibleCollectionFinder

    _AnsibleCollectionFinder(paths=[str(ROOT / "collections")], scan_sys_paths=True)._install()
    from ansible_collections.tfserving.fleet.plugins.module_utils.tfserving_grpc import GrpcClient
    from ansible_collections.tfserving.fleet.plugins.module_utils.tfserving_rest import RestClient

    with tempfile.TemporaryDirectory(prefix="tfserving-bench-") as tmp:
        workdir = pathlib.Path(tmp)
        names, config = write_repository(workdir, args.models)
        print(f"starting the TF Serving test double with {len(names)} copies of half_plus_two ...")
        started = time.perf_counter()
        with double(config) as (grpc_port, rest_port):
            print(f"  ready in {time.perf_counter() - started:.1f} s (REST {rest_port}, gRPC {grpc_port})")
            rest = RestClient("127.0.0.1", rest_port, timeout=10)
            grpc_client = GrpcClient("127.0.0.1", grpc_port, timeout=10)
            try:
                one_round(rest, names)  # warm-up: first connections, first JSON parse
                one_round(grpc_client, names)
                report(
                    f"status of {len(names)} models, REST, one round",
                    [one_round(rest, names) for _ in range(args.repeat)],
                )
                report(
                    f"status of {len(names)} models, gRPC, one round",
                    [one_round(grpc_client, names) for _ in range(args.repeat)],
                )
            finally:
                grpc_client.close()
            report(
                "same check as an ansible-playbook run (REST)",
                [time_playbook(rest_port, names, workdir) for _ in range(3)],
            )
    print("(one round = one GET /v1/models/NAME per model, no sleep; see tfserving_model_status)")


if __name__ == "__main__":
    main()
