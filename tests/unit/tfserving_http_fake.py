"""A scripted HTTP server on loopback that answers with TensorFlow Serving's exact REST bodies.

Not a test double of TF Serving's behaviour (that is tests/tfserving_double/): each test scripts
the answers, in order, for the paths it expects, so every branch of the modules can be reached
deterministically, including the ones a real server only shows for an instant (LOADING) or after
a failure (END with an error). The bodies are byte-for-byte what TF Serving prints:

- status: protobuf's JSON printer with add_whitespace and always_print_primitive_fields
  (``http_rest_api_util.cc`` ToJsonString), one space per level, ``version`` as a string;
- metadata: model_spec and signature_def printed separately and concatenated the same way;
- errors and predict answers: rapidjson's PrettyWriter (4 spaces), predict arrays on one line
  (``util/json_tensor.cc``).

Also helpers to drive an Ansible module's main() in-process and read its JSON result.
"""

from __future__ import annotations

import json
import pathlib
import socket
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

TESTDATA = pathlib.Path(__file__).resolve().parents[1] / "data" / "tfserving"


# -- TF Serving's bodies ---------------------------------------------------------------------------
def status_body(*versions):
    """versions: (version, state[, error_code[, error_message]]), newest first as the server lists them."""
    entries = []
    for item in versions:
        version, state = item[0], item[1]
        code = item[2] if len(item) > 2 else "OK"
        message = item[3] if len(item) > 3 else ""
        entries.append(
            "  {\n"
            f'   "version": "{version}",\n'
            f'   "state": "{state}",\n'
            '   "status": {\n'
            f'    "error_code": "{code}",\n'
            f'    "error_message": {json.dumps(message)}\n'
            "   }\n"
            "  }"
        )
    return '{\n "model_version_status": [\n' + ",\n".join(entries) + "\n ]\n}\n"


def error_body(message):
    return '{\n    "error": ' + json.dumps(message) + "\n}"


def metadata_body(name, version):
    """TF Serving's metadata answer for half_plus_two (signature defs from the golden file)."""
    golden = json.loads((TESTDATA / "half_plus_two_model_metadata.json").read_text())
    spec = f'{{\n "name": "{name}",\n "signature_name": "",\n "version": "{version}"\n}}'
    signatures = json.dumps(golden["metadata"]["signature_def"], indent=1)
    return '{\n"model_spec":' + spec + ',\n"metadata": {"signature_def": ' + signatures + "}\n}\n"


def predictions_body(values, key="predictions"):
    """rapidjson PrettyWriter with single-line arrays, as TF Serving prints a row-format answer."""
    return '{\n    "' + key + '": [' + ", ".join(json.dumps(v) for v in values) + "\n    ]\n}"


# -- the server ----------------------------------------------------------------------------------------
class Answer:
    def __init__(self, status, body, content_type="application/json", delay=0.0, close=False):
        self.status = status
        self.body = body.encode("utf-8") if isinstance(body, str) else body
        self.content_type = content_type
        self.delay = delay
        self.close = close  # drop the connection without an answer


def ok(body):
    return Answer(200, body)


def err(status, message):
    return Answer(status, error_body(message))


class FakeTFServing:
    """Scripted answers per (method, path); the last answer of a script repeats."""

    def __init__(self, port=0):
        self.scripts = {}
        self.requests = []
        self.port = port
        self._server = None
        self._thread = None
        self._lock = threading.Lock()

    def on(self, method, path, *answers):
        with self._lock:
            self.scripts[(method, path)] = list(answers)
        return self

    def status(self, name, *answers):
        return self.on("GET", f"/v1/models/{name}", *answers)

    def count(self, method, path):
        return sum(1 for m, p, _ in self.requests if (m, p) == (method, path))

    def _next(self, method, path):
        with self._lock:
            script = self.scripts.get((method, path))
            if not script:
                return (
                    err(400, f"Malformed request: {method} {path}")
                    if path.startswith("/v1/")
                    else Answer(404, "<html>not found</html>", "text/html")
                )
            return script.pop(0) if len(script) > 1 else script[0]

    def start(self):
        fake = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def _answer(self):
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else b""
                fake.requests.append((self.command, self.path, body))
                answer = fake._next(self.command, self.path)
                if answer.delay:
                    time.sleep(answer.delay)
                if answer.close:
                    self.close_connection = True
                    self.connection.shutdown(socket.SHUT_RDWR)
                    return
                self.send_response(answer.status)
                self.send_header("Content-Type", answer.content_type)
                self.send_header("Content-Length", str(len(answer.body)))
                self.end_headers()
                self.wfile.write(answer.body)

            do_GET = _answer
            do_POST = _answer

            def log_message(self, *args):
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        self._server.daemon_threads = True
        self.port = self._server.server_address[1]
        self._thread = threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.05})
        self._thread.daemon = True
        self._thread.start()
        return self

    def start_later(self, seconds):
        """Start listening only after SECONDS (connection refused until then), like a server booting."""
        timer = threading.Timer(seconds, self.start)
        timer.daemon = True
        timer.start()
        return timer

    def stop(self):
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None


def free_port():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


# -- running a module ---------------------------------------------------------------------------------
def run_module(main, args, capsys):
    """Run an Ansible module's main() with ARGS; return (failed, result dict) from the JSON it printed."""
    import pytest
    from ansible.module_utils.testing import patch_module_args

    with patch_module_args(args), pytest.raises(SystemExit) as exit_info:
        main()
    out = capsys.readouterr().out
    result = json.loads(out)
    failed = bool(result.get("failed"))
    assert (exit_info.value.code != 0) == failed, (exit_info.value.code, result)
    return failed, result
