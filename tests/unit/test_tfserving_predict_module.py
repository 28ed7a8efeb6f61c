"""tfserving_predict: main() against a loopback HTTP server answering TF Serving's exact bodies."""

from __future__ import annotations

import json

import pytest
from ansible_collections.tfserving.fleet.plugins.modules import tfserving_predict as module
from tfserving_http_fake import Answer, FakeTFServing, err, free_port, ok, predictions_body, run_module

PREDICT = "/v1/models/half_plus_two:predict"


@pytest.fixture
def fake():
    server = FakeTFServing().start()
    yield server
    server.stop()


def run(capsys, port, **options):
    args = {"rest_port": port, "model": "half_plus_two", **options}
    return run_module(module.main, args, capsys)


def sent(fake):
    return [(path, json.loads(body)) for method, path, body in fake.requests if method == "POST"]


def test_row_format_matches_expected(fake, capsys):
    fake.on("POST", PREDICT, ok(predictions_body([2.5, 3.0, 4.5])))
    failed, result = run(capsys, fake.port, instances=[1.0, 2.0, 5.0], expected=[2.5, 3.0, 4.5])
    assert not failed, result["msg"]
    assert result["outputs"] == [2.5, 3.0, 4.5]
    assert result["format"] == "row" and result["changed"] is False
    assert result["latency_ms"] > 0
    assert result["url"] == f"http://127.0.0.1:{fake.port}{PREDICT}"
    assert sent(fake) == [(PREDICT, {"instances": [1.0, 2.0, 5.0]})]


def test_wrong_expectation_fails_with_a_readable_message(fake, capsys):
    fake.on("POST", PREDICT, ok(predictions_body([2.5, 3.0, 4.5])))
    failed, result = run(capsys, fake.port, instances=[1.0, 2.0, 5.0], expected=[2.5, 3.5, 4.5])
    assert failed
    assert result["msg"] == (
        "Model half_plus_two answered [2.5, 3.0, 4.5], which differs from the expected [2.5, 3.5, 4.5] "
        "(tolerance 1e-06, relative 0.0): at [1]: expected 3.5, got 3.0 (differs by 0.5)."
    )
    assert result["mismatches"] == [{"path": "[1]", "expected": 3.5, "actual": 3.0, "why": "differs by 0.5"}]
    assert result["outputs"] == [2.5, 3.0, 4.5]


def test_tolerance_absolute_and_relative(fake, capsys):
    fake.on("POST", PREDICT, ok(predictions_body([2.5001, 300.2])))
    failed, result = run(capsys, fake.port, instances=[1.0, 2.0], expected=[2.5, 300.0], tolerance=0.001)
    assert failed and "at [1]" in result["msg"] and "[0]" not in result["msg"]
    failed, result = run(
        capsys,
        fake.port,
        instances=[1.0, 2.0],
        expected=[2.5, 300.0],
        tolerance=0.001,
        relative_tolerance=0.001,
    )
    assert not failed, result["msg"]


def test_columnar_format_with_signature_and_label(fake, capsys):
    path = "/v1/models/half_plus_two/labels/canary:predict"
    fake.on("POST", path, ok(predictions_body([2.5, 3.0, 4.5], key="outputs")))
    failed, result = run(
        capsys,
        fake.port,
        label="canary",
        signature_name="serving_default",
        inputs={"x": [1.0, 2.0, 5.0]},
        expected=[2.5, 3.0, 4.5],
    )
    assert not failed, result["msg"]
    assert result["format"] == "columnar"
    assert sent(fake) == [(path, {"inputs": {"x": [1.0, 2.0, 5.0]}, "signature_name": "serving_default"})]


def test_version_path_and_named_outputs(fake, capsys):
    path = "/v1/models/half_plus_two/versions/123:predict"
    fake.on("POST", path, ok('{\n    "outputs": {\n        "y": [2.5],\n        "z": ["a"]\n    }\n}'))
    failed, result = run(capsys, fake.port, version=123, inputs=[1.0], expected={"y": [2.5], "z": ["a"]})
    assert not failed, result["msg"]
    failed, result = run(capsys, fake.port, version=123, inputs=[1.0], expected={"y": [2.5]})
    assert failed and "keys differ" in result["msg"]


@pytest.mark.parametrize(
    ("expected", "why"),
    [
        ([2.5, 3.0], "length differs"),
        ([[2.5], 3.0, 4.5], "expected list, got float"),
        (["2.5", 3.0, 4.5], "expected str, got float"),
    ],
)
def test_shape_and_type_mismatches(fake, capsys, expected, why):
    fake.on("POST", PREDICT, ok(predictions_body([2.5, 3.0, 4.5])))
    failed, result = run(capsys, fake.port, instances=[1.0, 2.0, 5.0], expected=expected)
    assert failed and why in result["msg"]


