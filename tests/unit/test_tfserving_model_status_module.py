"""tfserving_model_status: main() against a loopback HTTP server answering TF Serving's exact bodies."""

from __future__ import annotations

import datetime
import ssl
import threading

import pytest
from ansible_collections.tfserving.fleet.plugins.modules import tfserving_model_status as module
from tfserving_grpc_fake import FakeModelServer
from tfserving_http_fake import (
    Answer,
    FakeTFServing,
    err,
    free_port,
    metadata_body,
    ok,
    run_module,
    status_body,
)

FAST = {"delay": 0.02, "backoff": 1.0, "max_delay": 0.05}


@pytest.fixture
def fake():
    server = FakeTFServing().start()
    yield server
    server.stop()


def run(capsys, port, models, **options):
    args = {"rest_port": port, "models": models, **FAST, **options}
    return run_module(module.main, args, capsys)


def row(result, index=0):
    return result["models"][index]


# -- waiting until AVAILABLE -----------------------------------------------------------------------
def test_loading_then_available_waits_and_reports(fake, capsys):
    fake.status(
        "half_plus_two",
        ok(status_body((124, "START"), (123, "AVAILABLE"))),
        ok(status_body((124, "LOADING"), (123, "AVAILABLE"))),
        ok(status_body((124, "AVAILABLE"), (123, "AVAILABLE"))),
    )
    failed, result = run(capsys, fake.port, [{"name": "half_plus_two", "version": 124}])
    assert not failed, result["msg"]
    assert result["changed"] is False
    assert result["rounds"] == 3
    assert fake.count("GET", "/v1/models/half_plus_two") == 3
    assert row(result) == {
        "name": "half_plus_two",
        "label": None,
        "requested_version": 124,
        "version": 124,
        "state": "AVAILABLE",
        "error_code": "OK",
        "error_message": "",
        "available": True,
        "waited": row(result)["waited"],
        "reason": None,
    }
    assert row(result)["waited"] >= 0.03  # two delays of 0.02 s at least
    assert result["statuses"]["half_plus_two"][0] == {
        "version": 124,
        "state": "AVAILABLE",
        "error_code": "OK",
        "error_message": "",
    }


def test_newest_version_is_the_default_and_lingering_end_versions_are_ignored(fake, capsys):
    # 125 was deleted from disk (END, OK), 123 was retired by the policy: both linger in the status.
    fake.status("m", ok(status_body((125, "END"), (124, "AVAILABLE"), (123, "END"))))
    failed, result = run(capsys, fake.port, [{"name": "m"}])
    assert not failed, result["msg"]
    assert row(result)["version"] == 124 and row(result)["state"] == "AVAILABLE"
    assert result["rounds"] == 1


def test_a_version_that_is_end_is_not_available(fake, capsys):
    fake.status("m", ok(status_body((124, "AVAILABLE"), (123, "END"))))
    failed, result = run(capsys, fake.port, [{"name": "m", "version": 123}], timeout=0.1)
    assert failed
    assert "version 123 of model m is END (unloaded, not served)" in result["msg"]
    assert row(result)["state"] == "END" and row(result)["available"] is False


def test_all_versions_waits_for_every_live_version(fake, capsys):
    fake.status(
        "m",
        ok(status_body((124, "LOADING"), (123, "AVAILABLE"), (122, "END"))),
        ok(status_body((124, "AVAILABLE"), (123, "AVAILABLE"), (122, "END"))),
    )
    failed, result = run(capsys, fake.port, [{"name": "m", "all_versions": True}])
    assert not failed, result["msg"]
    assert [(r["version"], r["state"]) for r in result["models"]] == [(124, "AVAILABLE"), (123, "AVAILABLE")]
    assert result["rounds"] == 2


def test_success_needs_every_expectation_in_the_same_round(fake, capsys):
    # 123 was AVAILABLE while 124 loaded, then got unloaded: the check must not call that a success.
    fake.status(
        "m",
        ok(status_body((124, "LOADING"), (123, "AVAILABLE"))),
        ok(status_body((124, "AVAILABLE"), (123, "END"))),
    )
    failed, result = run(
        capsys, fake.port, [{"name": "m", "version": 123}, {"name": "m", "version": 124}], timeout=0.2
    )
    assert failed
    assert "Timed out" in result["msg"] and "version 123 of model m is END" in result["msg"]
    assert row(result, 1)["available"] is True and row(result, 0)["available"] is False


