"""tfserving_reload_config: main() against an in-process gRPC ModelService (tfserving_grpc_fake)."""

from __future__ import annotations

import sys

import grpc
import pytest
from ansible_collections.tfserving.fleet.plugins.module_utils.tfserving_common import TFServingError
from ansible_collections.tfserving.fleet.plugins.module_utils.tfserving_grpc import GrpcClient, messages
from ansible_collections.tfserving.fleet.plugins.module_utils.tfserving_reload import unreachable
from ansible_collections.tfserving.fleet.plugins.modules import tfserving_reload_config as module
from conftest import other_python, run_task
from tfserving_grpc_fake import FakeModelServer
from tfserving_http_fake import free_port, run_module

FAST = {"delay": 0.02, "backoff": 1.0, "max_delay": 0.05, "request_timeout": 2}
HP2 = {"name": "half_plus_two", "base_path": "/models/half_plus_two"}
TF2 = {"name": "tf2", "base_path": "/models/tf2"}


@pytest.fixture
def server():
    fake = FakeModelServer(disk={"/models/half_plus_two": [123, 124], "/models/tf2": [123]}).start()
    yield fake
    fake.stop()


def run(capsys, fake, **options):
    args = {"grpc_port": fake.port if fake else free_port(), **FAST, **options}
    return run_module(module.main, args, capsys)


# -- adding and removing models --------------------------------------------------------------------
def test_adding_a_model_reloads_once_then_is_idempotent(server, capsys):
    server.serve("half_plus_two", 124)
    failed, result = run(capsys, server, models=[HP2, TF2])
    assert not failed, result["msg"]
    assert result["changed"] is True and result["reloads"] == 1
    assert result["differences"] == [
        {"model": "tf2", "change": "add", "detail": "not served (unknown model); wanted from /models/tf2"}
    ]
    assert server.state("tf2") == {123: "AVAILABLE"}
    assert server.state("half_plus_two") == {124: "AVAILABLE"}
    sent = server.reloads()[0].config
    assert [c.name for c in sent.model_config_list.config] == ["half_plus_two", "tf2"]

    failed, result = run(capsys, server, models=[HP2, TF2])
    assert not failed and result["changed"] is False and result["reloads"] == 0
    assert result["differences"] == [] and len(server.reloads()) == 1
    assert "already serves" in result["msg"]


def test_removing_a_model_named_absent(server, capsys):
    server.serve("half_plus_two", 124)
    server.serve("tf2", 123)
    failed, result = run(capsys, server, models=[HP2], absent_models=["tf2"])
    assert not failed, result["msg"]
    assert result["changed"] is True
    assert result["differences"] == [
        {"model": "tf2", "change": "remove", "detail": "serves [123], wanted absent"}
    ]
    assert server.state("tf2") == {123: "END"}
    failed, result = run(capsys, server, models=[HP2], absent_models=["tf2"])
    assert not failed and result["changed"] is False


def test_a_removal_nobody_names_is_not_visible(server, capsys):
    # TF Serving cannot list its models: without absent_models the comparison sees no difference.
    server.serve("half_plus_two", 124)
    server.serve("tf2", 123)
    failed, result = run(capsys, server, models=[HP2])
    assert not failed and result["changed"] is False and server.reloads() == []
    failed, result = run(capsys, server, models=[HP2], force=True)
    assert not failed and result["changed"] is True and result["reloads"] == 1
    assert server.state("tf2") == {123: "END"}


def test_version_policy_differences(server, capsys):
    server.serve("half_plus_two", 123, 124)
    failed, result = run(capsys, server, models=[HP2])  # latest 1, the server serves two
    assert not failed, result["msg"]
    assert result["differences"] == [
        {
            "model": "half_plus_two",
            "change": "versions",
            "detail": "serves [123, 124], wants the latest version",
        }
    ]
    assert server.state("half_plus_two") == {123: "END", 124: "AVAILABLE"}
    specific = {**HP2, "version_policy": "specific", "versions": [123, 124]}
    failed, result = run(capsys, server, models=[specific])
    assert not failed and result["differences"][0]["detail"] == "serves [124], wants specific [123, 124]"
    failed, result = run(capsys, server, models=[specific])
    assert not failed and result["changed"] is False  # 123 LOADING or AVAILABLE counts as served


