"""docker_engine data: version validation, pinned package strings with epochs, daemon.json merge,
and the repository definitions rendered for each OS family (RHEL paths cannot run here)."""

import pathlib

import pytest
import yaml
from ansible.errors import AnsibleFilterError
from ansible.parsing.dataloader import DataLoader
from ansible.template import Templar, trust_as_template
from ansible_collections.tfserving.fleet.plugins.filter.docker_engine import (
    docker_engine_daemon_config,
    docker_engine_packages,
    docker_engine_upstream_version,
    docker_engine_version_problem,
)

ROLE = pathlib.Path(__file__).resolve().parents[2] / "roles" / "docker_engine"


@pytest.mark.parametrize(
    ("version", "os_family", "source", "expected"),
    [
        # EL: docker-ce carries epoch 3 and docker-ce-cli epoch 1 from 18.09 on.
        ("20.10.24", "RedHat", "docker", ["docker-ce-3:20.10.24", "docker-ce-cli-1:20.10.24", "containerd.io"]),
        ("3:20.10.24", "RedHat", "docker", ["docker-ce-3:20.10.24", "docker-ce-cli-1:20.10.24", "containerd.io"]),
        ("3:20.10.24-3.el8", "RedHat", "docker",
         ["docker-ce-3:20.10.24-3.el8", "docker-ce-cli-1:20.10.24-3.el8", "containerd.io"]),
        ("18.09.2", "RedHat", "docker", ["docker-ce-3:18.09.2", "docker-ce-cli-1:18.09.2", "containerd.io"]),
        # CentOS 7 legacy builds: no epoch, no separate CLI, containerd bundled.
        ("17.12.1.ce", "RedHat", "docker", ["docker-ce-17.12.1.ce"]),
        ("17.12.1.ce-1.el7.centos", "RedHat", "docker", ["docker-ce-17.12.1.ce-1.el7.centos"]),
        ("18.06.3.ce", "RedHat", "docker", ["docker-ce-18.06.3.ce"]),
        # A bare pre-18.09 version names no RPM (they are all '.ce' builds): completed, never guessed
        # past the build the user named.
        ("17.12.1", "RedHat", "docker", ["docker-ce-17.12.1.ce"]),
        ("17.12.1-1.el7.centos", "RedHat", "docker", ["docker-ce-17.12.1.ce-1.el7.centos"]),
        ("18.06.3", "RedHat", "docker", ["docker-ce-18.06.3.ce"]),
        ("", "RedHat", "docker", ["docker-ce", "docker-ce-cli", "containerd.io"]),
        # Debian: epoch 5, apt wildcard on the release part.
        ("20.10.24", "Debian", "docker", ["docker-ce=5:20.10.24*", "docker-ce-cli=5:20.10.24*", "containerd.io"]),
        ("5:24.0.7-1~debian.12~bookworm", "Debian", "docker",
         ["docker-ce=5:24.0.7-1~debian.12~bookworm", "docker-ce-cli=5:24.0.7-1~debian.12~bookworm",
          "containerd.io"]),
        ("17.12.1.ce", "Debian", "docker", ["docker-ce=17.12.1~ce*"]),
        ("20.10.24", "Debian", "distribution", ["docker.io=20.10.24*"]),
        ("", "Debian", "distribution", ["docker.io"]),
    ],
)
def test_pinned_package_strings(version, os_family, source, expected):
    assert docker_engine_packages(version, os_family, source) == expected


def test_containerd_is_pinned_on_its_own_version_line():
    assert docker_engine_packages("24.0.7", "RedHat", "docker", "1.6.28")[-1] == "containerd.io-1.6.28"
    assert docker_engine_packages("24.0.7", "Debian", "docker", "1.6.28")[-1] == "containerd.io=1.6.28*"


@pytest.mark.parametrize(
    ("version", "os_family", "source", "fragment"),
    # Each message quotes the offending value and says what to write instead.
    [
        ("5:24.0.7-1~debian.12~bookworm", "RedHat", "docker", "is a Debian package version"),
        ("3:20.10.24-3.el8", "Debian", "docker", "is an RPM (EL) version"),
        ("2:20.10.24", "RedHat", "docker", "carries epoch 3 in Docker's repository"),
        ("3:17.12.1.ce", "RedHat", "docker", "carries no epoch"),
        ("latest", "RedHat", "docker", "is not an RPM version"),
        ("twenty", "Debian", "docker", "is not a Debian package version"),
        ("20.10.24", "RedHat", "distribution", "docker_engine_source 'distribution' is not available on RedHat"),
        ("", "Alpine", "docker", "os_family 'Alpine' is not supported"),
    ],
)
def test_version_problems_name_the_variable_and_the_fix(version, os_family, source, fragment):
    problem = docker_engine_version_problem(version, os_family, source)
    assert fragment in problem
    if version and source == "docker":
        assert f"docker_engine_version '{version}'" in problem
        with pytest.raises(AnsibleFilterError):
            docker_engine_packages(version, os_family, source)