# -- failing at once -------------------------------------------------------------------------------
def test_end_with_error_fails_at_once_quoting_the_server(fake, capsys):
    message = (
        "Failed to load servable: SavedModel file does not exist at: "
        "/models/m/124/{saved_model.pbtxt|saved_model.pb}"
    )
    fake.status("m", ok(status_body((124, "END", "UNKNOWN", message), (123, "AVAILABLE"))))
    failed, result = run(capsys, fake.port, [{"name": "m", "version": 124}], timeout=30)
    assert failed
    assert result["rounds"] == 1 and result["elapsed"] < 5
    assert message in result["msg"]
    assert "version 124 of model m failed to load: state END, UNKNOWN" in result["msg"]
    assert row(result)["error_code"] == "UNKNOWN" and row(result)["error_message"] == message


def test_newest_version_failing_fails_the_default_check(fake, capsys):
    fake.status("m", ok(status_body((124, "END", "NOT_FOUND", "bad model"), (123, "AVAILABLE"))))
    failed, result = run(capsys, fake.port, [{"name": "m"}], timeout=30)
    assert failed and result["rounds"] == 1
    assert "version 124 of model m failed to load" in result["msg"] and "bad model" in result["msg"]


def test_all_versions_fails_on_a_failed_version(fake, capsys):
    fake.status("m", ok(status_body((124, "END", "UNKNOWN", "corrupt"), (123, "AVAILABLE"))))
    failed, result = run(capsys, fake.port, [{"name": "m", "all_versions": True}], timeout=30)
    assert failed and "corrupt" in result["msg"] and result["rounds"] == 1


def test_unknown_model_fails_at_once_quoting_the_404(fake, capsys):
    fake.status("nope", err(404, "Could not find any versions of model nope"))
    failed, result = run(capsys, fake.port, [{"name": "nope"}], timeout=30)
    assert failed and result["rounds"] == 1
    assert (
        "model nope is unknown to the server, which answered: Could not find any versions of model nope"
        in result["msg"]
    )


def test_one_unknown_model_among_good_ones_fails_and_reports_the_others(fake, capsys):
    fake.status("good", ok(status_body((1, "AVAILABLE"))))
    fake.status("nope", err(404, "Could not find any versions of model nope"))
    failed, result = run(capsys, fake.port, [{"name": "good"}, {"name": "nope"}])
    assert failed
    assert row(result, 0)["available"] is True
    assert "nope" in result["msg"] and "good" not in result["msg"]


# -- waiting, then giving up -----------------------------------------------------------------------
def test_unknown_version_waits_then_times_out_with_a_fix(fake, capsys):
    fake.status("m", ok(status_body((123, "AVAILABLE"))))
    failed, result = run(capsys, fake.port, [{"name": "m", "version": 125}], timeout=0.3)
    assert failed
    assert result["rounds"] > 2
    assert "Timed out after 0.3s waiting for version 125 of model m" in result["msg"]
    assert (
        "version 125 of model m is not known to the server (the server lists 123 AVAILABLE)" in result["msg"]
    )
    assert "directory named 125" in result["msg"]


def test_version_that_appears_later_is_waited_for(fake, capsys):
    fake.status(
        "m",
        ok(status_body((123, "AVAILABLE"))),
        ok(status_body((124, "START"), (123, "AVAILABLE"))),
        ok(status_body((124, "AVAILABLE"), (123, "UNLOADING"))),
    )
    failed, result = run(capsys, fake.port, [{"name": "m", "version": 124}])
    assert not failed and result["rounds"] == 3


def test_still_loading_at_the_deadline(fake, capsys):
    fake.status("m", ok(status_body((124, "LOADING"))))
    failed, result = run(capsys, fake.port, [{"name": "m", "version": 124}], timeout=0.25)
    assert failed
    assert 0.2 <= result["elapsed"] < 2
    assert "Timed out after 0.25s" in result["msg"] and "version 124 of model m is LOADING" in result["msg"]
    assert row(result)["state"] == "LOADING" and row(result)["reason"] == "version 124 of model m is LOADING"


def test_timeout_zero_is_one_round_without_sleeping(fake, capsys):
    fake.status("m", ok(status_body((124, "LOADING"))))
    failed, result = run(capsys, fake.port, [{"name": "m"}], timeout=0, delay=5)
    assert failed and result["rounds"] == 1 and result["elapsed"] < 1


