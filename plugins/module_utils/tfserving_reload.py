# Copyright: the tfserving-ansible authors
# Apache License 2.0
"""What tfserving_reload_config does, shared by the module and its action plugin.

The module is called on the control node (grpcio is there, not on the hosts): as a module run, each
reload costs a Python start, the compile of its module_utils and grpcio's import, about half a
second of CPU. Its action plugin calls reload_config() in Ansible's own process instead, where it
can (plugins/plugin_utils/tfserving_in_process.py); both end the same way, with the module's
exit_json or fail_json.
"""

from ansible_collections.tfserving.fleet.plugins.module_utils.tfserving_common import (
    GRPC_CONNECTION_SPEC,
    UNREACHABLE,
    Backoff,
    TFServingError,
)
from ansible_collections.tfserving.fleet.plugins.module_utils.tfserving_models_config import (
    ConfigError,
    ModelEntry,
    parse,
    policy_of,
    stage_labels,
    validate,
)
from ansible_collections.tfserving.fleet.plugins.module_utils.tfserving_status import (
    OK,
    Expectation,
    available,
    differences,
    observe,
    serving,
    summary_after,
    summary_before,
    wait_for,
)

# The module's options (documented in plugins/modules/tfserving_reload_config.py).
RELOAD_SPEC = dict(
    **GRPC_CONNECTION_SPEC,
    models=dict(
        type="list",
        elements="dict",
        options=dict(
            name=dict(type="str", required=True),
            base_path=dict(type="str", required=True),
            model_platform=dict(type="str", default="tensorflow"),
            version_policy=dict(type="str", choices=["latest", "all", "specific"], default="latest"),
            num_versions=dict(type="int"),
            versions=dict(type="list", elements="int"),
            version_labels=dict(type="dict"),
        ),
    ),
    config_text=dict(type="str"),
    config_file=dict(type="path"),
    absent_models=dict(type="list", elements="str", default=[]),
    force=dict(type="bool", default=False),
    timeout=dict(type="float", default=120),
    request_timeout=dict(type="float", default=10),
    delay=dict(type="float", default=1),
    backoff=dict(type="float", default=1.5),
    max_delay=dict(type="float", default=10),
    when_unreachable=dict(type="str", choices=["fail", "skip"], default="fail"),
)
RELOAD_REQUIRED_ONE_OF = [("models", "config_text", "config_file")]
RELOAD_MUTUALLY_EXCLUSIVE = [("config_text", "config_file")]


class Finished(Exception):
    """How reload_config() ends for a caller that is not an AnsibleModule: the result, failed or not."""

    def __init__(self, failed, result):
        super().__init__(result.get("msg", ""))
        self.failed = failed
        self.result = dict(result, failed=True) if failed else result


class Caller:
    """What reload_config() asks of an AnsibleModule, for a call from an action plugin."""

    def __init__(self, params, check_mode=False, diff=False):
        self.params = params
        self.check_mode = check_mode
        self._diff = diff

    def exit_json(self, **result):
        raise Finished(False, result)

    def fail_json(self, **result):
        raise Finished(True, result)


# -- the wanted config --------------------------------------------------------------------------------
def build_entries(params):
    """The wanted models as ModelEntry, text first; raise ValueError with what is wrong."""
    text = params["config_text"]
    source = "config_text"
    if params["config_file"]:
        source = params["config_file"]
        try:
            with open(params["config_file"], encoding="utf-8") as handle:
                text = handle.read()
        except OSError as err:
            raise ValueError(f"config_file {params['config_file']} cannot be read: {err.strerror}") from None
    entries = []
    if text is not None:
        try:
            entries = parse(text)
        except ConfigError as err:
            raise ValueError(f"{source}: not a valid ModelServerConfig in protobuf text format: {err}") from None
    for model in params["models"] or []:
        labels = {}
        for label, version in sorted((model["version_labels"] or {}).items()):
            try:
                if isinstance(version, bool):
                    raise ValueError(version)
                labels[str(label)] = int(str(version))
            except ValueError:
                raise ValueError(f"label {label} of model {model['name']} must map to a version number, "
                                 f"got {version!r}") from None
        policy = policy_of(model["version_policy"], model["num_versions"], model["versions"])
        entries.append(ModelEntry(model["name"], model["base_path"], model["model_platform"], policy, labels))
    return entries


