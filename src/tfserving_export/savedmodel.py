"""Read a SavedModel the way TF Serving does: inspect its signatures, validate that it will load.

TF Serving (``servables/tensorflow/saved_model_bundle_factory``) loads a version directory with
the C++ ``LoadSavedModel`` and the tag set of ``--saved_model_tags`` (default ``serve``): it needs
``saved_model.pb`` (or ``.pbtxt``), a MetaGraph whose tag set is exactly that set, the variables
the graph refers to, and then it restores them in a session. Clients address a signature by name,
``serving_default`` when they name none. :func:`validate_path` runs those same steps with
TensorFlow's session-based loader, which is the Python face of that C++ loader.
"""

from __future__ import annotations

import pathlib
from dataclasses import asdict, dataclass, field

from tfserving_export import _tf
from tfserving_export.errors import ExportError
from tfserving_export.repository import list_versions

DEFAULT_SIGNATURE = "serving_default"
SERVE_TAGS = ("serve",)
_VARIABLE_OPS = {"VariableV2", "Variable", "VarHandleOp", "VarHandleOpV2"}
SAVEDMODEL_FILES = ("saved_model.pb", "saved_model.pbtxt")


def find_savedmodel_file(version_dir: pathlib.Path) -> pathlib.Path | None:
    for name in SAVEDMODEL_FILES:
        if (version_dir / name).is_file():
            return version_dir / name
    return None


def read_savedmodel(version_dir: pathlib.Path):
    """Parse saved_model.pb/.pbtxt into a SavedModel proto, or raise ExportError naming the problem."""
    if not version_dir.exists():
        raise ExportError(
            f"SavedModel directory {version_dir} does not exist",
            expected="a SavedModel version directory (saved_model.pb, variables/)",
            found="nothing at that path",
            fix="check the path",
        )
    if not version_dir.is_dir():
        raise ExportError(
            f"{version_dir} is not a SavedModel directory",
            expected="a directory with saved_model.pb and variables/",
            found="a file",
            fix="pass the version directory (for example /models/my_model/1), not a file inside it",
        )
    model_file = find_savedmodel_file(version_dir)
    if model_file is None:
        present = sorted(p.name for p in version_dir.iterdir())[:10]
        raise ExportError(
            f"{version_dir} is not a SavedModel",
            expected="saved_model.pb or saved_model.pbtxt in the directory",
            found=f"{', '.join(present) or 'an empty directory'}",
            fix="export the model as a SavedModel (tfserving-export from-graphdef / from-keras / from-onnx)",
        )
    _tf.tensorflow("reading a SavedModel")
    from google.protobuf import message, text_format
    from tensorflow.core.protobuf import saved_model_pb2

    proto = saved_model_pb2.SavedModel()
    try:
        if model_file.suffix == ".pbtxt":
            text_format.Parse(model_file.read_text(), proto)
        else:
            proto.ParseFromString(model_file.read_bytes())
    except (message.DecodeError, text_format.ParseError, UnicodeDecodeError) as exc:
        raise ExportError(
            f"{model_file} is not a valid SavedModel protobuf",
            expected="a file written by TensorFlow's SavedModel exporter",
            found=f"a parse error ({exc})",
            fix="re-export the model; the file may be truncated or of another format",
        ) from exc
    if not proto.meta_graphs:
        raise ExportError(
            f"{model_file} holds no MetaGraph",
            expected="at least one MetaGraph (tag set 'serve')",
            found="an empty SavedModel",
            fix="re-export the model",
        )
    return proto


def _tensor_info(info) -> dict:
    tf = _tf.tensorflow()
    from tensorflow.core.framework import types_pb2

    encoding = info.WhichOneof("encoding")
    entry = {
        "dtype": tf.dtypes.as_dtype(info.dtype).name if info.dtype else "invalid",
        "dtype_enum": types_pb2.DataType.Name(info.dtype),
        "shape": None if info.tensor_shape.unknown_rank else [int(d.size) for d in info.tensor_shape.dim],
        "tensor": info.name if encoding == "name" else None,
        "encoding": encoding,
    }
    return entry


def _describe(proto) -> list[dict]:
    graphs = []
    for meta_graph in proto.meta_graphs:
        signatures = {}
        for key in sorted(meta_graph.signature_def):
            sig = meta_graph.signature_def[key]
            signatures[key] = {
                "method_name": sig.method_name,
                "inputs": {name: _tensor_info(sig.inputs[name]) for name in sorted(sig.inputs)},
                "outputs": {name: _tensor_info(sig.outputs[name]) for name in sorted(sig.outputs)},
            }
        graphs.append({"tags": sorted(meta_graph.meta_info_def.tags), "signatures": signatures})
    return graphs


def resolve_version_dir(path: pathlib.Path) -> tuple[pathlib.Path, int | None]:
    """A version directory as given, or the latest version when path is a model base path."""
    if path.is_dir() and find_savedmodel_file(path) is None:
        versions = list_versions(path)
        if versions:
            latest = max(versions)
            return versions[latest], latest
    return path, int(path.name) if path.name.isdigit() else None


