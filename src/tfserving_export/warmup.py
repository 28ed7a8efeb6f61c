"""Warm-up requests for TF Serving: ``<version>/assets.extra/tf_serving_warmup_requests``.

TF Serving (``servables/tensorflow/saved_model_warmup.cc``, ``saved_model_warmup_util.cc``) reads that
file when it loads a version with ``--enable_model_warmup`` (its default): a TFRecord file of
``tensorflow.serving.PredictionLog`` records, at most 1000, each replayed against the new version
before it becomes AVAILABLE. Lazy initialisation (graph optimisation, XLA, GPU kernels) then happens
during the load instead of in the first client requests. A file that is not TFRecord, a record that is
not a PredictionLog or a request the model refuses makes the load fail.

Sample inputs are given as TF Serving REST predict bodies, the format clients already send:
``{"instances": [...]}`` (row format) or ``{"inputs": ...}`` (columnar), optionally with
``signature_name``; a JSON list of such bodies gives one record each. They are converted to
``PredictRequest`` protos with the signature's dtypes, written, read back and run once against the
SavedModel in a session, so a record TF Serving would refuse is refused here first.
"""

from __future__ import annotations

import base64
import json
import os
import pathlib
import tempfile

from tfserving_export import _tf, savedmodel
from tfserving_export.errors import ExportError

REQUESTS_PATH = pathlib.Path("assets.extra") / "tf_serving_warmup_requests"
MAX_RECORDS = 1000  # WarmupConsts::kMaxNumRecords: the load fails beyond it


def _apis():
    _tf.tensorflow("writing warm-up requests")
    _tf.optional("tensorflow_serving.apis", "warmup", "writing warm-up requests")
    from tensorflow_serving.apis import model_pb2, predict_pb2, prediction_log_pb2

    return model_pb2, predict_pb2, prediction_log_pb2


def load_samples(path: pathlib.Path) -> list[dict]:
    """A JSON file holding one REST predict body or a list of them."""
    try:
        data = json.loads(pathlib.Path(path).read_text())
    except OSError as exc:
        raise ExportError(f"cannot read sample inputs {path}", expected="a readable JSON file",
                          found=exc.strerror or str(exc), fix="check the path") from exc
    except ValueError as exc:
        raise ExportError(f"sample inputs {path} are not JSON", expected="TF Serving REST predict bodies",
                          found=f"a parse error ({exc})",
                          fix='write {"instances": [...]} or a list of such bodies') from exc
    samples = data if isinstance(data, list) and all(isinstance(d, dict) for d in data) and data else [data]
    for index, sample in enumerate(samples):
        if not isinstance(sample, dict) or ("instances" in sample) == ("inputs" in sample):
            raise ExportError(
                f"sample {index + 1} in {path} is not a predict body",
                expected='an object with exactly one of "instances" (row format) or "inputs" (columnar)',
                found=json.dumps(sample)[:200],
                fix='write {"instances": [1.0, 2.0]} or {"inputs": {"x": [[1.0]]}}',
            )
    if len(samples) > MAX_RECORDS:
        raise ExportError("too many warm-up samples", expected=f"at most {MAX_RECORDS} (TF Serving's limit)",
                          found=str(len(samples)), fix="keep a few representative requests")
    return samples


def _decode_b64(value):
    if isinstance(value, dict) and set(value) == {"b64"}:
        return base64.b64decode(value["b64"])
    if isinstance(value, list):
        return [_decode_b64(v) for v in value]
    return value


def _signature(version_dir: pathlib.Path, name: str):
    proto = savedmodel.read_savedmodel(version_dir)
    for meta_graph in proto.meta_graphs:
        if set(meta_graph.meta_info_def.tags) == set(savedmodel.SERVE_TAGS):
            if name in meta_graph.signature_def:
                return meta_graph.signature_def[name]
            found = sorted(k for k in meta_graph.signature_def if not k.startswith("__"))
            raise ExportError(f"signature {name!r} is not in {version_dir}", expected="one of the model's signatures",
                              found=", ".join(found) or "no signatures", fix="set signature_name in the sample")
    raise ExportError(f"{version_dir} has no MetaGraph tagged 'serve'", expected="a SavedModel TF Serving loads",
                      found="other tag sets", fix="re-export the model")


def _named_inputs(sample: dict, signature, where: str) -> dict:
    names = sorted(signature.inputs)
    if "instances" in sample:
        rows = sample["instances"]
        if not isinstance(rows, list) or not rows:
            raise ExportError(f"{where}: instances must be a non-empty list", found=repr(rows)[:200])
        if all(isinstance(r, dict) for r in rows):
            return {key: [r.get(key) for r in rows] for key in sorted(rows[0])}
        if len(names) != 1:
            raise ExportError(f"{where}: unnamed instances need a signature with one input",
                              expected="instances as objects naming each input", found=f"inputs {names}")
        return {names[0]: rows}
    value = sample["inputs"]
    if isinstance(value, dict):
        return value
    if len(names) != 1:
        raise ExportError(f"{where}: unnamed inputs need a signature with one input",
                          expected="inputs as an object naming each input", found=f"inputs {names}")
    return {names[0]: value}


