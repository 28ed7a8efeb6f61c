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
from ansible_collections.tfserving.fleet.plugins.module_utils.tfserving_grpc import (
    GRPC_IMPORT_ERROR,
    HAS_GRPC,
    HAS_PROTOBUF,
    PROTOBUF_IMPORT_ERROR,
)
from ansible_collections.tfserving.fleet.plugins.module_utils.tfserving_reload import (
    RELOAD_MUTUALLY_EXCLUSIVE,
    RELOAD_REQUIRED_ONE_OF,
    RELOAD_SPEC,
    reload_config,
)


def main():
    module = AnsibleModule(
        argument_spec=RELOAD_SPEC,
        required_one_of=RELOAD_REQUIRED_ONE_OF,
        mutually_exclusive=RELOAD_MUTUALLY_EXCLUSIVE,
        supports_check_mode=True,
    )
    if not HAS_GRPC:
        module.fail_json(msg=missing_required_lib("grpcio", reason="to send a config reload over gRPC"),
                         exception=GRPC_IMPORT_ERROR)
    if not HAS_PROTOBUF:
        module.fail_json(msg=missing_required_lib("protobuf", reason="to build the ModelServerConfig"),
                         exception=PROTOBUF_IMPORT_ERROR)
    reload_config(module)


if __name__ == "__main__":
    main()
