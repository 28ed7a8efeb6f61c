"""The sample alert rules the tfserving role hands to monitoring (roles/tfserving/files/tfserving-alerts.yml).

- ``promtool check rules`` (Debian's prometheus package; scripts/promtool.sh fetches it when missing)
  accepts the file.
- ``promtool test rules`` shows each alert firing on the series TF Serving exports, and staying quiet
  on a healthy server.
- The metric and label names the rules use are the ones on the Prometheus page of the TF Serving test
  double, which follows TF Serving's exporter (util/prometheus_exporter.cc).
"""

from __future__ import annotations

import re
import subprocess

import pytest
import yaml
from conftest import ROOT
from tfserving_double.metrics import Metrics

RULES = ROOT / "roles" / "tfserving" / "files" / "tfserving-alerts.yml"


@pytest.fixture(scope="module")
def promtool():
    proc = subprocess.run(
        [str(ROOT / "scripts" / "promtool.sh")], capture_output=True, text=True, timeout=600, check=False
    )
    assert proc.returncode == 0, proc.stderr
    return proc.stdout.strip()


def test_promtool_check_rules_accepts_the_file(promtool):
    proc = subprocess.run([promtool, "check", "rules", str(RULES)], capture_output=True, text=True, check=False)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "SUCCESS: 3 rules found" in proc.stdout


TARGET = 'tfserving_host="gpu-1",tfserving_instance="ranking",instance="10.0.0.11:8501",job="tfserving"'
MODEL_PATH = "/models/ranker/00000125"

TESTS = {
    "rule_files": [str(RULES)],
    "evaluation_interval": "1m",
    "tests": [
        {
            "interval": "1m",
            "input_series": [
                {"series": f"up{{{TARGET}}}", "values": "1 1 1 0 0 0 0 0"},
                {"series": f'up{{{TARGET.replace("gpu-1", "gpu-2")}}}', "values": "1x8"},
                {
                    "series": f':tensorflow:cc:saved_model:load_attempt_count{{{TARGET},model_path="{MODEL_PATH}",'
                    'status="fail"}',
                    "values": "0 0 1 1 1 1 1 1",
                },
                {
                    "series": f':tensorflow:serving:request_count{{{TARGET},model_name="ranker",status="NOT_FOUND"}}',
                    "values": "0+5x30",
                },
                {
                    "series": f':tensorflow:serving:request_count{{{TARGET},model_name="ranker",status="OK"}}',
                    "values": "0+100x30",
                },
            ],
            "alert_rule_test": [
                {"eval_time": "2m", "alertname": "TFServingDown", "exp_alerts": []},
                {
                    "eval_time": "6m",
                    "alertname": "TFServingDown",
                    "exp_alerts": [
                        {
                            "exp_labels": {
                                "severity": "critical",
                                "tfserving_host": "gpu-1",
                                "tfserving_instance": "ranking",
                                "instance": "10.0.0.11:8501",
                                "job": "tfserving",
                            },
                            "exp_annotations": {
                                "summary": "TF Serving ranking on gpu-1 does not answer",
                                "description": "Prometheus could not scrape 10.0.0.11:8501 for 2 minutes: the "
                                "container is down or restarting, or its REST port is unreachable. No model of this "
                                "instance is AVAILABLE to clients.",
                            },
                        }
                    ],
                },
                {"eval_time": "1m", "alertname": "TFServingModelLoadFailed", "exp_alerts": []},
                {
                    "eval_time": "3m",
                    "alertname": "TFServingModelLoadFailed",
                    "exp_alerts": [
                        {
                            "exp_labels": {
                                "severity": "warning",
                                "tfserving_host": "gpu-1",
                                "tfserving_instance": "ranking",
                                "instance": "10.0.0.11:8501",
                                "job": "tfserving",
                                "model_path": MODEL_PATH,
                                "status": "fail",
                            },
                            "exp_annotations": {
                                "summary": "A SavedModel failed to load on gpu-1 (ranking)",
                                "description": f"Loading {MODEL_PATH} failed in the last 15 minutes. That version "
                                "ends in state END and is not served; the versions served before stay. Read the "
                                "container log, then playbooks/status.yml.",
                            },
                        }
                    ],
                },
                {"eval_time": "20m", "alertname": "TFServingModelLoadFailed", "exp_alerts": []},
                {
                    "eval_time": "12m",
                    "alertname": "TFServingModelNotAvailable",
                    "exp_alerts": [
                        {
                            "exp_labels": {
                                "severity": "critical",
                                "tfserving_host": "gpu-1",
                                "tfserving_instance": "ranking",
                                "model_name": "ranker",
                            },
                            "exp_annotations": {
                                "summary": "Model ranker is not AVAILABLE on gpu-1",
                                "description": "Requests for ranker on instance ranking end in NOT_FOUND: the "
                                "server has no AVAILABLE version (or label) they ask for. Check with "
                                "playbooks/status.yml.",
                            },
                        }
                    ],
                },
            ],
        },
        {
            "interval": "1m",
            "input_series": [
                {"series": f"up{{{TARGET}}}", "values": "1x20"},
                {
                    "series": f':tensorflow:serving:request_count{{{TARGET},model_name="ranker",status="OK"}}',
                    "values": "0+100x20",
                },
            ],
            "alert_rule_test": [
                {"eval_time": f"{m}m", "alertname": name, "exp_alerts": []}
                for m in (5, 15)
                for name in ("TFServingDown", "TFServingModelLoadFailed", "TFServingModelNotAvailable")
            ],
        },
    ],
}


def test_each_alert_fires_on_tf_servings_series_and_a_healthy_server_fires_none(promtool, tmp_path):
    path = tmp_path / "tfserving-alerts.test.yml"
    path.write_text(yaml.safe_dump(TESTS, sort_keys=False))
    proc = subprocess.run([promtool, "test", "rules", str(path)], capture_output=True, text=True, check=False)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "SUCCESS" in proc.stdout


def test_the_rules_use_metric_and_label_names_tf_serving_exports():
    metrics = Metrics()
    metrics.record_load(MODEL_PATH, ok=False, seconds=0.1)
    metrics.record_request("ranker", "predict", "REST", "NOT_FOUND", 0.001)
    page = metrics.page()
    rules = yaml.safe_load(RULES.read_text())["groups"][0]["rules"]
    used = {m for rule in rules for m in re.findall(r"(:tensorflow:[a-z_:]+)\{", rule["expr"])}
    assert used == {":tensorflow:cc:saved_model:load_attempt_count", ":tensorflow:serving:request_count"}
    assert f':tensorflow:cc:saved_model:load_attempt_count{{model_path="{MODEL_PATH}",status="fail"}} 1' in page
    assert ':tensorflow:serving:request_count{model_name="ranker",status="NOT_FOUND"} 1' in page
