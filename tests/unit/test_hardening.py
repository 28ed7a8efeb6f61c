"""Hardened defaults, checked on what the roles and modules really produce (issue #10).

- The serving container: the parameters the tfserving role hands to community.docker.docker_container,
  rendered by Ansible's own templating from roles/tfserving/tasks/container-instance.yml with the role's
  defaults and vars and a plan from the role's filter. Never privileged, no host network, PID, IPC or
  user namespace, no added capability or device, every mount read-only, ports published on the
  configured address, log size bounded. (molecule/faults checks the same on `docker inspect` of the
  containers the role created on a real host.)
- The registry password: every task that reads it is no_log, and the argument spec says so.
  (molecule/faults greps a -vvv run of the role for the password.)
- Package repositories: every repository file the docker_engine and nvidia_runtime roles render, for
  every OS and runtime path they support, checks signatures with a key the role installs over HTTPS.
- HTTPS: every module that talks HTTP verifies certificates unless told otherwise, and really refuses
  a server whose certificate it cannot verify.
"""

from __future__ import annotations

import configparser
import datetime
import ipaddress
import pathlib
import re
import ssl

import module_docs
import pytest
import yaml
from ansible.parsing.dataloader import DataLoader
from ansible.template import Templar, trust_as_template
from ansible_collections.tfserving.fleet.plugins.filter import docker_engine as docker_filters
from ansible_collections.tfserving.fleet.plugins.filter import nvidia_runtime as nvidia_filters
from ansible_collections.tfserving.fleet.plugins.filter import tfserving_plan
from ansible_collections.tfserving.fleet.plugins.module_utils import tfserving_inventory
from ansible_collections.tfserving.fleet.plugins.modules import tfserving_model_status, tfserving_predict
from tfserving_http_fake import FakeTFServing, ok, predictions_body, run_module, status_body

ROOT = pathlib.Path(__file__).resolve().parents[2]
ROLES = ROOT / "roles"

# ---------------------------------------------------------------------------------------------
# The serving container, as the role creates it

CONTAINER_TASK = ROLES / "tfserving" / "tasks" / "container-instance.yml"
# Every docker_container parameter the role may set. Anything else (network_mode, pid_mode,
# ipc_mode, userns_mode, capabilities, devices, volumes, volumes_from, cgroupns_mode, sysctls, ...)
# is a widening of the container's privileges that must not slip in unnoticed.
ALLOWED_PARAMETERS = {
    "name", "image", "pull", "command", "published_ports", "mounts", "env", "labels",
    "device_requests", "runtime", "memory", "cpus", "shm_size", "restart_policy", "log_driver",
    "log_options", "read_only", "tmpfs", "cap_drop", "security_opts", "privileged", "state", "restart",
}  # fmt: skip

MODELS = [{"name": "half_plus_two", "base_path": "/models/half_plus_two"}]
INSTANCE_SHAPES = {
    "cpu": [{"name": "cpu", "gpus": [], "models": MODELS}],
    "gpu-indexes": [{"name": "gpu", "gpus": [0, 1], "models": MODELS, "memory": "16g", "cpus": 4, "shm_size": "1g"}],
    "gpu-all-extra-mount": [
        {
            "name": "all",
            "gpus": "all",
            "models": [{"name": "remote", "base_path": "/data/remote"}],
            "extra_mounts": [{"source": "/srv/exports", "target": "/data"}],
            "batching": {"enabled": True},
            "monitoring": {"enabled": True},
        }
    ],
    "two-instances": [
        {"name": "a", "gpus": ["GPU-0d6c5a1e-1111-2222-3333-444455556666"], "models": MODELS},
        {"name": "b", "grpc_port": 9500, "rest_port": 9501, "bind_address": "10.1.2.3", "models": MODELS},
    ],
}


def _role_variables(overrides=None):
    loader = DataLoader()
    variables = {}
    for path in ("defaults/main.yml", "vars/main.yml"):
        variables.update(loader.load_from_file(str(ROLES / "tfserving" / path), trusted_as_template=True))
    variables.update(overrides or {})
    variables["inventory_hostname"] = "gpu-01"
    return loader, variables