def problems_of(entries, structured):
    """What TF Serving would reject, and what it would accept but regret, before anything is sent."""
    problems = []
    if not entries:
        problems.append("the wanted config lists no model; TF Serving would unload every model. List the "
                        "models to keep (an empty server is not a config this module sends)")
    problems += validate(entries)
    for model in structured or []:
        if model["version_policy"] != "latest" and model["num_versions"] is not None:
            problems.append(f"model {model['name']}: num_versions goes with version_policy latest")
        if model["version_policy"] != "specific" and model["versions"]:
            problems.append(f"model {model['name']}: versions go with version_policy specific")
    return problems


def unreachable(err, sent):
    """Whether an error means the server was not reached, so nothing it answered was a refusal.

    Only a failed connection (UNAVAILABLE: refused, reset, no route, name not resolved) or, before
    any reload was sent, a status request without an answer counts. A refusal (INVALID_ARGUMENT,
    FAILED_PRECONDITION, ...) is the server's verdict on the config, and a reload without an answer
    is a server stuck on that config (a base path it cannot find): both are failures.
    """
    if err.kind != UNREACHABLE:
        return False
    return err.code != "DEADLINE_EXCEEDED" or not sent


# -- the reload ----------------------------------------------------------------------------------------
def reload_config(module):
    """The module's work once its options are parsed and grpcio and protobuf import; ends with
    module.exit_json() or module.fail_json() (an AnsibleModule, or a Caller)."""
    p = module.params
    from ansible_collections.tfserving.fleet.plugins.module_utils.tfserving_grpc import (
        GrpcClient,
        config_message,
        config_to_text,
    )

    option_problems = [f"{key} must be > 0, got {p[key]}"
                       for key in ("timeout", "request_timeout", "delay", "max_delay") if p[key] <= 0]
    if p["backoff"] < 1:
        option_problems.append(f"backoff must be >= 1, got {p['backoff']}")
    if not 0 < p["grpc_port"] < 65536:
        option_problems.append(f"grpc_port must be a TCP port (1-65535), got {p['grpc_port']}")
    if option_problems:
        module.fail_json(msg="Invalid options: " + "; ".join(option_problems) + ". Fix them in the task.")

    try:
        config = build_entries(p)
    except ValueError as err:
        module.fail_json(msg=f"The wanted config cannot be built: {err}. Nothing was sent to the server.")
    problems = problems_of(config, p["models"])
    result = dict(changed=False, reached=False, differences=[], reloads=0,
                  config_text=config_to_text(config_message(config)))
    if problems:
        result["msg"] = (
            "The wanted config would be rejected or would harm the server: " + "; ".join(problems)
            + ". Nothing was sent to the server; fix the models or the config text."
        )
        module.fail_json(**result)

    absent = [name for name in p["absent_models"] if name]
    backoff = Backoff(p["timeout"], delay=p["delay"], factor=p["backoff"], max_delay=p["max_delay"])
    client = GrpcClient(p["host"], p["grpc_port"], timeout=p["request_timeout"], tls=p["grpc_tls"],
                        ca_path=p["ca_path"], use_proxy=p["use_proxy"])
    try:
        run(module, client, config, absent, backoff, result, config_message, config_to_text)
    finally:
        client.close()


