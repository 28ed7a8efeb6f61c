"""End to end: ansible-playbook runs the tfserving_export module on the control node, then the TF Serving
test double serves the exported versions and answers REST predictions equal to the source models'.
"""

from __future__ import annotations

import json
import os
import pathlib
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request

import numpy as np
import pytest
from conftest import ROOT
from tfserving_double.testing import double_env

sys.path.insert(0, str(ROOT / "tests" / "unit"))
from export_models import frozen_graph, keras_sequential

pytestmark = [pytest.mark.integration, pytest.mark.tensorflow]

PLAYBOOK = """\
- name: Models are exported into the model repository
  hosts: localhost
  connection: local
  gather_facts: false
  tasks:
    - name: Check mode reports the version it would write
      tfserving.fleet.tfserving_export:
        format: graphdef
        src: "{{ graph_src }}"
        base_path: "{{ repo }}/classifier"
        inputs:
          features: "input:0"
        outputs:
          probabilities: "head/probs:0"
      check_mode: true
      register: __check

    - name: Frozen graph is version 1 of classifier
      tfserving.fleet.tfserving_export:
        format: graphdef
        src: "{{ graph_src }}"
        base_path: "{{ repo }}/classifier"
        inputs:
          features: "input:0"
        outputs:
          probabilities: "head/probs:0"
      register: __graph

    - name: Exporting the same graph again changes nothing
      tfserving.fleet.tfserving_export:
        format: graphdef
        src: "{{ graph_src }}"
        base_path: "{{ repo }}/classifier"
        inputs:
          features: "input:0"
        outputs:
          probabilities: "head/probs:0"
      register: __again

    - name: Keras model is version 3 of regressor
      tfserving.fleet.tfserving_export:
        format: keras
        src: "{{ keras_src }}"
        base_path: "{{ repo }}/regressor"
        version: 3
        outputs:
          scores: logits
      register: __keras

    - name: The results are recorded for the test
      ansible.builtin.copy:
        dest: "{{ results }}"
        content: "{{ {'check': __check, 'graph': __graph, 'again': __again, 'keras': __keras} | to_json }}"
        mode: "0644"
"""


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def rest(url: str, body: dict | None = None) -> dict:
    data = None if body is None else json.dumps(body).encode()
    with urllib.request.urlopen(urllib.request.Request(url, data=data), timeout=30) as answer:
        return json.loads(answer.read())


def test_playbook_exports_and_the_served_models_answer_like_the_sources(tmp_path):
    graph_src, reference = frozen_graph(tmp_path / "frozen.pb")
    keras_model = keras_sequential()
    keras_src = tmp_path / "seq.keras"
    keras_model.save(keras_src)
    repo = tmp_path / "repo"
    (tmp_path / "site.yml").write_text(PLAYBOOK)
    results = tmp_path / "results.json"
    env = {**os.environ, "ANSIBLE_CONFIG": str(ROOT / "ansible.cfg"),
           "ANSIBLE_LOCAL_TEMP": str(tmp_path / "ansible-tmp"), "ANSIBLE_NOCOLOR": "1"}
    extra = json.dumps({"graph_src": str(graph_src), "keras_src": str(keras_src), "repo": str(repo),
                        "results": str(results), "ansible_python_interpreter": sys.executable})
    done = subprocess.run(
        [str(pathlib.Path(sys.executable).with_name("ansible-playbook")), "-i", "localhost,",
         str(tmp_path / "site.yml"), "-e", extra],
        capture_output=True, text=True, timeout=300, env=env, cwd=ROOT, check=False)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    recorded = json.loads(results.read_text())
    assert recorded["check"]["changed"] is True and recorded["check"]["version"] == 1
    assert recorded["graph"]["changed"] is True and recorded["graph"]["verification"]["verified"] is True
    assert recorded["again"]["changed"] is False and recorded["again"]["version"] == 1
    assert recorded["keras"]["path"] == str(repo / "regressor" / "3")
    assert sorted(p.name for p in (repo / "classifier").iterdir()) == ["1"]

    config = tmp_path / "models.config"
    config.write_text(
        "model_config_list {\n"
        f'  config {{ name: "classifier" base_path: "{repo / "classifier"}" model_platform: "tensorflow" }}\n'
        f'  config {{ name: "regressor" base_path: "{repo / "regressor"}" model_platform: "tensorflow" }}\n'
        "}\n")
    grpc_port, rest_port = free_port(), free_port()
    server = subprocess.Popen(
        [sys.executable, "-m", "tfserving_double", f"--port={grpc_port}", f"--rest_api_port={rest_port}",
         f"--model_config_file={config}"],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=double_env())
    base = f"http://127.0.0.1:{rest_port}/v1/models"
    try:
        deadline = time.monotonic() + 120
        while True:
            try:
                status = rest(f"{base}/classifier")
                break
            except (urllib.error.URLError, ConnectionError):
                assert server.poll() is None, server.stdout.read()
                assert time.monotonic() < deadline, "the test double did not open its REST port"
                time.sleep(0.5)
        assert status["model_version_status"][0]["version"] == "1"
        assert status["model_version_status"][0]["state"] == "AVAILABLE"
        assert rest(f"{base}/regressor")["model_version_status"][0]["version"] == "3"

        rows = reference["x"].tolist()
        answer = rest(f"{base}/classifier:predict", {"signature_name": "serving_default", "instances": rows})
        np.testing.assert_allclose(np.array(answer["predictions"]), reference["probs"], rtol=1e-5, atol=1e-6)

        x = np.random.default_rng(4).standard_normal((4, 3)).astype(np.float32)
        answer = rest(f"{base}/regressor:predict", {"instances": x.tolist()})
        np.testing.assert_allclose(np.array(answer["predictions"]), keras_model.predict(x, verbose=0),
                                   rtol=1e-5, atol=1e-5)
    finally:
        server.terminate()
        try:
            server.wait(timeout=20)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()
