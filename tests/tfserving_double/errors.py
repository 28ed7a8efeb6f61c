"""TensorFlow status codes as TF Serving uses them, and how it maps them onto HTTP and gRPC.

Mirrors `tensorflow/core/protobuf/error_codes.proto` (the codes), absl::Status::ToString ("CODE: msg"),
`model_servers/http_server.cc` ToHTTPStatusCode and `model_servers/grpc_status_util.cc`.
"""

from __future__ import annotations

import enum


class Code(enum.IntEnum):
    OK = 0
    CANCELLED = 1
    UNKNOWN = 2
    INVALID_ARGUMENT = 3
    DEADLINE_EXCEEDED = 4
    NOT_FOUND = 5
    ALREADY_EXISTS = 6
    PERMISSION_DENIED = 7
    RESOURCE_EXHAUSTED = 8
    FAILED_PRECONDITION = 9
    ABORTED = 10
    OUT_OF_RANGE = 11
    UNIMPLEMENTED = 12
    INTERNAL = 13
    UNAVAILABLE = 14
    DATA_LOSS = 15
    UNAUTHENTICATED = 16


# http_server.cc ToHTTPStatusCode().
HTTP_STATUS = {
    Code.OK: 200,
    Code.CANCELLED: 499,
    Code.UNKNOWN: 500,
    Code.INVALID_ARGUMENT: 400,
    Code.DEADLINE_EXCEEDED: 504,
    Code.NOT_FOUND: 404,
    Code.ALREADY_EXISTS: 409,
    Code.PERMISSION_DENIED: 403,
    Code.RESOURCE_EXHAUSTED: 429,
    Code.FAILED_PRECONDITION: 400,
    Code.ABORTED: 409,
    Code.OUT_OF_RANGE: 400,
    Code.UNIMPLEMENTED: 501,
    Code.INTERNAL: 500,
    Code.UNAVAILABLE: 503,
    Code.DATA_LOSS: 500,
    Code.UNAUTHENTICATED: 401,
}


class TFError(Exception):
    """A non-OK tensorflow::Status."""

    def __init__(self, code: Code, message: str):
        super().__init__(message)
        self.code = Code(code)
        self.message = message

    def __str__(self) -> str:
        # absl::Status::ToString(): "INVALID_ARGUMENT: message".
        return f"{self.code.name}: {self.message}"

    @property
    def http_status(self) -> int:
        return HTTP_STATUS[self.code]


def _join(parts) -> str:
    return "".join(str(p) for p in parts)


def invalid_argument(*parts) -> TFError:
    return TFError(Code.INVALID_ARGUMENT, _join(parts))


def not_found(*parts) -> TFError:
    return TFError(Code.NOT_FOUND, _join(parts))


def failed_precondition(*parts) -> TFError:
    return TFError(Code.FAILED_PRECONDITION, _join(parts))


def internal(*parts) -> TFError:
    return TFError(Code.INTERNAL, _join(parts))


def unknown(*parts) -> TFError:
    return TFError(Code.UNKNOWN, _join(parts))


def unavailable(*parts) -> TFError:
    return TFError(Code.UNAVAILABLE, _join(parts))


def unimplemented(*parts) -> TFError:
    return TFError(Code.UNIMPLEMENTED, _join(parts))
