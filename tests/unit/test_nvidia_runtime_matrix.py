"""The compatibility matrix (roles/nvidia_runtime/vars/matrix.yml) through the nvidia_runtime_plan filter
(plugins/filter/nvidia_runtime.py) and the version filters (plugins/filter/nvidia_runtime_versions.py).

Table-driven: each row is one host situation and the exact outcome expected for it. The package
strings are the real ones from NVIDIA's repositories (see the role README for the sources).
"""

import pathlib

import pytest
import yaml
from ansible.errors import AnsibleFilterError
from ansible_collections.tfserving.fleet.plugins.filter import nvidia_runtime as f
from ansible_collections.tfserving.fleet.plugins.filter import nvidia_runtime_versions as versions

ROOT = pathlib.Path(__file__).resolve().parents[2]
MATRIX = yaml.safe_load((ROOT / "roles/nvidia_runtime/vars/matrix.yml").read_text())["_nvidia_runtime_matrix"]
LEGACY = {"nvidia_runtime_daemon": {"runtimes": {"nvidia": {"path": "nvidia-container-runtime", "runtimeArgs": []}}}}
NVIDIA_RUNTIME = LEGACY["nvidia_runtime_daemon"]

EL7 = {"os_family": "RedHat", "os_major": "7", "distribution": "CentOS"}
EL8 = {"os_family": "RedHat", "os_major": "8", "distribution": "Rocky"}
EL9 = {"os_family": "RedHat", "os_major": "9", "distribution": "AlmaLinux"}
BIONIC = {"os_family": "Debian", "os_major": "18", "distribution": "Ubuntu"}
STRETCH = {"os_family": "Debian", "os_major": "9", "distribution": "Debian"}
BOOKWORM = {"os_family": "Debian", "os_major": "12", "distribution": "Debian"}
JAMMY = {"os_family": "Debian", "os_major": "22", "distribution": "Ubuntu"}


def plan(docker, host, **kwargs):
    return f.nvidia_runtime_plan(
        docker,
        MATRIX,
        host["os_family"],
        os_major=host["os_major"],
        distribution=host["distribution"],
        **kwargs,
    )


# Every legacy build on EL7: docker-ce version as written by users -> the pinned pair.
EL7_LEGACY = [
    ("17.03.2.ce", "17.03.2", "1", "docker-ce = 17.03.2.ce"),
    ("17.06.2.ce", "17.06.2", "1", "docker-ce = 17.06.2.ce"),
    ("17.09.0.ce", "17.09.0", "1", "docker-ce = 17.09.0.ce"),
    ("17.09.1.ce", "17.09.1", "1", "docker-ce = 17.09.1.ce"),
    ("17.12.0.ce", "17.12.0", "1", "docker-ce = 17.12.0.ce"),
    ("17.12.1.ce", "17.12.1", "1", "docker-ce = 17.12.1.ce"),
    ("18.03.0.ce", "18.03.0", "1", "docker-ce = 18.03.0.ce"),
    ("18.03.1.ce-1.el7.centos", "18.03.1", "1", "docker-ce = 18.03.1.ce"),
    ("18.06.0.ce", "18.06.0", "1", "docker-ce = 18.06.0.ce"),
    ("18.06.1.ce-3.el7", "18.06.1", "1", "docker-ce = 18.06.1.ce"),
    ("18.06.3.ce", "18.06.3", "3", "docker-ce = 18.06.3.ce"),
    ("3:18.09.0", "18.09.0", "1", "docker-ce = 3:18.09.0"),
    ("18.09.1", "18.09.1", "1", "docker-ce = 3:18.09.1"),
    ("3:18.09.2", "18.09.2", "1", "docker-ce = 3:18.09.2"),
    ("3:18.09.3-3.el7", "18.09.3", "1", "docker-ce = 3:18.09.3"),
    ("18.09.4", "18.09.4", "1", "docker-ce = 3:18.09.4"),
    ("3:18.09.5", "18.09.5", "3", "docker-ce = 3:18.09.5"),
    ("18.09.6", "18.09.6", "3", "docker-ce = 3:18.09.6"),
    ("3:18.09.7-3.el7", "18.09.7", "3", "docker-ce = 3:18.09.7"),
]