def test_request_timeout_when_the_server_does_not_answer(fake, capsys):
    fake.status("m", Answer(200, status_body((1, "AVAILABLE")), delay=1.0))
    failed, result = run(capsys, fake.port, [{"name": "m"}], timeout=0.8, request_timeout=0.3)
    assert failed
    assert "the server does not answer" in result["msg"] and "no answer within" in result["msg"]


def test_connection_refused_while_the_server_starts(capsys):
    port = free_port()
    starting = FakeTFServing(port=port)
    starting.status("m", ok(status_body((1, "AVAILABLE"))))
    timer = starting.start_later(0.4)
    try:
        failed, result = run(capsys, port, [{"name": "m"}], timeout=10)
    finally:
        timer.join()
        starting.stop()
    assert not failed, result["msg"]
    assert result["rounds"] >= 3  # refused at least twice before the server listened
    assert result["elapsed"] >= 0.3


def test_connection_refused_until_the_deadline(capsys):
    failed, result = run(capsys, free_port(), [{"name": "m"}], timeout=0.2)
    assert failed
    assert "the server does not answer" in result["msg"] and "connection refused" in result["msg"]


def test_503_and_dropped_connections_are_waited_for(fake, capsys):
    fake.status(
        "m",
        err(503, "Server is not ready"),
        Answer(200, b"", close=True),
        ok(status_body((1, "AVAILABLE"))),
    )
    failed, result = run(capsys, fake.port, [{"name": "m"}])
    assert not failed, result["msg"]
    assert result["rounds"] == 3


# -- malformed answers -----------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("answer", "expected"),
    [
        (Answer(200, "<html><body>It works!</body></html>", "text/html"), "a body that is not JSON"),
        (ok('{"models": []}'), "without a model_version_status list (keys: models)"),
        (ok('["model_version_status"]'), "JSON that is not an object"),
        (
            ok('{"model_version_status": [{"version": "abc", "state": "AVAILABLE"}]}'),
            "not TF Serving's shape",
        ),
        (ok('{"model_version_status": [{"version": "1", "state": "READY"}]}'), "not TF Serving's shape"),
        (Answer(500, "<h1>Internal Server Error</h1>", "text/html"), "without TF Serving's error body"),
        (err(400, "Malformed request: GET /v1/models/m"), "answered HTTP 400: Malformed request"),
        (err(500, "Failed to convert proto to json"), "answered HTTP 500: Failed to convert proto to json"),
    ],
)
def test_malformed_or_refused_answers_fail_at_once(fake, capsys, answer, expected):
    fake.status("m", answer)
    failed, result = run(capsys, fake.port, [{"name": "m"}], timeout=30)
    assert failed
    assert result["rounds"] == 1
    assert expected in result["msg"]
    assert "Traceback" not in result["msg"]


# -- labels ----------------------------------------------------------------------------------------
def test_label_resolves_through_metadata_not_the_status_endpoint(fake, capsys):
    fake.status("m", ok(status_body((124, "AVAILABLE"), (123, "AVAILABLE"))))
    fake.on("GET", "/v1/models/m/labels/stable/metadata", ok(metadata_body("m", 123)))
    failed, result = run(capsys, fake.port, [{"name": "m", "label": "stable"}])
    assert not failed, result["msg"]
    assert row(result)["version"] == 123 and row(result)["label"] == "stable"
    # The status endpoint on /labels/ would list every version; the module never asks it.
    assert fake.count("GET", "/v1/models/m/labels/stable") == 0
    assert fake.count("GET", "/v1/models/m/labels/stable/metadata") == 1


def test_label_with_version_waits_for_the_label_to_move(fake, capsys):
    fake.status("m", ok(status_body((124, "AVAILABLE"), (123, "AVAILABLE"))))
    fake.on(
        "GET", "/v1/models/m/labels/canary/metadata", ok(metadata_body("m", 123)), ok(metadata_body("m", 124))
    )
    failed, result = run(capsys, fake.port, [{"name": "m", "label": "canary", "version": 124}])
    assert not failed, result["msg"]
    assert result["rounds"] == 2 and row(result)["version"] == 124


