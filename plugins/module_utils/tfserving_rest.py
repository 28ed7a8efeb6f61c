# Copyright: the tfserving-ansible authors
# Apache License 2.0
"""TF Serving's REST API through Ansible's own URL helpers (``ansible.module_utils.urls``).

Nothing beyond the Python standard library and ansible-core's module_utils is needed, so a module
using this runs on any managed host. Every answer is checked against the shape TF Serving sends
(``tensorflow_serving/model_servers/http_rest_api_handler.cc``): the status endpoint answers 200
in every state, so callers must read the body, and an error is ``{"error": "..."}`` with 400, 404,
500, 503 or 504. Anything else is reported as MALFORMED with an excerpt of what came back.
"""

import http.client
import inspect
import json
import socket
import ssl
import time
import urllib.error
from urllib.parse import quote

from ansible.module_utils.urls import Request, make_context
from ansible_collections.tfserving.fleet.plugins.module_utils.tfserving_common import (
    INVALID,
    MALFORMED,
    NOT_FOUND,
    REJECTED,
    STATES,
    UNREACHABLE,
    TFServingError,
    version_status,
)

# Request.open takes a ready TLS context from ansible-core 2.17 on; under 2.16 (the line for EL7
# fleets) it builds one per request, as it did before the client kept one.
_OPEN_TAKES_CONTEXT = "context" in inspect.signature(Request.open).parameters

EXCERPT = 300


def _excerpt(raw):
    if isinstance(raw, bytes):
        raw = raw.decode("utf-8", "replace")
    raw = raw.strip()
    return raw if len(raw) <= EXCERPT else raw[:EXCERPT] + "..."


def _transport_error(method, url, reason, timeout):
    """Classify a failure below HTTP: TLS fails at once, the rest may clear while the server starts."""
    if isinstance(reason, ssl.SSLError):
        return TFServingError(
            REJECTED,
            f"{method} {url}: TLS failed: {reason}. Expected a certificate this host trusts; set "
            "ca_path to the CA that signed it, or validate_certs=false for a test server.",
            url=url,
        )
    if isinstance(reason, ConnectionRefusedError):
        text = "connection refused"
    elif isinstance(reason, (socket.timeout, TimeoutError)):
        text = f"no answer within {timeout}s"
    else:
        # connection reset, remote closed without a response, name resolution, ...
        text = str(reason) or type(reason).__name__
    return TFServingError(UNREACHABLE, f"{method} {url}: {text}", url=url)


def model_path(name, version=None, label=None):
    """`/v1/models/NAME[/versions/V | /labels/L]`, names percent-encoded (TF Serving decodes them)."""
    path = "/v1/models/" + quote(str(name), safe="")
    if version is not None:
        path += f"/versions/{int(version)}"
    elif label is not None:
        path += "/labels/" + quote(str(label), safe="")
    return path


