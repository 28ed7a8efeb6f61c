#!/usr/bin/python
# Copyright: the tfserving-ansible authors
# Apache License 2.0

DOCUMENTATION = r"""
---
module: tfserving_reload_config
short_description: Give a running TensorFlow Serving server a new model configuration, only when it differs
description:
  - Builds the wanted C(ModelServerConfig) from structured O(models), from models.config text
    (O(config_text) or O(config_file)), or from both, and validates it the way TF Serving would
    before anything is sent (duplicate names, relative base paths, empty or unknown platform,
    labels on versions a C(specific) policy does not load, an empty model list).
  - Compares it with what the server serves, asking C(GetModelStatus) per model and resolving
    each wanted label with C(GetModelMetadata) on the label. A model that is not served, served
    versions that do not fit the version policy, a label that points elsewhere, and a model in
    O(absent_models) that is still served are differences.
  - Sends C(ModelService/HandleReloadConfigRequest) over gRPC only when something differs (or
    O(force)), with a deadline; TF Serving answers only once newly added models are loaded and
    never answers when a base path does not exist.
  - TF Serving refuses a label on a version that is not AVAILABLE yet. When a wanted label points
    at such a version, the module reloads in the two steps TF Serving documents. First the new
    config with the label left where it is now (or left out), then, once that version is
    AVAILABLE, the full config.
  - Reports C(changed) only when it sent a reload. In check mode it reports the differences and
    sends nothing.
  - A reload replaces the server's whole model list, so the wanted config must list every model the
    server keeps; give the whole models.config (O(config_file) or O(config_text)).
  - Needs C(grpcio) and C(protobuf) on the host it runs on, never TensorFlow.
version_added: "0.1.0"
author:
  - tfserving-ansible maintainers (!UNKNOWN)
extends_documentation_fragment:
  - tfserving.fleet.tfserving_server
  - tfserving.fleet.tfserving_grpc
  - tfserving.fleet.tfserving_grpc.only
options:
  models:
    description: Wanted models, in the order they go into the config (after those of the text).
    type: list
    elements: dict
    suboptions:
      name:
        description: Model name.
        type: str
        required: true
      base_path:
        description: Absolute path (as the server sees it) or URI of the directory of numbered versions.
        type: str
        required: true
      model_platform:
        description: TF Serving's platform name.
        type: str
        default: tensorflow
      version_policy:
        description: Which versions the server loads.
        type: str
        choices: [latest, all, specific]
        default: latest
      num_versions:
        description: With V(latest), how many of the newest versions (TF Serving's default is 1).
        type: int
      versions:
        description: With V(specific), the versions to load.
        type: list
        elements: int
      version_labels:
        description: Labels and the versions they point at, for example C({stable = 123}).
        type: dict
  config_text:
    description: Wanted config as models.config text (protobuf text format of C(ModelServerConfig)).
    type: str
  config_file:
    description: Path of a models.config file on the host the module runs on, read as O(config_text).
    type: path
  absent_models:
    description:
      - Models that must not be served. TF Serving cannot list the models it serves, so a model
        that was removed from the wanted config is only noticed when it is named here.
      - The reload itself always unloads every model missing from the wanted config.
    type: list
    elements: str
    default: []
  force:
    description:
      - Send the reload even when no difference is seen (base path changes are invisible through
        TF Serving's API).
    type: bool
    default: false
  timeout:
    description:
      - Seconds the whole operation may take, reloads and waits included. Every reload gets the time
        left as its deadline.
    type: float
    default: 120
  request_timeout:
    description: Seconds a status or metadata request may take.
    type: float
    default: 10
  delay:
    description: Seconds between status checks while waiting for a version before moving a label.
    type: float
    default: 1
  backoff:
    description: Each further delay is the previous one times this factor.
    type: float
    default: 1.5
  max_delay:
    description: Upper bound of the delay between status checks.
    type: float
    default: 10
  when_unreachable:
    description:
      - What to do when the server cannot be reached over gRPC (connection refused or reset, name not
        resolved, or no answer to the first status request within O(request_timeout)).
      - V(fail) fails. V(skip) returns unchanged with RV(reached=false), for a caller that has written
        the same config to the server's models.config and lets TF Serving's config poll apply it.
      - A refusal by the server (an invalid config, a label on a version that is not AVAILABLE) and a
        reload the server does not answer within its deadline fail in both cases.
    type: str
    choices: [fail, skip]
    default: fail
attributes:
  check_mode:
    support: full
    description: Compares and reports what would change; sends no reload.
  diff_mode:
    support: full
    description: Shows what the server serves and what the wanted config asks for.
requirements:
  - grpcio
  - protobuf
notes:
  - Differences TF Serving's API cannot show are base path, platform and logging changes of a model
    that is already served; use O(force) for those.
  - After a reload, new versions of models that were already served load in the background; wait
    for them with M(tfserving.fleet.tfserving_model_status).
seealso:
  - module: tfserving.fleet.tfserving_model_status
"""

