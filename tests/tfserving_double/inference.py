"""Predict, Classify, Regress and GetModelMetadata on a loaded servable, with TF Serving's checks.

Mirrors `servables/tensorflow/predict_util.cc`, `classifier.cc`, `regressor.cc`, `util.cc` and
`get_model_metadata_impl.cc`: signature lookup, input/output validation and their messages, tf.Example
inputs for classify/regress, and the result shapes TF Serving accepts.
"""

from __future__ import annotations

import numpy as np
from google.protobuf import text_format

from .errors import Code, TFError, failed_precondition, internal, invalid_argument
from .jsonio import DT_FLOAT, DT_STRING, dtype_name, dtype_of_numpy

DEFAULT_SIGNATURE = "serving_default"
PREDICT_METHOD = "tensorflow/serving/predict"
CLASSIFY_METHOD = "tensorflow/serving/classify"
REGRESS_METHOD = "tensorflow/serving/regress"


class Settings:
    """Server-wide switches that change inference checks (--enable_signature_method_name_check)."""

    method_name_check = False


def _dt_name(dtype: int) -> str:
    """DataType_Name(): the enum name, DT_FLOAT."""
    from tensorflow.core.framework import types_pb2

    try:
        return types_pb2.DataType.Name(dtype)
    except ValueError:
        return str(dtype)


def _shape_debug(shape) -> str:
    """TensorShape::DebugString(): [3,2]."""
    return "[" + ",".join(str(d) for d in shape) + "]"


def _signature(servable, signature_name: str):
    name = signature_name or DEFAULT_SIGNATURE
    return name, servable.signature_defs.get(name)


# -- REST's input map (http_rest_api_handler.cc GetInfoMap) --------------------------------------------


def rest_input_dtypes(servable, signature_name: str) -> dict[str, int]:
    name, signature = _signature(servable, signature_name)
    if signature is None:
        raise invalid_argument('Serving signature name: "', name, '" not found in signature def')
    return {alias: info.dtype for alias, info in signature.inputs.items()}


# -- Predict -----------------------------------------------------------------------------------------------


def _sorted_keys(mapping) -> str:
    return ",".join(sorted(mapping))


def predict(servable, signature_name: str, inputs: dict, output_filter=(), convert=None):
    """internal::RunPredict(): returns (signature_name, {alias: ndarray}).

    `convert(alias, value)` turns a request input into an ndarray (gRPC TensorProtos), after the checks.
    """
    name, signature = _signature(servable, signature_name)
    if signature is None:
        raise failed_precondition('Serving signature key "', name, '" not found.')
    if Settings.method_name_check and signature.method_name not in (
        PREDICT_METHOD,
        CLASSIFY_METHOD,
        REGRESS_METHOD,
    ):
        raise internal(
            "Expected prediction signature method_name to be one of {",
            PREDICT_METHOD,
            ", ",
            CLASSIFY_METHOD,
            ", ",
            REGRESS_METHOD,
            "}. Was: ",
            signature.method_name,
        )
    if len(inputs) != len(signature.inputs):
        sent, wanted = set(inputs), set(signature.inputs)
        raise invalid_argument(
            "input size does not match signature: ",
            len(inputs),
            "!=",
            len(signature.inputs),
            " len({",
            _sorted_keys(sent),
            "}) != len({",
            _sorted_keys(wanted),
            "}). Sent extra: {",
            _sorted_keys(sent - wanted),
            "}. Missing but required: {",
            _sorted_keys(wanted - sent),
            "}.",
        )
    feeds = {}
    for alias, array in inputs.items():
        info = signature.inputs.get(alias)
        if info is None:
            raise invalid_argument(
                "input tensor alias not found in signature: ",
                alias,
                ". Inputs expected to be in the set {",
                _sorted_keys(signature.inputs),
                "}.",
            )
        feeds[info.name] = convert(alias, array) if convert is not None else array
    aliases = []
    seen = set()
    for alias in output_filter:
        if alias not in signature.outputs:
            raise invalid_argument(
                "output tensor alias not found in signature: ",
                alias,
                " Outputs expected to be in the set {",
                _sorted_keys(signature.outputs),
                "}.",
            )
        if alias in seen:
            raise invalid_argument("duplicate output tensor alias: ", alias)
        seen.add(alias)
        aliases.append(alias)
    if not aliases:
        aliases = sorted(signature.outputs)
    fetches = [signature.outputs[alias].name for alias in aliases]
    results = servable.run(feeds, fetches)
    if len(results) != len(aliases):
        raise TFError(Code.UNKNOWN, "Predict internal error")
    return name, {alias: np.asarray(value) for alias, value in zip(aliases, results, strict=True)}