@pytest.mark.parametrize("docker, upstream, release, requirement", EL7_LEGACY)
def test_every_el7_legacy_pin(docker, upstream, release, requirement):
    p = plan(docker, EL7)
    assert p["ok"], p["error"]
    assert p["path"] == "legacy" and p["gpu_mode"] == "legacy"
    assert p["docker"]["version"] == upstream
    assert p["packages"] == [
        f"nvidia-docker2-2.0.3-{release}.docker{upstream}.ce",
        f"nvidia-container-runtime-2.0.0-{release}.docker{upstream}",
    ]
    assert p["docker_requirement"] == requirement
    assert p["repositories"] == "nvidia-docker"
    assert p["daemon_options"] == NVIDIA_RUNTIME


def test_the_mission_example_pin():
    """The manual procedure's example: nvidia-docker2-2.0.3-1.docker17.12.1.ce with docker-ce-17.12.1.ce."""
    p = plan("17.12.1.ce", EL7)
    assert p["packages"][0] == "nvidia-docker2-2.0.3-1.docker17.12.1.ce"


def test_every_legacy_build_in_the_matrix_is_tested():
    tested = {row[1] for row in EL7_LEGACY} | {row[2] for row in DEB_LEGACY}
    assert tested == {b["docker"] for b in MATRIX["legacy"]["builds"]}


DEB_LEGACY = [
    ("5:18.09.2~3-0~ubuntu-bionic", BIONIC, "18.09.2", "1", "docker-ce (= 5:18.09.2~3-0~<distribution>-<codename>)"),
    ("18.09.7", BIONIC, "18.09.7", "3", "docker-ce (= 5:18.09.7~3-0~<distribution>-<codename>)"),
    ("18.06.1~ce~3-0~debian", STRETCH, "18.06.1", "1", "docker-ce (= 18.06.1~ce~3-0~<distribution>)"),
    ("18.06.2", STRETCH, "18.06.2", "2", "docker-ce (= 18.06.2~ce~3-0~<distribution>)"),
    ("18.06.3", BIONIC, "18.06.3", "3", "docker-ce (= 18.06.3~ce~3-0~<distribution>)"),
    ("17.12.1~ce-0~debian", STRETCH, "17.12.1", "1", "docker-ce (= 17.12.1~ce-0~<distribution>)"),
]


@pytest.mark.parametrize("docker, host, upstream, release, requirement", DEB_LEGACY)
def test_debian_legacy_pins(docker, host, upstream, release, requirement):
    p = plan(docker, host)
    assert p["ok"], p["error"]
    assert p["packages"] == [
        f"nvidia-docker2=2.0.3+docker{upstream}-{release}",
        f"nvidia-container-runtime=2.0.0+docker{upstream}-{release}",
    ]
    assert p["docker_requirement"] == requirement


# Epochs: the RPM epoch 3 and Debian epoch 5 start at 18.09; others belong to other packages.
EPOCHS = [
    ("3:18.09.2", EL7, True, None),
    ("18.09.2", EL7, True, None),
    (
        "2:18.09.2",
        EL7,
        False,
        "docker-ce 18.09.2 carries epoch 3 in Docker's RPM repository (epoch 2 belongs "
        "to Red Hat's own 'docker' package); nearest valid spellings: '18.09.2' or '3:18.09.2'",
    ),
    ("1:18.09.2", EL7, False, "(epoch 1 belongs to docker-ce-cli)"),
    (
        "3:18.06.1",
        EL7,
        False,
        "docker-ce 18.06.1 carries no epoch in Docker's RPM repository; nearest valid "
        "spellings: '18.06.1' or '18.06.1.ce'",
    ),
    ("5:18.09.2~3-0~debian-stretch", STRETCH, True, None),
    ("3:18.09.2", STRETCH, False, "docker-ce 18.09.2 carries epoch 5 in Docker's Debian repository"),
    ("5:18.06.1~ce~3-0~debian", STRETCH, False, "docker-ce 18.06.1 carries no epoch in Docker's Debian repository"),
    ("3:20.10.24-3.el8", EL8, True, None),
    ("5:24.0.7-1~debian.12~bookworm", BOOKWORM, True, None),
]