def rendered_containers(instances, gpu_mode="none", overrides=None):
    """{instance: the exact docker_container parameters the role passes} for a plan of ``instances``."""
    loader, variables = _role_variables(overrides)
    variables["_tfserving_gpu_mode"] = gpu_mode
    settings = Templar(loader=loader, variables=variables).template(variables["_tfserving_settings"])
    plan = tfserving_plan.plan(instances, settings)
    task = loader.load_from_file(str(CONTAINER_TASK), trusted_as_template=True)[0]
    args = task["community.docker.docker_container"]
    out = {}
    for instance in plan:
        variables.update(__tfserving_instance=instance, _tfserving_images={}, _tfserving_restart=[])
        out[instance["name"]] = Templar(loader=loader, variables=variables).template(args)
    return out


@pytest.mark.parametrize("gpu_mode", ["none", "toolkit", "legacy"])
@pytest.mark.parametrize("shape", sorted(INSTANCE_SHAPES))
def test_serving_container_is_never_given_more_than_it_needs(shape, gpu_mode):
    containers = rendered_containers(INSTANCE_SHAPES[shape], gpu_mode)
    assert containers, "the plan produced no container"
    for name, params in containers.items():
        assert set(params) <= ALLOWED_PARAMETERS, (name, sorted(set(params) - ALLOWED_PARAMETERS))
        assert params["privileged"] is False
        assert params["cap_drop"] == ["ALL"]
        assert params["security_opts"] == ["no-new-privileges"]
        assert params["read_only"] is True and params["tmpfs"] == ["/tmp"]
        assert params["mounts"], name
        for mount in params["mounts"]:
            assert mount["type"] == "bind" and mount["read_only"] is True, mount
        # Bounded logs: json-file with a size and a number of files.
        assert params["log_driver"] == "json-file"
        assert params["log_options"] == {"max-size": "50m", "max-file": "5"}
        # Restarted by Docker after a crash, a daemon restart or a reboot (the fault suite relies on it).
        assert params["restart_policy"] == "unless-stopped"
        # GPUs only through NVIDIA's own mechanisms: a device request for the GPU capability, or the
        # nvidia runtime with NVIDIA_VISIBLE_DEVICES; never a device node or a privileged container.
        for request in params.get("device_requests", []):
            assert request["driver"] == "nvidia" and request["capabilities"] == [["gpu"]], request
        assert params.get("runtime") in (None, "nvidia")
        if gpu_mode != "toolkit":
            assert "device_requests" not in params


def test_model_and_config_directories_are_the_read_only_mounts():
    params = rendered_containers(INSTANCE_SHAPES["gpu-all-extra-mount"])["all"]
    assert params["mounts"] == [
        {"type": "bind", "source": "/srv/tfserving/models/all", "target": "/models", "read_only": True},
        {"type": "bind", "source": "/etc/tfserving/all", "target": "/etc/tfserving", "read_only": True},
        {"type": "bind", "source": "/srv/exports", "target": "/data", "read_only": True},
    ]


@pytest.mark.parametrize(
    ("role_address", "instance_address", "published"),
    [
        (None, None, ["0.0.0.0:8500:8500", "0.0.0.0:8501:8501"]),
        ("127.0.0.1", None, ["127.0.0.1:8500:8500", "127.0.0.1:8501:8501"]),
        ("127.0.0.1", "10.20.30.40", ["10.20.30.40:8500:8500", "10.20.30.40:8501:8501"]),
        ("::1", None, ["[::1]:8500:8500", "[::1]:8501:8501"]),
    ],
)
def test_ports_are_published_on_the_configured_address_only(role_address, instance_address, published):
    instance = {"name": "main", "models": MODELS}
    if instance_address:
        instance["bind_address"] = instance_address
    overrides = {"tfserving_bind_address": role_address} if role_address else None
    params = rendered_containers([instance], overrides=overrides)["main"]
    assert params["published_ports"] == published


