"""The TF Serving test double's REST API, against real SavedModels, compared with TF Serving's bytes.

One double process serves three models for the whole module:
  half_plus_two                         00000123 + 00000124, default policy (latest 1) -> serves 124
  half_plus_three                       00000123
  saved_model_half_plus_two_2_versions  both versions, specific {123, 124}, labels stable=123 canary=124
"""

from __future__ import annotations

import json

import pytest
from tfserving_double.testing import TESTDATA, copy_model_version, start_double, write_models_config

pytestmark = [pytest.mark.integration, pytest.mark.tensorflow]

TWO_VERSIONS = "saved_model_half_plus_two_2_versions"


@pytest.fixture(scope="module")
def double(tmp_path_factory):
    root = tmp_path_factory.mktemp("rest")
    for version in ("00000123", "00000124"):
        copy_model_version(TWO_VERSIONS, version, root / "half_plus_two" / version)
        copy_model_version(TWO_VERSIONS, version, root / TWO_VERSIONS / version)
    copy_model_version("saved_model_half_plus_three", "00000123", root / "half_plus_three" / "00000123")
    config = write_models_config(
        root / "models.config",
        [
            {"name": "half_plus_two", "base_path": root / "half_plus_two"},
            {"name": "half_plus_three", "base_path": root / "half_plus_three"},
            {
                "name": TWO_VERSIONS,
                "base_path": root / TWO_VERSIONS,
                "policy": "specific { versions: 123 versions: 124 }",
                "labels": {"stable": 123, "canary": 124},
            },
        ],
    )
    monitoring = root / "monitoring.config"
    monitoring.write_text((TESTDATA / "monitoring_config.txt").read_text())
    args = [
        f"--model_config_file={config}",
        "--file_system_poll_wait_seconds=1",
        "--allow_version_labels_for_unavailable_models",
        f"--monitoring_config_file={monitoring}",
    ]
    with start_double(args) as server:
        yield server


def error(message: str) -> bytes:
    """TF Serving's error body: rapidjson PrettyWriter output of {"error": message}."""
    return ('{\n    "error": ' + json.dumps(message, ensure_ascii=False) + "\n}").encode()


# -- status ----------------------------------------------------------------------------------------------


def test_status_is_byte_for_byte_tf_serving(double):
    code, body = double.get("/v1/models/half_plus_two")
    assert code == 200
    assert body == (
        b'{\n "model_version_status": [\n  {\n   "version": "124",\n   "state": "AVAILABLE",\n'
        b'   "status": {\n    "error_code": "OK",\n    "error_message": ""\n   }\n  }\n ]\n}\n'
    )


def test_status_lists_versions_highest_first(double):
    code, body = double.get(f"/v1/models/{TWO_VERSIONS}")
    assert code == 200
    versions = json.loads(body)["model_version_status"]
    assert [(v["version"], v["state"]) for v in versions] == [("124", "AVAILABLE"), ("123", "AVAILABLE")]
    code, body = double.get(f"/v1/models/{TWO_VERSIONS}/versions/123")
    assert code == 200
    assert [v["version"] for v in json.loads(body)["model_version_status"]] == ["123"]


# -- predict ---------------------------------------------------------------------------------------------


def test_predict_row_format(double):
    code, body = double.post("/v1/models/half_plus_two:predict", {"instances": [1.0, 2.0, 5.0]})
    assert code == 200
    assert body == b'{\n    "predictions": [2.5, 3.0, 4.5\n    ]\n}'
    assert json.loads(body) == {"predictions": [2.5, 3.0, 4.5]}


def test_predict_columnar_format(double):
    code, body = double.post("/v1/models/half_plus_two:predict", {"inputs": [1.0, 2.0, 5.0]})
    assert code == 200
    assert body == b'{\n    "outputs": [\n        2.5,\n        3.0,\n        4.5\n    ]\n}'


def test_predict_named_instances_and_nested_rows(double):
    code, body = double.post(
        "/v1/models/half_plus_two:predict",
        {"signature_name": "serving_default", "instances": [{"x": [1.0]}, {"x": [3.0]}]},
    )
    assert code == 200
    assert json.loads(body) == {"predictions": [[2.5], [3.5]]}


def test_predict_other_model_and_versions_and_labels(double):
    code, body = double.post("/v1/models/half_plus_three:predict", {"instances": [1.0, 2.0, 5.0]})
    assert (code, json.loads(body)) == (200, {"predictions": [3.5, 4.0, 5.5]})
    for path in (
        f"/v1/models/{TWO_VERSIONS}/versions/123:predict",
        f"/v1/models/{TWO_VERSIONS}/labels/canary:predict",
    ):
        code, body = double.post(path, {"instances": [1.0]})
        assert (code, json.loads(body)) == (200, {"predictions": [2.5]}), path