def inspect_savedmodel(path: str | pathlib.Path) -> dict:
    """Signatures, inputs, outputs, dtypes and shapes of a SavedModel (version dir or base path)."""
    version_dir, version = resolve_version_dir(pathlib.Path(path))
    proto = read_savedmodel(version_dir)
    return {"path": str(version_dir), "version": version, "meta_graphs": _describe(proto)}


def _shape_text(shape: list[int] | None) -> str:
    return "unknown rank" if shape is None else "[" + ", ".join(str(d) for d in shape) + "]"


def format_inspection(report: dict) -> str:
    lines = [f"SavedModel {report['path']}" + (f" (version {report['version']})"
                                                if report["version"] is not None else "")]
    for graph in report["meta_graphs"]:
        lines.append(f"MetaGraph tags: {', '.join(graph['tags']) or '(none)'}")
        for name, sig in graph["signatures"].items():
            lines.append(f"  signature {name!r} (method {sig['method_name'] or '(none)'})")
            for kind in ("inputs", "outputs"):
                lines.append(f"    {kind}:")
                if not sig[kind]:
                    lines.append("      (none)")
                for tensor_name, info in sig[kind].items():
                    where = f" <- {info['tensor']}" if kind == "inputs" else f" -> {info['tensor']}"
                    lines.append(
                        f"      {tensor_name}: {info['dtype']} ({info['dtype_enum']}) "
                        f"shape {_shape_text(info['shape'])}{where if info['tensor'] else ''}"
                    )
    return "\n".join(lines)


# --- validation --------------------------------------------------------------------------------


@dataclass
class Check:
    name: str
    status: str  # pass | warn | fail
    detail: str


@dataclass
class VersionReport:
    path: str
    version: int | None
    checks: list[Check] = field(default_factory=list)

    @property
    def valid(self) -> bool:
        return all(c.status != "fail" for c in self.checks)

    def add(self, name: str, status: str, detail: str) -> bool:
        self.checks.append(Check(name, status, detail))
        return status != "fail"


def _dummy_feed(tf, info) -> object:
    """Zeros of the signature's dtype and shape, unknown dimensions as 1 (strings: empty)."""
    import numpy as np

    dims = [1] if info.tensor_shape.unknown_rank else [d.size if d.size >= 0 else 1
                                                       for d in info.tensor_shape.dim]
    dtype = tf.dtypes.as_dtype(info.dtype)
    if dtype == tf.string:
        return np.full(dims, b"", dtype=object)
    return np.zeros(dims, dtype=dtype.as_numpy_dtype)