# -- labels ----------------------------------------------------------------------------------------
def test_label_on_a_new_version_moves_in_two_reloads(server, capsys):
    server.serve("half_plus_two", 123, labels={"stable": 123})
    server.loading_polls = 2
    wanted = {
        **HP2,
        "version_policy": "specific",
        "versions": [123, 124],
        "version_labels": {"stable": 123, "canary": 124},
    }
    # Sent in one go, TF Serving refuses the label (124 is not AVAILABLE yet): that is why two steps.
    with pytest.raises(TFServingError, match="Request to assign label to version 124"):
        client = GrpcClient("127.0.0.1", server.port)
        try:
            config = messages().ModelServerConfig()
            model = config.model_config_list.config.add(
                name="half_plus_two", base_path="/models/half_plus_two", model_platform="tensorflow")
            model.model_version_policy.specific.versions.extend([123, 124])
            model.version_labels["canary"] = 124
            client.reload_config(config, timeout=5)
        finally:
            client.close()
    server.stop()
    fresh = FakeModelServer(disk=server.disk).start()
    try:
        fresh.serve("half_plus_two", 123, labels={"stable": 123})
        fresh.loading_polls = 2
        failed, result = run(capsys, fresh, models=[wanted])
        assert not failed, result["msg"]
        assert result["reloads"] == 2 and result["changed"] is True
        assert {d["change"] for d in result["differences"]} == {"versions", "labels"}
        first, second = (r.config.model_config_list.config[0] for r in fresh.reloads())
        assert dict(first.version_labels) == {"stable": 123}
        assert dict(second.version_labels) == {"stable": 123, "canary": 124}
        assert 'key: "canary"' not in result["staged_config_text"]
        assert fresh.labels["half_plus_two"] == {"stable": 123, "canary": 124}
        failed, result = run(capsys, fresh, models=[wanted])
        assert not failed and result["changed"] is False
    finally:
        fresh.stop()


def test_label_moved_between_available_versions_is_one_reload(server, capsys):
    server.serve("half_plus_two", 123, 124, labels={"stable": 123})
    wanted = {**HP2, "version_policy": "specific", "versions": [123, 124], "version_labels": {"stable": 124}}
    failed, result = run(capsys, server, models=[wanted])
    assert not failed, result["msg"]
    assert result["reloads"] == 1
    assert result["differences"] == [
        {
            "model": "half_plus_two",
            "change": "labels",
            "detail": "label stable points at version 123, wants version 124",
        }
    ]
    assert server.labels["half_plus_two"] == {"stable": 124}


def test_label_on_a_version_that_fails_to_load_stops_after_the_first_reload(server, capsys):
    server.serve("half_plus_two", 123, labels={"stable": 123})
    server.loading_polls = 1
    server.failing[("half_plus_two", 124)] = "SavedModel file does not exist at: /models/half_plus_two/124"
    wanted = {**HP2, "version_policy": "specific", "versions": [123, 124], "version_labels": {"stable": 124}}
    failed, result = run(capsys, server, models=[wanted], timeout=10)
    assert failed
    assert result["reloads"] == 1 and result["changed"] is True
    assert (
        "The first reload was applied, but the labels (stable of half_plus_two -> 124) were not moved"
        in result["msg"]
    )
    assert "SavedModel file does not exist" in result["msg"]
    assert server.labels["half_plus_two"] == {"stable": 123}  # still where it was, and still serving
    assert server.state("half_plus_two")[123] == "AVAILABLE"


