"""The REST API on --rest_api_port (model_servers/http_server.cc, http_rest_api_handler.cc,
http_rest_api_util.cc): the same routes, the same regexes, the same bodies and status codes."""

from __future__ import annotations

import contextlib
import http.server
import logging
import re
import socketserver
import threading
import time
import urllib.parse

from tensorflow_serving.apis import get_model_status_pb2, model_pb2

from . import inference, jsonio
from .errors import Code, TFError, invalid_argument

LOG = logging.getLogger("tfserving_double")

PATH_REGEX = re.compile(r"/v1/.*", re.IGNORECASE | re.DOTALL)
PREDICTION_API_REGEX = re.compile(
    r"/v1/models/([^/:]+)(?:(?:/versions/(\d+))|(?:/labels/([^/:]+)))?:(classify|regress|predict)",
    re.IGNORECASE,
)
MODEL_STATUS_API_REGEX = re.compile(
    r"/v1/models(?:/([^/:]+))?(?:(?:/versions/(\d+))|(?:/labels/([^/:]+)))?(?:/(metadata))?", re.IGNORECASE
)

INT64_MAX = 2**63 - 1


class EarlyError(Exception):
    """ParseModelInfo() failures: TF Serving returns them before writing any JSON body."""

    def __init__(self, error: TFError):
        super().__init__(str(error))
        self.error = error


def _parse_version(text: str) -> int | None:
    if not text:
        return None
    value = int(text)
    if value > INT64_MAX:
        raise EarlyError(invalid_argument("Failed to convert version: ", text, " to numeric."))
    return value


def _model_spec(name: str, version: int | None, label: str | None):
    spec = model_pb2.ModelSpec(name=name)
    if version is not None:
        spec.version.value = version
    if label is not None:
        spec.version_label = label
    return spec


