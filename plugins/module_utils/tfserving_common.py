# Copyright: the tfserving-ansible authors
# Apache License 2.0
"""Shared pieces of the TF Serving modules: one error type, version states, backoff.

Pure Python, standard library only, so that every module can import it on a bare host.
The REST client (``tfserving_rest``) and the gRPC client (``tfserving_grpc``) both turn what the
server says into the same plain shapes defined here, so the modules reason about one model of
TF Serving whichever protocol they used:

- a version status is a dict ``{"version": int, "state": str, "error_code": str,
  "error_message": str}``; states are TF Serving's names (``ModelVersionStatus.State``);
- every failure is a :class:`TFServingError` whose ``kind`` tells the caller whether waiting can
  help (``unreachable``) or not (``not_found``, ``rejected``, ``malformed``, ...);
- the connection options (host, ports, TLS, proxy) have one argument spec here, which the modules
  build theirs from, and one description in the doc fragments of ``plugins/doc_fragments``.
"""

import time

# ModelVersionStatus.State (tensorflow_serving/apis/get_model_status.proto).
STATE_NAMES = {0: "UNKNOWN", 10: "START", 20: "LOADING", 30: "AVAILABLE", 40: "UNLOADING", 50: "END"}
STATES = tuple(STATE_NAMES.values())

# The file TF Serving loads a SavedModel version from, at the top of its version directory.
SAVED_MODEL_FILES = ("saved_model.pb", "saved_model.pbtxt")

# tensorflow.error.Code (tensorflow/core/protobuf/error_codes.proto); the same numbers as gRPC's.
ERROR_CODE_NAMES = {
    0: "OK",
    1: "CANCELLED",
    2: "UNKNOWN",
    3: "INVALID_ARGUMENT",
    4: "DEADLINE_EXCEEDED",
    5: "NOT_FOUND",
    6: "ALREADY_EXISTS",
    7: "PERMISSION_DENIED",
    8: "RESOURCE_EXHAUSTED",
    9: "FAILED_PRECONDITION",
    10: "ABORTED",
    11: "OUT_OF_RANGE",
    12: "UNIMPLEMENTED",
    13: "INTERNAL",
    14: "UNAVAILABLE",
    15: "DATA_LOSS",
    16: "UNAUTHENTICATED",
}

# What a TFServingError's kind means for a caller that waits.
UNREACHABLE = "unreachable"  # connection refused/reset, timeout, 503: the server may still be starting
NOT_FOUND = "not_found"  # the server answered: no such model / version / servable
INVALID = "invalid"  # the server answered 400 / INVALID_ARGUMENT (e.g. unknown label)
REJECTED = "rejected"  # any other error the server answered with
MALFORMED = "malformed"  # the answer is not what TF Serving sends


class TFServingError(Exception):
    """Anything that went wrong talking to TF Serving, with the server's own words when it had some.

    ``kind`` is one of UNREACHABLE, NOT_FOUND, INVALID, REJECTED, MALFORMED; ``code`` is the HTTP
    status or the gRPC status name; ``server_message`` is the server's error text, unchanged.
    """

    def __init__(self, kind, message, code=None, server_message=None, url=None):
        super().__init__(message)
        self.kind = kind
        self.message = message
        self.code = code
        self.server_message = server_message
        self.url = url

    def __str__(self):
        return self.message


def version_status(version, state, error_code="OK", error_message=""):
    """One version's status in the shape every module returns."""
    return {
        "version": int(version),
        "state": state,
        "error_code": error_code,
        "error_message": error_message,
    }


def is_failed(status):
    """END with an error: the load failed for good (TF Serving does not retry it on later polls)."""
    return status["state"] == "END" and status["error_code"] != "OK"


def is_retired(status):
    """END with OK: unloaded on purpose (policy, removed directory, model removed from the config)."""
    return status["state"] == "END" and status["error_code"] == "OK"


def live_versions(statuses):
    """Versions the server is loading or serving (everything that is not END)."""
    return sorted(s["version"] for s in statuses if s["state"] != "END")


def describe_versions(statuses):
    """`124 AVAILABLE, 123 END` for messages, newest first like the server lists them."""
    if not statuses:
        return "no versions"
    parts = []
    for s in sorted(statuses, key=lambda s: -s["version"]):
        text = f"{s['version']} {s['state']}"
        if s["error_code"] != "OK":
            text += f" ({s['error_code']}: {s['error_message']})"
        parts.append(text)
    return ", ".join(parts)


class Backoff:
    """Delays between polling rounds: delay, delay*factor, ... capped at max_delay, never past the deadline.

    ``clock`` and ``sleep`` are injectable so the loop logic is testable without waiting.
    """

    def __init__(self, timeout, delay=1.0, factor=2.0, max_delay=10.0, clock=time.monotonic,
                 sleep=time.sleep):
        if timeout < 0 or delay <= 0 or factor < 1 or max_delay <= 0:
            raise ValueError(
                f"expected timeout >= 0, delay > 0, backoff >= 1 and max_delay > 0; got timeout={timeout} "
                f"delay={delay} backoff={factor} max_delay={max_delay}"
            )
        self.clock = clock
        self._sleep = sleep
        self.timeout = timeout
        self.start = clock()
        self.deadline = self.start + timeout
        self.delay = delay
        self.factor = factor
        self.max_delay = max_delay
        self.rounds = 0  # counted by the caller, one per round of requests

    def elapsed(self):
        return self.clock() - self.start

    def remaining(self):
        return max(0.0, self.deadline - self.clock())

    def wait(self):
        """Sleep before the next round; False when the deadline leaves no room for another round."""
        left = self.remaining()
        if left <= 0:
            return False
        self._sleep(min(self.delay, left))
        self.delay = min(self.delay * self.factor, self.max_delay)
        return True


# -- connection options ---------------------------------------------------------------------------------
# Each piece is documented once, in the doc fragment named beside it (plugins/doc_fragments);
# tests/unit/test_module_docs.py checks that every module's documented options match its argument spec.
SERVER_SPEC = dict(  # tfserving_server
    host=dict(type="str", default="127.0.0.1"),
)
REST_SPEC = dict(  # tfserving_rest
    rest_port=dict(type="int", default=8501),
    scheme=dict(type="str", choices=["http", "https"], default="http"),
    validate_certs=dict(type="bool", default=True),
)
GRPC_SPEC = dict(  # tfserving_grpc
    grpc_port=dict(type="int", default=8500),
    grpc_tls=dict(type="bool", default=False),
)
# tfserving_rest.only or tfserving_grpc.only; a module that talks both protocols words these itself.
TRANSPORT_SPEC = dict(
    ca_path=dict(type="path"),
    use_proxy=dict(type="bool", default=True),
)
REST_CONNECTION_SPEC = {**SERVER_SPEC, **REST_SPEC, **TRANSPORT_SPEC}
GRPC_CONNECTION_SPEC = {**SERVER_SPEC, **GRPC_SPEC, **TRANSPORT_SPEC}