# -- check mode, diff ------------------------------------------------------------------------------
def test_check_mode_reports_and_sends_nothing(server, capsys):
    server.serve("half_plus_two", 123, labels={"stable": 123})
    wanted = {**HP2, "version_policy": "specific", "versions": [123, 124], "version_labels": {"canary": 124}}
    failed, result = run(capsys, server, models=[wanted, TF2], _ansible_check_mode=True, _ansible_diff=True)
    assert not failed, result["msg"]
    assert result["changed"] is True and result["reloads"] == 0
    assert server.reloads() == []
    assert result["msg"].startswith("Would reload (2 request(s)): ")
    assert result["diff"]["before"] == (
        "half_plus_two:\n  serving: [123]\n  labels: {canary: none}\ntf2: not known to the server\n"
    )
    assert result["diff"]["after"] == (
        "half_plus_two:\n  serving: specific [123, 124]\n  labels: {canary: 124}\n"
        "tf2:\n  serving: the latest version\n"
    )


def test_check_mode_without_difference(server, capsys):
    server.serve("half_plus_two", 124)
    failed, result = run(capsys, server, models=[HP2], _ansible_check_mode=True)
    assert not failed and result["changed"] is False


# -- config text and file --------------------------------------------------------------------------
CONFIG_TEXT = """
model_config_list {
  config { name: "half_plus_two" base_path: "/models/half_plus_two" model_platform: "tensorflow"
           model_version_policy { all {} } }
}
"""


def test_config_text_and_structured_models_merge(server, capsys):
    failed, result = run(capsys, server, config_text=CONFIG_TEXT, models=[TF2])
    assert not failed, result["msg"]
    assert server.state("half_plus_two") == {123: "AVAILABLE", 124: "AVAILABLE"}
    assert server.state("tf2") == {123: "AVAILABLE"}
    assert result["config_text"].index('name: "half_plus_two"') < result["config_text"].index('name: "tf2"')


def test_config_file(server, capsys, tmp_path):
    path = tmp_path / "models.config"
    path.write_text(CONFIG_TEXT)
    failed, result = run(capsys, server, config_file=str(path))
    assert not failed and result["reloads"] == 1
    failed, result = run(capsys, server, config_file=str(tmp_path / "missing.config"))
    assert failed and "config_file" in result["msg"] and "cannot be read" in result["msg"]


# -- refused before anything is sent ---------------------------------------------------------------
@pytest.mark.parametrize(
    ("options", "expected"),
    [
        ({"models": [HP2, HP2]}, "Illegal to list model half_plus_two multiple times in config list"),
        ({"models": [HP2], "config_text": CONFIG_TEXT}, "Illegal to list model half_plus_two multiple times"),
        (
            {"models": [{**HP2, "base_path": "models/x"}]},
            "Expected model half_plus_two to have an absolute path or URI; got base_path()=models/x",
        ),
        (
            {"models": [{**HP2, "model_platform": "pytorch"}]},
            'model_platform "pytorch"; TF Serving knows only',
        ),
        ({"models": [{**HP2, "model_platform": ""}]}, "empty model_platform"),
        (
            {
                "models": [
                    {
                        **HP2,
                        "version_policy": "specific",
                        "versions": [123],
                        "version_labels": {"canary": 124},
                    }
                ]
            },
            "label canary of model half_plus_two points at version 124, which its specific policy [123] "
            "does not load",
        ),
        ({"models": [{**HP2, "version_policy": "specific"}]}, "specific version policy without versions"),
        (
            {"models": [{**HP2, "num_versions": 2, "version_policy": "all"}]},
            "num_versions goes with version_policy",
        ),
        ({"models": []}, "lists no model"),
        ({"config_text": "model_config_list { config { name: 'x' "}, "not a valid ModelServerConfig"),
        ({"config_text": "custom_model_config { }"}, "holds a custom_model_config"),
        (
            {"config_text": 'model_config_list { config { name: "x" base_path: "/x" platform: "tf" } }'},
            'no field named "platform"',
        ),
        ({"models": [HP2], "timeout": 0}, "timeout must be > 0"),
        ({"models": [{**HP2, "version_labels": {"stable": "abc"}}]}, "stable"),
    ],
)
def test_invalid_configs_are_refused_before_anything_is_sent(server, capsys, options, expected):
    failed, result = run(capsys, server, **options)
    assert failed
    assert expected in result["msg"]
    assert server.requests == []
    assert "Traceback" not in result["msg"]