def test_the_hardening_is_not_an_option():
    """privileged, namespaces and capabilities cannot be widened from the inventory: the role has no
    variable for them, and the task hard-codes the safe values."""
    task = yaml.safe_load(CONTAINER_TASK.read_text())[0]["community.docker.docker_container"]
    assert task["privileged"] is False
    assert task["security_opts"] == ["no-new-privileges"]
    spec = yaml.safe_load((ROLES / "tfserving" / "meta" / "argument_specs.yml").read_text())
    options = spec["argument_specs"]["main"]["options"]
    instance_keys = set(options["tfserving_instances"]["options"])
    forbidden = re.compile(r"privileged|network_mode|pid|ipc|userns|cap_add|capabilities|devices|security_opt")
    assert not [k for k in list(options) + sorted(instance_keys) if forbidden.search(k)]
    assert tfserving_inventory.INSTANCE_KEYS == instance_keys


# ---------------------------------------------------------------------------------------------
# The registry password


def _tasks(node):
    """Every task mapping in a loaded tasks/playbook file, blocks included."""
    if isinstance(node, list):
        for item in node:
            yield from _tasks(item)
    elif isinstance(node, dict):
        if any(k in node for k in ("block", "rescue", "always", "tasks", "pre_tasks", "post_tasks", "handlers")):
            for key in ("block", "rescue", "always", "tasks", "pre_tasks", "post_tasks", "handlers"):
                yield from _tasks(node.get(key))
            if "block" in node:
                yield node
        else:
            yield node


def _task_files():
    yield from sorted(ROLES.glob("*/tasks/*.yml"))
    yield from sorted(ROLES.glob("*/handlers/*.yml"))
    yield from sorted((ROOT / "playbooks").glob("*.yml"))


RAW_CONDITIONS = ("that", "when", "failed_when", "changed_when", "until")


def _expressions(node, key=None):
    """Every Jinja expression of a task: {{ ... }} in any string, and the raw conditions."""
    if isinstance(node, dict):
        for k, v in node.items():
            yield from _expressions(v, k)
    elif isinstance(node, list):
        for v in node:
            yield from _expressions(v, key)
    elif isinstance(node, str):
        if key in RAW_CONDITIONS:
            yield node
        yield from re.findall(r"\{\{(.*?)\}\}", node, re.S)


def test_every_task_that_reads_the_registry_password_is_no_log():
    """A task may test whether the password is set (``| length``); one that reads its value is no_log."""
    readers = []
    for path in _task_files():
        for task in _tasks(yaml.safe_load(path.read_text())):
            body = {k: v for k, v in task.items() if k not in ("block", "rescue", "always")}
            for expression in _expressions(body):
                if "registry_password" in re.sub(r"tfserving_registry_password\s*\|\s*length", "", expression):
                    readers.append(path.relative_to(ROOT))
                    assert task.get("no_log") is True, (path, task.get("name"))
    assert readers == [pathlib.Path("roles/tfserving/tasks/image.yml")]
    spec = yaml.safe_load((ROLES / "tfserving" / "meta" / "argument_specs.yml").read_text())
    assert spec["argument_specs"]["main"]["options"]["tfserving_registry_password"]["no_log"] is True


# ---------------------------------------------------------------------------------------------
# Package repositories

def _render(role, template, variables):
    loader = DataLoader()
    templar = Templar(loader=loader, variables=variables)
    return templar.template(trust_as_template((ROLES / role / "templates" / template).read_text()))


def _load(role, *files, overrides=None, facts=None):
    loader = DataLoader()
    variables = {}
    for name in files:
        variables.update(loader.load_from_file(str(ROLES / role / name), trusted_as_template=True))
    variables.update(overrides or {})
    variables["ansible_facts"] = facts or {}
    variables["ansible_managed"] = "Ansible managed"
    return variables


def _ini(text):
    parser = configparser.ConfigParser(interpolation=None)
    parser.read_string(text)
    return {s: dict(parser[s]) for s in parser.sections()}


