#!/usr/bin/env python3
"""Call a model served by TensorFlow Serving over gRPC (port 8500) with tensorflow-serving-api.

    python grpc_client.py --target gpu-t4-01.example.com:8500 --model half_plus_two \
        --signature serving_default --input x --values '[1.0, 2.0, 5.0]'

Needs `pip install tensorflow-serving-api` (it pulls in TensorFlow; grpc_client_no_tf.py does the same
with grpcio and protobuf only). As a library:

    import grpc
    from grpc_client import label_version, model_status, predict
    channel = grpc.insecure_channel("gpu-t4-01.example.com:8500")
    predict(channel, "half_plus_two", {"x": np.array([1.0, 2.0, 5.0], np.float32)})   # {"y": array(...)}
    predict(channel, "half_plus_two", {"x": ...}, label="canary", timeout=2.0)
    model_status(channel, "half_plus_two")                              # [(124, "AVAILABLE"), (123, ...)]
    label_version(channel, "half_plus_two", "stable")                   # 123

Reuse one channel for many calls: it keeps its HTTP/2 connection. Always give a deadline (timeout):
without one, a call to a server that never answers waits forever.
"""

from __future__ import annotations

import argparse
import json
import sys

import grpc
import numpy as np
import tensorflow as tf
from tensorflow_serving.apis import (
    get_model_metadata_pb2,
    get_model_status_pb2,
    model_service_pb2_grpc,
    predict_pb2,
    prediction_service_pb2_grpc,
)


def _spec(spec, model, signature_name=None, version=None, label=None):
    if version is not None and label is not None:
        raise ValueError("give a version or a label, not both")
    spec.name = model
    if signature_name:
        spec.signature_name = signature_name
    if version is not None:
        spec.version.value = int(version)
    elif label is not None:
        spec.version_label = label


def predict(channel, model, inputs, signature_name="serving_default", version=None, label=None, timeout=10.0):
    """{output name: numpy array} for {input name: array-like}, from PredictionService/Predict."""
    request = predict_pb2.PredictRequest()
    _spec(request.model_spec, model, signature_name, version, label)
    for name, value in inputs.items():
        request.inputs[name].CopyFrom(tf.make_tensor_proto(value))
    stub = prediction_service_pb2_grpc.PredictionServiceStub(channel)
    response = stub.Predict(request, timeout=timeout)
    return {name: tf.make_ndarray(tensor) for name, tensor in response.outputs.items()}


def model_status(channel, model, version=None, timeout=10.0):
    """[(version, state name)], from ModelService/GetModelStatus (which ignores labels: see label_version)."""
    request = get_model_status_pb2.GetModelStatusRequest()
    _spec(request.model_spec, model, version=version)
    stub = model_service_pb2_grpc.ModelServiceStub(channel)
    response = stub.GetModelStatus(request, timeout=timeout)
    state_name = get_model_status_pb2.ModelVersionStatus.State.Name
    return [(status.version, state_name(status.state)) for status in response.model_version_status]


def label_version(channel, model, label, timeout=10.0):
    """The version a label points at now, from PredictionService/GetModelMetadata (it resolves labels)."""
    request = get_model_metadata_pb2.GetModelMetadataRequest()
    _spec(request.model_spec, model, label=label)
    request.metadata_field.append("signature_def")
    stub = prediction_service_pb2_grpc.PredictionServiceStub(channel)
    return stub.GetModelMetadata(request, timeout=timeout).model_spec.version.value


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description="Call a TF Serving model over gRPC (tensorflow-serving-api).")
    parser.add_argument("--target", required=True, help="HOST:PORT of the gRPC port, for example HOST:8500")
    parser.add_argument("--model", required=True)
    parser.add_argument("--signature", default="serving_default")
    which = parser.add_mutually_exclusive_group()
    which.add_argument("--version", type=int)
    which.add_argument("--label")
    parser.add_argument("--input", default="x", help="input tensor name of the signature")
    parser.add_argument("--values", help="JSON values of that input (float32)")
    parser.add_argument(
        "--status", action="store_true", help="print the model's versions and states (with --label: its version)"
    )
    parser.add_argument("--timeout", type=float, default=10.0)
    args = parser.parse_args(argv)
    if not args.status and args.values is None:
        parser.error("--values is required unless --status is given")

    with grpc.insecure_channel(args.target) as channel:
        try:
            if args.status:
                if args.label:
                    result = {"label": args.label, "version": label_version(channel, args.model, args.label)}
                else:
                    result = model_status(channel, args.model, args.version, args.timeout)
            else:
                outputs = predict(
                    channel,
                    args.model,
                    {args.input: np.asarray(json.loads(args.values), dtype=np.float32)},
                    args.signature,
                    args.version,
                    args.label,
                    args.timeout,
                )
                result = {name: value.tolist() for name, value in outputs.items()}
        except grpc.RpcError as err:
            # TF Serving's status code and message, for example NOT_FOUND: Servable not found for request: ...
            print(f"{args.model}: {err.code().name}: {err.details()}", file=sys.stderr)
            return 1
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