# -- Classify / Regress ------------------------------------------------------------------------------------


def _examples_tensor(serialized: list[bytes]) -> np.ndarray:
    if not serialized:
        raise invalid_argument("Input is empty.")
    array = np.empty(len(serialized), dtype=object)
    array[:] = serialized
    return array


def _debug(signature) -> str:
    return text_format.MessageToString(signature)


def regress(servable, signature_name: str, serialized: list[bytes]) -> tuple[str, list[float]]:
    name, signature = _signature(servable, signature_name)
    if signature is None:
        raise invalid_argument("No signature was found with the name: ", name)
    if Settings.method_name_check and signature.method_name != REGRESS_METHOD:
        raise invalid_argument(
            "Expected regression signature method_name to be ",
            REGRESS_METHOD,
            ". Was: ",
            signature.method_name,
        )
    if len(signature.inputs) != 1:
        raise invalid_argument("Expected one input Tensor.")
    if len(signature.outputs) != 1:
        raise invalid_argument("Expected one output Tensor.")
    if "inputs" not in signature.inputs:
        raise failed_precondition("No regression inputs found in SignatureDef: ", _debug(signature))
    if "outputs" not in signature.outputs:
        raise failed_precondition("No regression outputs found in SignatureDef: ", _debug(signature))
    examples = _examples_tensor(serialized)
    (output,) = servable.run({signature.inputs["inputs"].name: examples}, [signature.outputs["outputs"].name])
    output = np.asarray(output)
    if not (output.ndim == 1 or (output.ndim == 2 and output.shape[1] == 1)):
        raise invalid_argument(
            "Expected output Tensor shape to be either [batch_size] or [batch_size, 1] but got ",
            _shape_debug(output.shape),
        )
    if dtype_of_numpy(output) != DT_FLOAT:
        raise invalid_argument("Expected output Tensor of DT_FLOAT.  Got: ", _dt_name(dtype_of_numpy(output)))
    if output.shape[0] != len(serialized):
        raise invalid_argument(
            "Input batch size did not match output batch size: ", len(serialized), " vs. ", output.shape[0]
        )
    return name, [float(v) for v in output.reshape(-1)]


def classify(servable, signature_name: str, serialized: list[bytes]):
    """Returns (signature_name, [[(label, score), ...] per example])."""
    name, signature = _signature(servable, signature_name)
    if signature is None:
        raise invalid_argument("No signature was found with the name: ", name)
    if Settings.method_name_check and signature.method_name != CLASSIFY_METHOD:
        raise invalid_argument(
            "Expected classification signature method_name to be ",
            CLASSIFY_METHOD,
            ". Was: ",
            signature.method_name,
        )
    if len(signature.inputs) != 1:
        raise invalid_argument("Expected one input Tensor.")
    if len(signature.outputs) not in (1, 2):
        raise invalid_argument("Expected one or two output Tensors, found ", len(signature.outputs))
    if "inputs" not in signature.inputs:
        raise failed_precondition("No classification inputs found in SignatureDef: ", _debug(signature))
    has_classes, has_scores = "classes" in signature.outputs, "scores" in signature.outputs
    if not has_classes and not has_scores:
        raise failed_precondition(
            'Expected classification signature outputs to contain at least one of "classes" '
            'or "scores". Signature was: ',
            _debug(signature),
        )
    fetch_aliases = [alias for alias in ("classes", "scores") if alias in signature.outputs]
    examples = _examples_tensor(serialized)
    outputs = servable.run(
        {signature.inputs["inputs"].name: examples},
        [signature.outputs[alias].name for alias in fetch_aliases],
    )
    tensors = {alias: np.asarray(value) for alias, value in zip(fetch_aliases, outputs, strict=True)}
    n = len(serialized)
    expected = {"classes": DT_STRING, "scores": DT_FLOAT}
    for alias, tensor in tensors.items():
        if tensor.ndim != 2:
            raise invalid_argument(
                "Expected Tensor shape: [batch_size num_classes] but got ", _shape_debug(tensor.shape)
            )
        if dtype_of_numpy(tensor) != expected[alias]:
            raise invalid_argument(
                f"Expected {alias} Tensor of {_dt_name(expected[alias])}. Got: ",
                _dt_name(dtype_of_numpy(tensor)),
            )
        if tensor.shape[0] != n:
            raise invalid_argument(f"Expected {alias} output batch size of ", n, ". Got: ", tensor.shape[0])
    classes, scores = tensors.get("classes"), tensors.get("scores")
    if classes is not None and scores is not None and classes.shape[1] != scores.shape[1]:
        raise invalid_argument(
            "Tensors class and score should match in dim_size(1). Got ",
            classes.shape[1],
            " vs. ",
            scores.shape[1],
        )
    num_classes = (classes if classes is not None else scores).shape[1]
    result = []
    for i in range(n):
        row = []
        for c in range(num_classes):
            label = classes[i, c] if classes is not None else b""
            score = float(scores[i, c]) if scores is not None else 0.0
            row.append((label, score))
        result.append(row)
    return name, result