@pytest.mark.parametrize("version", ["20.10.24", "3:20.10.24", "17.12.1.ce", "3:24.0.7-1.el9"])
def test_good_rpm_versions_have_no_problem(version):
    assert docker_engine_version_problem(version, "RedHat") == ""


def test_a_bare_legacy_version_is_completed_to_the_rpm_docker_published():
    # docker-ce-17.12.1.ce-1.el7.centos is the seed build; '17.12.1' alone would match no RPM.
    assert docker_engine_version_problem("17.12.1", "RedHat") == ""
    assert docker_engine_upstream_version("17.12.1", "RedHat") == "17.12.1.ce"
    assert docker_engine_version_problem("3:17.12.1", "RedHat") != ""  # still no epoch for legacy builds


def test_upstream_version_strips_epoch_and_release():
    assert docker_engine_upstream_version("3:20.10.24-3.el8") == "20.10.24"
    assert docker_engine_upstream_version("5:24.0.7-1~debian.12~bookworm", "Debian") == "24.0.7"


def _defaults():
    return yaml.safe_load((ROLE / "defaults" / "main.yml").read_text())


def test_daemon_merge_order_and_list_union():
    defaults = _defaults()["docker_engine_daemon_defaults"]
    contributions = {
        "nvidia_runtime": {"runtimes": {"nvidia": {"path": "nvidia-container-runtime", "runtimeArgs": []}}},
        "registry": {"insecure-registries": ["10.0.0.5:5000"]},
    }
    options = {"insecure-registries": ["mirror:5000"], "log-opts": {"max-size": "10m"}, "live-restore": False}
    merged = docker_engine_daemon_config(defaults, contributions, options, {}, False)
    assert merged["config"] == {
        "insecure-registries": ["10.0.0.5:5000", "mirror:5000"],
        "live-restore": False,
        "log-driver": "json-file",
        "log-opts": {"max-file": "5", "max-size": "10m"},
        "runtimes": {"nvidia": {"path": "nvidia-container-runtime", "runtimeArgs": []}},
    }
    assert merged["unmanaged"] == []


def test_unmanaged_keys_are_reported_and_kept_only_when_asked():
    defaults = _defaults()["docker_engine_daemon_defaults"]
    existing = {"debug": True, "log-driver": "json-file", "bip": "10.9.0.1/24"}
    dropped = docker_engine_daemon_config(defaults, {}, {}, existing, False)
    assert dropped["unmanaged"] == ["bip", "debug"]
    assert "debug" not in dropped["config"]
    kept = docker_engine_daemon_config(defaults, {}, {}, existing, True)
    assert kept["unmanaged"] == ["bip", "debug"]
    assert kept["config"]["debug"] is True and kept["config"]["bip"] == "10.9.0.1/24"
    assert kept["config"]["live-restore"] is True


@pytest.mark.parametrize("bad", ["debug=true", ["debug"], 3])
def test_daemon_options_must_be_mappings(bad):
    with pytest.raises(AnsibleFilterError, match="docker_engine_daemon_options must be a mapping"):
        docker_engine_daemon_config({}, {}, bad)
    with pytest.raises(AnsibleFilterError, match=r"docker_engine_daemon_contributions\['x'\] must be a mapping"):
        docker_engine_daemon_config({}, {"x": bad}, {})


def _render(template: str, os_vars_file: str, facts: dict, extra=None) -> str:
    """Render a role template with Ansible's own templating and the role's variable files."""
    loader = DataLoader()  # loads YAML the way Ansible does: strings trusted as templates
    variables = dict(loader.load_from_file(str(ROLE / "defaults" / "main.yml"), trusted_as_template=True))
    if os_vars_file.startswith("RedHat-"):
        variables.update(loader.load_from_file(str(ROLE / "vars" / "RedHat.yml"), trusted_as_template=True))
    variables.update(loader.load_from_file(str(ROLE / "vars" / os_vars_file), trusted_as_template=True))
    variables.update(extra or {})
    variables["ansible_facts"] = facts
    variables["ansible_managed"] = "Ansible managed"
    source = (ROLE / "templates" / template).read_text()
    return Templar(loader=loader, variables=variables).template(trust_as_template(source))


EL_REPO = """# Ansible managed
[docker-ce-stable]
name=Docker CE Stable - $basearch
baseurl=https://download.docker.com/linux/{tree}/$releasever/$basearch/stable
enabled=1
gpgcheck=1
gpgkey=https://download.docker.com/linux/{tree}/gpg
"""


@pytest.mark.parametrize(
    ("vars_file", "distribution", "tree"),
    [
        ("RedHat-7.yml", "CentOS", "centos"),
        ("RedHat-7.yml", "RedHat", "centos"),
        ("RedHat.yml", "Rocky", "centos"),
        ("RedHat.yml", "AlmaLinux", "centos"),
        ("RedHat.yml", "RedHat", "rhel"),
    ],
)
def test_el_repository_definition(vars_file, distribution, tree):
    rendered = _render("etc/yum.repos.d/docker-ce.repo.j2", vars_file, {"distribution": distribution})
    assert rendered == EL_REPO.format(tree=tree)


