"""The gRPC API on --port: tensorflow.serving.ModelService and tensorflow.serving.PredictionService,
with tensorflow-serving-api's own stubs (model_servers/model_service_impl.cc,
prediction_service_impl.cc, grpc_status_util.cc)."""

from __future__ import annotations

import concurrent.futures
import logging
import time

import grpc
from tensorflow_serving.apis import (
    classification_pb2,
    get_model_metadata_pb2,
    get_model_status_pb2,
    model_management_pb2,
    model_service_pb2_grpc,
    predict_pb2,
    prediction_service_pb2_grpc,
    regression_pb2,
)

from . import inference
from .errors import Code, TFError, invalid_argument

LOG = logging.getLogger("tfserving_double")

_GRPC_CODES = {code.value[0]: code for code in grpc.StatusCode}
ERROR_MESSAGE_LIMIT = 1024  # grpc_status_util.cc kErrorMessageLimit


def _abort(context, err: TFError):
    message = err.message
    if len(message) > ERROR_MESSAGE_LIMIT:
        message = message[:ERROR_MESSAGE_LIMIT] + "...TRUNCATED"
    context.abort(_GRPC_CODES[int(err.code)], message)


def _serialized_examples(request_input) -> list[bytes]:
    kind = request_input.WhichOneof("kind")
    if kind == "example_list":
        return [example.SerializeToString() for example in request_input.example_list.examples]
    if kind == "example_list_with_context":
        with_context = request_input.example_list_with_context
        context = with_context.context.SerializeToString()
        return [context + example.SerializeToString() for example in with_context.examples]
    raise invalid_argument("Input is empty.")


def _response_spec(target, name: str, version: int, signature_name: str):
    """util.cc MakeModelSpec()."""
    target.name = name
    target.version.value = version
    target.signature_name = signature_name


class ModelService(model_service_pb2_grpc.ModelServiceServicer):
    def __init__(self, core):
        self.core = core

    def GetModelStatus(self, request, context):
        try:
            if not request.HasField("model_spec"):
                raise invalid_argument("Missing ModelSpec")
            response = get_model_status_pb2.GetModelStatusResponse()
            for event in self.core.model_status(request.model_spec):
                entry = response.model_version_status.add()
                entry.version = event.version
                entry.state = event.state
                entry.status.SetInParent()  # ToStatusProto(): always present, OK too
                if event.health is not None:
                    entry.status.error_code = int(event.health.code)
                    entry.status.error_message = event.health.message
            return response
        except TFError as err:
            _abort(context, err)

    def HandleReloadConfigRequest(self, request, context):
        config = request.config
        try:
            if config.WhichOneof("config") != "model_config_list":
                raise invalid_argument(
                    "ServerModelConfig type not supported by HandleReloadConfigRequest. Only "
                    "ModelConfigList is currently supported"
                )
            for index, model in enumerate(config.model_config_list.config):
                LOG.info(
                    "\nConfig entry\n\tindex : %d\n\tpath : %s\n\tname : %s\n\tplatform : %s",
                    index,
                    model.base_path,
                    model.name,
                    model.model_platform,
                )
            self.core.reload_config(config)
        except TFError as err:
            LOG.error("ReloadConfig failed: %s", err.message)
            _abort(context, err)
        response = model_management_pb2.ReloadConfigResponse()
        response.status.error_code = 0
        return response