def test_label_that_never_moves_times_out_saying_where_it_points(fake, capsys):
    fake.status("m", ok(status_body((124, "AVAILABLE"), (123, "AVAILABLE"))))
    fake.on("GET", "/v1/models/m/labels/canary/metadata", ok(metadata_body("m", 123)))
    failed, result = run(capsys, fake.port, [{"name": "m", "label": "canary", "version": 124}], timeout=0.1)
    assert failed and "label canary of model m points at 123, not 124" in result["msg"]


def test_unknown_label_waits_then_quotes_the_server(fake, capsys):
    fake.status("m", ok(status_body((123, "AVAILABLE"))))
    fake.on(
        "GET", "/v1/models/m/labels/canary/metadata", err(400, "Unrecognized servable version label: canary")
    )
    failed, result = run(capsys, fake.port, [{"name": "m", "label": "canary"}], timeout=0.1)
    assert failed
    assert (
        "label canary of model m does not resolve: Unrecognized servable version label: canary"
        in result["msg"]
    )


def test_label_on_a_version_still_loading_is_followed_to_that_version(fake, capsys):
    fake.status(
        "m",
        ok(status_body((124, "LOADING"), (123, "AVAILABLE"))),
        ok(status_body((124, "AVAILABLE"), (123, "AVAILABLE"))),
    )
    fake.on(
        "GET",
        "/v1/models/m/labels/canary/metadata",
        err(404, "Servable not found for request: Specific(m, 124)"),
        ok(metadata_body("m", 124)),
    )
    failed, result = run(capsys, fake.port, [{"name": "m", "label": "canary"}])
    assert not failed, result["msg"]
    assert result["rounds"] == 2 and row(result)["version"] == 124


def test_label_on_a_failed_version_fails(fake, capsys):
    fake.status("m", ok(status_body((124, "END", "UNKNOWN", "load failed"), (123, "AVAILABLE"))))
    fake.on(
        "GET",
        "/v1/models/m/labels/canary/metadata",
        err(404, "Servable not found for request: Specific(m, 124)"),
    )
    failed, result = run(capsys, fake.port, [{"name": "m", "label": "canary"}], timeout=30)
    assert failed and result["rounds"] == 1 and "load failed" in result["msg"]


def test_names_and_labels_are_percent_encoded(fake, capsys):
    fake.status("my%20model", ok(status_body((7, "AVAILABLE"))))
    fake.on("GET", "/v1/models/my%20model/labels/a%2Fb/metadata", ok(metadata_body("my model", 7)))
    failed, result = run(capsys, fake.port, [{"name": "my model", "label": "a/b"}])
    assert not failed, result["msg"]


# -- options, modes --------------------------------------------------------------------------------
def test_check_mode_checks_the_same_and_reports_no_change(fake, capsys):
    fake.status("m", ok(status_body((1, "AVAILABLE"))))
    failed, result = run(capsys, fake.port, [{"name": "m"}], _ansible_check_mode=True)
    assert not failed and result["changed"] is False
    assert fake.count("GET", "/v1/models/m") == 1


@pytest.mark.parametrize(
    ("models", "options", "expected"),
    [
        ([{"name": "m", "version": 1, "all_versions": True}], {}, "mutually exclusive"),
        ([{"name": "m"}], {"timeout": -1}, "timeout must be >= 0, got -1.0"),
        ([{"name": "m"}], {"backoff": 0.5}, "backoff must be >= 1"),
        ([{"name": "m"}], {"rest_port": 70000}, "rest_port must be a TCP port"),
        ([], {}, "models must list at least one model"),
        ([{"name": "m", "version": -3}], {}, "models[0].version must be >= 0"),
    ],
)
def test_invalid_options_are_refused_before_any_request(fake, capsys, models, options, expected):
    failed, result = run(capsys, fake.port, models, **options)
    assert failed and expected in result["msg"]
    assert fake.requests == []


# -- https -----------------------------------------------------------------------------------------
@pytest.fixture
def tls_fake(tmp_path):
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=1))
        .not_valid_after(now + datetime.timedelta(hours=1))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName("localhost")]), critical=False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert_file, key_file = tmp_path / "cert.pem", tmp_path / "key.pem"
    cert_file.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_file.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
    )
    server = FakeTFServing()
    server.start()
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(str(cert_file), str(key_file))
    server._server.socket = context.wrap_socket(server._server.socket, server_side=True)
    server.status("m", ok(status_body((1, "AVAILABLE"))))
    yield server, str(cert_file)
    server.stop()


