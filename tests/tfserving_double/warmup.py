"""Model warm-up at load: servables/tensorflow/saved_model_warmup.cc and saved_model_warmup_util.cc.

With --enable_model_warmup (true by default in TF Serving's server.h), loading a version ends with
RunSavedModelWarmup(): if `<version>/assets.extra/tf_serving_warmup_requests` exists, it is read as a
TFRecord file of PredictionLog records and every record's request is run against the new version
(--num_request_iterations_for_warmup times, default once) before the version is AVAILABLE. A file that
is not TFRecord, a record that is not a PredictionLog, more than 1000 records, or a request the model
refuses fails the load with that error (retried like any load failure, then END). No file: nothing to
do. The records are read with TensorFlow's own TFRecord reader, so its messages are the C++ ones.
"""

from __future__ import annotations

import logging
import os
import time

from .errors import Code, TFError, invalid_argument

LOG = logging.getLogger("tfserving_double")

ASSETS_EXTRA = "assets.extra"  # tensorflow/cc/saved_model/constants.h kSavedModelAssetsExtraDirectory
REQUESTS_FILE = "tf_serving_warmup_requests"  # WarmupConsts::kRequestsFileName
MAX_RECORDS = 1000  # WarmupConsts::kMaxNumRecords


def requests_path(export_dir: str) -> str:
    return os.path.join(export_dir, ASSETS_EXTRA, REQUESTS_FILE)


def _run_record(servable, log) -> None:
    """RunWarmupRequest(): run the logged request; responses are discarded."""
    from . import inference

    kind = log.WhichOneof("log_type")
    if kind == "predict_log":
        request = log.predict_log.request
        inference.predict(
            servable,
            request.model_spec.signature_name,
            dict(request.inputs.items()),
            list(request.output_filter),
            convert=inference.tensor_proto_to_numpy,
        )
    elif kind in ("classify_log", "regress_log"):
        from .grpc_service import _serialized_examples

        request = getattr(log, kind).request
        run = inference.classify if kind == "classify_log" else inference.regress
        run(servable, request.model_spec.signature_name, _serialized_examples(request.input))
    elif kind == "multi_inference_log":
        # TF Serving runs it; the double has no MultiInference at all (README, "What it does not do").
        raise TFError(Code.UNIMPLEMENTED, "MultiInference warmup records are not supported by the TF Serving "
                                          "test double")
    elif kind == "session_run_log":
        field = log.DESCRIPTOR.fields_by_name[kind].number
        raise TFError(Code.UNIMPLEMENTED, f"Unsupported log_type for warmup: {field}")
    # No log type (or one TF Serving's switch does not list): nothing to run.


def run(servable, export_dir: str, num_request_iterations: int = 0) -> int:
    """RunSavedModelWarmup(); returns the number of records replayed. Raises TFError on failure."""
    from tensorflow_serving.apis import prediction_log_pb2

    from .servable import from_op_error, tensorflow

    path = requests_path(export_dir)
    if not os.path.exists(path):
        LOG.info("No warmup data file found at %s", path)
        return 0
    iterations = num_request_iterations if num_request_iterations > 0 else 1
    options = f"num_request_iterations {{ value: {num_request_iterations} }}" if num_request_iterations > 0 else ""
    LOG.info("Starting to read warmup data for model at %s with model-warmup-options %s", path, options)
    tf = tensorflow()
    started = time.monotonic()
    count = 0
    try:
        for record in tf.compat.v1.io.tf_record_iterator(path):
            log = prediction_log_pb2.PredictionLog()
            try:
                log.ParseFromString(record)
            except Exception:  # google.protobuf.message.DecodeError
                raise invalid_argument(
                    "Failed to parse warmup record: ", record.decode("utf-8", errors="replace"), " from ", path
                ) from None
            for _ in range(iterations):
                _run_record(servable, log)
            count += 1
            if count > MAX_RECORDS:
                raise invalid_argument("Number of warmup records exceeds the maximum (", MAX_RECORDS, ") at ", path)
    except tf.errors.OpError as err:
        error = from_op_error(err)
        if error.code == Code.DATA_LOSS:
            raise TFError(
                Code.DATA_LOSS, error.message + ". Please verify your warmup data is in TFRecord format."
            ) from None
        raise error from None
    elapsed_us = int((time.monotonic() - started) * 1e6)
    LOG.info(
        "Finished reading warmup data for model at %s. Number of warmup records read: %d. "
        "Elapsed time (microseconds): %d.",
        path,
        count,
        elapsed_us,
    )
    return count