def test_without_expected_it_only_proves_an_answer(fake, capsys):
    fake.on("POST", PREDICT, ok(predictions_body([2.5])))
    failed, result = run(capsys, fake.port, instances=[1.0])
    assert not failed and result["outputs"] == [2.5]


@pytest.mark.parametrize(
    ("answer", "expected"),
    [
        (
            err(404, "Servable not found for request: Latest(half_plus_two)"),
            "answered HTTP 404: Servable not found for request: Latest(half_plus_two)",
        ),
        (
            err(400, "Unrecognized servable version label: canary"),
            "answered HTTP 400: Unrecognized servable version label: canary",
        ),
        (
            err(400, 'Serving signature name: "nope" not found in signature def'),
            'Serving signature name: "nope" not found in signature def',
        ),
        (err(400, "JSON Parse error: Invalid value. at offset: 0"), "JSON Parse error"),
        (Answer(200, "<html/>", "text/html"), "a body that is not JSON"),
        (ok('{"results": [1]}'), "answered without 'predictions' (keys: results)"),
    ],
)
def test_server_refusals_fail_with_the_servers_message(fake, capsys, answer, expected):
    fake.on("POST", PREDICT, answer)
    failed, result = run(capsys, fake.port, instances=[1.0], expected=[2.5])
    assert failed
    assert result["msg"].startswith("Prediction failed: ") or "answered without" in result["msg"]
    assert expected in result["msg"]


def test_connection_refused(capsys):
    failed, result = run(capsys, free_port(), instances=[1.0])
    assert failed and "connection refused" in result["msg"]


def test_request_timeout(fake, capsys):
    fake.on("POST", PREDICT, Answer(200, predictions_body([2.5]), delay=1.0))
    failed, result = run(capsys, fake.port, instances=[1.0], timeout=0.2)
    assert failed and "no answer within 0.2s" in result["msg"]


def test_latency_budget_fails_a_correct_but_slow_answer(fake, capsys):
    fake.on("POST", PREDICT, Answer(200, predictions_body([2.5]), delay=0.3))
    failed, result = run(capsys, fake.port, instances=[1.0], expected=[2.5], latency_budget_ms=100)
    assert failed and result["over_budget"] is True
    assert result["latency_ms"] >= 300
    assert result["msg"].startswith(
        f"Model half_plus_two answered http://127.0.0.1:{fake.port}{PREDICT} in {result['latency_ms']} ms, "
        "over its budget of 100 ms (expected at most the budget;"
    )
    assert "tfserving-export --warmup-requests" in result["msg"]
    assert result["outputs"] == [2.5]

    fake.on("POST", PREDICT, ok(predictions_body([2.5])))
    failed, result = run(capsys, fake.port, instances=[1.0], expected=[2.5], latency_budget_ms=5000)
    assert not failed and result["over_budget"] is False
    assert result["msg"].endswith("within its budget of 5000 ms")
    # A wrong answer is reported as wrong, whatever its latency.
    failed, result = run(capsys, fake.port, instances=[1.0], expected=[9.0], latency_budget_ms=5000)
    assert failed and "differs from the expected" in result["msg"] and "over_budget" not in result


@pytest.mark.parametrize(
    ("options", "expected"),
    [
        ({"instances": [1.0], "latency_budget_ms": 0}, "latency_budget_ms must be > 0"),
        ({"instances": [1.0], "inputs": [1.0]}, "mutually exclusive"),
        ({}, "one of the following is required: instances, inputs"),
        ({"instances": {"x": 1}}, "instances must be a list"),
        ({"inputs": "x"}, "inputs must be a list or a mapping"),
        ({"instances": [1.0], "version": 1, "label": "a"}, "mutually exclusive"),
        ({"instances": [1.0], "tolerance": -1}, "tolerance and relative_tolerance must be >= 0"),
    ],
)
def test_invalid_options(fake, capsys, options, expected):
    failed, result = run(capsys, fake.port, **options)
    assert failed and expected in result["msg"]
    assert fake.requests == []


def test_check_mode_still_predicts(fake, capsys):
    fake.on("POST", PREDICT, ok(predictions_body([2.5])))
    failed, result = run(capsys, fake.port, instances=[1.0], expected=[2.5], _ansible_check_mode=True)
    assert not failed and result["changed"] is False and len(fake.requests) == 1