# -- the server refuses, hangs, or is not there ----------------------------------------------------
def test_server_rejection_is_quoted(server, capsys):
    server.serve("half_plus_two", 124)
    server.reject = (
        grpc.StatusCode.INVALID_ARGUMENT,
        "Illegal to change a model's platform. For model "
        "half_plus_two platform was tensorflow and new platform requested is other",
    )
    failed, result = run(capsys, server, models=[HP2, TF2])
    assert failed and result["changed"] is False and result["reloads"] == 0
    assert result["msg"].startswith("The server rejected the reload: Illegal to change a model's platform.")


def test_reload_deadline(server, capsys):
    server.serve("half_plus_two", 124)
    server.reload_delay = 1.5
    failed, result = run(capsys, server, models=[HP2, TF2], timeout=0.5)
    assert failed
    assert "did not finish the reload within" in result["msg"]
    assert "never when a base_path does not exist" in result["msg"] and "/models/tf2" in result["msg"]
    assert "/models/half_plus_two" not in result["msg"]  # only the added model can hang the reload
    assert result["changed"] is False


def test_server_not_listening(capsys):
    failed, result = run(capsys, None, models=[HP2], request_timeout=0.5)
    assert failed
    assert result["msg"].startswith("Could not read what the server serves: gRPC ")
    assert "nothing was sent" in result["msg"]


def test_missing_grpc_library(capsys, monkeypatch):
    monkeypatch.setattr(module, "HAS_GRPC", False)
    failed, result = run(capsys, None, models=[HP2])
    assert failed and "Failed to import the required Python library (grpcio)" in result["msg"]


def test_missing_protobuf_library(capsys, monkeypatch):
    monkeypatch.setattr(module, "HAS_PROTOBUF", False)
    failed, result = run(capsys, None, models=[HP2])
    assert failed and "Failed to import the required Python library (protobuf)" in result["msg"]


def test_server_unavailable_during_the_reload(server, capsys):
    server.serve("half_plus_two", 124)
    server.reject = (grpc.StatusCode.UNAVAILABLE, "Socket closed")
    failed, result = run(capsys, server, models=[HP2, TF2])
    assert failed and result["changed"] is False
    assert result["msg"].startswith("The server could not be reached for the reload: ")
    assert "Socket closed" in result["msg"]


# -- when_unreachable=skip: only a server that was not reached leaves the config to the file poll ----
def test_skip_when_the_server_is_not_listening(capsys):
    # The role's case of a container created in this run, or a closed port: nothing sent, not failed.
    failed, result = run(capsys, None, models=[HP2], request_timeout=0.5, when_unreachable="skip")
    assert not failed, result["msg"]
    assert result["changed"] is False and result["reached"] is False and result["reloads"] == 0
    assert "nothing was sent" in result["msg"] and "next config poll" in result["msg"]


def test_skip_when_the_name_does_not_resolve(capsys):
    args = {"host": "tfs-no-such-host.invalid", "grpc_port": 8500, **FAST, "when_unreachable": "skip"}
    failed, result = run_module(module.main, {**args, "models": [HP2], "request_timeout": 1}, capsys)
    assert not failed, result["msg"]
    assert result["reached"] is False and result["changed"] is False


def test_reached_server_reloads_with_skip(server, capsys):
    server.serve("half_plus_two", 124)
    failed, result = run(capsys, server, models=[HP2, TF2], when_unreachable="skip")
    assert not failed, result["msg"]
    assert result["reached"] is True and result["changed"] is True and result["reloads"] == 1


@pytest.mark.parametrize(
    "code, message",
    [
        (grpc.StatusCode.INVALID_ARGUMENT, "Illegal to list model half_plus_two multiple times in config list"),
        (
            grpc.StatusCode.FAILED_PRECONDITION,
            "Request to assign label to version 124 of model half_plus_two, which is not currently "
            "available for inference",
        ),
        (grpc.StatusCode.UNKNOWN, "1 model(s) did not become available: {{name: tf2 version: 123}, }"),
    ],
)
def test_a_rejection_fails_even_with_skip(server, capsys, code, message):
    # The server answered: its verdict on the config is never "apply it from the file later".
    server.serve("half_plus_two", 124)
    server.reject = (code, message)
    failed, result = run(capsys, server, models=[HP2, TF2], when_unreachable="skip")
    assert failed and result["reached"] is True and result["reloads"] == 0
    assert result["msg"].startswith("The server rejected the reload: " + message)


