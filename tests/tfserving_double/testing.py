"""Helpers for tests that need the TF Serving TEST DOUBLE as a real process.

    from tfserving_double.testing import start_double

    with start_double(["--model_config_file=/tmp/models.config",
                       "--file_system_poll_wait_seconds=1"]) as double:
        status, body = double.get("/v1/models/half_plus_two")
        status, body = double.post("/v1/models/half_plus_two:predict", {"instances": [1.0]})
        channel = grpc.insecure_channel(double.grpc_target)

`start_double` picks free loopback ports (unless the arguments set --port/--rest_api_port), binds the
double to 127.0.0.1, waits until the REST port answers (TF Serving opens its ports only after the
initial loads settle), and stops the process afterwards. If the process exits first, DoubleExited
carries its exit code and output. `run_double` runs it to completion (for start-up failures).
Standard library only, so any test can import it.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import os
import pathlib
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request

PACKAGE_PARENT = pathlib.Path(__file__).resolve().parent.parent
# The real TF Serving test models, vendored in tests/data/tfserving.
TESTDATA = PACKAGE_PARENT / "data" / "tfserving"


def copy_model_version(model: str, version: str, dest) -> pathlib.Path:
    """Copy one version directory of a TESTDATA model (read-only there) to `dest`, writable."""
    dest = pathlib.Path(dest)
    dest.parent.mkdir(parents=True, exist_ok=True)
    shutil.copytree(TESTDATA / model / version, dest)
    for root, dirs, files in os.walk(dest):
        for name in dirs:
            os.chmod(os.path.join(root, name), 0o755)
        for name in files:
            os.chmod(os.path.join(root, name), 0o644)
    os.chmod(dest, 0o755)
    return dest


def write_models_config(path, models) -> pathlib.Path:
    """Write a models.config; models: [{"name", "base_path", optional "policy" (text), "labels" {}}]."""
    parts = ["model_config_list {"]
    for model in models:
        parts.append("  config {")
        parts.append(f'    name: "{model["name"]}"')
        parts.append(f'    base_path: "{model["base_path"]}"')
        parts.append(f'    model_platform: "{model.get("platform", "tensorflow")}"')
        if model.get("policy"):
            parts.append(f"    model_version_policy {{ {model['policy']} }}")
        for label, version in model.get("labels", {}).items():
            parts.append(f'    version_labels {{ key: "{label}" value: {version} }}')
        parts.append("  }")
    parts.append("}")
    path = pathlib.Path(path)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text("\n".join(parts) + "\n")
    os.replace(tmp, path)  # atomic: a polling server never reads half a file
    return path


class DoubleExited(RuntimeError):
    def __init__(self, returncode: int, output: str):
        super().__init__(f"tfserving_double exited with code {returncode} before its ports opened:\n{output}")
        self.returncode = returncode
        self.output = output


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


def _has_flag(args, name: str) -> bool:
    return any(a == f"--{name}" or a.startswith(f"--{name}=") for a in args)


def command(args=()) -> list[str]:
    return [sys.executable, "-m", "tfserving_double", *args]


def double_env(extra=None) -> dict:
    """The environment the double runs with: importable package, loopback bind, quieter TensorFlow."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(PACKAGE_PARENT), env.get("PYTHONPATH", "")) if p)
    env.setdefault("TFSERVING_DOUBLE_BIND_ADDRESS", "127.0.0.1")
    env.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    env.update(extra or {})
    return env


def run_double(args=(), timeout: float = 120, env=None) -> subprocess.CompletedProcess:
    """Run the double until it exits (start-up failures exit; a healthy server does not: use start_double)."""
    return subprocess.run(
        command(args), capture_output=True, text=True, timeout=timeout, env=double_env(env), check=False
    )


