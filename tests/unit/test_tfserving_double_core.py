"""The TF Serving test double's pure parts: flag parsing, models.config checks, version discovery, the
availability-preserving policy, the manager's load/unload lifecycle and labels (a fake loader stands in
for TensorFlow here; the integration tests load real SavedModels)."""

from __future__ import annotations

import threading
import time

import pytest
from google.protobuf import text_format
from tensorflow_serving.apis import model_pb2
from tfserving_double import config, core, flags
from tfserving_double.errors import Code, TFError, not_found

# -- flags ---------------------------------------------------------------------------------------------------


def test_flags_defaults_forms_and_unknown_arguments():
    parsed = flags.parse([])
    assert (parsed.port, parsed.rest_api_port, parsed.model_name) == (8500, 0, "default")
    assert (parsed.file_system_poll_wait_seconds, parsed.max_num_load_retries) == (1, 5)
    assert parsed.load_retry_interval_micros == 60_000_000
    parsed = flags.parse(
        [
            "--port=9000",
            "--rest_api_port",
            "9001",
            "--enable_batching",
            "--allow_version_labels_for_unavailable_models=false",
            "--model_config_file=/m.config",
            "--bogus=1",
            "positional",
        ]
    )
    assert (parsed.port, parsed.rest_api_port, parsed.enable_batching) == (9000, 9001, True)
    assert parsed.allow_version_labels_for_unavailable_models is False
    assert parsed.model_config_file == "/m.config"
    assert parsed.unknown == ["--bogus=1", "positional"]


@pytest.mark.parametrize(
    "args", [["--port=abc"], ["--port=99999999999"], ["--enable_batching=maybe"], ["--port"]]
)
def test_malformed_flag_values_are_errors(args):
    with pytest.raises(flags.FlagError):
        flags.parse(args)


def test_usage_lists_every_flag():
    text = flags.usage()
    for flag in flags.FLAGS:
        assert f"--{flag.name}=" in text


# -- models.config -------------------------------------------------------------------------------------------


def model_config(text: str):
    return text_format.Parse(text, config.ModelServerConfig())


def test_parse_text_file_errors(tmp_path):
    with pytest.raises(TFError) as caught:
        config.parse_text_file(str(tmp_path / "missing.config"), config.ModelServerConfig)
    assert caught.value.code == Code.NOT_FOUND
    assert caught.value.message == f"{tmp_path / 'missing.config'}; No such file or directory"
    bad = tmp_path / "bad.config"
    bad.write_text("improperly formatted file")
    with pytest.raises(TFError) as caught:
        config.parse_text_file(str(bad), config.ModelServerConfig)
    assert (caught.value.code, caught.value.message) == (
        Code.INVALID_ARGUMENT,
        f"Invalid protobuf file: '{bad}'",
    )


def test_monitoring_and_batching_protos_parse_tf_serving_files():
    monitoring = text_format.Parse(
        'prometheus_config: { enable: true, path: "/metrics" }', config.MonitoringConfig()
    )
    assert monitoring.prometheus_config.enable and monitoring.prometheus_config.path == "/metrics"
    batching = text_format.Parse(
        "max_batch_size { value: 128 } batch_timeout_micros { value: 0 } num_batch_threads { value: 8 }",
        config.BatchingParameters(),
    )
    assert batching.max_batch_size.value == 128 and batching.num_batch_threads.value == 8


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (
            'model_config_list { config { name: "m" base_path: "/a" } config { name: "m" base_path: "/b" } }',
            "Illegal to list model m multiple times in config list",
        ),
        (
            'model_config_list { config { name: "m" base_path: "rel/m" model_platform: "tensorflow" } }',
            "Expected model m to have an absolute path or URI; got base_path()=rel/m",
        ),
    ],
)
def test_config_list_validation(text, message):
    with pytest.raises(TFError) as caught:
        config.validate_model_config_list(model_config(text).model_config_list)
    assert caught.value.message == message


def test_uri_base_paths_are_absolute():
    assert not config.uri_is_relative_path("gs://bucket/model")
    assert not config.uri_is_relative_path("/models/m")
    assert config.uri_is_relative_path("models/m")