@pytest.mark.parametrize("docker, host, ok, message", EPOCHS)
def test_epoch_handling(docker, host, ok, message):
    p = plan(docker, host, toolkit_version="1.17.8")
    assert p["ok"] is ok, p["error"]
    if message:
        assert message in p["error"]
        assert f"Docker version '{docker}'" in p["error"]


# The toolkit path: Docker >= 19.03, four packages pinned together.
TOOLKIT = [
    (
        "3:19.03.15-3.el7",
        EL7,
        "1.17.8",
        [
            "nvidia-container-toolkit-1.17.8-1",
            "nvidia-container-toolkit-base-1.17.8-1",
            "libnvidia-container-tools-1.17.8-1",
            "libnvidia-container1-1.17.8-1",
        ],
    ),
    (
        "20.10.24",
        EL8,
        "1.14.6-1",
        [
            "nvidia-container-toolkit-1.14.6-1",
            "nvidia-container-toolkit-base-1.14.6-1",
            "libnvidia-container-tools-1.14.6-1",
            "libnvidia-container1-1.14.6-1",
        ],
    ),
    (
        "3:26.1.4",
        EL9,
        "1.11.0",
        [
            "nvidia-container-toolkit-1.11.0-1",
            "nvidia-container-toolkit-base-1.11.0-1",
            "libnvidia-container-tools-1.11.0-1",
            "libnvidia-container1-1.11.0-1",
        ],
    ),
    (
        "20.10.24+dfsg1-1+b3",
        BOOKWORM,
        "1.17.8",
        [
            "nvidia-container-toolkit=1.17.8-1",
            "nvidia-container-toolkit-base=1.17.8-1",
            "libnvidia-container-tools=1.17.8-1",
            "libnvidia-container1=1.17.8-1",
        ],
    ),
    (
        "5:24.0.7-1~ubuntu.22.04~jammy",
        JAMMY,
        "1.18.0",
        [
            "nvidia-container-toolkit=1.18.0-1",
            "nvidia-container-toolkit-base=1.18.0-1",
            "libnvidia-container-tools=1.18.0-1",
            "libnvidia-container1=1.18.0-1",
        ],
    ),
]


@pytest.mark.parametrize("docker, host, toolkit, packages", TOOLKIT)
def test_toolkit_path(docker, host, toolkit, packages):
    p = plan(docker, host, toolkit_version=toolkit)
    assert p["ok"], p["error"]
    assert (p["path"], p["gpu_mode"], p["repositories"]) == ("toolkit", "toolkit", "nvidia-container-toolkit")
    assert p["packages"] == packages
    assert p["daemon_options"] == {}  # --gpus needs nothing in daemon.json


def test_toolkit_can_register_the_nvidia_runtime():
    p = plan("20.10.24", EL8, toolkit_version="1.17.8", register_runtime=True)
    assert p["daemon_options"] == NVIDIA_RUNTIME


def test_toolkit_newer_than_matrix_is_pinned_with_a_note():
    p = plan("27.3.1", EL9, toolkit_version="1.19.0")
    assert p["ok"] and p["packages"][0] == "nvidia-container-toolkit-1.19.0-1"
    assert p["notes"] == ["toolkit 1.19.0 is newer than the matrix (1.18.0); pinned as given, not validated"]


def test_nvidia_docker2_2x_on_docker_18():
    p = plan("18.09.7", EL7, flavor="nvidia-docker2", nvidia_docker2_version="2.2.2")
    assert p["ok"], p["error"]
    assert (p["path"], p["gpu_mode"]) == ("nvidia-docker2", "legacy")
    assert p["packages"] == ["nvidia-docker2-2.2.2-1", "nvidia-container-runtime-3.1.2-1"]
    auto = plan("18.09.7", BIONIC, nvidia_docker2_version="2.6.0")
    assert auto["path"] == "nvidia-docker2"
    assert auto["packages"] == ["nvidia-docker2=2.6.0-1", "nvidia-container-runtime=3.5.0-1"]


