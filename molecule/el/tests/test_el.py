"""What molecule/el proves with a real dnf and rpm database (see ../README.md)."""

import os
import subprocess

import pytest
import testinfra

testinfra_hosts = ["tfs-el-centos7", "tfs-el-rocky9", "tfs-el-centos7-docker"]
SCENARIO_DIR = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PINNED = {
    "tfs-el-centos7": {"docker-ce": "3:18.09.7-3.el7", "docker-ce-cli": "1:18.09.7-3.el7"},
    "tfs-el-rocky9": {"docker-ce": "3:24.0.9-1.el9", "docker-ce-cli": "1:24.0.9-1.el9"},
    # CentOS's own docker, kept as it was found (the inventory did not ask to replace it).
    "tfs-el-centos7-docker": {"docker": "2:1.13.1-209.git7d71120.el7.centos",
                              "docker-client": "2:1.13.1-209.git7d71120.el7.centos"},
}
RUNTIME = {
    "tfs-el-centos7": {"nvidia-docker2": "2.0.3-3.docker18.09.7.ce",
                       "nvidia-container-runtime": "2.0.0-3.docker18.09.7"},
    "tfs-el-rocky9": {name: "1.17.8-1" for name in ("nvidia-container-toolkit", "nvidia-container-toolkit-base",
                                                    "libnvidia-container-tools", "libnvidia-container1")},
    "tfs-el-centos7-docker": {"nvidia-docker2": "2.0.3-1.docker1.13.1",
                              "nvidia-container-runtime": "2.0.0-1.docker1.13.1"},
}
# Real dnf without the lock offers newer docker-ce builds: the lock is what keeps the pin.
NEWER = {"tfs-el-centos7": "20.10.24", "tfs-el-rocky9": None, "tfs-el-centos7-docker": None}
LEGACY_HOSTS = ("tfs-el-centos7", "tfs-el-centos7-docker")


def playbook(name, *args):
    """A scenario playbook against the scenario's inventory (plain output, the tests read it)."""
    env = {**os.environ, "ANSIBLE_FORCE_COLOR": "0", "ANSIBLE_NOCOLOR": "1", "NO_COLOR": "1"}
    inventory = os.path.dirname(os.environ["MOLECULE_INVENTORY_FILE"])
    command = ["ansible-playbook", "-i", inventory, os.path.join(SCENARIO_DIR, name), *args]
    proc = subprocess.run(command, capture_output=True, text=True, env=env, check=False, timeout=600)
    return proc.returncode, proc.stdout + proc.stderr


def _one_host(hostname):
    """A check that concerns one host only runs once, against that host (not skipped on the others)."""
    inventory = os.path.dirname(os.environ["MOLECULE_INVENTORY_FILE"])
    return testinfra.get_host(f"ansible://{hostname}", ansible_inventory=inventory)


@pytest.fixture(scope="module")
def centos7():
    return _one_host("tfs-el-centos7")


@pytest.fixture(scope="module")
def centos7_docker():
    return _one_host("tfs-el-centos7-docker")


def name(host):
    return host.backend.get_hostname()


def evr(host, package):
    cmd = host.run("rpm -q --qf '%{EPOCHNUM}:%{VERSION}-%{RELEASE}' " + package)
    assert cmd.rc == 0, cmd.stdout + cmd.stderr
    return cmd.stdout.removeprefix("0:")


def test_check_mode_on_the_converged_hosts_changes_nothing():
    rc, out = playbook("converge.yml", "--check")
    assert rc == 0, out
    for host_name in testinfra_hosts:
        assert f"{host_name}" in out and "changed=0" in out.split(host_name)[-1].splitlines()[0], out


def test_docker_is_installed_at_its_epoch_pin(host):
    for package, want in PINNED[name(host)].items():
        assert evr(host, package) == want