def test_platform_rules():
    old = model_config(
        'model_config_list { config { name: "m" base_path: "/m" model_platform: "tensorflow" } }'
    )
    new = model_config('model_config_list { config { name: "m" base_path: "/m" model_platform: "onnx" } }')
    with pytest.raises(TFError) as caught:
        config.validate_no_models_change_platforms(old.model_config_list, new.model_config_list)
    assert caught.value.message == (
        "Illegal to change a model's platform. For model m platform was tensorflow and new platform "
        "requested is onnx"
    )
    with pytest.raises(TFError) as caught:
        config.check_routes(new.model_config_list)
    assert caught.value.message == "Model m requests unsupported platform onnx"
    with pytest.raises(TFError) as caught:
        config.check_transition(old, model_config("custom_model_config {}"))
    assert caught.value.code == Code.FAILED_PRECONDITION


# -- version discovery ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("child", "version"),
    [
        ("123", 123),
        ("00000123", 123),
        (" 7 ", 7),
        ("-3", -3),
        ("1.5", None),
        ("v1", None),
        ("", None),
        ("99999999999999999999", None),
    ],
)
def test_version_directory_names(child, version):
    assert core.parse_version(child) == version


def make_dirs(base, names):
    base.mkdir(parents=True, exist_ok=True)
    for name in names:
        (base / name).mkdir()


def test_poll_servable_policies(tmp_path, caplog):
    make_dirs(tmp_path / "m", ["1", "2", "00000010", "tmp", "3.bak"])
    latest = core.ServableToMonitor("m", str(tmp_path / "m"), "latest", num_versions=2)
    assert core.poll_servable(latest) == {10: str(tmp_path / "m" / "00000010"), 2: str(tmp_path / "m" / "2")}
    everything = core.ServableToMonitor("m", str(tmp_path / "m"), "all")
    assert sorted(core.poll_servable(everything)) == [1, 2, 10]
    specific = core.ServableToMonitor("m", str(tmp_path / "m"), "specific", specific=(1, 42))
    with caplog.at_level("WARNING", logger="tfserving_double"):
        assert sorted(core.poll_servable(specific)) == [1]
    assert "Version 42 of servable m, which was requested to be served as a 'specific' version" in caplog.text
    make_dirs(tmp_path / "empty", ["not-a-version"])
    with caplog.at_level("WARNING", logger="tfserving_double"):
        assert core.poll_servable(core.ServableToMonitor("e", str(tmp_path / "empty"), "latest")) == {}
    assert f"No versions of servable e found under base path {tmp_path / 'empty'}" in caplog.text


def test_poll_servable_missing_base_path(tmp_path):
    with pytest.raises(TFError) as caught:
        core.poll_servable(core.ServableToMonitor("m", str(tmp_path / "nope"), "latest"))
    assert caught.value.message == (
        f"Could not find base path {tmp_path / 'nope'} for servable m with error NOT_FOUND: "
        f"{tmp_path / 'nope'} not found"
    )


# -- the availability-preserving policy ----------------------------------------------------------------------


def harness(version, state, aspired):
    h = core.Harness("m", version, f"/m/{version}")
    h.state, h.aspired = state, aspired
    return h


R, N, L = core.Harness.READY, core.Harness.NEW, core.Harness.LOADING


@pytest.mark.parametrize(
    ("versions", "action"),
    [
        ([(1, R, True)], None),
        ([(1, R, False), (2, N, True)], ("load", 2)),  # new first: the old keeps serving
        ([(1, R, False), (2, L, True)], None),  # never unload the only serving version
        ([(1, R, False), (2, R, True)], ("unload", 1)),  # the new one serves: now unload
        ([(1, R, False), (2, R, False), (3, N, True)], ("unload", 1)),  # two unaspired serving
        ([(1, R, False)], ("unload", 1)),  # nothing aspired (model removed, directory deleted)
        ([(1, N, True), (2, N, True)], ("load", 2)),  # highest first
    ],
)
def test_availability_preserving_policy(versions, action):
    got = core.next_action([harness(*v) for v in versions])
    assert (None if got is None else (got[0], got[1].version)) == action


def test_policy_keeps_versions_listed_as_specific():
    assert core.next_action([harness(1, R, False), harness(2, R, True)], frozenset({1})) is None


# -- the manager and ServerCore with a fake loader -----------------------------------------------------------


