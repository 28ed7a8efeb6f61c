"""Convert a model and publish it as the next (or a given) version of a TF Serving model.

One call does: check the source, plan the version directory, convert into a hidden staging
directory beside the versions, validate the result the way TF Serving loads it, compare its
predictions with the source model on random inputs, then rename it into place. Any failure
leaves the base path as it was. The CLI and the Ansible module ``tfserving_export`` both call
:func:`export`.
"""

from __future__ import annotations

import datetime
import os
import pathlib
import re
from dataclasses import dataclass, field

from tfserving_export import __version__, _tf, repository, savedmodel
from tfserving_export.errors import ExportError

FORMATS = ("graphdef", "keras", "onnx")
SOURCE_KINDS = {
    "graphdef": "a frozen TensorFlow graph (.pb)",
    "keras": "a Keras model file (.keras or .h5)",
    "onnx": "an ONNX model file (.onnx)",
}
# Signature keys become JSON keys in REST requests and placeholder names in the graph.
NAME_PATTERN = re.compile(r"^[A-Za-z_][A-Za-z0-9_.\-]*$")
# Random-input comparison between the source model and the exported SavedModel.
ATOL = 1e-4
RTOL = 1e-3


@dataclass
class ExportRequest:
    format: str
    source: pathlib.Path
    base_path: pathlib.Path
    version: int | None = None
    signature_name: str = savedmodel.DEFAULT_SIGNATURE
    inputs: list[tuple[str, str]] = field(default_factory=list)  # (new name, name in the source)
    outputs: list[tuple[str, str]] = field(default_factory=list)
    channels_last: bool = False  # onnx only
    verify: bool = True
    # JSON file of TF Serving REST predict bodies: written as assets.extra/tf_serving_warmup_requests.
    warmup_requests: pathlib.Path | None = None

    def params(self) -> dict:
        """What, besides the source bytes, decides the exported model (feeds the fingerprint)."""
        params = {
            "format": self.format,
            "signature_name": self.signature_name,
            "inputs": [list(pair) for pair in self.inputs],
            "outputs": [list(pair) for pair in self.outputs],
        }
        if self.format == "onnx":
            params["channels_last"] = self.channels_last
        if self.warmup_requests is not None:
            params["warmup_requests_sha256"] = repository.sha256_file(self.warmup_requests)
        return params


def parse_mapping(items: list[str] | dict | None, kind: str) -> list[tuple[str, str]]:
    """CLI 'NEW=OLD' strings (or 'OLD', keeping its name) or a module's {NEW: OLD} -> [(new, old)]."""
    if not items:
        return []
    pairs: list[tuple[str, str]] = []
    if isinstance(items, dict):
        pairs = [(str(new), str(old)) for new, old in items.items()]
    else:
        for item in items:
            new, sep, old = item.partition("=")
            if not sep:
                new, old = item.split(":")[0].split("/")[-1], item
            pairs.append((new.strip(), old.strip()))
    news = [new for new, _ in pairs]
    for new, old in pairs:
        if not NAME_PATTERN.match(new) or not old:
            raise ExportError(
                f"invalid {kind} mapping {new!r}={old!r}",
                expected=f"NEW=OLD with NEW a name like 'image' or 'scores' ({NAME_PATTERN.pattern})",
                found=f"{new!r}={old!r}",
                fix=f"pass --{kind} image=input:0 (or {kind}s: {{image: 'input:0'}} in the module)",
            )
    duplicates = sorted({n for n in news if news.count(n) > 1})
    if duplicates:
        raise ExportError(
            f"{kind} names are not unique",
            expected=f"each new {kind} name once",
            found=f"{', '.join(duplicates)} more than once",
            fix="give every tensor its own name",
        )
    return pairs