def test_packages_are_signed_by_an_imported_key(host):
    # dnf ran with gpgcheck=1 against keys the roles imported (rpm_key); each installed package
    # carries a signature by one of them.
    keys = host.run("rpm -q --qf '%{VERSION}\\n' gpg-pubkey")
    assert keys.rc == 0 and keys.stdout.split(), keys.stdout + keys.stderr
    for package in [*PINNED[name(host)], *RUNTIME[name(host)]]:
        sig = host.run(f"rpm -q --qf '%{{RSAHEADER:pgpsig}}' {package}").stdout
        assert any(f"Key ID {key}".lower() in sig.lower() or sig.lower().endswith(key.lower())
                   for key in keys.stdout.split()), (package, sig)


def test_docker_is_locked_and_an_upgrade_changes_nothing(host):
    engine = next(iter(PINNED[name(host)]))
    locks = host.run("dnf -q versionlock list")
    assert locks.rc == 0, locks.stderr
    assert f"{engine}-{PINNED[name(host)][engine]}.*" in locks.stdout
    if NEWER[name(host)]:
        offered = host.run("dnf -q --disableplugin=versionlock list --available --showduplicates docker-ce")
        assert NEWER[name(host)] in offered.stdout, offered.stdout
    before = host.run("rpm -qa | sort").stdout
    upgrade = host.run("dnf -y upgrade " + " ".join(PINNED[name(host)]))
    assert upgrade.rc == 0, upgrade.stdout + upgrade.stderr
    assert "Nothing to do" in upgrade.stdout
    assert host.run("rpm -qa | sort").stdout == before
    assert evr(host, engine) == PINNED[name(host)][engine]


def test_runtime_packages_match_docker_and_are_locked(host):
    locks = host.run("dnf -q versionlock list").stdout
    for package, want in RUNTIME[name(host)].items():
        assert evr(host, package) == want
        assert f"{package}-{want}" in locks or f"{package}-0:{want}" in locks, locks
    requires = host.run("rpm -q --requires nvidia-docker2").stdout
    if name(host) == "tfs-el-centos7":
        assert "docker-ce = 3:18.09.7" in requires
    if name(host) == "tfs-el-centos7-docker":
        assert "docker = 2:1.13.1" in requires


def test_docker_service_runs_with_the_runtime_in_daemon_json(host):
    assert host.service("docker").is_running and host.service("docker").is_enabled
    daemon = host.file("/etc/docker/daemon.json").content_string
    assert ('"nvidia"' in daemon) == (name(host) in LEGACY_HOSTS)
    assert '"live-restore": true' in daemon


def test_dnf_refuses_a_mismatched_pair_when_forced(centos7):
    host = centos7
    before = host.run("rpm -qa | sort").stdout
    # On the host, the lock already keeps every other nvidia-docker2 build out of reach.
    forced = host.run("dnf -y install nvidia-docker2-2.0.3-1.docker17.12.1.ce")
    assert forced.rc != 0
    assert host.run("rpm -qa | sort").stdout == before
    # Without any lock, dnf's solver itself refuses the pair: the build requires another docker-ce.
    root = "/var/tmp/el-resolve-mismatch"
    solver = host.run(
        f"rm -rf {root} && dnf -y --installroot={root} --releasever=7 --setopt=reposdir=/etc/yum.repos.d "
        "--disableplugin=versionlock install docker-ce-3:18.09.7 nvidia-docker2-2.0.3-1.docker17.12.1.ce"
    )
    host.run(f"rm -rf {root}")
    assert solver.rc != 0
    assert (
        "package nvidia-docker2-2.0.3-1.docker17.12.1.ce.noarch requires docker-ce = 17.12.1.ce, "
        "but none of the providers can be installed" in solver.stdout + solver.stderr
    ), solver.stdout + solver.stderr


