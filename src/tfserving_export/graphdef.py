"""Frozen TensorFlow GraphDef (.pb / .pbtxt) -> SavedModel with the ``serve`` tag and a named signature.

A frozen graph has its weights folded into constants and no signature: the caller names the
tensors to feed and fetch (``input:0``, ``softmax/Softmax:0``) and the names clients will use
(``image``, ``scores``). The graph is imported unchanged; the SavedModel's signature maps the new
names to the graph's tensors, exactly as TF Serving will resolve them.
"""

from __future__ import annotations

import pathlib
from collections.abc import Callable

from tfserving_export import _tf
from tfserving_export.errors import ExportError

PREDICT_METHOD = "tensorflow/serving/predict"
_VARIABLE_OPS = {"VariableV2", "Variable", "VarHandleOp", "VarHandleOpV2"}


def tensor_name(name: str) -> str:
    """'input' -> 'input:0'; 'input:0' unchanged."""
    return name if ":" in name else f"{name}:0"


def load_graphdef(source: pathlib.Path):
    tf = _tf.tensorflow("from-graphdef")
    from google.protobuf import message, text_format

    graph_def = tf.compat.v1.GraphDef()
    try:
        if source.suffix in (".pbtxt", ".txt"):
            text_format.Parse(source.read_text(), graph_def)
        else:
            graph_def.ParseFromString(source.read_bytes())
    except (message.DecodeError, text_format.ParseError, UnicodeDecodeError) as exc:
        raise ExportError(
            f"{source} is not a TensorFlow GraphDef",
            expected="a frozen graph written with tf.io.write_graph (binary .pb or text .pbtxt)",
            found=f"a file that does not parse as GraphDef ({exc})",
            fix="pass the frozen graph file; a SavedModel needs no conversion (use 'validate')",
        ) from exc
    if not graph_def.node:
        hint = ""
        if source.name == "saved_model.pb":
            hint = " (this looks like a SavedModel's saved_model.pb, which needs no conversion)"
        raise ExportError(
            f"{source} holds no graph nodes{hint}",
            expected="a frozen GraphDef with the model's operations",
            found="an empty graph or a file of another protobuf type",
            fix="pass the frozen .pb file the model was exported to",
        )
    variables = sorted(n.name for n in graph_def.node if n.op in _VARIABLE_OPS)
    if variables:
        raise ExportError(
            f"{source} is not a frozen graph",
            expected="a graph whose variables are folded into constants",
            found=f"{len(variables)} variable op(s), for example {', '.join(variables[:3])}",
            fix="freeze it first (convert_variables_to_constants) or export a SavedModel from the training code",
        )
    return graph_def


def _candidates(graph, kind: str) -> str:
    """Likely tensors to suggest: placeholders for inputs, unconsumed op outputs for outputs."""
    ops = graph.get_operations()
    if kind == "input":
        picks = [op for op in ops if op.type in ("Placeholder", "PlaceholderWithDefault")]
    else:
        consumed = {inp.op.name for op in ops for inp in op.inputs}
        picks = [op for op in ops if op.outputs and op.name not in consumed and op.type not in ("Const", "NoOp")]
    described = [f"{op.outputs[0].name} ({op.outputs[0].dtype.name}, {op.outputs[0].shape})" for op in picks[:8]]
    if len(picks) > 8:
        described.append(f"... {len(picks) - 8} more")
    return ", ".join(described) or "none"


def _resolve(graph, source: pathlib.Path, name: str, kind: str):
    full = tensor_name(name)
    op_name, _, index = full.rpartition(":")
    try:
        op = graph.get_operation_by_name(op_name)
    except KeyError:
        raise ExportError(
            f"{kind} tensor {full!r} is not in the graph {source.name}",
            expected=f"an operation named {op_name!r}",
            found=f"no such operation; {'placeholders' if kind == 'input' else 'graph outputs'} are: "
                  f"{_candidates(graph, kind)}",
            fix="list the graph's tensors with the names above (or Netron) and pass one of them",
        ) from None
    if not index.isdigit() or int(index) >= len(op.outputs):
        raise ExportError(
            f"{kind} tensor {full!r} is not in the graph {source.name}",
            expected=f"an output index below {len(op.outputs)} for operation {op_name!r} ({op.type})",
            found=f"index {index!r}",
            fix=f"use {op_name}:0" + (f" .. {op_name}:{len(op.outputs) - 1}" if len(op.outputs) > 1 else ""),
        )
    return op.outputs[int(index)]


def convert(source: pathlib.Path, export_dir: pathlib.Path, inputs: list[tuple[str, str]],
            outputs: list[tuple[str, str]], signature_name: str) -> Callable[[dict], dict]:
    """Write the SavedModel; return a reference function (feeds by new name -> outputs by new name)."""
    tf = _tf.tensorflow("from-graphdef")
    from tensorflow.core.protobuf import meta_graph_pb2

    if not inputs or not outputs:
        raise ExportError(
            "from-graphdef needs the tensors to feed and fetch",
            expected="at least one input and one output mapping NAME=TENSOR",
            found=f"{len(inputs)} input(s), {len(outputs)} output(s)",
            fix="pass for example --input image=input:0 --output scores=softmax:0",
        )
    graph_def = load_graphdef(source)
    graph = tf.Graph()
    with graph.as_default():
        try:
            tf.graph_util.import_graph_def(graph_def, name="")
        except (ValueError, tf.errors.OpError) as exc:
            raise ExportError(
                f"TensorFlow cannot import the graph {source}",
                expected="a GraphDef made of operations this TensorFlow knows",
                found=str(exc).strip().splitlines()[0],
                fix="convert with the TensorFlow version (or custom-op library) the graph was made with",
            ) from exc
    in_tensors = [(new, _resolve(graph, source, old, "input")) for new, old in inputs]
    out_tensors = [(new, _resolve(graph, source, old, "output")) for new, old in outputs]

    def info(tensor):
        return meta_graph_pb2.TensorInfo(
            name=tensor.name, dtype=tensor.dtype.as_datatype_enum, tensor_shape=tensor.shape.as_proto()
        )

    signature = meta_graph_pb2.SignatureDef(method_name=PREDICT_METHOD)
    for new, tensor in in_tensors:
        signature.inputs[new].CopyFrom(info(tensor))
    for new, tensor in out_tensors:
        signature.outputs[new].CopyFrom(info(tensor))

    with tf.compat.v1.Session(graph=graph) as session:
        builder = tf.compat.v1.saved_model.Builder(str(export_dir))
        builder.add_meta_graph_and_variables(
            session, [tf.compat.v1.saved_model.tag_constants.SERVING],
            signature_def_map={signature_name: signature}, strip_default_attrs=True,
        )
        builder.save()

    def reference(feeds: dict) -> dict:
        with tf.compat.v1.Session(graph=graph) as session:
            feed_dict = {tensor: feeds[new] for new, tensor in in_tensors}
            return session.run({new: tensor for new, tensor in out_tensors}, feed_dict=feed_dict)

    return reference