def test_labels_resolve_to_their_versions(double):
    for label, version in (("stable", "123"), ("canary", "124")):
        code, body = double.get(f"/v1/models/{TWO_VERSIONS}/labels/{label}/metadata")
        assert code == 200
        assert json.loads(body)["model_spec"]["version"] == version


# -- classify / regress ------------------------------------------------------------------------------------


def test_regress(double):
    code, body = double.post(
        "/v1/models/half_plus_two:regress",
        {"signature_name": "regress_x_to_y", "examples": [{"x": 80.0}, {"x": 2.0}]},
    )
    assert code == 200
    assert body == b'{\n    "results": [42.0, 3.0]\n}'
    code, body = double.post(
        "/v1/models/half_plus_two:regress", {"signature_name": "regress_x_to_y2", "examples": [{"x": 80.0}]}
    )
    assert (code, json.loads(body)) == (200, {"results": [43.0]})


def test_regress_merges_context_into_examples(double):
    code, body = double.post(
        "/v1/models/half_plus_two:regress",
        {"signature_name": "regress_x_to_y", "context": {"x": 10.0}, "examples": [{}]},
    )
    assert (code, json.loads(body)) == (200, {"results": [7.0]})


def test_classify(double):
    code, body = double.post(
        "/v1/models/half_plus_two:classify", {"signature_name": "classify_x_to_y", "examples": [{"x": 80.0}]}
    )
    assert code == 200
    assert body == b'{\n    "results": [[["", 42.0]]\n    ]\n}'


# -- metadata ----------------------------------------------------------------------------------------------


def test_metadata_matches_golden_file(double):
    code, body = double.get(f"/v1/models/{TWO_VERSIONS}/versions/123/metadata")
    assert code == 200
    golden = json.loads((TESTDATA / "saved_model_half_plus_two_2_versions_metadata.json").read_text())
    assert json.loads(body) == golden
    # TF Serving concatenates two protobuf printouts; the seams show in the raw bytes.
    assert body.startswith(b'{\n"model_spec":{\n "name": "saved_model_half_plus_two_2_versions",\n')
    assert b'\n}\n,\n"metadata": {"signature_def": {\n' in body


# -- errors: TF Serving's codes and messages ---------------------------------------------------------------