class RestApi:
    """ProcessRequest(): method + path + body -> (HTTP status, content type, body)."""

    def __init__(self, core, metrics, prometheus_path: str | None):
        self.core = core
        self.metrics = metrics
        self.prometheus_path = prometheus_path

    def handle(self, method: str, path: str, body: bytes) -> tuple[int, str, bytes]:
        if self.prometheus_path is not None and path == self.prometheus_path:
            return 200, "text/plain", self.metrics.page().encode("utf-8")
        if not PATH_REGEX.fullmatch(path):
            return 404, "text/html", b""
        try:
            output = self.process(method, path, body)
            return 200, "application/json", output.encode("utf-8", errors="surrogateescape")
        except EarlyError as early:
            return early.error.http_status, "application/json", b""
        except TFError as err:
            return (
                err.http_status,
                "application/json",
                jsonio.error_body(err.message).encode("utf-8", errors="surrogateescape"),
            )

    def process(self, method: str, path: str, body: bytes) -> str:
        malformed = invalid_argument("Malformed request: ", method, " ", path)
        if method == "POST":
            match = PREDICTION_API_REGEX.fullmatch(path)
            if match is None:
                raise malformed
            name, version_text, label, api = match.groups()
            subresource = None
        elif method == "GET":
            match = MODEL_STATUS_API_REGEX.fullmatch(path)
            if match is None:
                raise malformed
            name, version_text, label, subresource = match.groups()
            api = None
        else:
            raise malformed
        name = urllib.parse.unquote(name or "")
        version = _parse_version(version_text)
        label = urllib.parse.unquote(label) if label else None
        spec = _model_spec(name, version, label)
        if method == "POST":
            if api not in ("classify", "regress", "predict"):
                raise malformed  # the regex ignores case, the dispatch does not
            return self._timed(api, name, spec, body)
        if subresource:
            return self.metadata(spec)
        return self.status(spec)

    def _timed(self, api: str, name: str, spec, body: bytes) -> str:
        started = time.monotonic()
        code = Code.OK
        try:
            return getattr(self, api)(spec, body)
        except TFError as err:
            code = err.code
            raise
        finally:
            self.metrics.record_request(name, api, "REST", code.name, time.monotonic() - started)

    # -- GET --------------------------------------------------------------------------------------------
    def status(self, spec) -> str:
        if not spec.name:
            raise invalid_argument("Missing model name in request.")
        response = get_model_status_pb2.GetModelStatusResponse()
        for event in self.core.model_status(spec):
            entry = response.model_version_status.add()
            entry.version = event.version
            entry.state = event.state
            entry.status.SetInParent()  # ToStatusProto(): always present, OK too
            if event.health is not None:
                entry.status.error_code = int(event.health.code)
                entry.status.error_message = event.health.message
        return jsonio.status_to_json(response)

    def metadata(self, spec) -> str:
        if not spec.name:
            raise invalid_argument("Missing model name in request.")
        with self.core.servable(spec) as servable:
            out_spec = model_pb2.ModelSpec(name=spec.name)
            out_spec.version.value = servable.version
            return jsonio.metadata_to_json(out_spec, inference.signature_def_map(servable))

    # -- POST -------------------------------------------------------------------------------------------
    def predict(self, spec, body: bytes) -> str:
        with contextlib.ExitStack() as stack:
            held = []

            def tensorinfo(signature_name):
                servable = stack.enter_context(self.core.servable(spec))
                held.append(servable)
                return inference.rest_input_dtypes(servable, signature_name)

            signature_name, inputs, fmt = jsonio.parse_predict_request(body, tensorinfo)
            _name, outputs = inference.predict(held[0], signature_name, inputs)
            return jsonio.make_json_from_tensors(outputs, fmt)

    def classify(self, spec, body: bytes) -> str:
        from tensorflow.core.example import example_pb2

        signature_name, examples = jsonio.parse_classify_regress_request(body, example_pb2.Example)
        with self.core.servable(spec) as servable:
            _name, results = inference.classify(servable, signature_name, examples)
        return jsonio.make_json_from_classification(results)

    def regress(self, spec, body: bytes) -> str:
        from tensorflow.core.example import example_pb2

        signature_name, examples = jsonio.parse_classify_regress_request(body, example_pb2.Example)
        with self.core.servable(spec) as servable:
            _name, results = inference.regress(servable, signature_name, examples)
        return jsonio.make_json_from_regression(results)


class _Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "tfserving-double"
    sys_version = ""
    timeout = 120
    api: RestApi = None
    cors = False

    def _serve(self):
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length > 0 else b""
        path = urllib.parse.urlsplit(self.path).path
        try:
            status, content_type, payload = self.api.handle(self.command, path, body)
        except Exception:  # a bug in the double must not look like a TF Serving answer
            LOG.exception("REST handler error")
            status, content_type, payload = 500, "text/plain", b"tfserving_double internal error"
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        if self.cors:
            self.send_header("Access-Control-Allow-Origin", "*")
            self.send_header("Access-Control-Allow-Methods", "POST, GET")
            self.send_header("Access-Control-Allow-Headers", "Content-Type")
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(payload)

    do_GET = do_POST = do_PUT = do_DELETE = do_PATCH = do_HEAD = do_OPTIONS = _serve

    def log_message(self, format, *args):
        LOG.debug("REST %s", format % args)


class _Server(socketserver.ThreadingMixIn, http.server.HTTPServer):
    daemon_threads = True
    allow_reuse_address = True


class RestServer:
    def __init__(self, api: RestApi, host: str, port: int, cors: bool = False):
        handler = type("Handler", (_Handler,), {"api": api, "cors": cors})
        self.httpd = _Server((host, port), handler)
        self.thread = threading.Thread(target=self.httpd.serve_forever, name="tfs_double_rest", daemon=True)

    def start(self):
        self.thread.start()

    def stop(self):
        self.httpd.shutdown()
        self.httpd.server_close()