class PredictionService(prediction_service_pb2_grpc.PredictionServiceServicer):
    def __init__(self, core, metrics):
        self.core = core
        self.metrics = metrics

    def _record(self, request, api: str, started: float, code: Code):
        self.metrics.record_request(
            request.model_spec.name, api, "GRPC", code.name, time.monotonic() - started
        )

    def Predict(self, request, context):
        started = time.monotonic()
        try:
            if not request.HasField("model_spec"):
                raise invalid_argument("Missing ModelSpec")
            response = predict_pb2.PredictResponse()
            with self.core.servable(request.model_spec) as servable:
                signature_name, outputs = inference.predict(
                    servable,
                    request.model_spec.signature_name,
                    dict(request.inputs.items()),
                    list(request.output_filter),
                    convert=inference.tensor_proto_to_numpy,
                )
                _response_spec(response.model_spec, request.model_spec.name, servable.version, signature_name)
            for alias, array in outputs.items():
                response.outputs[alias].CopyFrom(inference.numpy_to_tensor_proto(array))
            self._record(request, "predict", started, Code.OK)
            return response
        except TFError as err:
            self._record(request, "predict", started, err.code)
            _abort(context, err)

    def Classify(self, request, context):
        started = time.monotonic()
        try:
            if not request.HasField("model_spec"):
                raise invalid_argument("Missing ModelSpec")
            with self.core.servable(request.model_spec) as servable:
                examples = _serialized_examples(request.input)
                signature_name, results = inference.classify(
                    servable, request.model_spec.signature_name, examples
                )
                response = classification_pb2.ClassificationResponse()
                _response_spec(response.model_spec, request.model_spec.name, servable.version, signature_name)
            for row in results:
                classifications = response.result.classifications.add()
                for label, score in row:
                    entry = classifications.classes.add()
                    entry.label = (
                        label.decode("utf-8", errors="replace") if isinstance(label, bytes) else label
                    )
                    entry.score = score
            self._record(request, "classify", started, Code.OK)
            return response
        except TFError as err:
            self._record(request, "classify", started, err.code)
            _abort(context, err)

    def Regress(self, request, context):
        started = time.monotonic()
        try:
            if not request.HasField("model_spec"):
                raise invalid_argument("Missing ModelSpec")
            with self.core.servable(request.model_spec) as servable:
                examples = _serialized_examples(request.input)
                signature_name, values = inference.regress(
                    servable, request.model_spec.signature_name, examples
                )
                response = regression_pb2.RegressionResponse()
                _response_spec(response.model_spec, request.model_spec.name, servable.version, signature_name)
            for value in values:
                response.result.regressions.add().value = value
            self._record(request, "regress", started, Code.OK)
            return response
        except TFError as err:
            self._record(request, "regress", started, err.code)
            _abort(context, err)

    def GetModelMetadata(self, request, context):
        try:
            if not request.HasField("model_spec"):
                raise invalid_argument("Missing ModelSpec")
            inference.check_metadata_fields(list(request.metadata_field))
            response = get_model_metadata_pb2.GetModelMetadataResponse()
            with self.core.servable(request.model_spec) as servable:
                response.model_spec.name = request.model_spec.name
                response.model_spec.version.value = servable.version
                response.metadata[inference.SIGNATURE_DEF_FIELD].Pack(inference.signature_def_map(servable))
            return response
        except TFError as err:
            _abort(context, err)


def build_server(core, metrics, host: str, port: int, socket_path: str = "", max_threads: int = 16):
    """Returns a started-ready grpc.Server, or None when a port cannot be bound (BuildAndStart fails)."""
    server = grpc.server(
        concurrent.futures.ThreadPoolExecutor(max_workers=max_threads, thread_name_prefix="tfs_double_grpc"),
        options=[
            ("grpc.max_receive_message_length", 2**31 - 1),
            ("grpc.max_send_message_length", 2**31 - 1),
            ("grpc.so_reuseport", 0),
        ],
    )
    model_service_pb2_grpc.add_ModelServiceServicer_to_server(ModelService(core), server)
    prediction_service_pb2_grpc.add_PredictionServiceServicer_to_server(
        PredictionService(core, metrics), server
    )
    addresses = [f"{host}:{port}"] + ([f"unix:{socket_path}"] if socket_path else [])
    for address in addresses:
        try:
            bound = server.add_insecure_port(address)
        except RuntimeError:
            bound = 0
        if bound == 0 and not address.startswith("unix:"):
            return None
    return server
