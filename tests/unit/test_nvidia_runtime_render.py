"""The nvidia_runtime role's repository definitions, rendered through Ansible's own templating.

The role's templates are rendered by Ansible's Templar with the role's own defaults and vars files
(loaded by Ansible's DataLoader, as the role does) and a plan from the nvidia_runtime_plan filter,
for EL7 (legacy and toolkit), EL8, EL9, Debian 12 and Ubuntu 18.04. The yum files are read back
with an INI parser and compared with NVIDIA's own repository files; the deb822 files are read back
by apt itself (``apt-get indextargets``), which shows the URIs apt would fetch.
"""

import configparser
import pathlib
import shutil
import subprocess

import pytest
from ansible.parsing.dataloader import DataLoader
from ansible.template import Templar, trust_as_template
from ansible_collections.tfserving.fleet.plugins.filter import nvidia_runtime as f

ROOT = pathlib.Path(__file__).resolve().parents[2]
ROLE = ROOT / "roles" / "nvidia_runtime"
RPM_TEMPLATE = ROLE / "templates/etc/yum.repos.d/nvidia-runtime.repo.j2"
DEB_TEMPLATE = ROLE / "templates/etc/apt/sources.list.d/nvidia-runtime.sources.j2"

FACTS = {
    "EL7": {
        "os_family": "RedHat",
        "distribution": "CentOS",
        "distribution_major_version": "7",
        "distribution_version": "7.9",
        "architecture": "x86_64",
    },
    "EL8": {
        "os_family": "RedHat",
        "distribution": "Rocky",
        "distribution_major_version": "8",
        "distribution_version": "8.10",
        "architecture": "x86_64",
    },
    "EL9": {
        "os_family": "RedHat",
        "distribution": "AlmaLinux",
        "distribution_major_version": "9",
        "distribution_version": "9.4",
        "architecture": "aarch64",
    },
    "Debian12": {
        "os_family": "Debian",
        "distribution": "Debian",
        "distribution_major_version": "12",
        "distribution_version": "12.7",
        "architecture": "x86_64",
    },
    "Ubuntu1804": {
        "os_family": "Debian",
        "distribution": "Ubuntu",
        "distribution_major_version": "18",
        "distribution_version": "18.04",
        "architecture": "x86_64",
    },
}


def role_vars(facts, docker, overrides=None, **plan_kwargs):
    loader = DataLoader()
    variables = {}
    for path in ("defaults/main.yml", "vars/main.yml", f"vars/{facts['os_family']}.yml", "vars/matrix.yml"):
        variables.update(loader.load_from_file(str(ROLE / path), trusted_as_template=True))
    variables.update(overrides or {})
    variables["ansible_facts"] = facts
    variables["nvidia_runtime_plan"] = f.nvidia_runtime_plan(
        docker,
        variables["_nvidia_runtime_matrix"],
        facts["os_family"],
        os_major=facts["distribution_major_version"],
        distribution=facts["distribution"],
        **plan_kwargs,
    )
    assert variables["nvidia_runtime_plan"]["ok"], variables["nvidia_runtime_plan"]["error"]
    return loader, variables


def render(template, facts, docker, overrides=None, **plan_kwargs):
    loader, variables = role_vars(facts, docker, overrides, **plan_kwargs)
    templar = Templar(loader=loader, variables=variables)
    dest = templar.template(trust_as_template(variables["_nvidia_runtime_repo_file"]))
    return dest, templar.template(trust_as_template(template.read_text()))


def ini(text):
    parser = configparser.ConfigParser(interpolation=None)
    parser.read_string(text)
    return {s: dict(parser[s]) for s in parser.sections()}


# NVIDIA's own files, as published (libnvidia-container gh-pages stable/rpm/nvidia-container-toolkit.repo
# and nvidia-docker gh-pages centos7/nvidia-docker.repo); sslcacert is left to the system default.
NVIDIA_TOOLKIT_REPO = {
    "nvidia-container-toolkit": {
        "name": "nvidia-container-toolkit",
        "baseurl": "https://nvidia.github.io/libnvidia-container/stable/rpm/$basearch",
        "repo_gpgcheck": "1",
        "gpgcheck": "0",
        "enabled": "1",
        "gpgkey": "https://nvidia.github.io/libnvidia-container/gpgkey",
        "sslverify": "1",
    }
}
NVIDIA_CENTOS7_LEGACY_REPO = {
    project: {
        "name": project,
        "baseurl": f"https://nvidia.github.io/{project}/centos7/$basearch",
        "repo_gpgcheck": "1",
        "gpgcheck": "0",
        "enabled": "1",
        "gpgkey": f"https://nvidia.github.io/{project}/gpgkey",
        "sslverify": "1",
    }
    for project in ("libnvidia-container", "nvidia-container-runtime", "nvidia-docker")
}


@pytest.mark.parametrize("host, docker", [("EL7", "3:19.03.15"), ("EL8", "20.10.24"), ("EL9", "3:26.1.4")])
def test_rpm_toolkit_repository(host, docker):
    dest, text = render(RPM_TEMPLATE, FACTS[host], docker, toolkit_version="1.17.8")
    assert dest == "/etc/yum.repos.d/nvidia-container-toolkit.repo"
    assert ini(text) == NVIDIA_TOOLKIT_REPO
    assert f"Runtime path: toolkit for Docker {docker.split(':')[-1]}" in text