class RestClient:
    """A small TF Serving REST client; one instance per server (scheme://host:port)."""

    def __init__(self, host, port, scheme="http", timeout=10.0, validate_certs=True, use_proxy=True,
                 ca_path=None):
        if ":" in host and not host.startswith("["):
            host = f"[{host}]"  # IPv6 literal
        self.base_url = f"{scheme}://{host}:{int(port)}"
        self.timeout = timeout
        self.request_timeout = timeout  # the configured bound; `timeout` may shrink near a deadline
        self.validate_certs = validate_certs
        self.use_proxy = use_proxy
        self.ca_path = ca_path
        self.scheme = scheme
        self._context = None

    # -- transport ---------------------------------------------------------------------------
    def _ssl_context(self):
        """One TLS context per client. open_url builds one per request otherwise, and loading the CA
        store costs about 20 ms each time: most of a status round of 20 models."""
        if self._context is None:
            if self.scheme == "https":
                self._context = make_context(cafile=self.ca_path, validate_certs=self.validate_certs)
            else:
                self._context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)  # never used for http://
        return self._context

    def request(self, method, path, body=None, timeout=None):
        """Send one request; return (parsed JSON, seconds). Raise TFServingError for everything else."""
        url = self.base_url + path
        data = None
        headers = {"Accept": "application/json"}
        if body is not None:
            data = json.dumps(body).encode("utf-8")
            headers["Content-Type"] = "application/json"
        started = time.monotonic()
        try:
            response = Request().open(
                method,
                url,
                data=data,
                headers=headers,
                timeout=timeout or self.timeout,
                validate_certs=self.validate_certs,
                use_proxy=self.use_proxy,
                ca_path=self.ca_path,
                follow_redirects="none",
                http_agent="tfserving-ansible",
                **({"context": self._ssl_context()} if _OPEN_TAKES_CONTEXT else {}),
            )
            try:
                raw = response.read()
                status = response.getcode()
            finally:
                response.close()
        except urllib.error.HTTPError as err:
            raw = b""
            try:
                raw = err.read() or b""
            except (OSError, http.client.HTTPException):
                pass
            raise self._http_error(url, err.code, raw) from None
        except urllib.error.URLError as err:
            raise _transport_error(method, url, err.reason, timeout or self.timeout) from None
        except (OSError, http.client.HTTPException) as err:
            raise _transport_error(method, url, err, timeout or self.timeout) from None
        seconds = time.monotonic() - started
        if status != 200:
            raise self._http_error(url, status, raw)
        try:
            parsed = json.loads(raw.decode("utf-8"))
        except ValueError:
            raise TFServingError(
                MALFORMED,
                f"{method} {url} answered 200 with a body that is not JSON: {_excerpt(raw)!r}. Expected "
                "TF Serving's JSON; check that host and port point at TF Serving's REST port.",
                code=status,
                url=url,
            ) from None
        if not isinstance(parsed, dict):
            raise TFServingError(
                MALFORMED,
                f"{method} {url} answered 200 with JSON that is not an object: {_excerpt(raw)!r}",
                code=status,
                url=url,
            )
        return parsed, seconds

    @staticmethod
    def _http_error(url, status, raw):
        server_message = None
        try:
            parsed = json.loads(raw.decode("utf-8"))
            if isinstance(parsed, dict) and isinstance(parsed.get("error"), str):
                server_message = parsed["error"]
        except ValueError:
            pass
        if status in (502, 503, 504):
            # UNAVAILABLE / DEADLINE_EXCEEDED from TF Serving, or a proxy in front of a server that is
            # still starting: waiting can help.
            kind = UNREACHABLE
        elif server_message is None:
            kind = MALFORMED
        elif status == 404:
            kind = NOT_FOUND
        elif status == 400:
            kind = INVALID
        else:
            kind = REJECTED
        if server_message is not None:
            text = f"{url} answered HTTP {status}: {server_message}"
        else:
            text = f"{url} answered HTTP {status} without TF Serving's error body: {_excerpt(raw)!r}"
        return TFServingError(kind, text, code=status, server_message=server_message, url=url)

    # -- API -----------------------------------------------------------------------------------
    def model_status(self, name):
        """Every version TF Serving knows of model NAME, as version_status dicts, newest first."""
        body, _unused = self.request("GET", model_path(name))
        return parse_status_body(body, self.base_url + model_path(name))

    def label_version(self, name, label):
        """The version LABEL points at, as the server resolves it.

        The status endpoint ignores labels (GetModelStatusImpl only looks at ModelSpec.version, so
        `/labels/L` answers every version). The metadata endpoint resolves the label through
        ServerCore::GetServableHandle and names the version it served in `model_spec.version`.
        """
        path = model_path(name, label=label) + "/metadata"
        body, _unused = self.request("GET", path)
        spec = body.get("model_spec")
        version = spec.get("version") if isinstance(spec, dict) else None
        try:
            return int(version)
        except (TypeError, ValueError):
            raise TFServingError(
                MALFORMED,
                f"{self.base_url}{path} answered without a numeric model_spec.version (got {spec!r}); "
                "expected TF Serving's metadata answer.",
                url=self.base_url + path,
            ) from None

    def predict(self, name, body, version=None, label=None, verb="predict"):
        """POST `...:predict` (or classify/regress); return (parsed answer, seconds)."""
        return self.request("POST", model_path(name, version, label) + ":" + verb, body=body)


def parse_status_body(body, url):
    """Check a GetModelStatus JSON answer and turn it into version_status dicts."""
    entries = body.get("model_version_status")
    if not isinstance(entries, list):
        raise TFServingError(
            MALFORMED,
            "{} answered without a model_version_status list (keys: {}); expected TF Serving's status "
            "answer.".format(url, ", ".join(sorted(body)) or "none"),
            url=url,
        )
    result = []
    for entry in entries:
        try:
            status = entry.get("status") or {}
            state = entry["state"]
            if state not in STATES:
                raise ValueError(state)
            result.append(
                version_status(
                    int(entry["version"]),
                    state,
                    str(status.get("error_code", "OK")),
                    str(status.get("error_message", "")),
                )
            )
        except (AttributeError, KeyError, TypeError, ValueError):
            raise TFServingError(
                MALFORMED,
                "{} answered a model_version_status entry that is not TF Serving's shape: {!r} "
                "(expected version, state in {}, status).".format(url, entry, "/".join(STATES)),
                url=url,
            ) from None
    result.sort(key=lambda s: -s["version"])
    return result
