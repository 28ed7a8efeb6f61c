"""ONNX model (for example from ``torch.onnx.export``) -> SavedModel, through onnx2tf.

PyTorch reaches TF Serving as ``.pth -> ONNX -> TensorFlow -> SavedModel``. onnx2tf turns the
ONNX graph into a Keras (tf_keras) model; this module wraps that model in a signature with the
names clients will use and saves it. onnx2tf transposes 3-5D inputs to channels-last (NHWC) by
default; here the ONNX layout is kept unless ``channels_last`` is asked for, so clients send what
the PyTorch model took. ONNX Runtime supplies the reference outputs the export is checked against.
"""

from __future__ import annotations

import contextlib
import io
import pathlib
import re
from collections.abc import Callable

from tfserving_export import _tf
from tfserving_export.errors import ExportError
from tfserving_export.keras_export import rename

_ANSI = re.compile(r"\x1b\[[0-9;]*m")


def _names(model) -> tuple[list[str], list[str], list[str]]:
    """(input names, output names, names of the 3-5D inputs whose layout onnx2tf would change)."""
    initializers = {init.name for init in model.graph.initializer}
    graph_inputs = [i for i in model.graph.input if i.name not in initializers]
    spatial = [i.name for i in graph_inputs if len(i.type.tensor_type.shape.dim) in (3, 4, 5)]
    return [i.name for i in graph_inputs], [o.name for o in model.graph.output], spatial


def _last_error(log: str) -> str:
    lines = [_ANSI.sub("", line).strip() for line in log.splitlines()]
    errors = [line.removeprefix("ERROR:").strip() for line in lines if line.startswith("ERROR:")]
    return errors[0] if errors else next((line for line in reversed(lines) if line), "")


def convert(source: pathlib.Path, export_dir: pathlib.Path, inputs: list[tuple[str, str]],
            outputs: list[tuple[str, str]], signature_name: str, *, scratch: pathlib.Path,
            channels_last: bool = False) -> Callable[[dict], dict]:
    onnx = _tf.optional("onnx", "onnx", "from-onnx")
    tf = _tf.tensorflow("from-onnx")
    onnx2tf = _tf.optional("onnx2tf", "onnx", "from-onnx")
    ort = _tf.optional("onnxruntime", "onnx", "from-onnx (reference outputs)")
    import numpy as np

    try:
        model = onnx.load(str(source))
        onnx.checker.check_model(model)
    except Exception as exc:  # onnx raises DecodeError, ValidationError, OSError...
        raise ExportError(
            f"{source} is not a valid ONNX model",
            expected="a model written by torch.onnx.export or another ONNX exporter",
            found=f"{type(exc).__name__}: {str(exc).strip().splitlines()[0] if str(exc).strip() else ''}",
            fix="re-export the ONNX file and check it with onnx.checker.check_model",
        ) from exc
    onnx_inputs, onnx_outputs, spatial_inputs = _names(model)
    in_names = rename("input", onnx_inputs, inputs)
    out_names = rename("output", onnx_outputs, outputs)

    work = scratch / "onnx2tf"
    log = io.StringIO()
    try:
        with _tf.stdout_to_stderr(), contextlib.redirect_stdout(log), contextlib.redirect_stderr(log):
            keras_model = onnx2tf.convert(
                input_onnx_file_path=str(source),
                output_folder_path=str(work),
                disable_model_save=True,
                non_verbose=True,
                keep_ncw_or_nchw_or_ncdhw_input_names=None if channels_last else spatial_inputs or None,
            )
    except (Exception, SystemExit) as exc:  # onnx2tf calls sys.exit() on unsupported graphs
        detail = _last_error(log.getvalue()) or _ANSI.sub("", str(exc)).strip() or type(exc).__name__
        raise ExportError(
            f"onnx2tf could not convert {source}",
            expected="an ONNX graph made of operators onnx2tf supports",
            found=detail[:400],
            fix="re-export with a lower opset (torch.onnx.export(..., opset_version=17)) or simplify "
                "the model (onnxsim); see onnx2tf's list of supported operators",
        ) from exc
    if keras_model is None or len(keras_model.inputs) != len(onnx_inputs):
        raise ExportError(
            f"onnx2tf produced no usable model for {source}",
            expected=f"a model with {len(onnx_inputs)} input(s)",
            found="nothing" if keras_model is None else f"{len(keras_model.inputs)} input(s)",
            fix="convert it by hand with the onnx2tf command line to see its diagnostics",
        )

    specs = [tf.TensorSpec(t.shape, t.dtype, name=new)
             for t, new in zip(keras_model.inputs, in_names, strict=True)]

    def serve(*args):
        result = keras_model(args[0] if len(args) == 1 else list(args))
        results = list(result) if isinstance(result, list | tuple) else [result]
        return dict(zip(out_names, results, strict=True))

    module = tf.Module()
    module.model = keras_model
    function = tf.function(serve, input_signature=specs)
    with _tf.stdout_to_stderr():
        tf.saved_model.save(module, str(export_dir),
                            signatures={signature_name: function.get_concrete_function()})

    session = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])

    def reference(feeds: dict) -> dict:
        onnx_feeds = {}
        for onnx_name, new in zip(onnx_inputs, in_names, strict=True):
            value = feeds[new]
            if channels_last and value.ndim >= 3:  # the SavedModel takes NHWC, ONNX wants NCHW
                value = np.moveaxis(value, -1, 1)
            onnx_feeds[onnx_name] = value
        results = session.run(onnx_outputs, onnx_feeds)
        return dict(zip(out_names, results, strict=True))

    return reference