def _check_request(request: ExportRequest) -> None:
    if request.format not in FORMATS:
        raise ExportError("unknown source format", expected=" or ".join(FORMATS), found=repr(request.format),
                          fix="choose one of the formats above")
    if not NAME_PATTERN.match(request.signature_name or ""):
        raise ExportError(
            "invalid signature name",
            expected=f"a name like serving_default ({NAME_PATTERN.pattern})",
            found=repr(request.signature_name),
            fix="pass --signature-name serving_default or another plain name",
        )
    if request.warmup_requests is not None and not pathlib.Path(request.warmup_requests).is_file():
        raise ExportError(
            f"warm-up sample file {request.warmup_requests} does not exist",
            expected="a JSON file of TF Serving REST predict bodies",
            found="no file at that path",
            fix="check the path, or leave --warmup-requests out",
        )
    source = request.source
    if not source.exists():
        raise ExportError(
            f"source model {source} does not exist",
            expected=SOURCE_KINDS[request.format],
            found="no file at that path",
            fix="check the path (relative paths are resolved from the current directory)",
        )
    if not source.is_file():
        hint = ""
        if savedmodel.find_savedmodel_file(source):
            hint = "; it is already a SavedModel: copy it as a version directory and run 'validate'"
        raise ExportError(
            f"source model {source} is not a file",
            expected=SOURCE_KINDS[request.format],
            found=f"a directory{hint}",
            fix="pass the model file itself",
        )
    if not os.access(source, os.R_OK):
        raise ExportError(
            f"source model {source} is not readable",
            expected="read permission for the user running the export",
            found="permission denied",
            fix="fix the file's permissions or run as its owner",
        )


def plan(request: ExportRequest) -> repository.Plan:
    """Check the request and decide the version directory, without converting anything."""
    _check_request(request)
    digest = repository.sha256_file(request.source)
    fp = repository.fingerprint(digest, request.params())
    return repository.plan_version(request.base_path, request.version, fp)


def _random_feeds(signature, tf) -> dict | None:
    import numpy as np

    rng = np.random.default_rng(20240)
    feeds = {}
    for name, info in signature.inputs.items():
        if info.tensor_shape.unknown_rank:
            return None
        dims = [d.size if d.size >= 0 else 2 for d in info.tensor_shape.dim]
        dtype = tf.dtypes.as_dtype(info.dtype)
        if dtype.is_floating:
            feeds[name] = rng.standard_normal(dims).astype(dtype.as_numpy_dtype)
        elif dtype.is_integer:
            feeds[name] = rng.integers(0, 10, size=dims).astype(dtype.as_numpy_dtype)
        elif dtype.is_bool:
            feeds[name] = rng.integers(0, 2, size=dims).astype(bool)
        else:  # strings and others carry meaning random values do not have
            return None
    return feeds


def _align(reference, exported):
    """Compare in the exported layout: channels-last exports move axis 1 of ONNX outputs last."""
    import numpy as np

    reference = np.asarray(reference)
    if reference.shape != exported.shape and reference.ndim >= 3:
        moved = np.moveaxis(reference, 1, -1)
        if moved.shape == exported.shape:
            return moved
    return reference


def verify(model_dir: pathlib.Path, signature_name: str, reference) -> dict:
    """Run the exported signature as TF Serving would (session loader) against the source model."""
    tf = _tf.tensorflow("verifying the export")
    import numpy as np

    graph = tf.Graph()
    with graph.as_default(), tf.compat.v1.Session(graph=graph) as session:
        meta_graph = tf.compat.v1.saved_model.loader.load(session, list(savedmodel.SERVE_TAGS), str(model_dir))
        signature = meta_graph.signature_def[signature_name]
        feeds = _random_feeds(signature, tf)
        if feeds is None:
            return {"verified": False, "detail": "inputs of string or unknown-rank type: not compared"}
        got = session.run({name: info.name for name, info in signature.outputs.items()},
                          feed_dict={signature.inputs[name].name: value for name, value in feeds.items()})
    expected = reference(feeds)
    worst = 0.0
    for name, value in sorted(got.items()):
        if name not in expected:
            raise ExportError(
                f"exported output {name!r} has no counterpart in the source model",
                expected=f"outputs {sorted(expected)}", found=f"outputs {sorted(got)}",
                fix="report this as a bug in tfserving-export",
            )
        want = _align(expected[name], value)
        if want.shape != value.shape or not np.allclose(value, want, atol=ATOL, rtol=RTOL):
            diff = float(np.max(np.abs(value - want))) if want.shape == value.shape else float("inf")
            raise ExportError(
                f"the exported model disagrees with the source model on output {name!r}",
                expected=f"equal predictions (atol {ATOL}, rtol {RTOL}), shape {list(want.shape)}",
                found=f"shape {list(value.shape)}, largest difference {diff:.3g}",
                fix="the conversion changed the model; for ONNX try --channels-last or another opset",
            )
        if value.size:
            worst = max(worst, float(np.max(np.abs(value.astype(np.float64) - want.astype(np.float64)))))
    shapes = {name: list(np.shape(v)) for name, v in feeds.items()}
    return {"verified": True, "max_abs_diff": worst, "inputs": shapes,
            "detail": f"predictions equal the source model on random inputs {shapes} "
                      f"(largest difference {worst:.3g})"}