@pytest.mark.parametrize(
    "packages",
    [
        # The seed's pair (the reference procedure on CentOS 7).
        ["docker-ce-17.12.1.ce-1.el7.centos", "nvidia-docker2-2.0.3-1.docker17.12.1.ce"],
        # CentOS's own docker and the nvidia-docker2 build NVIDIA made for it.
        ["docker-2:1.13.1-209.git7d71120.el7.centos", "nvidia-docker2-2.0.3-1.docker1.13.1"],
        ["docker-2:1.12.6-71.git3e8e77d.el7.centos", "nvidia-docker2-2.0.3-1.docker1.12.6"],
    ],
)
def test_legacy_pairs_resolve_and_install_in_an_empty_root(centos7, packages):
    host = centos7
    root = "/var/tmp/el-resolve-" + packages[1].rsplit(".docker", 1)[1]
    cmd = host.run(
        f"rm -rf {root} && dnf -y --installroot={root} --releasever=7 --setopt=reposdir=/etc/yum.repos.d "
        f"--disableplugin=versionlock install {' '.join(packages)}"
    )
    assert cmd.rc == 0, cmd.stdout + cmd.stderr
    installed = host.run(f"rpm --root={root} -qa").stdout
    for package in packages:
        assert package.replace("2:", "") in installed
    host.run(f"rm -rf {root}")


def test_cross_pair_does_not_resolve(centos7):
    host = centos7
    root = "/var/tmp/el-resolve-cross"
    cmd = host.run(
        f"rm -rf {root} && dnf -y --installroot={root} --releasever=7 --setopt=reposdir=/etc/yum.repos.d "
        "--disableplugin=versionlock install docker-2:1.12.6-71.git3e8e77d.el7.centos "
        "nvidia-docker2-2.0.3-1.docker1.13.1"
    )
    assert cmd.rc != 0
    assert "docker = 2:1.13.1" in cmd.stdout + cmd.stderr
    host.run(f"rm -rf {root}")


def test_preflight_refuses_a_mismatched_pair_before_dnf_runs(centos7):
    host = centos7
    history = host.run("dnf -q history list | wc -l").stdout
    before = host.run("rpm -qa | sort").stdout
    rc, out = playbook("mismatch.yml")
    assert rc != 0, out
    assert "Runtime plan is possible" in out
    assert "nvidia-docker2 2.0.3-1.docker17.12.1.ce is built for docker-ce 17.12.1, but Docker is 18.09.7" in out
    assert "Docker packages are installed" not in out
    assert host.run("dnf -q history list | wc -l").stdout == history
    assert host.run("rpm -qa | sort").stdout == before


def test_centos_docker_was_kept_and_never_removed(centos7_docker):
    host = centos7_docker
    assert not host.package("docker-ce").is_installed
    # Installed once by prepare.yml, never removed or reinstalled by the roles.
    history = host.run("dnf -q history list docker").stdout
    assert "remove" not in history.lower() and "erase" not in history.lower(), history


def test_a_running_docker_is_not_replaced_unless_asked(centos7_docker):
    host = centos7_docker
    before = host.run("rpm -qa | sort").stdout
    rc, out = playbook("replace.yml")
    assert rc != 0, out
    assert "A running Docker is replaced only when the inventory asks for it" in out
    assert "Docker is running from docker, docker-client, docker-common" in out
    assert "docker_engine_replace_running_docker: true" in out
    assert host.run("rpm -qa | sort").stdout == before
    assert host.service("docker").is_running


def test_proxy_drop_in_reaches_docker_service(host):
    drop_in = host.file("/etc/systemd/system/docker.service.d/docker-engine-proxy.conf")
    environment = host.run("systemctl show docker --property=Environment").stdout
    if name(host) != "tfs-el-rocky9":
        assert not drop_in.exists
        assert "HTTPS_PROXY" not in environment
        return
    assert drop_in.mode == 0o644
    assert 'Environment="HTTPS_PROXY=http://proxy.example.internal:3128"' in drop_in.content_string
    assert "HTTP_PROXY=" not in drop_in.content_string
    assert "HTTPS_PROXY=http://proxy.example.internal:3128" in environment
    assert "NO_PROXY=localhost,127.0.0.1,172.25.0.1" in environment