def build_records(version_dir: pathlib.Path, samples: list[dict], *, model_name: str = "",
                  signature_name: str = savedmodel.DEFAULT_SIGNATURE) -> list[bytes]:
    """Serialized PredictionLog records, one per sample, typed from the SavedModel's signature."""
    tf = _tf.tensorflow("writing warm-up requests")
    import numpy as np

    model_pb2, predict_pb2, prediction_log_pb2 = _apis()
    records = []
    for index, sample in enumerate(samples):
        where = f"sample {index + 1}"
        name = sample.get("signature_name") or signature_name
        signature = _signature(version_dir, name)
        named = _named_inputs(sample, signature, where)
        unknown = sorted(set(named) - set(signature.inputs))
        missing = sorted(set(signature.inputs) - set(named))
        if unknown or missing:
            raise ExportError(f"{where}: inputs do not match signature {name!r}",
                              expected=f"inputs {sorted(signature.inputs)}",
                              found=f"unknown {unknown}, missing {missing}", fix="name every input of the signature")
        request = predict_pb2.PredictRequest(model_spec=model_pb2.ModelSpec(name=model_name, signature_name=name))
        for key, value in sorted(named.items()):
            dtype = tf.dtypes.as_dtype(signature.inputs[key].dtype)
            try:
                array = np.asarray(_decode_b64(value), dtype=object if dtype == tf.string else dtype.as_numpy_dtype)
                request.inputs[key].CopyFrom(tf.make_tensor_proto(array, dtype=dtype))
            except (TypeError, ValueError) as exc:
                raise ExportError(f"{where}: input {key!r} does not convert to {dtype.name}",
                                  expected=f"values of type {dtype.name}", found=f"{exc}",
                                  fix="send what the signature takes (tfserving-export inspect)") from exc
        log = prediction_log_pb2.PredictionLog(predict_log=prediction_log_pb2.PredictLog(request=request))
        records.append(log.SerializeToString())
    return records


def read_records(version_dir: pathlib.Path) -> list:
    """The PredictionLog records of a version's warm-up file (what TF Serving replays)."""
    tf = _tf.tensorflow("reading warm-up requests")
    _, _, prediction_log_pb2 = _apis()
    path = pathlib.Path(version_dir) / REQUESTS_PATH
    logs = []
    try:
        for record in tf.compat.v1.io.tf_record_iterator(str(path)):
            log = prediction_log_pb2.PredictionLog()
            log.ParseFromString(record)
            logs.append(log)
    except tf.errors.OpError as exc:
        raise ExportError(f"{path} is not a TFRecord file of PredictionLog records",
                          expected="what TF Serving's warm-up reads", found=exc.message,
                          fix="write it again with tfserving-export warmup") from exc
    return logs


def replay(version_dir: pathlib.Path) -> int:
    """Run every warm-up record against the SavedModel as TF Serving's warm-up does; the record count."""
    tf = _tf.tensorflow("checking warm-up requests")
    from tensorflow.core.protobuf import config_pb2

    logs = read_records(version_dir)
    if len(logs) > MAX_RECORDS:
        raise ExportError("too many warm-up records", expected=f"at most {MAX_RECORDS}", found=str(len(logs)),
                          fix="keep fewer records; TF Serving fails the load beyond its limit")
    graph = tf.Graph()
    with graph.as_default(), tf.compat.v1.Session(graph=graph) as session:
        meta_graph = tf.compat.v1.saved_model.loader.load(session, list(savedmodel.SERVE_TAGS), str(version_dir))
        for index, log in enumerate(logs):
            request = log.predict_log.request
            signature = meta_graph.signature_def[request.model_spec.signature_name or savedmodel.DEFAULT_SIGNATURE]
            feeds = {signature.inputs[k].name: tf.make_ndarray(v) for k, v in request.inputs.items()}
            # Session::Run with tensor names, as TF Serving runs it: no static shape check on the feeds
            # (a [-1, 1] input takes [3]), unlike Session.run's feed_dict.
            options = config_pb2.CallableOptions(feed=sorted(feeds),
                                                 fetch=[v.name for _, v in sorted(signature.outputs.items())])
            try:
                session._make_callable_from_options(options)(*[feeds[k] for k in sorted(feeds)])
            except Exception as exc:  # TensorFlow raises many types; TF Serving would fail the load
                raise ExportError(f"warm-up record {index + 1} fails on the model",
                                  expected="a request the model answers (TF Serving fails the load otherwise)",
                                  found=f"{type(exc).__name__}: {str(exc).strip().splitlines()[0]}",
                                  fix="send inputs of the signature's shapes and types") from exc
    return len(logs)


def write(version_dir: pathlib.Path, samples: list[dict], *, model_name: str = "",
          signature_name: str = savedmodel.DEFAULT_SIGNATURE) -> dict:
    """Write (atomically) and check the warm-up file of a SavedModel version directory."""
    tf = _tf.tensorflow("writing warm-up requests")
    version_dir = pathlib.Path(version_dir)
    records = build_records(version_dir, samples, model_name=model_name, signature_name=signature_name)
    target = version_dir / REQUESTS_PATH
    previous = target.read_bytes() if target.is_file() else None
    target.parent.mkdir(parents=True, exist_ok=True)
    handle, scratch = tempfile.mkstemp(prefix=".tf_serving_warmup_requests.", dir=target.parent)
    os.close(handle)
    try:
        with tf.io.TFRecordWriter(scratch) as writer:
            for record in records:
                writer.write(record)
        os.chmod(scratch, 0o644)
        os.replace(scratch, target)
        count = replay(version_dir)
    except BaseException:
        if os.path.exists(scratch):
            os.unlink(scratch)
        if previous is None:
            target.unlink(missing_ok=True)
        else:
            target.write_bytes(previous)
        raise
    return {"path": str(target), "records": count,
            "msg": f"wrote {count} warm-up record(s) to {target}; each answered on the model"}
