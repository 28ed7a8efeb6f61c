"""`python -m tfserving_double [tensorflow_model_server flags]`: main.cc + server.cc BuildAndStart().

Start-up order as TF Serving's: parse flags, read models.config, load every model and wait until each
has a version AVAILABLE or END (a failure exits non-zero with "Failed to start server. Error: ..."),
start config polling, open the gRPC port, then the REST port (with the monitoring config).
"""

from __future__ import annotations

import datetime
import logging
import os
import signal
import sys
import threading

from . import __version__, config, flags
from .errors import TFError, invalid_argument

LOG = logging.getLogger("tfserving_double")
BANNER = "TF Serving TEST DOUBLE (tfserving_double %s): a stand-in for tests, NOT TensorFlow Serving"
BIND_ENV = "TFSERVING_DOUBLE_BIND_ADDRESS"


class _GlogFormatter(logging.Formatter):
    """TF Serving's log line shape: `2025-01-01 12:00:00.123456: I <where>] message`."""

    def format(self, record):
        stamp = datetime.datetime.fromtimestamp(record.created).strftime("%Y-%m-%d %H:%M:%S.%f")
        level = {"DEBUG": "I", "INFO": "I", "WARNING": "W", "ERROR": "E", "CRITICAL": "F"}[record.levelname]
        text = f"{stamp}: {level} tfserving_double/{record.module}.py:{record.lineno}] {record.getMessage()}"
        if record.exc_info:
            text += "\n" + self.formatException(record.exc_info)
        return text


def _setup_logging():
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(_GlogFormatter())
    LOG.handlers[:] = [handler]
    LOG.setLevel(logging.INFO)
    LOG.propagate = False


