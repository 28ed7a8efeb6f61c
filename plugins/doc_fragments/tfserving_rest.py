# Copyright: the tfserving-ansible authors
# Apache License 2.0
"""Options of TF Serving's REST port (argument specs: REST_SPEC and TRANSPORT_SPEC in
plugins/module_utils/tfserving_common.py)."""


class ModuleDocFragment:
    # The REST port, for every module that can talk REST.
    DOCUMENTATION = r"""
options:
  rest_port:
    description: TF Serving's REST port (C(--rest_api_port)).
    type: int
    default: 8501
  scheme:
    description: V(https) when the REST port is behind a TLS proxy.
    type: str
    choices: [http, https]
    default: http
  validate_certs:
    description: Verify the server certificate when O(scheme=https).
    type: bool
    default: true
"""

    # tfserving_rest.only: ca_path and use_proxy as they work for a module that talks only REST.
    # A module that talks REST or gRPC documents these two itself, for both protocols.
    ONLY = r"""
options:
  ca_path:
    description: PEM file of the CA that signed the server certificate.
    type: path
  use_proxy:
    description: Honour C(http_proxy)/C(https_proxy) from the environment.
    type: bool
    default: true
"""