def test_https_with_the_ca_passes(tls_fake, capsys):
    server, ca = tls_fake
    failed, result = run(capsys, server.port, [{"name": "m"}], host="localhost", scheme="https", ca_path=ca)
    assert not failed, result["msg"]


def test_https_without_trust_fails_at_once_with_the_fix(tls_fake, capsys):
    server, _ = tls_fake
    failed, result = run(capsys, server.port, [{"name": "m"}], host="localhost", scheme="https", timeout=30)
    assert failed and result["rounds"] == 1
    assert "TLS failed" in result["msg"] and "ca_path" in result["msg"]


def test_https_without_validation_passes(tls_fake, capsys):
    server, _ = tls_fake
    failed, result = run(
        capsys, server.port, [{"name": "m"}], host="localhost", scheme="https", validate_certs=False
    )
    assert not failed, result["msg"]


# -- gRPC ------------------------------------------------------------------------------------------
@pytest.fixture
def grpc_fake():
    server = FakeModelServer().start()
    yield server
    server.stop()


def test_grpc_status_waits_for_loading_and_resolves_labels(grpc_fake, capsys):
    grpc_fake.serve("m", 123, labels={"stable": 123})
    grpc_fake.models["m"][124] = ["LOADING", "OK", "", 2]
    failed, result = run(
        capsys,
        1,
        [{"name": "m", "version": 124}, {"name": "m", "label": "stable"}],
        protocol="grpc",
        grpc_port=grpc_fake.port,
    )
    assert not failed, result["msg"]
    assert result["rounds"] == 3
    assert [(r["version"], r["state"]) for r in result["models"]] == [(124, "AVAILABLE"), (123, "AVAILABLE")]
    methods = [m for m, _ in grpc_fake.requests]
    assert "/tensorflow.serving.PredictionService/GetModelMetadata" in methods


def test_grpc_unknown_model_and_failed_version(grpc_fake, capsys):
    grpc_fake.serve("m", 123)
    grpc_fake.models["m"][124] = ["END", "UNKNOWN", "SavedModel file does not exist", 0]
    failed, result = run(
        capsys, 1, [{"name": "m", "version": 124}], protocol="grpc", grpc_port=grpc_fake.port
    )
    assert failed and "SavedModel file does not exist" in result["msg"]
    failed, result = run(capsys, 1, [{"name": "other"}], protocol="grpc", grpc_port=grpc_fake.port)
    assert failed and "Could not find any versions of model other" in result["msg"]


def test_grpc_server_not_listening_times_out(capsys):
    failed, result = run(
        capsys, 1, [{"name": "m"}], protocol="grpc", grpc_port=free_port(), timeout=0.3, request_timeout=0.2
    )
    assert failed and "the server does not answer" in result["msg"]
    assert "UNAVAILABLE" in result["msg"] or "DEADLINE_EXCEEDED" in result["msg"]


def test_grpc_missing_library_is_reported(capsys, monkeypatch):
    monkeypatch.setattr(module, "HAS_GRPC", False)
    failed, result = run(capsys, 1, [{"name": "m"}], protocol="grpc")
    assert failed and "Failed to import the required Python library (grpcio)" in result["msg"]


def test_rest_does_not_need_grpc(fake, capsys, monkeypatch):
    monkeypatch.setattr(module, "HAS_GRPC", False)
    monkeypatch.setattr(module, "HAS_PROTOBUF", False)
    fake.status("m", ok(status_body((1, "AVAILABLE"))))
    failed, result = run(capsys, fake.port, [{"name": "m"}])
    assert not failed, result["msg"]


def test_many_models_are_checked_in_one_round(fake, capsys):
    names = [f"model_{i}" for i in range(20)]
    for name in names:
        fake.status(name, ok(status_body((1, "AVAILABLE"))))
    failed, result = run(capsys, fake.port, [{"name": n} for n in names], timeout=0)
    assert not failed and result["rounds"] == 1
    assert len(fake.requests) == 20
    assert threading.active_count() < 50


def test_a_one_shot_check_gives_each_request_its_full_request_timeout(fake, capsys):
    fake.status("m", Answer(200, status_body((1, "AVAILABLE")), delay=0.7))
    failed, result = run(capsys, fake.port, [{"name": "m"}], timeout=0, request_timeout=3)
    assert not failed, result["msg"]
    assert result["rounds"] == 1
