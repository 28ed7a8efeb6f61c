#!/usr/bin/env python3
"""Call a TF Serving model over gRPC with grpcio and protobuf only: no TensorFlow on the client.

    python grpc_client_no_tf.py --target gpu-t4-01.example.com:8500 --model half_plus_two \
        --signature serving_default --input x --values '[1.0, 2.0, 5.0]'

`pip install grpcio protobuf` is all it needs (tensorflow-serving-api would pull in TensorFlow, about
2 GB). It declares the few messages Predict uses, with TF Serving's field numbers and types, from
tensorflow_serving/apis/{predict,model}.proto and tensorflow/core/framework/{tensor,tensor_shape}.proto;
the bytes on the wire are the same. It sends float32 tensors and reads float, double, int32, int64 and
bool outputs, as typed values or packed tensor_content. For strings or other types, use grpc_client.py.

    import grpc
    from grpc_client_no_tf import predict
    with grpc.insecure_channel("gpu-t4-01.example.com:8500") as channel:
        predict(channel, "half_plus_two", {"x": [1.0, 2.0, 5.0]})    # {"y": [2.5, 3.0, 4.5]}
"""

from __future__ import annotations

import argparse
import json
import struct
import sys

import grpc
from google.protobuf import descriptor_pb2, descriptor_pool, message_factory, wrappers_pb2

_F = descriptor_pb2.FieldDescriptorProto
# tensorflow/core/framework/types.proto: DataType values used here -> (struct code, TensorProto field).
DT_FLOAT, DT_DOUBLE, DT_INT32, DT_INT64, DT_BOOL = 1, 2, 3, 9, 10
_DECODE = {
    DT_FLOAT: ("f", "float_val"),
    DT_DOUBLE: ("d", "double_val"),
    DT_INT32: ("i", "int_val"),
    DT_INT64: ("q", "int64_val"),
    DT_BOOL: ("?", "bool_val"),
}


def _field(message, name, number, ftype, label=_F.LABEL_OPTIONAL, type_name=None, oneof=None):
    field = message.field.add(name=name, number=number, type=ftype, label=label)
    if type_name:
        field.type_name = type_name
    if oneof is not None:
        field.oneof_index = oneof


def _map_entry(message, entry_name, value_type):
    entry = message.nested_type.add(name=entry_name)
    entry.options.map_entry = True
    _field(entry, "key", 1, _F.TYPE_STRING)
    _field(entry, "value", 2, _F.TYPE_MESSAGE, type_name=value_type)


def _build():
    pool = descriptor_pool.DescriptorPool()
    pool.AddSerializedFile(wrappers_pb2.DESCRIPTOR.serialized_pb)

    tensor = descriptor_pb2.FileDescriptorProto(name="client/tensor.proto", package="tensorflow", syntax="proto3")
    shape = tensor.message_type.add(name="TensorShapeProto")
    dim = shape.nested_type.add(name="Dim")
    _field(dim, "size", 1, _F.TYPE_INT64)
    _field(dim, "name", 2, _F.TYPE_STRING)
    _field(shape, "dim", 2, _F.TYPE_MESSAGE, _F.LABEL_REPEATED, ".tensorflow.TensorShapeProto.Dim")
    _field(shape, "unknown_rank", 3, _F.TYPE_BOOL)
    proto = tensor.message_type.add(name="TensorProto")
    _field(proto, "dtype", 1, _F.TYPE_INT32)  # an enum on the wire is a varint: int32 reads it the same
    _field(proto, "tensor_shape", 2, _F.TYPE_MESSAGE, type_name=".tensorflow.TensorShapeProto")
    _field(proto, "tensor_content", 4, _F.TYPE_BYTES)
    _field(proto, "float_val", 5, _F.TYPE_FLOAT, _F.LABEL_REPEATED)
    _field(proto, "double_val", 6, _F.TYPE_DOUBLE, _F.LABEL_REPEATED)
    _field(proto, "int_val", 7, _F.TYPE_INT32, _F.LABEL_REPEATED)
    _field(proto, "int64_val", 10, _F.TYPE_INT64, _F.LABEL_REPEATED)
    _field(proto, "bool_val", 11, _F.TYPE_BOOL, _F.LABEL_REPEATED)
    pool.Add(tensor)

    apis = descriptor_pb2.FileDescriptorProto(
        name="client/predict.proto",
        package="tensorflow.serving",
        syntax="proto3",
        dependency=["google/protobuf/wrappers.proto", "client/tensor.proto"],
    )
    spec = apis.message_type.add(name="ModelSpec")
    spec.oneof_decl.add(name="version_choice")
    _field(spec, "name", 1, _F.TYPE_STRING)
    _field(spec, "version", 2, _F.TYPE_MESSAGE, type_name=".google.protobuf.Int64Value", oneof=0)
    _field(spec, "signature_name", 3, _F.TYPE_STRING)
    _field(spec, "version_label", 4, _F.TYPE_STRING, oneof=0)
    request = apis.message_type.add(name="PredictRequest")
    _map_entry(request, "InputsEntry", ".tensorflow.TensorProto")
    _field(request, "model_spec", 1, _F.TYPE_MESSAGE, type_name=".tensorflow.serving.ModelSpec")
    _field(request, "inputs", 2, _F.TYPE_MESSAGE, _F.LABEL_REPEATED, ".tensorflow.serving.PredictRequest.InputsEntry")
    _field(request, "output_filter", 3, _F.TYPE_STRING, _F.LABEL_REPEATED)
    response = apis.message_type.add(name="PredictResponse")
    _map_entry(response, "OutputsEntry", ".tensorflow.TensorProto")
    entry = ".tensorflow.serving.PredictResponse.OutputsEntry"
    _field(response, "outputs", 1, _F.TYPE_MESSAGE, _F.LABEL_REPEATED, entry)
    _field(response, "model_spec", 2, _F.TYPE_MESSAGE, type_name=".tensorflow.serving.ModelSpec")
    pool.Add(apis)

    def cls(name):
        return message_factory.GetMessageClass(pool.FindMessageTypeByName(name))

    return cls("tensorflow.serving.PredictRequest"), cls("tensorflow.serving.PredictResponse")