class FakeServable:
    def __init__(self, version):
        self.version = version
        self.closed = False

    def close(self):
        self.closed = True


class FakeLoader:
    def __init__(self, failing=()):
        self.failing = set(failing)
        self.calls = []
        self.lock = threading.Lock()

    def __call__(self, name, version, path):
        with self.lock:
            self.calls.append((name, version))
        if version in self.failing:
            raise not_found("no SavedModel at ", path)
        return FakeServable(version)


def wait_state(monitor, name, version, state, timeout=10):
    event = threading.Event()

    def check():
        found = monitor.get_state(name, version)
        return found is not None and found.state == state

    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, f"{name}:{version} never reached {state}"
        event.wait(0.02)


def test_manager_transition_retries_and_failure():
    monitor = core.ServableStateMonitor()
    loader = FakeLoader(failing={3})
    manager = core.AspiredVersionsManager(
        monitor, loader, core.ManagerOptions(max_num_load_retries=2, load_retry_interval_seconds=0.01)
    )
    try:
        manager.set_aspired_versions("m", {1: "/m/1"})
        wait_state(monitor, "m", 1, core.AVAILABLE)
        with manager.handle("m", None) as servable:
            assert servable.version == 1
        manager.set_aspired_versions("m", {2: "/m/2"})
        wait_state(monitor, "m", 1, core.END)
        assert monitor.get_state("m", 2).state == core.AVAILABLE
        events = [(e.version, e.state) for e in monitor._events]
        assert events.index((2, core.AVAILABLE)) < events.index((1, core.UNLOADING))
        # A failing version: three attempts, then END with the error; version 2 keeps serving.
        manager.set_aspired_versions("m", {3: "/m/3"})
        wait_state(monitor, "m", 3, core.END)
        assert monitor.get_state("m", 3).health.message == "no SavedModel at /m/3"
        assert loader.calls.count(("m", 3)) == 3
        assert monitor.get_state("m", 2).state == core.AVAILABLE
        with manager.handle("m", None) as servable:
            assert servable.version == 2
        with pytest.raises(TFError) as caught, manager.handle("m", 3):
            pass
        assert caught.value.message == "Servable not found for request: Specific(m, 3)"
    finally:
        manager.stop()


def test_unload_waits_for_requests_in_flight():
    monitor = core.ServableStateMonitor()
    manager = core.AspiredVersionsManager(monitor, FakeLoader(), core.ManagerOptions())
    try:
        manager.set_aspired_versions("m", {1: "/m/1"})
        wait_state(monitor, "m", 1, core.AVAILABLE)
        with manager.handle("m", 1) as servable:
            manager.set_aspired_versions("m", {})
            wait_state(monitor, "m", 1, core.UNLOADING)
            assert not servable.closed  # quiescing: still usable by this request
        wait_state(monitor, "m", 1, core.END)
        assert servable.closed
    finally:
        manager.stop()


def test_server_core_labels_follow_the_availability_rule(tmp_path):
    make_dirs(tmp_path / "m", ["1", "2"])
    base = tmp_path / "m"
    text = f'model_config_list {{ config {{ name: "m" base_path: "{base}" model_platform: "tensorflow" '
    policy = "model_version_policy { specific { versions: 1 versions: 2 } }"
    server = core.ServerCore(core.CoreOptions(file_system_poll_wait_seconds=1), FakeLoader())
    try:
        with pytest.raises(TFError) as caught:
            server.reload_config(model_config(text + 'version_labels { key: "stable" value: 1 } } }'))
        assert caught.value.message == (
            "Request to assign label to version 1 of model m, which is not currently available for inference"
        )
    finally:
        server.stop()
    server = core.ServerCore(core.CoreOptions(file_system_poll_wait_seconds=1), FakeLoader())
    try:
        server.reload_config(model_config(text + policy + " } }"))
        wait_state(server.monitor, "m", 2, core.AVAILABLE)
        wait_state(server.monitor, "m", 1, core.AVAILABLE)
        server.reload_config(model_config(text + policy + ' version_labels { key: "stable" value: 1 } } }'))
        spec = model_pb2.ModelSpec(name="m", version_label="stable")
        assert server.resolve_version(spec) == ("m", 1)
        spec.version_label = "nope"
        with pytest.raises(TFError) as caught:
            server.resolve_version(spec)
        assert caught.value.message == "Unrecognized servable version label: nope"
        with pytest.raises(TFError) as caught:
            server.reload_config(
                model_config(text + policy + ' version_labels { key: "stable" value: 3 } } }')
            )
        assert caught.value.code == Code.FAILED_PRECONDITION
    finally:
        server.stop()