def _deb822(text):
    stanzas = [{}]
    for line in text.splitlines():
        if line.startswith("#"):
            continue
        if not line.strip():
            stanzas.append({})
            continue
        key, _, value = line.partition(":")
        stanzas[-1][key.strip()] = value.strip()
    return [s for s in stanzas if s]


def _assert_rpm_repo_is_signed(section, name):
    # yum/dnf check a package signature (gpgcheck) or the signed repository metadata, whose checksums
    # cover every package (repo_gpgcheck); NVIDIA signs the metadata, Docker the packages.
    assert section.get("gpgcheck") == "1" or section.get("repo_gpgcheck") == "1", (name, section)
    assert section["gpgkey"].startswith("https://"), (name, section)
    assert section.get("sslverify", "1") == "1", (name, section)
    assert section["baseurl"].startswith("https://"), (name, section)


def _assert_deb_repo_is_signed(stanza, keyrings):
    assert stanza["Signed-By"] in keyrings, (stanza, keyrings)
    assert stanza.get("Trusted", "no") == "no", stanza
    assert all(u.startswith("https://") for u in stanza["URIs"].split()), stanza


@pytest.mark.parametrize(
    ("vars_files", "distribution"),
    [
        (("vars/RedHat.yml", "vars/RedHat-7.yml"), "CentOS"),
        (("vars/RedHat.yml",), "Rocky"),
        (("vars/RedHat.yml",), "RedHat"),
    ],
)
def test_docker_el_repository_checks_signatures(vars_files, distribution):
    variables = _load("docker_engine", "defaults/main.yml", *vars_files, facts={"distribution": distribution})
    repos = _ini(_render("docker_engine", "etc/yum.repos.d/docker-ce.repo.j2", variables))
    assert repos
    for name, section in repos.items():
        _assert_rpm_repo_is_signed(section, name)
        assert section["gpgcheck"] == "1"
    # The key the role imports (rpm_key) is the key the repository names.
    install = yaml.safe_load((ROLES / "docker_engine" / "tasks" / "install-RedHat.yml").read_text())
    key_task = next(t for t in install if "ansible.builtin.rpm_key" in t)
    key = Templar(loader=DataLoader(), variables=variables).template(
        trust_as_template(key_task["ansible.builtin.rpm_key"]["key"])
    )
    assert [s["gpgkey"] for s in repos.values()] == [key]
    assert "validate_certs" not in key_task["ansible.builtin.rpm_key"]


@pytest.mark.parametrize(("distribution", "release"), [("Debian", "bookworm"), ("Ubuntu", "noble")])
def test_docker_deb_repository_is_signed_by_the_key_the_role_downloads(distribution, release):
    facts = {"distribution": distribution, "distribution_release": release, "architecture": "x86_64"}
    variables = _load("docker_engine", "defaults/main.yml", "vars/Debian.yml", facts=facts)
    stanzas = _deb822(_render("docker_engine", "etc/apt/sources.list.d/docker.sources.j2", variables))
    install = yaml.safe_load((ROLES / "docker_engine" / "tasks" / "install-Debian.yml").read_text())
    block = next(t for t in install if "block" in t)["block"]
    key_task = next(t for t in block if "ansible.builtin.get_url" in t)["ansible.builtin.get_url"]
    assert "validate_certs" not in key_task
    url = Templar(loader=DataLoader(), variables=variables).template(trust_as_template(key_task["url"]))
    assert url.startswith("https://")
    assert len(stanzas) == 1
    _assert_deb_repo_is_signed(stanzas[0], {key_task["dest"]})


