# Copyright: the tfserving-ansible authors
# Apache License 2.0
"""Options of TF Serving's gRPC port (argument specs: GRPC_SPEC and TRANSPORT_SPEC in
plugins/module_utils/tfserving_common.py)."""


class ModuleDocFragment:
    # The gRPC port, for every module that can talk gRPC.
    DOCUMENTATION = r"""
options:
  grpc_port:
    description: TF Serving's gRPC port (C(--port)).
    type: int
    default: 8500
  grpc_tls:
    description: Use TLS on the gRPC port (TF Serving's C(--ssl_config_file)).
    type: bool
    default: false
"""

    # tfserving_grpc.only: ca_path and use_proxy as they work for a module that talks only gRPC
    # (grpcio reads grpc_proxy before https_proxy). A module that talks REST or gRPC documents these
    # two itself, for both protocols.
    ONLY = r"""
options:
  ca_path:
    description: PEM file of the CA that signed the server certificate, with O(grpc_tls).
    type: path
  use_proxy:
    description: Honour C(grpc_proxy)/C(https_proxy) from the environment.
    type: bool
    default: true
"""