def test_a_reload_past_its_deadline_fails_even_with_skip(server, capsys):
    # A reload the server took but did not finish is a server stuck on it (a base path it cannot see).
    server.serve("half_plus_two", 124)
    server.reload_delay = 1.5
    failed, result = run(capsys, server, models=[HP2, TF2], timeout=0.5, when_unreachable="skip")
    assert failed and "did not finish the reload within" in result["msg"]


def test_connection_lost_during_the_reload_is_skipped(server, capsys):
    server.serve("half_plus_two", 124)
    server.reject = (grpc.StatusCode.UNAVAILABLE, "Socket closed")
    failed, result = run(capsys, server, models=[HP2, TF2], when_unreachable="skip")
    assert not failed, result["msg"]
    assert result["changed"] is False and "next config poll" in result["msg"]


@pytest.mark.parametrize(
    "kind, code, sent, expected",
    [
        ("unreachable", "UNAVAILABLE", False, True),
        ("unreachable", "UNAVAILABLE", True, True),
        ("unreachable", "DEADLINE_EXCEEDED", False, True),  # no answer to the first status request
        ("unreachable", "DEADLINE_EXCEEDED", True, False),  # a reload the server never finished
        ("invalid", "INVALID_ARGUMENT", False, False),
        ("rejected", "FAILED_PRECONDITION", True, False),
        ("not_found", "NOT_FOUND", False, False),
    ],
)
def test_unreachable_decision(kind, code, sent, expected):
    assert unreachable(TFServingError(kind, "x", code=code), sent) is expected


# -- the action plugin: in Ansible's own process on the control node, else the module ----------------
def reload_in_playbook(tmp_path, port, interpreter, check=False, **options):
    """The task on the control node (delegated to the implicit localhost); returns (rc, result)."""
    task = {
        "name": "Config is reloaded",
        "tfserving.fleet.tfserving_reload_config": {"grpc_port": port, **FAST, **options},
        "delegate_to": "localhost",
        "vars": {"ansible_python_interpreter": interpreter},
    }
    return run_task(tmp_path, task, check=check, implicit_localhost=True)


def test_on_the_control_node_the_reload_runs_in_process_and_answers_as_the_module(server, tmp_path):
    server.serve("half_plus_two", 124)
    rc, here = reload_in_playbook(tmp_path, server.port, sys.executable, models=[HP2, TF2])
    assert rc == 0 and "invocation" not in here  # no module run: the module would echo its arguments
    assert here["changed"] is True and here["reloads"] == 1 and server.state("tf2") == {123: "AVAILABLE"}
    # Once more, both ways: nothing to do, the same answer.
    rc, here = reload_in_playbook(tmp_path, server.port, sys.executable, models=[HP2, TF2])
    assert rc == 0 and here["changed"] is False
    rc, module_run = reload_in_playbook(tmp_path, server.port, other_python(tmp_path), models=[HP2, TF2])
    assert rc == 0 and "invocation" in module_run
    del module_run["invocation"]
    assert here == module_run
    assert len(server.reloads()) == 1


def test_in_process_a_refusal_and_check_mode_are_the_modules(server, tmp_path):
    server.serve("half_plus_two", 124)
    rc, result = reload_in_playbook(tmp_path, server.port, sys.executable, check=True, models=[HP2, TF2])
    assert rc == 0 and result["changed"] is True and result["msg"].startswith("Would reload (1 request(s))")
    assert server.reloads() == []
    rc, result = reload_in_playbook(
        tmp_path, server.port, sys.executable, models=[HP2, {"name": "tf2", "base_path": "models/tf2"}]
    )
    assert rc == 2 and result["failed"] is True and "invocation" not in result
    assert result["msg"].startswith("The wanted config would be rejected or would harm the server: ")
    assert server.reloads() == []