# Known-bad pairs and impossible combinations: refused with both versions and the nearest choices.
REFUSALS = [
    # docker-ce without any nvidia-docker2 2.0.3 build
    dict(
        docker="18.09.8",
        host=EL7,
        kw={},
        msg="nvidia-docker2 2.0.3 has no installable build for Docker 18.09.8 on the RedHat family; nearest "
        "valid choices: Docker 18.09.7 with its nvidia-docker2 build, or Docker >= 19.03 with the NVIDIA "
        "Container Toolkit",
        nearest=["Docker 18.09.7", "Docker >= 19.03 + toolkit"],
    ),
    dict(
        docker="17.06.1.ce",
        host=EL7,
        kw={},
        msg="nearest valid choices: Docker 17.03.2 or 17.06.2 with its nvidia-docker2 build",
        nearest=["Docker 17.03.2", "Docker 17.06.2", "Docker >= 19.03 + toolkit"],
    ),
    # EL7 18.06.2: every build in the repository has a broken requirement
    dict(
        docker="18.06.2.ce",
        host=EL7,
        kw={},
        msg="requires 'docker-ce = 18.06.2ce', which no docker-ce RPM provides",
        nearest=["Docker 18.06.1", "Docker 18.06.3", "Docker >= 19.03 + toolkit"],
    ),
    # the broken non-.ce 18.09.2 build (requires Red Hat's docker = 2:18.09.2)
    dict(
        docker="3:18.09.2",
        host=EL7,
        kw={"nvidia_docker2_version": "2.0.3-1.docker18.09.2"},
        msg="nvidia-docker2-2.0.3-1.docker18.09.2.noarch cannot be installed with docker-ce 18.09.2: it requires "
        "'docker = 2:18.09.2' (Red Hat's docker package) instead of docker-ce",
        nearest=["nvidia-docker2-2.0.3-1.docker18.09.2.ce"],
    ),
    dict(
        docker="18.03.0.ce",
        host=EL7,
        kw={"nvidia_docker2_version": "2.0.3-1.docker18.03.0"},
        msg="requires 'docker = 2:18.03.0' instead of docker-ce",
        nearest=["nvidia-docker2-2.0.3-1.docker18.03.0.ce"],
    ),
    # a build for another docker-ce release
    dict(
        docker="3:18.09.2",
        host=EL7,
        kw={"nvidia_docker2_version": "2.0.3-1.docker17.12.1.ce"},
        msg="nvidia-docker2 2.0.3-1.docker17.12.1.ce is built for docker-ce 17.12.1, but Docker is 18.09.2",
        nearest=["Docker 17.12.1", "nvidia-docker2 2.0.3"],
    ),
    # legacy on a Docker that has --gpus
    dict(
        docker="19.03.15",
        host=EL7,
        kw={"flavor": "legacy"},
        msg="nvidia-docker2 2.0.3 is not used with Docker 19.03.15: Docker >= 19.03 takes GPUs through --gpus",
        nearest=["flavor toolkit"],
    ),
    # toolkit on a Docker without --gpus
    dict(
        docker="3:18.09.7",
        host=EL7,
        kw={"flavor": "toolkit", "toolkit_version": "1.17.8"},
        msg="the NVIDIA Container Toolkit 1.17.8 needs Docker >= 19.03 (--gpus), but Docker is 18.09.7; nearest "
        "valid choices: Docker >= 19.03 with the toolkit, or the legacy nvidia-docker2 2.0.3 build for Docker "
        "18.09.7",
        nearest=["Docker >= 19.03", "Docker 18.09.7 + nvidia-docker2 2.0.3"],
    ),
    # legacy builds never existed for EL8/EL9 or new Debian/Ubuntu
    dict(
        docker="18.09.7",
        host=EL8,
        kw={},
        msg="nvidia-docker2 for Docker 18.09.7 was built only for EL7, not Rocky 8",
        nearest=["Docker >= 19.03 + toolkit"],
    ),
    dict(
        docker="18.09.1",
        host=EL9,
        kw={},
        msg="was built only for EL7, not AlmaLinux 9",
        nearest=["Docker >= 19.03 + toolkit"],
    ),
    dict(
        docker="18.09.2",
        host=BOOKWORM,
        kw={},
        msg="was built only for Debian 9; Ubuntu 16, 18, not Debian 12",
        nearest=["Docker >= 19.03 + toolkit"],
    ),
    # toolkit versions
    dict(
        docker="20.10.24",
        host=EL8,
        kw={"toolkit_version": "1.10.0"},
        msg="NVIDIA Container Toolkit 1.10.0 predates nvidia-container-toolkit-base",
        nearest=["toolkit 1.11.0", "toolkit 1.18.0"],
    ),
    dict(
        docker="20.10.24",
        host=EL8,
        kw={"toolkit_version": "1.15.3"},
        msg="NVIDIA Container Toolkit 1.15.3 is not a release (Docker 20.10.24); "
        "nearest valid choices: 1.15.0 or 1.16.0",
        nearest=["toolkit 1.15.0", "toolkit 1.16.0"],
    ),
    dict(
        docker="20.10.24",
        host=EL8,
        kw={"toolkit_version": "latest"},
        msg="toolkit version 'latest' is not a version such as '1.17.8'",
        nearest=["toolkit 1.18.0"],
    ),
    # nvidia-docker2 2.x below its Docker minimum, and unknown 2.x
    dict(
        docker="18.06.1.ce",
        host=EL7,
        kw={"flavor": "nvidia-docker2", "nvidia_docker2_version": "2.5.0"},
        msg="nvidia-docker2 2.5.0 requires docker-ce >= 18.06.3, but Docker is 18.06.1",
        nearest=["Docker >= 18.06.3", "Docker 18.06.1 + nvidia-docker2 2.0.3"],
    ),
    dict(
        docker="18.09.7",
        host=EL7,
        kw={"flavor": "nvidia-docker2", "nvidia_docker2_version": "2.3.0"},
        msg="nvidia-docker2 2.3.0 is not in the matrix for Docker 18.09.7; nearest valid choices: nvidia-docker2 "
        "2.2.2, 2.4.0, 2.5.0, 2.6.0",
        nearest=["nvidia-docker2 2.2.2", "nvidia-docker2 2.4.0", "nvidia-docker2 2.5.0", "nvidia-docker2 2.6.0"],
    ),
    # inputs that are not versions at all
    dict(docker="", host=EL8, kw={}, msg="the Docker version is unknown", nearest=[]),
    dict(docker="latest", host=EL8, kw={}, msg="Docker version 'latest' is not a Docker version", nearest=[]),
    dict(
        docker="20.10.24",
        host={"os_family": "Suse", "os_major": "15", "distribution": "SLES"},
        kw={},
        msg="OS family 'Suse' is not supported",
        nearest=["RedHat family (EL7, EL8, EL9)", "Debian family"],
    ),
]