EXAMPLES = r"""
- name: The server serves both models, stable on 123 and canary on 124
  tfserving.fleet.tfserving_reload_config:
    grpc_port: 8500
    models:
      - name: half_plus_two
        base_path: /models/half_plus_two
        version_policy: specific
        versions: [123, 124]
        version_labels: {stable: 123, canary: 124}
      - name: resnet
        base_path: /models/resnet
    absent_models: [old_model]
    timeout: 300

- name: The server serves what the rendered models.config says
  tfserving.fleet.tfserving_reload_config:
    config_file: /srv/tfserving/main/models.config
    grpc_port: 8500

- name: The server applies the file just written now, or at its next config poll when it is not up
  tfserving.fleet.tfserving_reload_config:
    config_file: /srv/tfserving/main/models.config
    grpc_port: 8500
    request_timeout: 3
    when_unreachable: skip
"""

RETURN = r"""
differences:
  description: What differed between the server and the wanted config.
  returned: always
  type: list
  elements: dict
  contains:
    model:
      description: Model name.
      type: str
    change:
      description: C(add), C(versions), C(labels) or C(remove).
      type: str
    detail:
      description: What the server serves and what is wanted.
      type: str
  sample: [{model: half_plus_two_tf2, change: add, detail: "not served; wanted from /models/tf2"}]
reached:
  description: Whether the server answered over gRPC. False only with O(when_unreachable=skip).
  returned: always
  type: bool
reloads:
  description: Reload requests sent (0, 1, or 2 when a label had to wait for its version).
  returned: always
  type: int
config_text:
  description: The wanted config in protobuf text format.
  returned: always
  type: str
staged_config_text:
  description: The first of two reloads, with labels left where they were.
  returned: when a label had to wait for its version
  type: str
observed:
  description: Per model, the versions being loaded or served and the labels seen, before reloading.
  returned: when the server was asked
  type: dict
  sample: {half_plus_two: {serving: [123], labels: {stable: 123}}}
"""

from ansible.module_utils.basic import AnsibleModule, missing_required_lib
from ansible_collections.tfserving.fleet.plugins.module_utils.tfserving_common import (
    GRPC_CONNECTION_SPEC,
    UNREACHABLE,
    Backoff,
    TFServingError,
)
from ansible_collections.tfserving.fleet.plugins.module_utils.tfserving_grpc import (
    GRPC_IMPORT_ERROR,
    HAS_GRPC,
    HAS_PROTOBUF,
    PROTOBUF_IMPORT_ERROR,
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


# -- the module -------------------------------------------------------------------------------------------
def main():
    module = AnsibleModule(
        argument_spec=dict(
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
        ),
        required_one_of=[("models", "config_text", "config_file")],
        mutually_exclusive=[("config_text", "config_file")],
        supports_check_mode=True,
    )
    p = module.params
    if not HAS_GRPC:
        module.fail_json(msg=missing_required_lib("grpcio", reason="to send a config reload over gRPC"),
                         exception=GRPC_IMPORT_ERROR)
    if not HAS_PROTOBUF:
        module.fail_json(msg=missing_required_lib("protobuf", reason="to build the ModelServerConfig"),
                         exception=PROTOBUF_IMPORT_ERROR)
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


if __name__ == "__main__":
    main()
