#!/usr/bin/python
# Copyright: the tfserving-ansible authors
# Apache License 2.0

DOCUMENTATION = r"""
---
module: tfserving_model_status
short_description: Wait until TensorFlow Serving model versions are AVAILABLE
description:
  - Asks a running TensorFlow Serving server for the status of each expected model and waits,
    with a deadline and backoff, until every expected version is C(AVAILABLE).
  - Reads the state from the answer body. TF Serving answers HTTP 200 whatever the state, so a
    port or HTTP check says nothing about the models.
  - Fails at once when an expected version ended in C(END) with an error (the server's
    C(error_message) is quoted; TF Serving does not retry that load), or when the server does not
    know the model (its 404 answer is quoted).
  - Ignores versions that are C(END) with C(OK) (unloaded by policy or removed) unless the caller
    expects exactly that version.
  - Resolves version labels on the server with a metadata request on the label (REST
    C(/v1/models/NAME/labels/LABEL/metadata) or gRPC C(GetModelMetadata)). TF Serving's status API
    ignores labels and would list every version.
  - A server that refuses connections, or answers 502/503/504, is waited for until O(timeout);
    TF Serving opens its ports only after the start-up loads.
  - Read-only; never reports C(changed).
version_added: "0.1.0"
author:
  - tfserving-ansible maintainers (!UNKNOWN)
extends_documentation_fragment:
  - tfserving.fleet.tfserving_server
  - tfserving.fleet.tfserving_rest
  - tfserving.fleet.tfserving_grpc
options:
  protocol:
    description:
      - V(rest) uses the REST API on O(rest_port) through Ansible's URL helpers and needs nothing but
        Python.
      - V(grpc) uses C(ModelService/GetModelStatus) on O(grpc_port) and needs C(grpcio) and C(protobuf)
        (never TensorFlow).
    type: str
    choices: [rest, grpc]
    default: rest
  ca_path:
    description:
      - PEM file of the CA that signed the server certificate (REST over https, gRPC with O(grpc_tls)).
    type: path
  use_proxy:
    description:
      - Honour the proxy settings of the environment, C(http_proxy)/C(https_proxy) with O(protocol=rest)
        and C(grpc_proxy)/C(https_proxy) with O(protocol=grpc).
    type: bool
    default: true
  models:
    description:
      - The models to check. The same model may appear several times, once per version or label.
      - Without O(models[].version), O(models[].label) or O(models[].all_versions), the newest
        version the server lists that is not unloaded must be AVAILABLE (a newest version that
        failed to load fails the check).
    type: list
    elements: dict
    required: true
    suboptions:
      name:
        description: Model name, as in models.config.
        type: str
        required: true
      version:
        description:
          - This version must be AVAILABLE.
          - With O(models[].label), the label must also point at this version (waits for a label move).
        type: int
      label:
        description: The version this label points at (resolved on the server) must be AVAILABLE.
        type: str
      all_versions:
        description:
          - Every version the server is loading or serving must become AVAILABLE, and at least one
            must exist. Use it for the C(all) and C(specific) version policies; a version that
            failed to load fails the check.
        type: bool
        default: false
  timeout:
    description: Seconds to wait for all models in total. V(0) checks once, without waiting.
    type: float
    default: 60
  delay:
    description: Seconds before the second round of requests.
    type: float
    default: 1
  backoff:
    description: Each further delay is the previous one times this factor.
    type: float
    default: 1.5
  max_delay:
    description: Upper bound of the delay between rounds.
    type: float
    default: 10
  request_timeout:
    description: Seconds one request may take.
    type: float
    default: 10
attributes:
  check_mode:
    support: full
    description: Only reads; runs the same in check mode.
  diff_mode:
    support: none
    description: Changes nothing, so there is nothing to diff.
requirements:
  - grpcio and protobuf, only for O(protocol=grpc)
notes:
  - One round sends one status request per distinct model name and one metadata request per label.
seealso:
  - module: tfserving.fleet.tfserving_reload_config
  - module: tfserving.fleet.tfserving_predict
"""