def test_el_repository_follows_a_mirror():
    rendered = _render("etc/yum.repos.d/docker-ce.repo.j2", "RedHat.yml", {"distribution": "Rocky"},
                       {"docker_engine_repo_base_url": "https://mirror.internal/docker"})
    assert "baseurl=https://mirror.internal/docker/centos/$releasever/$basearch/stable" in rendered
    assert "gpgcheck=1" in rendered


@pytest.mark.parametrize(
    ("distribution", "release", "arch", "deb_arch"),
    [("Debian", "bookworm", "x86_64", "amd64"), ("Ubuntu", "jammy", "aarch64", "arm64")],
)
def test_debian_repository_definition(distribution, release, arch, deb_arch):
    rendered = _render("etc/apt/sources.list.d/docker.sources.j2", "Debian.yml",
                       {"distribution": distribution, "distribution_release": release, "architecture": arch})
    assert rendered == (
        "# Ansible managed\n"
        "Types: deb\n"
        f"URIs: https://download.docker.com/linux/{distribution.lower()}\n"
        f"Suites: {release}\n"
        "Components: stable\n"
        f"Architectures: {deb_arch}\n"
        "Signed-By: /etc/apt/keyrings/docker.asc\n"
    )


# CentOS 7's own docker (extras, epoch 2) is docker_engine_source 'distribution' on EL.
@pytest.mark.parametrize(
    ("version", "expected"),
    [
        ("2:1.13.1", ["docker-2:1.13.1"]),
        ("1.13.1", ["docker-2:1.13.1"]),
        ("2:1.13.1-209.git7d71120.el7.centos", ["docker-2:1.13.1-209.git7d71120.el7.centos"]),
        ("2:1.12.6", ["docker-2:1.12.6"]),
        ("", ["docker"]),
    ],
)
def test_centos_docker_package_strings(version, expected):
    assert docker_engine_packages(version, "RedHat", "distribution") == expected
    assert docker_engine_version_problem(version, "RedHat", "distribution") == ""


@pytest.mark.parametrize(
    ("version", "source", "message"),
    [
        (
            "3:1.13.1",
            "distribution",
            "docker_engine_source 'distribution' is not available on RedHat-family hosts for docker_engine_version "
            "'3:1.13.1': on EL it means CentOS 7's own 'docker' package (epoch 2: '2:1.13.1' or '2:1.12.6'); use "
            "docker_engine_source 'docker' (Docker's docker-ce repository) for docker-ce",
        ),
        (
            "1.13.1",
            "docker",
            "docker_engine_version '1.13.1': docker-ce starts at 17.03 in Docker's repository; Docker 1.13.1 on EL "
            "is CentOS 7's own 'docker' package: set docker_engine_source 'distribution' and docker_engine_version "
            "'2:1.13.1', or pin a docker-ce release",
        ),
    ],
)
def test_centos_docker_mix_ups_name_the_fix(version, source, message):
    assert docker_engine_version_problem(version, "RedHat", source) == message
    with pytest.raises(AnsibleFilterError):
        docker_engine_packages(version, "RedHat", source)


def test_centos_docker_is_locked_by_package_name():
    # vars/main.yml derives the names to lock from the package strings.
    import re

    names = [re.sub(r"[-=][0-9].*$", "", spec) for spec in docker_engine_packages("2:1.13.1", "RedHat", "distribution")]
    assert names == ["docker"]


DROP_IN = "etc/systemd/system/docker.service.d/docker-engine-proxy.conf.j2"


def test_proxy_drop_in_renders_each_setting():
    rendered = _render(DROP_IN, "RedHat.yml", {"distribution": "Rocky"}, {"docker_engine_proxy": {
        "http_proxy": "http://proxy.internal:3128", "https_proxy": "http://proxy.internal:3128",
        "no_proxy": ["localhost", "127.0.0.1", "10.0.0.0/8"]}})
    assert rendered == (
        "# Ansible managed\n"
        "# Proxy for dockerd's own connections (image pulls, registry logins): docker_engine_proxy.\n"
        "[Service]\n"
        'Environment="HTTP_PROXY=http://proxy.internal:3128"\n'
        'Environment="HTTPS_PROXY=http://proxy.internal:3128"\n'
        'Environment="NO_PROXY=localhost,127.0.0.1,10.0.0.0/8"\n'
    )


def test_proxy_drop_in_leaves_out_what_is_not_set():
    rendered = _render(DROP_IN, "Debian.yml", {"distribution": "Debian", "architecture": "x86_64"},
                       {"docker_engine_proxy": {"https_proxy": "http://p:3128", "no_proxy": "a,b"}})
    assert "HTTP_PROXY=" not in rendered
    assert 'Environment="HTTPS_PROXY=http://p:3128"' in rendered
    assert 'Environment="NO_PROXY=a,b"' in rendered