def _convert(request: ExportRequest, export_dir: pathlib.Path, scratch: pathlib.Path):
    if request.format == "graphdef":
        from tfserving_export import graphdef

        return graphdef.convert(request.source, export_dir, request.inputs, request.outputs,
                                request.signature_name)
    if request.format == "keras":
        from tfserving_export import keras_export

        return keras_export.convert(request.source, export_dir, request.inputs, request.outputs,
                                    request.signature_name)
    from tfserving_export import onnx_export

    return onnx_export.convert(request.source, export_dir, request.inputs, request.outputs,
                               request.signature_name, scratch=scratch, channels_last=request.channels_last)


def _signature_summary(model_dir: pathlib.Path, signature_name: str) -> dict:
    report = savedmodel.inspect_savedmodel(model_dir)
    for graph in report["meta_graphs"]:
        if graph["tags"] == list(savedmodel.SERVE_TAGS) and signature_name in graph["signatures"]:
            sig = graph["signatures"][signature_name]
            return {"name": signature_name, "inputs": sig["inputs"], "outputs": sig["outputs"],
                    "signatures": sorted(k for k in graph["signatures"] if not k.startswith("__"))}
    return {"name": signature_name, "inputs": {}, "outputs": {}, "signatures": []}


def export(request: ExportRequest, *, check_mode: bool = False) -> dict:
    """Convert and publish; return a JSON-ready result. Raises ExportError with nothing written."""
    request.source = request.source.expanduser().absolute()
    request.base_path = request.base_path.expanduser().absolute()
    decided = plan(request)
    result = {
        "changed": decided.changed,
        "format": request.format,
        "source": str(request.source),
        "base_path": str(decided.base_path),
        "version": decided.version,
        "path": str(decided.path),
        "signature_name": request.signature_name,
        "fingerprint": decided.fingerprint,
        "existing_versions": decided.existing_versions,
        "check_mode": check_mode,
    }
    if not decided.changed:
        result["msg"] = f"unchanged: {decided.reason} ({decided.path})"
        result["signature"] = _signature_summary(decided.path, request.signature_name)
        return result
    if check_mode:
        result["msg"] = f"would write version {decided.version} to {decided.path} ({decided.reason})"
        return result

    with repository.staging(decided.base_path) as scratch:
        export_dir = scratch / "savedmodel"
        reference = _convert(request, export_dir, scratch)
        tf = _tf.tensorflow()
        repository.write_provenance(export_dir, {
            "tool": f"tfserving-export {__version__}",
            "tensorflow": tf.__version__,
            "source": str(request.source),
            "source_sha256": repository.sha256_file(request.source),
            "params": request.params(),
            "fingerprint": decided.fingerprint,
            "created": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
        })
        validation = savedmodel.validate_path(export_dir, signature_name=request.signature_name)
        if not validation["valid"]:
            failed = next(c for c in validation["versions"][0]["checks"] if c["status"] == "fail")
            raise ExportError(
                "the converted model does not pass TF Serving's checks",
                expected="a SavedModel TF Serving loads",
                found=f"{failed['name']}: {failed['detail']}",
                fix="report this with the source model; nothing was written",
            )
        warmup_result = None
        if request.warmup_requests is not None:
            from tfserving_export import warmup

            warmup_result = warmup.write(export_dir, warmup.load_samples(request.warmup_requests),
                                         model_name=decided.base_path.name, signature_name=request.signature_name)
        verification = (verify(export_dir, request.signature_name, reference) if request.verify
                        else {"verified": False, "detail": "comparison skipped on request"})
        signature = _signature_summary(export_dir, request.signature_name)
        repository.publish(export_dir, decided)

    result["signature"] = signature
    result["verification"] = verification
    if warmup_result is not None:
        result["warmup"] = {"path": str(decided.path / warmup.REQUESTS_PATH), "records": warmup_result["records"]}
    result["msg"] = f"wrote version {decided.version} to {decided.path}"
    return result