def test_rpm_legacy_repositories_on_el7():
    dest, text = render(RPM_TEMPLATE, FACTS["EL7"], "3:18.09.2")
    assert dest == "/etc/yum.repos.d/nvidia-docker.repo"
    assert ini(text) == NVIDIA_CENTOS7_LEGACY_REPO


def test_rpm_mirror_and_channel_overrides():
    overrides = {
        "nvidia_runtime_repo_base_url": "https://mirror.example.internal/nvidia",
        "nvidia_runtime_repo_channel": "experimental",
        "nvidia_runtime_gpg_key_url": "https://mirror.example.internal/keys/nvidia.asc",
    }
    _, text = render(RPM_TEMPLATE, FACTS["EL8"], "20.10.24", overrides, toolkit_version="1.17.8")
    repo = ini(text)["nvidia-container-toolkit"]
    assert repo["baseurl"] == "https://mirror.example.internal/nvidia/libnvidia-container/experimental/rpm/$basearch"
    assert repo["gpgkey"] == "https://mirror.example.internal/keys/nvidia.asc"


def test_rpm_legacy_keys_follow_the_mirror():
    overrides = {"nvidia_runtime_repo_base_url": "http://repo.lan/nvidia"}
    _, text = render(RPM_TEMPLATE, FACTS["EL7"], "17.12.1.ce", overrides)
    repos = ini(text)
    assert repos["nvidia-docker"]["baseurl"] == "http://repo.lan/nvidia/nvidia-docker/centos7/$basearch"
    assert repos["nvidia-docker"]["gpgkey"] == "http://repo.lan/nvidia/nvidia-docker/gpgkey"


def deb822(text):
    stanzas, current = [], {}
    for line in text.splitlines():
        if line.startswith("#"):
            continue
        if not line.strip():
            if current:
                stanzas.append(current)
            current = {}
            continue
        key, _, value = line.partition(":")
        current[key.strip()] = value.strip()
    if current:
        stanzas.append(current)
    return stanzas


def apt_uris(tmp_path, name, text):
    """The URIs apt itself derives from a sources file (no network)."""
    # The test machine is Debian (README, Requirements): apt-get is required, never skipped.
    assert shutil.which("apt-get"), "apt-get is needed to parse the rendered sources; run the tests on Debian/Ubuntu"
    parts = tmp_path / "sources.list.d"
    lists = tmp_path / "lists"
    (lists / "partial").mkdir(parents=True)
    parts.mkdir()
    (parts / name).write_text(text)
    out = subprocess.run(
        [
            "apt-get",
            "-o",
            "Dir::Etc::SourceList=/dev/null",
            "-o",
            f"Dir::Etc::SourceParts={parts}",
            "-o",
            f"Dir::State::Lists={lists}",
            "indextargets",
            "--no-release-info",
            "--format",
            "$(URI)",
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    assert out.returncode == 0 and not out.stderr.strip(), out.stderr
    return sorted(set(out.stdout.split()))


def test_deb822_toolkit_repository_on_debian12(tmp_path):
    dest, text = render(DEB_TEMPLATE, FACTS["Debian12"], "5:24.0.7-1~debian.12~bookworm", toolkit_version="1.17.8")
    assert dest == "/etc/apt/sources.list.d/nvidia-container-toolkit.sources"
    assert deb822(text) == [
        {
            "X-Repolib-Name": "nvidia-container-toolkit",
            "Types": "deb",
            "URIs": "https://nvidia.github.io/libnvidia-container/stable/deb/amd64",
            "Suites": "/",
            "Signed-By": "/etc/apt/keyrings/libnvidia-container.asc",
        }
    ]


def test_apt_reads_the_debian12_toolkit_sources(tmp_path):
    _, text = render(DEB_TEMPLATE, FACTS["Debian12"], "20.10.24", toolkit_version="1.17.8")
    # NVIDIA's list file says: deb https://nvidia.github.io/libnvidia-container/stable/deb/$(ARCH) /
    assert apt_uris(tmp_path, "nvidia-container-toolkit.sources", text) == [
        "https://nvidia.github.io/libnvidia-container/stable/deb/amd64/Packages"
    ]


def test_apt_reads_the_ubuntu1804_legacy_sources(tmp_path):
    dest, text = render(DEB_TEMPLATE, FACTS["Ubuntu1804"], "5:18.09.7~3-0~ubuntu-bionic")
    assert dest == "/etc/apt/sources.list.d/nvidia-docker.sources"
    assert [s["Signed-By"] for s in deb822(text)] == [
        "/etc/apt/keyrings/libnvidia-container.asc",
        "/etc/apt/keyrings/nvidia-container-runtime.asc",
        "/etc/apt/keyrings/nvidia-docker.asc",
    ]
    assert apt_uris(tmp_path, "nvidia-docker.sources", text) == [
        f"https://nvidia.github.io/{p}/ubuntu18.04/amd64/Packages"
        for p in ("libnvidia-container", "nvidia-container-runtime", "nvidia-docker")
    ]


def test_role_specs_and_defaults_agree():
    """meta/argument_specs.yml declares exactly the defaults, with the same values (as scripts/check_role_specs.py)."""
    loader = DataLoader()
    defaults = loader.load_from_file(str(ROLE / "defaults/main.yml"))
    options = loader.load_from_file(str(ROLE / "meta/argument_specs.yml"))["argument_specs"]["main"]["options"]
    assert set(defaults) == set(options)
    assert {k: options[k]["default"] for k in options} == dict(defaults)