@pytest.mark.parametrize(
    "case", REFUSALS, ids=lambda c: f"{c['docker'] or 'empty'}-{c['host']['os_major']}-{c['msg'][:30]}"
)
def test_refusals_name_both_versions_and_nearest_choices(case):
    p = plan(case["docker"], case["host"], **case["kw"])
    assert p["ok"] is False
    assert case["msg"] in p["error"], p["error"]
    assert p["nearest"] == case["nearest"]
    assert p["packages"] == [] and p["daemon_options"] == {}


# Driver versus the serving image's CUDA: the driver of each real testdata file, checked for the
# CUDA versions TF Serving GPU images are built on.
DRIVER_CUDA = [
    # driver, nvidia-smi's CUDA, image CUDA, ok, message
    ("535.54.03", "12.2", "12.2", True, None),  # a100-sxm4-v12.xml
    ("515.105.01", "11.7", "11.7", True, None),  # tesla-t4.xml
    ("515.105.01", "11.7", "11.2", True, None),
    (
        "515.105.01",
        "11.7",
        "12.2",
        False,
        "driver 515.105.01 supports CUDA up to 11.7, but the serving image is built on CUDA 12.2; nearest valid "
        "choices: upgrade to a driver >= 535.54.03, or serve an image built on CUDA <= 11.7",
    ),
    ("430.26", None, "10.1", True, None),  # nvidia_smi_out_of_order.xml: CUDA "Not Found" -> matrix says 10.1
    ("430.26", None, "11.0", False, "driver 430.26 supports CUDA up to 10.1"),
    ("410.73", "10.0", "11.2", False, "upgrade to a driver >= 460.27.03"),  # ecc_unsupported.xml
    ("595.58.03", "13.2", "12.5", True, None),  # rtx-3080-v13.xml
    ("590.48.01", "13.1", "13.0", True, None),  # H100 capture
    (
        "530.30.02",
        "12.1",
        "12.2",
        False,
        "(the driver meets CUDA 12.x minor-version compatibility, >= 525.60.13, but the container runtime enforces "
        "the image's NVIDIA_REQUIRE_CUDA)",
    ),
    ("470.82.01", "11.4", "11.8", False, "upgrade to a driver >= 520.61.05"),
    ("550.54.14", None, "12.4", True, None),
    ("550.54.14", None, "12.5", False, "driver 550.54.14 supports CUDA up to 12.4"),
    ("575.51.03", None, "12.9", True, None),
    ("375.26", None, "9.0", False, "older than every driver in the matrix"),
]