NVIDIA_HOSTS = {
    "EL7": ({"os_family": "RedHat", "distribution": "CentOS", "distribution_major_version": "7",
             "distribution_version": "7.9", "architecture": "x86_64"}, ["3:18.09.2", "17.12.1.ce", "3:20.10.24"]),
    "EL8": ({"os_family": "RedHat", "distribution": "Rocky", "distribution_major_version": "8",
             "distribution_version": "8.10", "architecture": "x86_64"}, ["20.10.24", "3:26.1.4"]),
    "EL9": ({"os_family": "RedHat", "distribution": "AlmaLinux", "distribution_major_version": "9",
             "distribution_version": "9.4", "architecture": "aarch64"}, ["3:26.1.4"]),
    "Debian12": ({"os_family": "Debian", "distribution": "Debian", "distribution_major_version": "12",
                  "distribution_version": "12.7", "architecture": "x86_64"}, ["20.10.24"]),
    "Ubuntu1804": ({"os_family": "Debian", "distribution": "Ubuntu", "distribution_major_version": "18",
                    "distribution_version": "18.04", "architecture": "x86_64"}, ["5:18.09.7~3-0~ubuntu-bionic",
                                                                                 "20.10.24"]),
}  # fmt: skip


@pytest.mark.parametrize(
    ("host", "docker"), [(h, d) for h, (_, versions) in sorted(NVIDIA_HOSTS.items()) for d in versions]
)
def test_every_nvidia_repository_checks_signatures(host, docker):
    facts = NVIDIA_HOSTS[host][0]
    family = facts["os_family"]
    variables = _load(
        "nvidia_runtime", "defaults/main.yml", "vars/main.yml", f"vars/{family}.yml", "vars/matrix.yml", facts=facts
    )
    plan = nvidia_filters.nvidia_runtime_plan(
        docker,
        variables["_nvidia_runtime_matrix"],
        family,
        os_major=facts["distribution_major_version"],
        distribution=facts["distribution"],
        toolkit_version=variables["nvidia_runtime_toolkit_version"],
        nvidia_docker2_version=variables["nvidia_runtime_nvidia_docker2_version"],
    )
    assert plan["ok"], plan["error"]
    variables["nvidia_runtime_plan"] = plan
    templar = Templar(loader=DataLoader(), variables=variables)
    if family == "RedHat":
        repos = _ini(_render("nvidia_runtime", "etc/yum.repos.d/nvidia-runtime.repo.j2", variables))
        assert len(repos) == len(variables["_nvidia_runtime_repo_sets"][plan["repositories"]])
        for name, section in repos.items():
            _assert_rpm_repo_is_signed(section, name)
        install = yaml.safe_load((ROLES / "nvidia_runtime" / "tasks" / "install-RedHat.yml").read_text())
        assert "sslverify=0" not in str(install) and "validate_certs" not in str(install)
    else:
        stanzas = _deb822(_render("nvidia_runtime", "etc/apt/sources.list.d/nvidia-runtime.sources.j2", variables))
        install = yaml.safe_load((ROLES / "nvidia_runtime" / "tasks" / "install-Debian.yml").read_text())
        key_task = next(t for t in install if "ansible.builtin.get_url" in t)["ansible.builtin.get_url"]
        assert "validate_certs" not in key_task
        keyrings = set()
        for repo in variables["_nvidia_runtime_repo_sets"][plan["repositories"]]:
            scope = dict(variables, item=repo)
            keyrings.add(Templar(loader=DataLoader(), variables=scope).template(trust_as_template(key_task["dest"])))
            url = Templar(loader=DataLoader(), variables=scope).template(trust_as_template(key_task["url"]))
            assert url.startswith("https://"), url
        assert len(stanzas) == len(keyrings) >= 1
        for stanza in stanzas:
            _assert_deb_repo_is_signed(stanza, keyrings)
    assert templar.template(trust_as_template("{{ nvidia_runtime_repo_base_url }}")).startswith("https://")


INSECURE = re.compile(
    r"validate_certs:\s*(false|no|False)|disable_gpg_check:\s*(true|yes)|allow_unauthenticated:\s*(true|yes)"
    r"|trusted=yes|Trusted:\s*yes|sslverify\s*=\s*0|--insecure|--no-check-certificate|curl\s+-k\b"
    r"|force_basic_auth|privileged:\s*(true|yes)",
    re.I,
)


