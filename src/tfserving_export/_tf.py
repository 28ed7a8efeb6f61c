"""Import TensorFlow (and friends) on demand, quietly, with an actionable error when it is missing."""

from __future__ import annotations

import contextlib
import importlib
import logging
import os
import sys
from collections.abc import Iterator
from types import ModuleType

from tfserving_export.errors import MissingDependency


def tensorflow(reason: str = "this command") -> ModuleType:
    """Return the tensorflow module, imported with its C++ and Python logging turned down."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    try:
        tf = importlib.import_module("tensorflow")
    except ImportError as exc:
        raise MissingDependency("tensorflow", "export", reason) from exc
    tf.get_logger().setLevel(logging.ERROR)
    return tf


def optional(package: str, extra: str, reason: str) -> ModuleType:
    try:
        return importlib.import_module(package)
    except ImportError as exc:
        raise MissingDependency(package, extra, reason) from exc


@contextlib.contextmanager
def stdout_to_stderr() -> Iterator[None]:
    """Send everything written to file descriptor 1 to 2 for a while.

    Converters (onnx2tf, Keras) print progress to stdout; the CLI's --json output and an Ansible
    module's result must be the only things on stdout.
    """
    sys.stdout.flush()
    try:
        saved = os.dup(1)
    except OSError:  # no real stdout (embedded interpreter): Python-level redirect is enough
        with contextlib.redirect_stdout(sys.stderr):
            yield
        return
    try:
        os.dup2(2, 1)
        with contextlib.redirect_stdout(sys.stderr):
            yield
    finally:
        sys.stdout.flush()
        os.dup2(saved, 1)
        os.close(saved)
