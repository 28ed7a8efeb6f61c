"""A small in-process gRPC server with TF Serving's ModelService and GetModelMetadata, for unit tests.

It keeps a model table (versions and their states, labels) and applies reloads the way
TF Serving's ServerCore does where the modules can tell: models missing from a new config end
(END), versions come from a fake "disk" per base_path filtered by the version policy, labels may
only point at AVAILABLE versions (FAILED_PRECONDITION with TF Serving's message otherwise, after
the models were applied, as the real server does), duplicates and relative paths are refused
before anything is applied. Tests can make loads take a few status polls, make a version fail, or
make the reload hang past the client's deadline.

Messages are the modules' own runtime classes (plugins/module_utils/tfserving_grpc.py); their
wire compatibility with TF Serving's real classes is proven in test_tfserving_grpc_wire.py.
"""

from __future__ import annotations

import threading
import time
from concurrent import futures

import grpc
from ansible_collections.tfserving.fleet.plugins.module_utils.tfserving_common import ERROR_CODE_NAMES
from ansible_collections.tfserving.fleet.plugins.module_utils.tfserving_grpc import messages

CODES = {name: number for number, name in ERROR_CODE_NAMES.items()}
STATES = {"UNKNOWN": 0, "START": 10, "LOADING": 20, "AVAILABLE": 30, "UNLOADING": 40, "END": 50}


