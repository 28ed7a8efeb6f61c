"""Every module documents exactly the options it accepts, doc fragments included.

The connection options of the TF Serving client modules are written once: described in
plugins/doc_fragments (tfserving_server, tfserving_rest, tfserving_grpc) and specified in
plugins/module_utils/tfserving_common.py (SERVER_SPEC, REST_SPEC, GRPC_SPEC, TRANSPORT_SPEC).
These tests keep the two halves matched, per fragment and per module.
"""

from __future__ import annotations

import pytest
from ansible_collections.tfserving.fleet.plugins.module_utils import tfserving_common
from module_docs import MODULES, argument_spec, documented_options, fragment_options, from_docs, from_spec

# Each fragment and the argument spec it documents.
FRAGMENT_SPECS = {
    "tfserving.fleet.tfserving_server": tfserving_common.SERVER_SPEC,
    "tfserving.fleet.tfserving_rest": tfserving_common.REST_SPEC,
    "tfserving.fleet.tfserving_rest.only": tfserving_common.TRANSPORT_SPEC,
    "tfserving.fleet.tfserving_grpc": tfserving_common.GRPC_SPEC,
    "tfserving.fleet.tfserving_grpc.only": tfserving_common.TRANSPORT_SPEC,
}

CLIENT_MODULES = ["tfserving_model_status", "tfserving_predict", "tfserving_reload_config"]
CONNECTION_OPTIONS = {
    "tfserving_model_status": {"host", "rest_port", "scheme", "validate_certs", "grpc_port", "grpc_tls",
                               "ca_path", "use_proxy"},
    "tfserving_predict": {"host", "rest_port", "scheme", "validate_certs", "ca_path", "use_proxy"},
    "tfserving_reload_config": {"host", "grpc_port", "grpc_tls", "ca_path", "use_proxy"},
}


def test_every_module_is_checked():
    assert set(CLIENT_MODULES) <= set(MODULES)
    assert len(MODULES) >= 6


@pytest.mark.parametrize("name", MODULES)
def test_documented_options_match_the_argument_spec(name):
    documented = from_docs(documented_options(name))
    accepted = from_spec(argument_spec(name))
    assert sorted(documented) == sorted(accepted), f"{name}: documented vs accepted option names"
    for option in sorted(accepted):
        assert documented[option] == accepted[option], f"{name}: option {option}"


@pytest.mark.parametrize("slug", sorted(FRAGMENT_SPECS))
def test_each_fragment_documents_its_spec(slug):
    assert from_docs(fragment_options(slug)) == from_spec(FRAGMENT_SPECS[slug])


@pytest.mark.parametrize("name", CLIENT_MODULES)
def test_client_modules_take_their_connection_options_from_the_shared_spec(name):
    spec = argument_spec(name)
    shared = {**tfserving_common.SERVER_SPEC, **tfserving_common.REST_SPEC, **tfserving_common.GRPC_SPEC,
              **tfserving_common.TRANSPORT_SPEC}
    connection = {option for option in spec if option in shared}
    assert connection == CONNECTION_OPTIONS[name]
    for option in connection:
        assert spec[option] is shared[option], f"{name}: {option} is redefined in the module"


def _text(option):
    description = option["description"]
    return " ".join(description) if isinstance(description, list) else description


def test_proxy_and_ca_wording_fits_the_protocols_of_each_module():
    """use_proxy and ca_path mean different things over REST and gRPC; each module says what it does."""
    status, predict, reload = (documented_options(name) for name in CLIENT_MODULES)
    assert "http_proxy" in _text(predict["use_proxy"]) and "grpc_proxy" not in _text(predict["use_proxy"])
    assert "grpc_proxy" in _text(reload["use_proxy"]) and "http_proxy" not in _text(reload["use_proxy"])
    assert "http_proxy" in _text(status["use_proxy"]) and "grpc_proxy" in _text(status["use_proxy"])
    assert "grpc_tls" not in _text(predict["ca_path"])
    assert "grpc_tls" in _text(reload["ca_path"])
    assert "grpc_tls" in _text(status["ca_path"]) and "https" in _text(status["ca_path"])