# -- ReloadConfig and the base path poll (what role tfserving's gRPC reload relies on) -----------------------
# server_core.cc AddModelsViaModelConfigList(): a reload that is not the first updates the source config,
# then WaitUntilModelsAvailable(new_models) - only models new to the list are waited for, and their
# versions come from FileSystemStoragePathSource's poll thread (file_system_storage_path_source.cc
# SetAspiredVersionsCallback: poll_wait 0 polls once at start-up, < 0 never). All of it under config_mu_.


def _reload_in_thread(server, text):
    outcome = {}

    def run():
        try:
            server.reload_config(model_config(text))
            outcome["done"] = time.monotonic()
        except TFError as err:  # pragma: no cover - reported through the assertion below
            outcome["error"] = err

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return thread, outcome


def _entry(name, base, extra=""):
    return f'config {{ name: "{name}" base_path: "{base}" model_platform: "tensorflow" {extra} }} '


def test_reload_adding_a_model_returns_after_the_next_base_path_poll(tmp_path):
    make_dirs(tmp_path / "a", ["1"])
    make_dirs(tmp_path / "b", ["1"])
    server = core.ServerCore(core.CoreOptions(file_system_poll_wait_seconds=2), FakeLoader())
    try:
        server.reload_config(model_config("model_config_list { " + _entry("a", tmp_path / "a") + "}"))
        began = time.monotonic()
        thread, outcome = _reload_in_thread(
            server, "model_config_list { " + _entry("a", tmp_path / "a") + _entry("b", tmp_path / "b") + "}"
        )
        thread.join(10)
        assert "error" not in outcome and "done" in outcome
        # It waited for the poll that found b/1, and returned once b was AVAILABLE.
        assert server.monitor.get_state("b", 1).state == core.AVAILABLE
        assert outcome["done"] - began <= 2.5
    finally:
        server.stop()


def test_reload_changing_versions_of_a_known_model_does_not_wait(tmp_path):
    make_dirs(tmp_path / "a", ["1", "2"])
    server = core.ServerCore(core.CoreOptions(file_system_poll_wait_seconds=30), FakeLoader())
    try:
        server.reload_config(model_config("model_config_list { " + _entry("a", tmp_path / "a") + "}"))
        began = time.monotonic()
        server.reload_config(
            model_config(
                "model_config_list { "
                + _entry("a", tmp_path / "a", "model_version_policy { specific { versions: 1 versions: 2 } }")
                + "}"
            )
        )
        assert time.monotonic() - began < 1  # no new model: nothing to wait for
        assert server.monitor.get_state("a", 1) is None  # version 1 waits for the next poll (30 s away)
    finally:
        server.stop()


@pytest.mark.parametrize("poll", [0, -1])
def test_reload_adding_a_model_blocks_when_base_paths_are_not_polled(tmp_path, poll):
    make_dirs(tmp_path / "a", ["1"])
    make_dirs(tmp_path / "b", ["1"])
    server = core.ServerCore(core.CoreOptions(file_system_poll_wait_seconds=poll), FakeLoader())
    first = None
    try:
        if poll == 0:  # the one-shot poll loads the start-up config
            server.reload_config(model_config("model_config_list { " + _entry("a", tmp_path / "a") + "}"))
        else:  # never polled: even the start-up config waits forever
            first, _ = _reload_in_thread(server, "model_config_list { " + _entry("a", tmp_path / "a") + "}")
            first.join(1.5)
            assert first.is_alive()
            return
        thread, outcome = _reload_in_thread(
            server, "model_config_list { " + _entry("a", tmp_path / "a") + _entry("b", tmp_path / "b") + "}"
        )
        thread.join(1.5)
        assert thread.is_alive() and outcome == {}  # no poll will ever list b's versions
    finally:
        server.stop()  # releases the waits