def run(module, client, config, absent, backoff, result, message_of, config_to_text):
    p = module.params
    try:
        observed = observe(client, config, absent)
    except TFServingError as err:
        if p["when_unreachable"] == "skip" and unreachable(err, sent=False):
            result["msg"] = (f"The server was not reached ({err.message}); nothing was sent. TF Serving applies "
                             "the config file at its next config poll.")
            module.exit_json(**result)
        result["msg"] = (f"Could not read what the server serves: {err.message}. Expected TF Serving's gRPC "
                         f"port (--port) at {client.target}; nothing was sent.")
        module.fail_json(**result)
    result["reached"] = True
    result["observed"] = {
        name: {"serving": serving(seen["statuses"]), "labels": seen["labels"],
               "known": seen["statuses"] is not None}
        for name, seen in observed.items()
    }
    diffs = differences(config, observed, absent)
    result["differences"] = diffs
    if module._diff:
        result["diff"] = {"before": summary_before(observed), "after": summary_after(config, absent)}
    if not diffs and not p["force"]:
        result["msg"] = "The server already serves the wanted config; no reload sent."
        module.exit_json(**result)

    # Each label may only point at a version that is AVAILABLE when the reload arrives.
    staged, waits = stage_labels(config, {name: seen["labels"] for name, seen in observed.items()},
                                 ready={name: available(seen["statuses"]) for name, seen in observed.items()})
    if staged is not None:
        result["staged_config_text"] = config_to_text(message_of(staged))
    changes = "; ".join(f"{d['model']}: {d['detail']}" for d in diffs) or "none seen, forced"
    if module.check_mode:
        result["changed"] = True
        result["msg"] = f"Would reload ({2 if staged is not None else 1} request(s)): {changes}"
        module.exit_json(**result)

    if staged is not None:
        send(module, client, message_of(staged), staged, backoff, result,
             "the first of two reloads (labels not moved yet)")
        moving = {entry.name: entry.version_labels for entry in config}
        expectations = [Expectation(w["name"], version=w["version"]) for w in waits]
        outcome, _unused = wait_for(client, expectations, backoff)
        if outcome != OK:
            pending = [e for e in expectations if e.outcome != OK]
            waited = {(w["name"], w["version"]) for w in waits}
            moves = ", ".join(f"{label} of {name} -> {version}" for name, labels in sorted(moving.items())
                              for label, version in sorted(labels.items()) if (name, version) in waited)
            result["msg"] = (
                f"The first reload was applied, but the labels ({moves}) were not moved: "
                + "; ".join(e.reason or "" for e in pending)
                + ". TF Serving refuses a label on a version that is not AVAILABLE; the server keeps the "
                "first config, with the labels where they were. Fix the version, then run again."
            )
            module.fail_json(**result)
    send(module, client, message_of(config), config, backoff, result, "the reload")
    result["changed"] = True
    result["msg"] = f"Reloaded with {result['reloads']} request(s): {changes}"
    module.exit_json(**result)


def send(module, client, message, config, backoff, result, what):
    deadline = backoff.remaining()
    if deadline <= 0:
        result["msg"] = (f"No time left for {what} within timeout={module.params['timeout']}s; "
                         "raise timeout.")
        module.fail_json(**result)
    try:
        client.reload_config(message, timeout=deadline)
    except TFServingError as err:
        result["changed"] = result["reloads"] > 0
        if module.params["when_unreachable"] == "skip" and unreachable(err, sent=True):
            result["msg"] = (f"The server could not be reached for {what} ({err.message}). TF Serving applies "
                             "the config file at its next config poll.")
            module.exit_json(**result)
        if err.code == "DEADLINE_EXCEEDED":
            added = {d["model"] for d in result["differences"] if d["change"] == "add"}
            paths = ", ".join(sorted({e.base_path for e in config
                                      if e.name in added or not added}))
            result["msg"] = (
                f"The server did not finish {what} within {deadline:.1f}s. TF Serving answers only once "
                "newly added models are loaded, and never when a base_path does not exist (then every later "
                "reload hangs too, until the server restarts). Check these paths exist inside the server: "
                f"{paths}; or raise timeout for big models."
            )
        elif err.kind == UNREACHABLE:
            result["msg"] = (f"The server could not be reached for {what}: {err.message}. Run again once it "
                             "answers; the module compares before it sends.")
        else:
            result["msg"] = (
                f"The server rejected {what}: {err.server_message or err.message}. TF Serving checks names, "
                "paths and platforms before it applies a config, so such a rejection leaves the previous "
                "config in place; fix the wanted config and run again."
            )
        module.fail_json(**result)
    result["reloads"] += 1
    result["changed"] = True