PredictRequest, PredictResponse = _build()
PREDICT = "/tensorflow.serving.PredictionService/Predict"


def _shape_and_flat(values):
    """Nested lists of numbers -> ([dims], [flat values]); rejects ragged lists."""
    if not isinstance(values, list):
        return [], [float(values)]
    if not values:
        return [0], []
    parts = [_shape_and_flat(v) for v in values]
    if any(p[0] != parts[0][0] for p in parts):
        raise ValueError("ragged input: every row must have the same shape")
    return [len(values), *parts[0][0]], [x for p in parts for x in p[1]]


def _nest(flat, dims):
    if not dims:
        return flat[0]
    if len(dims) == 1:
        return list(flat)
    step = len(flat) // dims[0] if dims[0] else 0
    return [_nest(flat[i * step : (i + 1) * step], dims[1:]) for i in range(dims[0])]


def _decode(tensor):
    dims = [d.size for d in tensor.tensor_shape.dim]
    if tensor.dtype not in _DECODE:
        raise ValueError(f"output dtype {tensor.dtype} is not decoded by this client; use grpc_client.py")
    code, field = _DECODE[tensor.dtype]
    if tensor.tensor_content:
        n = len(tensor.tensor_content) // struct.calcsize(code)
        flat = list(struct.unpack(f"<{n}{code}", tensor.tensor_content))
    else:
        flat = list(getattr(tensor, field))
    count = 1
    for d in dims:
        count *= d
    if 0 < len(flat) < count:  # TensorProto rule: missing trailing values repeat the last one
        flat += [flat[-1]] * (count - len(flat))
    return _nest(flat, dims)


def predict(channel, model, inputs, signature_name="serving_default", version=None, label=None, timeout=10.0):
    """{output name: nested lists} for {input name: nested lists of numbers (sent as float32)}."""
    if version is not None and label is not None:
        raise ValueError("give a version or a label, not both")
    request = PredictRequest()
    request.model_spec.name = model
    request.model_spec.signature_name = signature_name
    if version is not None:
        request.model_spec.version.value = int(version)
    elif label is not None:
        request.model_spec.version_label = label
    for name, values in inputs.items():
        dims, flat = _shape_and_flat(values)
        tensor = request.inputs[name]
        tensor.dtype = DT_FLOAT
        for size in dims:
            tensor.tensor_shape.dim.add(size=size)
        tensor.float_val.extend(flat)
    call = channel.unary_unary(
        PREDICT, request_serializer=PredictRequest.SerializeToString, response_deserializer=PredictResponse.FromString
    )
    response = call(request, timeout=timeout)
    return {name: _decode(tensor) for name, tensor in response.outputs.items()}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description="Call a TF Serving model over gRPC, without TensorFlow.")
    parser.add_argument("--target", required=True, help="HOST:PORT of the gRPC port, for example HOST:8500")
    parser.add_argument("--model", required=True)
    parser.add_argument("--signature", default="serving_default")
    which = parser.add_mutually_exclusive_group()
    which.add_argument("--version", type=int)
    which.add_argument("--label")
    parser.add_argument("--input", default="x", help="input tensor name of the signature")
    parser.add_argument("--values", required=True, help="JSON values of that input (sent as float32)")
    parser.add_argument("--timeout", type=float, default=10.0)
    args = parser.parse_args(argv)
    with grpc.insecure_channel(args.target) as channel:
        try:
            result = predict(
                channel,
                args.model,
                {args.input: json.loads(args.values)},
                args.signature,
                args.version,
                args.label,
                args.timeout,
            )
        except grpc.RpcError as err:
            print(f"{args.model}: {err.code().name}: {err.details()}", file=sys.stderr)
            return 1
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