def _validate_version(version_dir: pathlib.Path, version: int | None, tags: tuple[str, ...],
                      signature_name: str | None, run: bool) -> VersionReport:
    report = VersionReport(str(version_dir), version)
    if version is None and version_dir.name and not version_dir.name.isdigit():
        report.add("version directory", "warn",
                   f"'{version_dir.name}' is not a number: TF Serving only loads numeric version "
                   "directories under the model's base path (for example 1 or 00000123)")
    try:
        proto = read_savedmodel(version_dir)
    except ExportError as exc:
        report.add("SavedModel file", "fail", str(exc))
        return report
    report.add("SavedModel file", "pass", f"{find_savedmodel_file(version_dir).name} parses")

    wanted = set(tags)
    meta_graph = next((mg for mg in proto.meta_graphs if set(mg.meta_info_def.tags) == wanted), None)
    found_sets = [sorted(mg.meta_info_def.tags) for mg in proto.meta_graphs]
    if meta_graph is None:
        report.add("tag set", "fail",
                   f"expected a MetaGraph with exactly the tag set {sorted(wanted)} (TF Serving's "
                   f"--saved_model_tags), found tag sets {found_sets}. Fix: re-export with the tag 'serve'")
        return report
    report.add("tag set", "pass", f"MetaGraph with tags {sorted(wanted)}")

    signatures = meta_graph.signature_def
    callable_sigs = sorted(k for k in signatures if not k.startswith("__"))
    if signature_name:
        if signature_name not in signatures:
            report.add("signature", "fail",
                       f"expected signature {signature_name!r}, found {callable_sigs or 'no signatures'}. "
                       "Fix: re-export with that signature name or ask for one of those")
            return report
        report.add("signature", "pass", f"signature {signature_name!r} present")
    elif DEFAULT_SIGNATURE in signatures:
        report.add("signature", "pass", f"signature {DEFAULT_SIGNATURE!r} present "
                                        f"(all: {', '.join(callable_sigs)})")
    elif callable_sigs:
        report.add("signature", "warn",
                   f"no {DEFAULT_SIGNATURE!r} signature: requests must name one of {callable_sigs}")
    else:
        report.add("signature", "fail",
                   "expected at least one signature, found none: TF Serving loads the model but no "
                   "request can address it. Fix: re-export with a signature")
        return report

    nodes = {node.name for node in meta_graph.graph_def.node}
    dangling = []
    for key in callable_sigs:
        sig = signatures[key]
        for kind, tensors in (("input", sig.inputs), ("output", sig.outputs)):
            for alias, info in tensors.items():
                if info.WhichOneof("encoding") == "name" and info.name.split(":")[0] not in nodes:
                    dangling.append(f"{key}.{kind} {alias} -> {info.name}")
    if dangling:
        report.add("signature tensors", "fail",
                   "expected every signature tensor to be a node of the graph, found missing: "
                   + "; ".join(dangling) + ". Fix: re-export the model")
        return report
    report.add("signature tensors", "pass", "every signature tensor exists in the graph")

    needs_variables = any(node.op in _VARIABLE_OPS for node in meta_graph.graph_def.node)
    index = version_dir / "variables" / "variables.index"
    if needs_variables and not index.is_file():
        report.add("variables", "fail",
                   f"expected {index} (the graph has variables), found none. Fix: copy the whole "
                   "SavedModel directory, variables/ included")
        return report
    report.add("variables", "pass",
               "variables/variables.index present" if needs_variables else "graph has no variables")

    tf = _tf.tensorflow("validating a SavedModel")
    graph = tf.Graph()
    with graph.as_default(), tf.compat.v1.Session(graph=graph) as session:
        try:
            tf.compat.v1.saved_model.loader.load(session, list(tags), str(version_dir))
        except Exception as exc:  # TensorFlow raises many types; the message is what matters
            report.add("load", "fail", f"TensorFlow could not load the SavedModel: "
                                       f"{type(exc).__name__}: {str(exc).strip().splitlines()[0]}")
            return report
        report.add("load", "pass", "loads and restores its variables with tags "
                                   f"{sorted(wanted)} (the loader TF Serving uses)")
        if run:
            key = signature_name or (DEFAULT_SIGNATURE if DEFAULT_SIGNATURE in signatures else callable_sigs[0])
            sig = signatures[key]
            try:
                feed = {info.name: _dummy_feed(tf, info) for info in sig.inputs.values()}
                fetch = {alias: info.name for alias, info in sig.outputs.items()}
                results = session.run(fetch, feed_dict=feed)
            except Exception as exc:
                report.add("run", "fail", f"signature {key!r} failed on zero-filled inputs: "
                                          f"{type(exc).__name__}: {str(exc).strip().splitlines()[0]}")
                return report
            shapes = ", ".join(f"{alias} {list(value.shape)}" for alias, value in sorted(results.items()))
            report.add("run", "pass", f"signature {key!r} answers zero-filled inputs: {shapes}")
    return report


def validate_path(path: str | pathlib.Path, *, tags: tuple[str, ...] = SERVE_TAGS,
                  signature_name: str | None = None, run: bool = False) -> dict:
    """Validate a version directory, or every version under a model base path.

    Returns {"path", "valid", "versions": [{"path", "version", "valid", "checks": [...]}], "notes"}.
    """
    path = pathlib.Path(path)
    notes: list[str] = []
    reports: list[VersionReport] = []
    if path.is_dir() and find_savedmodel_file(path) is None:
        versions = list_versions(path)
        others = sorted(
            p.name for p in path.iterdir()
            if p.is_dir() and not p.name.isdigit() and not p.name.startswith(".")
        )
        if others:
            notes.append(f"TF Serving ignores non-numeric directories here: {', '.join(others)}")
        if versions:
            for number in sorted(versions):
                reports.append(_validate_version(versions[number], number, tags, signature_name, run))
    if not reports:
        version = int(path.name) if path.name.isdigit() else None
        reports.append(_validate_version(path, version, tags, signature_name, run))
    versions_out = [{**asdict(r), "valid": r.valid} for r in reports]
    return {"path": str(path), "valid": all(r.valid for r in reports), "versions": versions_out,
            "notes": notes}


def format_validation(result: dict) -> str:
    lines = []
    for version in result["versions"]:
        label = f"version {version['version']}" if version["version"] is not None else "SavedModel"
        lines.append(f"{label}: {version['path']}")
        for check in version["checks"]:
            lines.append(f"  [{check['status']}] {check['name']}: {check['detail']}")
    lines.extend(f"note: {note}" for note in result["notes"])
    if result["valid"]:
        count = len(result["versions"])
        lines.append(f"VALID: TF Serving can load {result['path']}"
                     + (f" ({count} versions)" if count > 1 else ""))
    else:
        failed = [v for v in result["versions"] if not v["valid"]]
        first = next(c for c in failed[0]["checks"] if c["status"] == "fail")
        lines.append(f"INVALID: {failed[0]['path']}: {first['name']} failed: {first['detail']}")
    return "\n".join(lines)