@dataclasses.dataclass
class Double:
    process: subprocess.Popen
    grpc_port: int
    rest_port: int
    log_path: pathlib.Path
    host: str = "127.0.0.1"

    @property
    def rest_url(self) -> str:
        return f"http://{self.host}:{self.rest_port}"

    @property
    def grpc_target(self) -> str:
        return f"{self.host}:{self.grpc_port}"

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def request(self, method: str, path: str, body=None, timeout: float = 30) -> tuple[int, bytes]:
        """One HTTP request to the REST port: (status, raw body). `body` may be bytes, str or JSON-able."""
        data = None
        if body is not None:
            data = body if isinstance(body, bytes) else (body if isinstance(body, str) else json.dumps(body))
            data = data.encode() if isinstance(data, str) else data
        req = urllib.request.Request(self.rest_url + path, data=data, method=method)
        if data is not None:
            req.add_header("Content-Type", "application/json")
        try:
            with urllib.request.urlopen(req, timeout=timeout) as resp:
                return resp.status, resp.read()
        except urllib.error.HTTPError as err:
            return err.code, err.read()

    def get(self, path: str, timeout: float = 30) -> tuple[int, bytes]:
        return self.request("GET", path, timeout=timeout)

    def post(self, path: str, body, timeout: float = 30) -> tuple[int, bytes]:
        return self.request("POST", path, body, timeout=timeout)

    def status(self, model: str) -> dict:
        """The model's status JSON, parsed ({} when the model is unknown)."""
        code, raw = self.get(f"/v1/models/{model}")
        return json.loads(raw) if code == 200 else {}

    def version_states(self, model: str) -> dict[int, str]:
        return {int(v["version"]): v["state"] for v in self.status(model).get("model_version_status", [])}

    def wait_for(self, predicate, timeout: float = 60, interval: float = 0.2, what: str = "condition"):
        """Poll `predicate()` until truthy; return its value or fail with the double's log."""
        deadline = time.monotonic() + timeout
        while True:
            value = predicate()
            if value:
                return value
            if self.process.poll() is not None:
                raise DoubleExited(self.process.returncode, self.log())
            if time.monotonic() > deadline:
                raise TimeoutError(
                    f"timed out after {timeout}s waiting for {what}; double log:\n{self.log()[-4000:]}"
                )
            time.sleep(interval)

    def stop(self, timeout: float = 10) -> int:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout)
        return self.process.returncode


def _port_answers(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=0.5):
            return True
    except OSError:
        return False


@contextlib.contextmanager
def start_double(args=(), *, timeout: float = 120, env=None, log_dir=None):
    """Start the double with tensorflow_model_server flags; yield a Double once its ports are open."""
    args = list(args)
    grpc_port = rest_port = None
    if not _has_flag(args, "port"):
        grpc_port = free_port()
        args.append(f"--port={grpc_port}")
    if not _has_flag(args, "rest_api_port"):
        rest_port = free_port()
        args.append(f"--rest_api_port={rest_port}")
    for i, arg in enumerate(args):
        for name in ("port", "rest_api_port"):
            value = None
            if arg.startswith(f"--{name}="):
                value = arg.split("=", 1)[1]
            elif arg == f"--{name}" and i + 1 < len(args):
                value = args[i + 1]
            if value is not None:
                if name == "port":
                    grpc_port = int(value)
                else:
                    rest_port = int(value)
    handle, log_name = tempfile.mkstemp(prefix="tfserving_double-", suffix=".log", dir=log_dir)
    log_path = pathlib.Path(log_name)
    with os.fdopen(handle, "wb") as log_file:
        process = subprocess.Popen(
            command(args),
            stdout=log_file,
            stderr=subprocess.STDOUT,
            env=double_env(env),
            start_new_session=True,
        )
    double = Double(process=process, grpc_port=grpc_port, rest_port=rest_port, log_path=log_path)
    try:
        ready_port = rest_port if rest_port else grpc_port
        double.wait_for(
            lambda: _port_answers(double.host, ready_port), timeout=timeout, what=f"port {ready_port} to open"
        )
        yield double
    finally:
        double.stop()
        with contextlib.suppress(OSError):
            log_path.unlink()
