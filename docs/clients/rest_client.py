#!/usr/bin/env python3
"""Call a model served by TensorFlow Serving over REST (port 8501), by name and signature.

    python rest_client.py --url http://gpu-t4-01.example.com:8501 --model ranker \
        --signature serving_default --label stable --instances '[[0.1, 0.7, 0.2]]'

Needs only `requests` (pip install requests). As a library:

    from rest_client import TFServingREST
    client = TFServingREST("http://gpu-t4-01.example.com:8501")
    client.predict("half_plus_two", [1.0, 2.0, 5.0])                  # -> [2.5, 3.0, 4.5]
    client.predict("half_plus_two", [1.0], label="canary")             # a labelled version
    client.predict("half_plus_two", {"x": [1.0]}, columnar=True)       # -> {"y": ...} or the one output
    client.status("half_plus_two")                                     # versions and their states
    client.label_version("half_plus_two", "stable")                    # -> 123

What TF Serving's REST API does, and this client relies on:
- POST /v1/models/NAME[/versions/N | /labels/L]:predict with {"signature_name": ..., "instances": [...]}
  (row format, answer {"predictions": ...}) or {"inputs": ...} (columnar, answer {"outputs": ...}).
- Errors come as {"error": "..."} with a 4xx/5xx status; the message is TF Serving's (for example
  "Servable not found for request: Specific(half_plus_two, 125)").
- GET /v1/models/NAME answers 200 whatever the state: read model_version_status, not the HTTP code.
  It lists every version even when the URL names a label; GET .../labels/L/metadata resolves a label.
"""

from __future__ import annotations

import argparse
import json
import sys

import requests


class TFServingError(RuntimeError):
    """TF Serving refused the request; `status` is the HTTP status, `message` TF Serving's error text."""

    def __init__(self, status: int, message: str):
        super().__init__(f"HTTP {status}: {message}")
        self.status = status
        self.message = message


class TFServingREST:
    def __init__(self, url: str, timeout: float = 10.0, session: requests.Session | None = None):
        self.url = url.rstrip("/")
        self.timeout = timeout
        # One session: keeps the TCP connection between requests (TF Serving's REST server is HTTP/1.1).
        self.session = session or requests.Session()

    def _model_path(self, model: str, version: int | None = None, label: str | None = None) -> str:
        if version is not None and label is not None:
            raise ValueError("give a version or a label, not both")
        path = f"{self.url}/v1/models/{model}"
        if version is not None:
            path += f"/versions/{int(version)}"
        elif label is not None:
            path += f"/labels/{label}"
        return path

    def _call(self, method: str, url: str, body=None):
        response = self.session.request(method, url, json=body, timeout=self.timeout)
        try:
            data = response.json()
        except ValueError:
            data = None
        if response.status_code != 200:
            message = data.get("error") if isinstance(data, dict) else None
            raise TFServingError(response.status_code, message or response.text.strip())
        if data is None:
            raise TFServingError(response.status_code, f"expected JSON, got {response.text[:200]!r}")
        return data

    def predict(
        self,
        model: str,
        data,
        signature_name: str = "serving_default",
        version: int | None = None,
        label: str | None = None,
        columnar: bool = False,
    ):
        """The predictions (row format) or outputs (columnar) of one Predict call."""
        key = "inputs" if columnar else "instances"
        body = {"signature_name": signature_name, key: data}
        answer = self._call("POST", self._model_path(model, version, label) + ":predict", body)
        return answer["outputs" if columnar else "predictions"]

    def status(self, model: str, version: int | None = None) -> list[dict]:
        """[{"version": "124", "state": "AVAILABLE", "status": {"error_code": "OK", ...}}, ...].

        TF Serving ignores a label in a status request (it lists every version): use label_version."""
        return self._call("GET", self._model_path(model, version))["model_version_status"]

    def label_version(self, model: str, label: str) -> int:
        """The version a label points at now (the metadata call resolves labels; status does not)."""
        return int(self.metadata(model, label=label)["model_spec"]["version"])

    def available_versions(self, model: str) -> list[int]:
        return sorted(int(v["version"]) for v in self.status(model) if v["state"] == "AVAILABLE")

    def metadata(self, model: str, version: int | None = None, label: str | None = None) -> dict:
        """Signatures with their inputs and outputs (names, dtypes, shapes)."""
        return self._call("GET", self._model_path(model, version, label) + "/metadata")


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description="Call a TF Serving model over REST.")
    parser.add_argument("--url", required=True, help="REST endpoint, for example http://HOST:8501")
    parser.add_argument("--model", required=True)
    parser.add_argument("--signature", default="serving_default")
    which = parser.add_mutually_exclusive_group()
    which.add_argument("--version", type=int)
    which.add_argument("--label")
    data = parser.add_mutually_exclusive_group(required=True)
    data.add_argument("--instances", help="JSON list, row format")
    data.add_argument("--inputs", help="JSON, columnar format ({input name: values})")
    data.add_argument(
        "--status", action="store_true", help="print the model's versions and states (with --label: its version)"
    )
    parser.add_argument("--timeout", type=float, default=10.0)
    args = parser.parse_args(argv)

    client = TFServingREST(args.url, timeout=args.timeout)
    try:
        if args.status:
            if args.label:
                result = {"label": args.label, "version": client.label_version(args.model, args.label)}
            else:
                result = client.status(args.model, args.version)
        else:
            columnar = args.inputs is not None
            result = client.predict(
                args.model,
                json.loads(args.inputs if columnar else args.instances),
                signature_name=args.signature,
                version=args.version,
                label=args.label,
                columnar=columnar,
            )
    except TFServingError as err:
        print(f"{args.model}: {err}", file=sys.stderr)
        return 1
    except requests.RequestException as err:
        print(f"{args.url}: no answer ({err})", file=sys.stderr)
        return 2
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