@pytest.mark.parametrize("driver, smi_cuda, image, ok, message", DRIVER_CUDA)
def test_driver_against_serving_image_cuda(driver, smi_cuda, image, ok, message):
    p = plan(
        "20.10.24",
        EL8,
        toolkit_version="1.17.8",
        cuda_version=image,
        driver_version=driver,
        driver_cuda_version=smi_cuda or "",
    )
    assert p["ok"] is ok, p["error"]
    assert p["cuda"] is None or p["cuda"]["checked"]
    if message:
        assert message in p["error"]


def test_driver_check_skipped_without_cuda_or_driver():
    p = plan("20.10.24", EL8, toolkit_version="1.17.8", cuda_version="", driver_version="515.105.01")
    assert p["ok"] and p["cuda"]["checked"] is False


def test_cuda_table_is_ordered_and_monotonic():
    rows = MATRIX["cuda_min_driver"]
    cudas = [versions.cuda_tuple(r["cuda"]) for r in rows]
    drivers = [versions.version_tuple(r["driver"]) for r in rows]
    assert cudas == sorted(cudas) and drivers == sorted(drivers)
    assert versions.cuda_min_driver("12.7", MATRIX) == "560.28.03"  # no 12.7 release: the 12.6 minimum applies


def test_pins_installed_reads_package_facts():
    p = plan("3:18.09.7", EL7)
    rpm = {
        "nvidia-docker2": [{"version": "2.0.3", "release": "3.docker18.09.7.ce", "epoch": None}],
        "nvidia-container-runtime": [{"version": "2.0.0", "release": "3.docker18.09.7", "epoch": None}],
    }
    assert f.nvidia_runtime_pins_installed(p, rpm, "RedHat") is True
    rpm["nvidia-container-runtime"][0]["release"] = "1.docker18.09.6"
    assert f.nvidia_runtime_pins_installed(p, rpm, "RedHat") is False
    d = plan("20.10.24", BOOKWORM, toolkit_version="1.17.8")
    apt = {name: [{"version": "1.17.8-1"}] for name in MATRIX["toolkit"]["packages"]}
    assert f.nvidia_runtime_pins_installed(d, apt, "Debian") is True
    assert f.nvidia_runtime_pins_installed(d, {}, "Debian") is False


def test_docker_version_filter():
    assert versions.nvidia_runtime_docker_version("3:18.09.2-3.el7", "RedHat") == "18.09.2"
    assert versions.nvidia_runtime_docker_version("17.12.1.ce", "RedHat") == "17.12.1"
    assert versions.nvidia_runtime_docker_version("5:18.09.2~3-0~ubuntu-bionic", "Debian") == "18.09.2"
    with pytest.raises(AnsibleFilterError, match="epoch 3"):
        versions.nvidia_runtime_docker_version("2:18.09.2", "RedHat")


def test_matrix_has_at_least_thirty_tabled_combinations():
    assert len(EL7_LEGACY) + len(DEB_LEGACY) + len(EPOCHS) + len(TOOLKIT) + len(REFUSALS) + len(DRIVER_CUDA) >= 30