class FakeModelServer:
    def __init__(self, disk=None):
        self.msgs = messages()
        self.disk = dict(disk or {})  # base_path -> [versions present]
        self.models = {}  # name -> {version: [state, error_code, error_message, polls_until_available]}
        self.labels = {}  # name -> {label: version}
        self.requests = []
        self.reload_delay = 0.0
        self.loading_polls = 0  # status polls a new version stays LOADING
        self.failing = {}  # (name, version) -> error message: the load ends in END with it
        self.reject = None  # (grpc.StatusCode, message): refuse the next reloads with it
        self.lock = threading.Lock()
        self.server = None
        self.port = None

    # -- state helpers ---------------------------------------------------------------------------
    def serve(self, name, *versions, labels=None):
        """Put NAME on the server with VERSIONS AVAILABLE (setup for a test)."""
        with self.lock:
            self.models[name] = {v: ["AVAILABLE", "OK", "", 0] for v in versions}
            self.labels[name] = dict(labels or {})

    def state(self, name):
        with self.lock:
            return {v: s[0] for v, s in self.models.get(name, {}).items()}

    def reloads(self):
        return [r for m, r in self.requests if m.endswith("HandleReloadConfigRequest")]

    def _tick(self, name):
        for version, entry in self.models.get(name, {}).items():
            if entry[0] == "LOADING":
                if entry[3] > 0:
                    entry[3] -= 1
                elif (name, version) in self.failing:
                    entry[:3] = ["END", "UNKNOWN", self.failing[(name, version)]]
                else:
                    entry[0] = "AVAILABLE"

    # -- RPCs -----------------------------------------------------------------------------------------
    def get_model_status(self, request, context):
        name = request.model_spec.name
        with self.lock:
            self._tick(name)
            versions = self.models.get(name)
            if not versions:
                context.abort(grpc.StatusCode.NOT_FOUND, f"Could not find any versions of model {name}")
            response = self.msgs.GetModelStatusResponse()
            for version in sorted(versions, reverse=True):
                state, code, message, _ = versions[version]
                entry = response.model_version_status.add(version=version, state=STATES[state])
                entry.status.error_code = CODES[code]
                entry.status.error_message = message
            return response

    def get_model_metadata(self, request, context):
        spec = request.model_spec
        name = spec.name
        with self.lock:
            if spec.WhichOneof("version_choice") == "version_label":
                label = spec.version_label
                version = self.labels.get(name, {}).get(label)
                if version is None:
                    context.abort(
                        grpc.StatusCode.INVALID_ARGUMENT, f"Unrecognized servable version label: {label}"
                    )
            elif spec.HasField("version"):
                version = spec.version.value
            else:
                available = [v for v, s in self.models.get(name, {}).items() if s[0] == "AVAILABLE"]
                version = max(available) if available else None
            entry = self.models.get(name, {}).get(version)
            if entry is None or entry[0] != "AVAILABLE":
                context.abort(
                    grpc.StatusCode.NOT_FOUND, f"Servable not found for request: Specific({name}, {version})"
                )
            response = self.msgs.GetModelMetadataResponse()
            response.model_spec.name = name
            response.model_spec.version.value = version
            response.metadata[
                "signature_def"
            ].type_url = "type.googleapis.com/tensorflow.serving.SignatureDefMap"
            return response

    def reload(self, request, context):
        if self.reload_delay:
            time.sleep(self.reload_delay)
        if self.reject:
            context.abort(*self.reject)
        config = request.config
        if config.WhichOneof("config") != "model_config_list":
            context.abort(
                grpc.StatusCode.INVALID_ARGUMENT,
                "ServerModelConfig type not supported by HandleReloadConfigRequest. Only "
                "ModelConfigList is currently supported",
            )
        entries = config.model_config_list.config
        names = [e.name for e in entries]
        for name in names:
            if names.count(name) > 1:
                context.abort(
                    grpc.StatusCode.INVALID_ARGUMENT,
                    f"Illegal to list model {name} multiple times in config list",
                )
        for entry in entries:
            if not entry.base_path.startswith("/"):
                context.abort(
                    grpc.StatusCode.INVALID_ARGUMENT,
                    f"Expected model {entry.name} to have an absolute path or URI; got "
                    f"base_path()={entry.base_path}",
                )
        with self.lock:
            for name, versions in self.models.items():
                if name not in names:
                    for state in versions.values():
                        state[:3] = ["END", "OK", ""]
            for entry in entries:
                on_disk = sorted(self.disk.get(entry.base_path, []))
                policy = entry.model_version_policy.WhichOneof("policy_choice")
                if policy == "specific":
                    wanted = [v for v in on_disk if v in entry.model_version_policy.specific.versions]
                elif policy == "all":
                    wanted = on_disk
                else:
                    keep = max(1, entry.model_version_policy.latest.num_versions)
                    wanted = on_disk[-keep:]
                versions = self.models.setdefault(entry.name, {})
                new_model = not any(s[0] != "END" for s in versions.values())
                for version in wanted:
                    if version not in versions or versions[version][0] == "END":
                        polls = 0 if new_model else self.loading_polls
                        versions[version] = ["LOADING", "OK", "", polls]
                for version, state in versions.items():
                    if version not in wanted and state[0] != "END":
                        state[:3] = ["END", "OK", ""]
                if new_model:
                    self._tick(entry.name)  # TF Serving answers once new models are loaded
            for entry in entries:
                for version in entry.version_labels.values():
                    state = self.models[entry.name].get(version)
                    if state is None or state[0] != "AVAILABLE":
                        context.abort(
                            grpc.StatusCode.FAILED_PRECONDITION,
                            f"Request to assign label to version {version} of model {entry.name}, which is "
                            "not currently available for inference",
                        )
            for entry in entries:
                self.labels[entry.name] = dict(entry.version_labels)
        return self.msgs.ReloadConfigResponse()

    # -- server ---------------------------------------------------------------------------------------
    def start(self):
        msgs = self.msgs
        table = {
            "/tensorflow.serving.ModelService/GetModelStatus": (
                msgs.GetModelStatusRequest,
                self.get_model_status,
            ),
            "/tensorflow.serving.ModelService/HandleReloadConfigRequest": (
                msgs.ReloadConfigRequest,
                self.reload,
            ),
            "/tensorflow.serving.PredictionService/GetModelMetadata": (
                msgs.GetModelMetadataRequest,
                self.get_model_metadata,
            ),
        }
        fake = self

        class Handler(grpc.GenericRpcHandler):
            def service(self, details):
                if details.method not in table:
                    return None
                request_class, function = table[details.method]

                def call(request, context, method=details.method, function=function):
                    fake.requests.append((method, request))
                    return function(request, context)

                return grpc.unary_unary_rpc_method_handler(
                    call,
                    request_deserializer=request_class.FromString,
                    response_serializer=lambda message: message.SerializeToString(),
                )

        self.server = grpc.server(futures.ThreadPoolExecutor(max_workers=4))
        self.server.add_generic_rpc_handlers((Handler(),))
        self.port = self.server.add_insecure_port("127.0.0.1:0")
        self.server.start()
        return self

    def stop(self):
        if self.server is not None:
            self.server.stop(grace=None)
            self.server = None