# -- GetModelMetadata --------------------------------------------------------------------------------------

SIGNATURE_DEF_FIELD = "signature_def"


def check_metadata_fields(fields) -> None:
    if not fields:
        raise invalid_argument("GetModelMetadataRequest must specify at least one metadata_field")
    for field in fields:
        if field != SIGNATURE_DEF_FIELD:
            raise invalid_argument("Metadata field ", field, " is not supported")


def signature_def_map(servable):
    from tensorflow_serving.apis import get_model_metadata_pb2

    result = get_model_metadata_pb2.SignatureDefMap()
    for key in servable.signature_defs:
        result.signature_def[key].CopyFrom(servable.signature_defs[key])
    return result


# -- TensorProto conversions for gRPC ----------------------------------------------------------------------


def tensor_proto_to_numpy(alias: str, proto) -> np.ndarray:
    from .servable import tensorflow

    tf = tensorflow()
    try:
        return tf.make_ndarray(proto)
    except Exception:
        raise invalid_argument("tensor parsing error: ", alias) from None


def numpy_to_tensor_proto(array: np.ndarray):
    """Tensor::AsProtoField(): typed value fields, not tensor_content."""
    from tensorflow.core.framework import tensor_pb2

    array = np.asarray(array)
    proto = tensor_pb2.TensorProto()
    dtype = dtype_of_numpy(array)
    if dtype == 0:
        raise internal("Unsupported output dtype ", array.dtype)
    proto.dtype = dtype
    for size in array.shape:
        proto.tensor_shape.dim.add().size = size
    flat = array.reshape(-1)
    kind = dtype_name(dtype)
    if kind == "float":
        proto.float_val.extend(flat.tolist())
    elif kind == "double":
        proto.double_val.extend(flat.tolist())
    elif kind in ("int32", "int16", "int8", "uint8", "uint16"):
        proto.int_val.extend(int(v) for v in flat)
    elif kind == "int64":
        proto.int64_val.extend(int(v) for v in flat)
    elif kind == "uint32":
        proto.uint32_val.extend(int(v) for v in flat)
    elif kind == "uint64":
        proto.uint64_val.extend(int(v) for v in flat)
    elif kind == "bool":
        proto.bool_val.extend(bool(v) for v in flat)
    elif kind == "string":
        proto.string_val.extend(v if isinstance(v, bytes) else str(v).encode("utf-8") for v in flat)
    elif kind == "half":
        proto.half_val.extend(int(v) for v in flat.view(np.uint16))
    elif kind == "complex64":
        proto.scomplex_val.extend(float(x) for v in flat for x in (v.real, v.imag))
    elif kind == "complex128":
        proto.dcomplex_val.extend(float(x) for v in flat for x in (v.real, v.imag))
    return proto