ERROR_CASES = [
    ("GET", "/v1/models/nope", None, 404, "Could not find any versions of model nope"),
    (
        "GET",
        "/v1/models/half_plus_two/versions/7",
        None,
        404,
        "Could not find version 7 of model half_plus_two",
    ),
    (
        "POST",
        "/v1/models/nope:predict",
        {"instances": [1.0]},
        404,
        "Servable not found for request: Latest(nope)",
    ),
    (
        "POST",
        "/v1/models/half_plus_two/versions/7:predict",
        {"instances": [1.0]},
        404,
        "Servable not found for request: Specific(half_plus_two, 7)",
    ),
    (
        "POST",
        "/v1/models/half_plus_two/versions/123:predict",
        {"instances": [1.0]},
        404,
        "Servable not found for request: Specific(half_plus_two, 123)",
    ),
    (
        "POST",
        f"/v1/models/{TWO_VERSIONS}/labels/nope:predict",
        {"instances": [1.0]},
        400,
        "Unrecognized servable version label: nope",
    ),
    ("GET", "/v1/models", None, 400, "Missing model name in request."),
    ("GET", "/v1/foo", None, 400, "Malformed request: GET /v1/foo"),
    (
        "POST",
        "/v1/models/half_plus_two:explode",
        {},
        400,
        "Malformed request: POST /v1/models/half_plus_two:explode",
    ),
    ("PUT", "/v1/models/half_plus_two", {}, 400, "Malformed request: PUT /v1/models/half_plus_two"),
    (
        "POST",
        "/v1/models/half_plus_two:predict",
        '{"instances": [1.0,',
        400,
        "JSON Parse error: Invalid value. at offset: 19",
    ),
    (
        "POST",
        "/v1/models/half_plus_two:predict",
        '{"instances" [1.0]}',
        400,
        "JSON Parse error: Missing a colon after a name of object member. at offset: 13",
    ),
    ("POST", "/v1/models/half_plus_two:predict", "", 400, "JSON Parse error: The document is empty"),
    ("POST", "/v1/models/half_plus_two:predict", "[1.0]", 400, "JSON Value: [\n    1.0\n] Is not object"),
    (
        "POST",
        "/v1/models/half_plus_two:predict",
        {"instances": [1.0], "inputs": [1.0]},
        400,
        'JSON Value: {\n    "instances": [\n        1.0\n    ],\n    "inputs": [\n        1.0\n    ]\n} Not '
        "formatted "
        "correctly expecting only one of 'inputs' or 'instances' keys to exist ",
    ),
    (
        "POST",
        "/v1/models/half_plus_two:predict",
        {"signature_name": "serving_default"},
        400,
        "Missing 'inputs' or 'instances' key",
    ),
    (
        "POST",
        "/v1/models/half_plus_two:predict",
        {"instances": []},
        400,
        "JSON Value: {\n    \"instances\": []\n} No values in 'instances' array",
    ),
    (
        "POST",
        "/v1/models/half_plus_two:predict",
        {"signature_name": "nope", "instances": [1.0]},
        400,
        'Serving signature name: "nope" not found in signature def',
    ),
    (
        "POST",
        "/v1/models/half_plus_two:predict",
        {"signature_name": 7, "instances": [1.0]},
        400,
        'JSON Value: {\n    "signature_name": 7,\n    "instances": [\n        1.0\n    ]\n} not formatted '
        "correctly. "
        "'signature_name' key must be a string value.",
    ),
    (
        "POST",
        "/v1/models/half_plus_two:predict",
        {"instances": ["a"]},
        400,
        "Failed to process element: 0 of 'instances' list. Error: INVALID_ARGUMENT: JSON Value: \"a\" Type: "
        "String "
        "is not of expected type: float",
    ),
    (
        "POST",
        "/v1/models/half_plus_two:predict",
        {"instances": [[1.0], 2.0]},
        400,
        "Failed to process element: 1 of 'instances' list. Error: INVALID_ARGUMENT: Expecting shape [1] but "
        "got: []",
    ),
    (
        "POST",
        "/v1/models/half_plus_two:predict",
        {"instances": [{"y": 1.0}]},
        400,
        "Failed to process element: 0 key: y of 'instances' list. Error: INVALID_ARGUMENT: JSON object: "
        "does not "
        "have named input: y",
    ),
    (
        "POST",
        "/v1/models/half_plus_two:regress",
        {"signature_name": "regress_x_to_y"},
        400,
        'JSON Value: {\n    "signature_name": "regress_x_to_y"\n} When method is classify, key \'examples\' '
        "is "
        "expected and was not found",
    ),
    (
        "POST",
        "/v1/models/half_plus_two:classify",
        {"signature_name": "nope", "examples": [{"x": 1.0}]},
        400,
        "No signature was found with the name: nope",
    ),
]


@pytest.mark.parametrize(
    ("method", "path", "body", "status", "message"),
    ERROR_CASES,
    ids=[f"{c[0]} {c[1]} {str(c[2])[:30]}" for c in ERROR_CASES],
)
def test_errors_have_tf_serving_codes_and_messages(double, method, path, body, status, message):
    code, raw = double.request(method, path, body)
    assert code == status
    assert raw == error(message)


def test_error_content_type_is_json(double):
    import urllib.error
    import urllib.request

    with pytest.raises(urllib.error.HTTPError) as caught:
        urllib.request.urlopen(double.rest_url + "/v1/models/nope", timeout=10)
    assert caught.value.code == 404
    assert caught.value.headers["Content-Type"] == "application/json"


def test_paths_outside_v1_are_not_found(double):
    code, _body = double.get("/healthz")
    assert code == 404


# -- Prometheus ---------------------------------------------------------------------------------------------


def test_prometheus_metrics_count_requests(double):
    for _ in range(3):
        assert double.post("/v1/models/half_plus_three:predict", {"instances": [1.0]})[0] == 200
    assert double.post("/v1/models/half_plus_three:predict", {"instances": ["x"]})[0] == 400
    code, body = double.get("/monitoring/prometheus/metrics")
    assert code == 200
    page = body.decode()
    assert "# TYPE :tensorflow:serving:request_count counter" in page
    lines = page.splitlines()
    ok = [
        line
        for line in lines
        if line.startswith(':tensorflow:serving:request_count{model_name="half_plus_three",status="OK"}')
    ]
    bad = [
        line
        for line in lines
        if line.startswith(
            ':tensorflow:serving:request_count{model_name="half_plus_three",status="INVALID_ARGUMENT"}'
        )
    ]
    assert len(ok) == 1 and int(ok[0].rsplit(" ", 1)[1]) >= 3
    assert bad == [
        ':tensorflow:serving:request_count{model_name="half_plus_three",status="INVALID_ARGUMENT"} 1'
    ]
    assert "# TYPE :tensorflow:serving:request_latency histogram" in page
    assert any(
        line.startswith(":tensorflow:cc:saved_model:load_attempt_count{") and 'status="success"' in line
        for line in lines
    )