EXAMPLES = r"""
- name: Every model of the instance answers at its newest version
  tfserving.fleet.tfserving_model_status:
    host: 127.0.0.1
    rest_port: 8501
    models:
      - name: half_plus_two
      - name: resnet
    timeout: 300

- name: Versions 123 and 124 are AVAILABLE and stable points at 123
  tfserving.fleet.tfserving_model_status:
    rest_port: 8501
    models:
      - name: half_plus_two
        all_versions: true
      - name: half_plus_two
        label: stable
        version: 123

- name: Check a remote server from the control node, over gRPC
  tfserving.fleet.tfserving_model_status:
    host: "{{ ansible_facts['default_ipv4']['address'] }}"
    protocol: grpc
    grpc_port: 8500
    models:
      - name: half_plus_two
        version: 124
  delegate_to: localhost
"""

RETURN = r"""
models:
  description: One entry per expected model version, in the order of O(models).
  returned: always
  type: list
  elements: dict
  contains:
    name:
      description: Model name.
      type: str
    label:
      description: The label asked for, or null.
      type: str
    requested_version:
      description: The version asked for, or null.
      type: int
    version:
      description: The version checked (resolved from the label, or the newest).
      type: int
    state:
      description: Last state seen (START, LOADING, AVAILABLE, UNLOADING, END), or null.
      type: str
    error_code:
      description: Status code of that version, C(OK) unless its load failed.
      type: str
    error_message:
      description: The server's error message for that version.
      type: str
    available:
      description: Whether this version counts as AVAILABLE for the check.
      type: bool
    waited:
      description: Seconds from the start until this version was AVAILABLE.
      type: float
    reason:
      description: Why it is not AVAILABLE yet, or null.
      type: str
  sample:
    - name: half_plus_two
      label: stable
      requested_version: null
      version: 123
      state: AVAILABLE
      error_code: OK
      error_message: ""
      available: true
      waited: 0.004
      reason: null
statuses:
  description: Every version the server listed for each model, last time it was asked.
  returned: always
  type: dict
  sample:
    half_plus_two:
      - {version: 124, state: AVAILABLE, error_code: OK, error_message: ""}
      - {version: 123, state: END, error_code: OK, error_message: ""}
elapsed:
  description: Seconds the whole check took.
  returned: always
  type: float
rounds:
  description: Rounds of requests sent.
  returned: always
  type: int
"""

from ansible.module_utils.basic import AnsibleModule, missing_required_lib
from ansible_collections.tfserving.fleet.plugins.module_utils.tfserving_common import (
    GRPC_SPEC,
    REST_SPEC,
    SERVER_SPEC,
    TRANSPORT_SPEC,
    Backoff,
)
from ansible_collections.tfserving.fleet.plugins.module_utils.tfserving_grpc import (
    GRPC_IMPORT_ERROR,
    HAS_GRPC,
    HAS_PROTOBUF,
    PROTOBUF_IMPORT_ERROR,
)
from ansible_collections.tfserving.fleet.plugins.module_utils.tfserving_rest import RestClient
from ansible_collections.tfserving.fleet.plugins.module_utils.tfserving_status import FAILED, OK, Expectation, wait_for

ARGUMENT_SPEC = dict(
    **SERVER_SPEC,
    **REST_SPEC,
    **GRPC_SPEC,
    **TRANSPORT_SPEC,  # documented here, for both protocols
    protocol=dict(type="str", choices=["rest", "grpc"], default="rest"),
    models=dict(
        type="list",
        elements="dict",
        required=True,
        options=dict(
            name=dict(type="str", required=True),
            version=dict(type="int"),
            label=dict(type="str"),
            all_versions=dict(type="bool", default=False),
        ),
        mutually_exclusive=[("all_versions", "version"), ("all_versions", "label")],
    ),
    timeout=dict(type="float", default=60),
    delay=dict(type="float", default=1),
    backoff=dict(type="float", default=1.5),
    max_delay=dict(type="float", default=10),
    request_timeout=dict(type="float", default=10),
)


