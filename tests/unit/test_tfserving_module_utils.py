"""Pure helpers of plugins/module_utils/tfserving_*: backoff schedule, names in paths, status parsing."""

from __future__ import annotations

import pytest
from ansible_collections.tfserving.fleet.plugins.module_utils.tfserving_common import (
    MALFORMED,
    Backoff,
    TFServingError,
    describe_versions,
)
from ansible_collections.tfserving.fleet.plugins.module_utils.tfserving_rest import model_path, parse_status_body


class FakeClock:
    def __init__(self):
        self.now = 100.0
        self.sleeps = []

    def __call__(self):
        return self.now

    def sleep(self, seconds):
        self.sleeps.append(round(seconds, 6))
        self.now += seconds


def test_backoff_grows_caps_and_stops_at_the_deadline():
    clock = FakeClock()
    backoff = Backoff(10, delay=1, factor=2, max_delay=3, clock=clock, sleep=clock.sleep)
    while backoff.wait():
        pass
    # 1, 2, 3 (capped), 3, then only what is left before the deadline.
    assert clock.sleeps == [1, 2, 3, 3, 1]
    assert backoff.elapsed() == 10 and backoff.remaining() == 0


def test_backoff_with_no_time_does_not_sleep():
    clock = FakeClock()
    backoff = Backoff(0, clock=clock, sleep=clock.sleep)
    assert backoff.wait() is False and clock.sleeps == []


@pytest.mark.parametrize("bad", [{"timeout": -1}, {"delay": 0}, {"factor": 0.5}, {"max_delay": 0}])
def test_backoff_refuses_nonsense(bad):
    options = {"timeout": 1, "delay": 1, "factor": 2, "max_delay": 1, **bad}
    with pytest.raises(ValueError, match="expected timeout >= 0"):
        Backoff(options.pop("timeout"), **options)


def test_model_path_encodes_names_versions_and_labels():
    assert model_path("half_plus_two") == "/v1/models/half_plus_two"
    assert model_path("m", version=124) == "/v1/models/m/versions/124"
    assert model_path("m", label="stable") == "/v1/models/m/labels/stable"
    assert model_path("a b/c:d", label="x/y") == "/v1/models/a%20b%2Fc%3Ad/labels/x%2Fy"
    assert model_path("m", version=0, label="ignored") == "/v1/models/m/versions/0"


def test_status_body_is_parsed_newest_first_with_defaults():
    body = {
        "model_version_status": [
            {"version": "123", "state": "END", "status": {"error_code": "OK", "error_message": ""}},
            {"version": "124", "state": "AVAILABLE"},  # printed without status by older servers
        ]
    }
    assert parse_status_body(body, "u") == [
        {"version": 124, "state": "AVAILABLE", "error_code": "OK", "error_message": ""},
        {"version": 123, "state": "END", "error_code": "OK", "error_message": ""},
    ]


@pytest.mark.parametrize(
    "body",
    [
        {},
        {"model_version_status": {}},
        {"model_version_status": ["x"]},
        {"model_version_status": [{"state": "AVAILABLE"}]},
        {"model_version_status": [{"version": "1", "state": "available"}]},
    ],
)
def test_status_body_that_is_not_tf_servings_shape(body):
    with pytest.raises(TFServingError) as info:
        parse_status_body(body, "http://h/v1/models/m")
    assert info.value.kind == MALFORMED and "http://h/v1/models/m" in info.value.message


def test_describe_versions_quotes_errors():
    text = describe_versions(
        [
            {"version": 1, "state": "END", "error_code": "OK", "error_message": ""},
            {"version": 2, "state": "END", "error_code": "UNKNOWN", "error_message": "bad"},
        ]
    )
    assert text == "2 END (UNKNOWN: bad), 1 END"
    assert describe_versions([]) == "no versions"