# CentOS 7's own docker (extras, epoch 2) with the nvidia-docker2 builds NVIDIA made for it.
CENTOS_DOCKER = [
    ("2:1.13.1", "1.13.1"),
    ("1.13.1", "1.13.1"),  # what `dockerd --version` says on such a host
    ("2:1.13.1-209.git7d71120.el7.centos", "1.13.1"),
    ("2:1.12.6-71.git3e8e77d.el7.centos", "1.12.6"),
    ("1.12.6", "1.12.6"),
]


@pytest.mark.parametrize("docker, upstream", CENTOS_DOCKER)
def test_centos_docker_gets_its_own_nvidia_docker2_build(docker, upstream):
    p = plan(docker, EL7)
    assert p["ok"], p["error"]
    assert p["path"] == "legacy" and p["gpu_mode"] == "legacy"
    assert p["packages"] == [
        f"nvidia-docker2-2.0.3-1.docker{upstream}",
        f"nvidia-container-runtime-2.0.0-1.docker{upstream}",
    ]
    assert p["docker_requirement"] == f"docker = 2:{upstream}"
    assert p["docker"]["package"] == "docker" and p["docker"]["epoch"] == "2"
    assert p["daemon_options"] == NVIDIA_RUNTIME


def test_centos_docker_with_an_explicit_matching_build():
    p = plan("2:1.13.1", EL7, nvidia_docker2_version="2.0.3-1.docker1.13.1")
    assert p["ok"], p["error"]
    assert p["packages"][0] == "nvidia-docker2-2.0.3-1.docker1.13.1"


# Refusals on a CentOS docker: the message, whole where it is given whole.
CENTOS_DOCKER_REFUSALS = [
    # the nvidia-docker2 build for the other CentOS docker
    dict(
        docker="2:1.12.6",
        host=EL7,
        kw={"nvidia_docker2_version": "2.0.3-1.docker1.13.1"},
        msg="nvidia-docker2 2.0.3-1.docker1.13.1 is built for docker 1.13.1, but Docker is 1.12.6",
        whole=False,
    ),
    # a CentOS docker NVIDIA built nothing for: the builds there are
    dict(
        docker="2:1.10.3",
        host=EL7,
        kw={},
        msg="nvidia-docker2 2.0.3 has no build for CentOS's docker 1.10.3 (epoch 2); NVIDIA built it for "
        "CentOS's docker 1.12.6 and 1.13.1; nearest valid choices: docker 2:1.12.6 or 2:1.13.1 with its "
        "nvidia-docker2 build, or docker-ce >= 19.03 with the NVIDIA Container Toolkit",
        whole=True,
    ),
    # a wrong epoch
    dict(
        docker="3:1.13.1",
        host=EL7,
        kw={},
        msg="Docker version '3:1.13.1': Docker 1.13.1 on the RedHat family is CentOS's own 'docker' package, "
        "which carries epoch 2; nearest valid spellings: '1.13.1' or '2:1.13.1'",
        whole=True,
    ),
    # EL8, like every legacy build
    dict(docker="2:1.13.1", host=EL8, kw={}, msg="not Rocky 8", whole=False),
    # the toolkit needs --gpus
    dict(
        docker="2:1.13.1",
        host=EL7,
        kw={"flavor": "toolkit", "toolkit_version": "1.17.8"},
        msg="needs Docker >= 19.03",
        whole=False,
    ),
]


@pytest.mark.parametrize("case", CENTOS_DOCKER_REFUSALS, ids=lambda c: f"{c['docker']}-{c['host']['os_major']}")
def test_centos_docker_refusals(case):
    p = plan(case["docker"], case["host"], **case["kw"])
    assert not p["ok"]
    if case["whole"]:
        assert p["error"] == case["msg"]
    else:
        assert case["msg"] in p["error"]


@pytest.mark.parametrize(
    "docker, host, kw",
    [("3:18.09.7", EL7, {}), ("17.12.1.ce", EL7, {}), ("20.10.24", BOOKWORM, {"toolkit_version": "1.17.8"})],
)
def test_docker_ce_keeps_its_package_name(docker, host, kw):
    assert plan(docker, host, **kw)["docker"]["package"] == "docker-ce"