def make_client(module):
    """The REST or gRPC client the options ask for (fails the module when gRPC libraries are missing)."""
    p = module.params
    if p["protocol"] == "grpc":
        if not HAS_GRPC:
            module.fail_json(msg=missing_required_lib("grpcio", reason="for protocol=grpc"),
                             exception=GRPC_IMPORT_ERROR)
        if not HAS_PROTOBUF:
            module.fail_json(msg=missing_required_lib("protobuf", reason="for protocol=grpc"),
                             exception=PROTOBUF_IMPORT_ERROR)
        from ansible_collections.tfserving.fleet.plugins.module_utils.tfserving_grpc import GrpcClient

        return GrpcClient(p["host"], p["grpc_port"], timeout=p["request_timeout"], tls=p["grpc_tls"],
                          ca_path=p["ca_path"], use_proxy=p["use_proxy"])
    return RestClient(p["host"], p["rest_port"], scheme=p["scheme"], timeout=p["request_timeout"],
                      validate_certs=p["validate_certs"], use_proxy=p["use_proxy"], ca_path=p["ca_path"])


def validate(module):
    p = module.params
    problems = []
    for key in ("timeout",):
        if p[key] < 0:
            problems.append(f"{key} must be >= 0, got {p[key]}")
    for key in ("delay", "max_delay", "request_timeout"):
        if p[key] <= 0:
            problems.append(f"{key} must be > 0, got {p[key]}")
    if p["backoff"] < 1:
        problems.append("backoff must be >= 1, got {}".format(p["backoff"]))
    for port in ("rest_port", "grpc_port"):
        if not 0 < p[port] < 65536:
            problems.append(f"{port} must be a TCP port (1-65535), got {p[port]}")
    if not p["models"]:
        problems.append("models must list at least one model")
    for index, model in enumerate(p["models"] or []):
        if not model["name"]:
            problems.append(f"models[{index}].name must not be empty")
        if model["version"] is not None and model["version"] < 0:
            problems.append(f"models[{index}].version must be >= 0, got {model['version']}")
        if model["label"] is not None and not model["label"]:
            problems.append(f"models[{index}].label must not be empty")
    if problems:
        module.fail_json(msg="Invalid options: {}. Fix them in the task.".format("; ".join(problems)))


def main():
    module = AnsibleModule(argument_spec=ARGUMENT_SPEC, supports_check_mode=True)
    validate(module)
    p = module.params
    client = make_client(module)
    expectations = [
        Expectation(m["name"], version=m["version"], label=m["label"], all_versions=m["all_versions"])
        for m in p["models"]
    ]
    backoff = Backoff(p["timeout"], delay=p["delay"], factor=p["backoff"], max_delay=p["max_delay"])
    try:
        outcome, statuses = wait_for(client, expectations, backoff)
    finally:
        if hasattr(client, "close"):
            client.close()
    rows = [row for exp in expectations for row in exp.results()]
    result = dict(
        changed=False,
        models=rows,
        statuses=statuses,
        elapsed=round(backoff.elapsed(), 3),
        rounds=backoff.rounds,
    )
    if outcome == OK:
        result["msg"] = f"{len(rows)} model version(s) AVAILABLE on {server_name(client)}"
        module.exit_json(**result)
    if outcome == FAILED:
        failed = [e for e in expectations if e.outcome == FAILED]
        result["msg"] = "; ".join(e.reason for e in failed)
        module.fail_json(**result)
    pending = [e for e in expectations if e.outcome != OK]
    result["msg"] = "Timed out after {}s waiting for {} on {}. Expected AVAILABLE; still: {}".format(
        p["timeout"],
        ", ".join(e.describe() for e in pending),
        server_name(client),
        "; ".join(e.reason for e in pending),
    )
    module.fail_json(**result)


def server_name(client):
    return getattr(client, "base_url", None) or getattr(client, "target", "")


if __name__ == "__main__":
    main()