def test_no_role_or_playbook_turns_a_check_off():
    offenders = []
    for top in ("roles", "playbooks", "inventories"):
        for path in sorted((ROOT / top).rglob("*")):
            if path.is_file() and path.suffix in (".yml", ".yaml", ".j2", ".cfg", ".repo", ".sources"):
                for number, line in enumerate(path.read_text().splitlines(), 1):
                    if INSECURE.search(line):
                        offenders.append(f"{path.relative_to(ROOT)}:{number}: {line.strip()}")
    assert offenders == []


def test_docker_daemon_defaults_keep_containers_and_bound_logs():
    defaults = yaml.safe_load((ROLES / "docker_engine" / "defaults" / "main.yml").read_text())
    merged = docker_filters.docker_engine_daemon_config(defaults["docker_engine_daemon_defaults"], {}, {})["config"]
    assert merged["live-restore"] is True
    assert merged["log-driver"] == "json-file" and merged["log-opts"]["max-size"]
    # Plain-HTTP registries only where an operator lists them.
    assert "insecure-registries" not in merged


# ---------------------------------------------------------------------------------------------
# HTTPS checks verify certificates unless told otherwise

MODULES_DIR = ROOT / "plugins" / "modules"


def _http_modules():
    out = []
    for path in sorted(MODULES_DIR.glob("*.py")):
        text = path.read_text()
        if "validate_certs" in text:
            out.append(path.stem)
    return out


def test_the_http_modules_are_the_ones_tested_here():
    assert _http_modules() == ["tfserving_model_status", "tfserving_predict"]


@pytest.mark.parametrize("name", _http_modules())
def test_validate_certs_defaults_to_true_in_code_and_documentation(name):
    # The option is documented in the tfserving_rest doc fragment and specified in module_utils
    # (REST_SPEC); both are read as Ansible reads them.
    option = module_docs.documented_options(name)["validate_certs"]
    assert option["default"] is True
    assert option["type"] == "bool"
    assert module_docs.argument_spec(name)["validate_certs"] == {"type": "bool", "default": True}
    source = (MODULES_DIR / f"{name}.py").read_text()
    assert "validate_certs=False" not in source.replace(" ", "")


@pytest.fixture
def untrusted_https(tmp_path):
    """A TF Serving-like HTTPS server on loopback with a self-signed certificate nobody trusts."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=1))
        .not_valid_after(now + datetime.timedelta(hours=1))
        .add_extension(
            x509.SubjectAlternativeName([x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert_file, key_file = tmp_path / "cert.pem", tmp_path / "key.pem"
    cert_file.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_file.write_bytes(
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    server = FakeTFServing().start()
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(str(cert_file), str(key_file))
    server._server.socket = context.wrap_socket(server._server.socket, server_side=True)
    yield server, str(cert_file)
    server.stop()


def _https_call(name, port, **options):
    if name == "tfserving_model_status":
        args = {"rest_port": port, "models": [{"name": "m"}], "scheme": "https", "timeout": 5, **options}
        return tfserving_model_status.main, args
    args = {"rest_port": port, "model": "m", "instances": [1.0], "scheme": "https", **options}
    return tfserving_predict.main, args


@pytest.mark.parametrize("name", _http_modules())
def test_an_unverifiable_certificate_is_refused_by_default(untrusted_https, capsys, name):
    server, ca = untrusted_https
    server.status("m", *[ok(status_body((1, "AVAILABLE")))] * 3)
    server.on("POST", "/v1/models/m:predict", *[ok(predictions_body([2.5]))] * 3)

    main, args = _https_call(name, server.port, host="127.0.0.1")
    failed, result = run_module(main, args, capsys)
    assert failed and "TLS failed" in result["msg"] and "CERTIFICATE_VERIFY_FAILED" in result["msg"], result
    assert server.requests == []  # the handshake failed: no request was ever answered

    # Trusting the certificate's CA, or turning validation off explicitly, lets the call through.
    for extra in ({"ca_path": ca}, {"validate_certs": False}):
        main, args = _https_call(name, server.port, host="127.0.0.1", **extra)
        failed, result = run_module(main, args, capsys)
        assert not failed, (extra, result)
    assert len(server.requests) == 2