class DoubleServer:
    def __init__(self, args):
        self.args = args
        self.core = None
        self.grpc_server = None
        self.rest_server = None
        self._config_poll_stop = threading.Event()

    def build_and_start(self):
        a = self.args
        if a.port == 0:
            raise invalid_argument("server_options.grpc_port is not set.")
        if not a.model_base_path and not a.model_config_file:
            raise invalid_argument(
                "Both server_options.model_base_path and server_options.model_config_file are empty!"
            )
        if a.model_config_file:
            model_server_config = config.parse_text_file(a.model_config_file, config.ModelServerConfig)
        else:
            model_server_config = config.build_single_model_config(a.model_name, a.model_base_path)
        if a.platform_config_file:
            raise invalid_argument("--platform_config_file is not supported by the TF Serving test double")
        if a.enable_batching:
            if a.batching_parameters_file:
                params = config.parse_text_file(a.batching_parameters_file, config.BatchingParameters)
                LOG.info(
                    "Batching parameters accepted (the test double does not batch): %s",
                    " ".join(str(params).split()),
                )
        elif a.batching_parameters_file:
            raise invalid_argument(
                "server_options.batching_parameters_file is set without setting "
                "server_options.enable_batching to true."
            )
        if (
            a.tensorflow_intra_op_parallelism > 0
            and a.tensorflow_inter_op_parallelism > 0
            and a.tensorflow_session_parallelism > 0
        ):
            raise invalid_argument(
                "Either configure server_options.tensorflow_session_parallelism or "
                "(server_options.tensorflow_intra_op_parallelism, "
                "server_options.tensorflow_inter_op_parallelism) separately. You cannot "
                "configure all."
            )
        if a.tensorflow_intra_op_parallelism > 0 or a.tensorflow_inter_op_parallelism > 0:
            intra, inter = a.tensorflow_intra_op_parallelism, a.tensorflow_inter_op_parallelism
        else:
            intra = inter = a.tensorflow_session_parallelism
        from . import core as core_mod
        from . import inference, metrics, servable, warmup

        inference.Settings.method_name_check = a.enable_signature_method_name_check
        tags = [tag for tag in a.saved_model_tags.split(",")]

        self.metrics = metrics.Metrics()

        def loader(name, version, path):
            loaded = servable.load(name, version, path, tags, intra, inter)
            if a.enable_model_warmup:
                # saved_model_bundle_source_adapter.cc: warm-up is part of the load; its failure fails it.
                try:
                    warmup.run(loaded, path, a.num_request_iterations_for_warmup)
                except TFError:
                    loaded.close()
                    raise
            return loaded

        options = core_mod.CoreOptions(
            file_system_poll_wait_seconds=a.file_system_poll_wait_seconds,
            allow_version_labels_for_unavailable_models=a.allow_version_labels_for_unavailable_models,
            max_num_load_retries=a.max_num_load_retries,
            load_retry_interval_micros=a.load_retry_interval_micros,
            saved_model_tags=tuple(tags),
            intra_op_parallelism=intra,
            inter_op_parallelism=inter,
        )
        # TensorFlow is imported once the config has passed ServerCore's checks, just before the first
        # load, so configuration errors fail as fast as TF Serving's do.
        self.core = core_mod.ServerCore(
            options,
            loader,
            self.metrics,
            before_first_load=lambda: LOG.info(
                "Serving with TensorFlow %s", servable.tensorflow().__version__
            ),
        )
        self.core.reload_config(model_server_config)
        from . import grpc_service, rest

        if a.model_config_file_poll_wait_seconds > 0 and a.model_config_file:
            threading.Thread(target=self._poll_config, name="tfs_double_config_poll", daemon=True).start()

        host = os.environ.get(BIND_ENV, "0.0.0.0")
        self.grpc_server = grpc_service.build_server(
            self.core, self.metrics, host, a.port, a.grpc_socket_path, max(4, a.grpc_max_threads or 16)
        )
        if self.grpc_server is None:
            raise invalid_argument("Failed to BuildAndStart gRPC server")
        self.grpc_server.start()
        LOG.info("Running gRPC ModelServer at %s:%d ...", host, a.port)
        if a.grpc_socket_path:
            LOG.info("Running gRPC ModelServer at UNIX socket %s ...", a.grpc_socket_path)

        if a.rest_api_port != 0:
            if a.rest_api_port != a.port:
                monitoring = config.MonitoringConfig()
                if a.monitoring_config_file:
                    monitoring = config.parse_text_file(a.monitoring_config_file, config.MonitoringConfig)
                prometheus_path = None
                if monitoring.prometheus_config.enable:
                    prometheus_path = monitoring.prometheus_config.path or config.PROMETHEUS_DEFAULT_PATH
                api = rest.RestApi(self.core, self.metrics, prometheus_path)
                try:
                    self.rest_server = rest.RestServer(
                        api, host, a.rest_api_port, a.rest_api_enable_cors_support
                    )
                except OSError as err:
                    LOG.error("Failed to start HTTP Server at localhost:%d (%s)", a.rest_api_port, err)
                else:
                    self.rest_server.start()
                    LOG.info("Exporting HTTP/REST API at:localhost:%d ...", a.rest_api_port)
            else:
                LOG.error(
                    "server_options.http_port cannot be same as grpc_port. Please use a different port for "
                    "HTTP/REST API. Skipped exporting HTTP/REST API."
                )

    def _poll_config(self):
        """Server::PollFilesystemAndReloadConfig(), every --model_config_file_poll_wait_seconds."""
        while not self._config_poll_stop.wait(self.args.model_config_file_poll_wait_seconds):
            try:
                new_config = config.parse_text_file(self.args.model_config_file, config.ModelServerConfig)
            except TFError as err:
                LOG.error("Failed to read ModelServerConfig file: %s", err.message)
                continue
            try:
                self.core.reload_config(new_config)
            except TFError as err:
                LOG.error("PollFilesystemAndReloadConfig failed to ReloadConfig: %s", err.message)


def main(argv=None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    _setup_logging()
    signal.signal(signal.SIGINT, signal.SIG_DFL)  # die on ^C like the C++ binary, whatever is loading
    # SIGTERM ends the server at once, also as a container's PID 1 (where a default action is ignored).
    signal.signal(signal.SIGTERM, lambda signum, _frame: os._exit(128 + signum))
    try:
        args = flags.parse(argv)
    except flags.FlagError as err:
        LOG.error("%s", err)
        sys.stdout.write(flags.usage())
        sys.stdout.flush()
        return 255
    if args.version:
        from .servable import tensorflow

        print(f"TensorFlow ModelServer: {__version__} (TF Serving TEST DOUBLE, not TensorFlow Serving)")
        print(f"TensorFlow Library: {tensorflow().__version__}")
        return 0
    if args.unknown:
        sys.stdout.write(f"unknown argument: {args.unknown[0]}\n{flags.usage()}")
        sys.stdout.flush()
    LOG.info(BANNER, __version__)
    server = DoubleServer(args)
    try:
        server.build_and_start()
    except TFError as err:
        sys.stdout.write(f"Failed to start server. Error: {err}\n")
        sys.stdout.flush()
        return 255
    threading.Event().wait()  # serve until a signal ends the process, as tensorflow_model_server does
    return 0
