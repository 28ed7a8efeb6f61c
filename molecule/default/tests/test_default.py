"""docker_engine on a real systemd host container: packages, service, daemon.json, a running container."""

import json
import os
import subprocess
import time
import urllib.request

import pytest

testinfra_hosts = ["tfs-default-host"]

EXPECTED_DAEMON = {
    "insecure-registries": ["172.17.0.1:5000"],
    "live-restore": True,
    "log-driver": "json-file",
    "log-opts": {"max-file": "5", "max-size": "50m"},
    "max-concurrent-uploads": 3,
}
PROBE = "172.17.0.1:5000/tfserving-ansible/probe:busybox"
SCENARIO_DIR = os.path.dirname(os.path.dirname(__file__))


def test_packages_installed(host):
    assert host.package("docker.io").is_installed
    assert host.package("python3-docker").is_installed


def test_service_active_and_enabled(host):
    service = host.service("docker")
    assert service.is_running
    assert service.is_enabled


def test_daemon_json_is_the_expected_merge(host):
    """Defaults + contribution + options; the unmanaged "debug" key from prepare was dropped."""
    daemon = host.file("/etc/docker/daemon.json")
    assert daemon.mode == 0o644
    assert json.loads(daemon.content_string) == EXPECTED_DAEMON
    info = json.loads(host.check_output("docker info --format '{{json .}}'"))
    assert info["LiveRestoreEnabled"] is True
    assert "172.17.0.1:5000" in json.dumps(info["RegistryConfig"])


@pytest.fixture
def probe_container(host):
    """Pull the probe image from the test machine's registry and publish it on port 18080."""
    host.run("docker rm -f tfs-probe")
    host.check_output(f"docker pull -q {PROBE}")
    host.check_output(f"docker run -d --name tfs-probe -p 18080:8080 {PROBE}")
    yield
    host.run("docker rm -f tfs-probe")


def _host_address(name="tfs-default-host"):
    """The host container's address on this machine's bridge, as the test machine sees it."""
    return subprocess.check_output(
        ["docker", "inspect", "-f", "{{range .NetworkSettings.Networks}}{{.IPAddress}}{{end}}", name], text=True
    ).strip()


def test_container_answers_on_published_port(host, probe_container):
    address = _host_address()
    body = ""
    for _ in range(50):  # bounded: at most ~10 s for the container to listen
        try:
            with urllib.request.urlopen(f"http://{address}:18080/", timeout=2) as resp:
                body = resp.read().decode()
            break
        except OSError:
            time.sleep(0.2)
    assert "inner Docker engine publishes ports" in body


# Plain output whatever molecule's environment says about colours: the tests read diff lines.
PLAIN_ENV = {**os.environ, "ANSIBLE_FORCE_COLOR": "0", "ANSIBLE_NOCOLOR": "1", "NO_COLOR": "1"}


def _playbook(*args, playbook="converge.yml"):
    """Run a scenario playbook against the scenario's inventory, the way molecule does."""
    cmd = ["ansible-playbook", "-i", os.environ["MOLECULE_INVENTORY_FILE"],
           os.path.join(SCENARIO_DIR, playbook), *args]
    return subprocess.run(cmd, capture_output=True, text=True, env=PLAIN_ENV, check=False, timeout=600)


def test_check_mode_on_converged_host_changes_nothing():
    run = _playbook("--check")
    assert run.returncode == 0, run.stdout + run.stderr
    assert "changed=0" in run.stdout, run.stdout


def test_diff_shows_exactly_the_changed_option(host):
    before = host.file("/etc/docker/daemon.json").content_string
    options = {"insecure-registries": ["172.17.0.1:5000"], "max-concurrent-downloads": 6}
    run = _playbook("--check", "--diff", "-e", json.dumps({"docker_engine_daemon_options": options}))
    assert run.returncode == 0, run.stdout + run.stderr
    lines = run.stdout.splitlines()
    added = {line[1:].strip().rstrip(",") for line in lines if line.startswith("+ ")}
    removed = {line[1:].strip().rstrip(",") for line in lines if line.startswith("- ")}
    # JSON moves a comma onto the line before the new key; apart from that, one key was added.
    assert added - removed == {'"max-concurrent-downloads": 6'}, run.stdout
    assert removed - added == set(), run.stdout
    assert host.file("/etc/docker/daemon.json").content_string == before  # check mode wrote nothing


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        ({"docker_engine_daemon_options": "debug=true"},
         "docker_engine_daemon_options and each value of docker_engine_daemon_contributions must be mappings"),
        ({"docker_engine_version": "3:20.10.24-3.el8"}, "is an RPM (EL) version"),
        ({"docker_engine_source": "snap"},
         "value of docker_engine_source must be one of: docker, distribution, got: snap"),
    ],
)
def test_bad_input_fails_before_the_host_changes(host, extra, message):
    before = host.file("/etc/docker/daemon.json").content_string
    packages = host.check_output("dpkg-query -W -f '${Package}=${Version}\\n'")
    run = _playbook("-e", json.dumps(extra))
    assert run.returncode != 0
    output = run.stdout + run.stderr
    assert message in " ".join(output.split()), output
    assert "changed=0" in run.stdout
    assert host.file("/etc/docker/daemon.json").content_string == before
    assert host.check_output("dpkg-query -W -f '${Package}=${Version}\\n'") == packages


def _host_state(host):
    """Installed packages and a checksum of every file under /etc and /usr/local."""
    packages = host.check_output("dpkg-query -W -f '${Package}=${Version}\\n'")
    files = host.check_output("find /etc /usr/local -xdev -type f -print0 | sort -z | xargs -0 md5sum")
    return packages, files


def test_gpu_required_on_a_gpu_less_host_fails_and_changes_nothing(host):
    before = _host_state(host)
    run = _playbook(playbook="gpu_required.yml")
    output = " ".join((run.stdout + run.stderr).split())
    assert run.returncode != 0
    assert "tfs-default-host: nvidia_runtime_mode is 'required' but nvidia-smi not found" in output, output
    assert "Nothing was changed on the host" in output
    assert "changed=0" in run.stdout
    assert _host_state(host) == before
