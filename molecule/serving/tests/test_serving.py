"""tfserving end to end, checked from the test machine: REST on the host container's address, the
containers and files inside it, then hot updates and bad inventories driven through serving.yml.

The tests run in file order: the first ones check what converge built, the later ones change it.
"""

from __future__ import annotations

import base64
import copy
import json
import os
import pathlib
import re
import shutil
import subprocess

import pytest
import requests
import yaml
from google.protobuf import text_format
from tensorflow_serving.config import model_server_config_pb2

testinfra_hosts = ["tfs-serving-host"]

HOST = "tfs-serving-host"
SCENARIO = pathlib.Path(__file__).resolve().parent.parent
DOUBLE_REPO = "172.17.0.1:5000/tfserving-double"
PREDICT = {"instances": [1.0, 2.0, 5.0]}
EXPECTED = [2.5, 3.0, 4.5]
CONTAINERS = ("tfserving-main", "tfserving-tf2")


# ---------------------------------------------------------------------------------------------
# helpers


@pytest.fixture(scope="module")
def address(host):
    """The host container's bridge address: the inner servers publish their ports there.

    Every test depends on testinfra's (parametrized) ``host`` fixture, directly or through this one,
    so pytest keeps them in file order: the later tests change what the earlier ones check.
    """
    out = subprocess.run(
        ["docker", "inspect", "-f", "{{.NetworkSettings.IPAddress}}", HOST],
        check=True,
        capture_output=True,
        text=True,
    ).stdout.strip()
    assert re.match(r"^\d+\.\d+\.\d+\.\d+$", out), out
    assert out in host.interface("eth0").addresses
    return out


def rest(address, port, path, payload=None):
    url = f"http://{address}:{port}{path}"
    if payload is None:
        return requests.get(url, timeout=10)
    return requests.post(url, json=payload, timeout=30)


def versions(address, port, model):
    """{version: (state, error_code)} of the versions the server loads or serves.

    TF Serving keeps unloaded versions listed as END with OK (a rerun of this scenario on the same
    host shows versions earlier tests retired): those must be END/OK and are left out.
    """
    answer = rest(address, port, f"/v1/models/{model}")
    assert answer.status_code == 200, answer.text
    listed = {int(v["version"]): (v["state"], v["status"]["error_code"]) for v in answer.json()["model_version_status"]}
    retired = {v: s for v, s in listed.items() if s[0] == "END"}
    assert all(s == ("END", "OK") for s in retired.values()), listed
    return {v: s for v, s in listed.items() if v not in retired}


def inspect(host, name):
    return json.loads(host.check_output(f"docker inspect {name}"))[0]


def identity_of(host, name):
    """What a restart or recreation changes: container ID, start time, restart count."""
    data = inspect(host, name)
    return data["Id"], data["State"]["StartedAt"], data["RestartCount"], data["State"]["Running"]


def identity(host):
    return {name: identity_of(host, name) for name in CONTAINERS}


def files_snapshot(host):
    """Every file and directory the role manages on the host, with content hashes."""
    listing = host.check_output("find /srv/tfserving /etc/tfserving /var/lib/tfserving -printf '%y %p\\n' | sort")
    sums = host.check_output("find /etc/tfserving /var/lib/tfserving -type f -exec sha256sum {} + | sort")
    return listing, sums


def instances():
    """The scenario's inventory, as converge used it (tests pass modified copies as extra vars)."""
    return copy.deepcopy(yaml.safe_load((SCENARIO / "vars" / "instances.yml").read_text())["tfserving_instances"])


def main_only():
    """The inventory the last tests leave: main serves half_plus_two 124 and 125, tf2 is absent."""
    inst = instances()
    inst[0]["models"][0].update(versions=[124, 125], labels={"stable": 124, "canary": 125})
    del inst[0]["models"][1]
    inst[1] = {"name": "tf2", "state": "absent"}
    return inst


def sources_dir():
    return pathlib.Path(os.environ["MOLECULE_EPHEMERAL_DIRECTORY"]) / "model-sources"


def run_serving(tmp_path, tfserving_instances, *args):
    """serving.yml (the tfserving role alone) against the scenario's host with these instances."""
    extra = tmp_path / "extra-vars.json"
    extra.write_text(json.dumps({"tfserving_instances": tfserving_instances}))
    env = dict(os.environ)
    env.setdefault("ANSIBLE_CONFIG", os.path.join(env["MOLECULE_EPHEMERAL_DIRECTORY"], "ansible.cfg"))
    # JSON results keep each message on one line (the YAML format wraps long strings).
    env["ANSIBLE_CALLBACK_RESULT_FORMAT"] = "json"
    env["ANSIBLE_NOCOLOR"] = "1"
    env["ANSIBLE_FORCE_COLOR"] = "0"
    proc = subprocess.run(
        [
            "ansible-playbook",
            "-i",
            env["MOLECULE_INVENTORY_FILE"],
            str(SCENARIO / "serving.yml"),
            "-e",
            f"@{extra}",
            *args,
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,  # failures go to stderr: keep them in order with the task headers
        text=True,
        env=env,
        timeout=600,
    )
    return proc.returncode, proc.stdout


def recap(output):
    match = re.search(rf"{HOST}\s*:\s*ok=(\d+)\s+changed=(\d+)\s+unreachable=(\d+)\s+failed=(\d+)", output)
    assert match, output[-3000:]
    return {k: int(v) for k, v in zip(("ok", "changed", "unreachable", "failed"), match.groups(), strict=True)}


def task_result(output, task):
    """ok / changed / skipping / failed / fatal: what the tfserving role's `task` reported for HOST."""
    match = re.search(
        rf"TASK \[tfserving\.fleet\.tfserving : {re.escape(task)}\][^\n]*\n(?:(?!TASK \[)[^\n]*\n)*?(\w+): \[{HOST}\]",
        output,
    )
    return match.group(1) if match else None


def models_config(host, instance):
    text = host.file(f"/etc/tfserving/{instance}/models.config").content_string
    config = model_server_config_pb2.ModelServerConfig()
    text_format.Parse(text, config)
    return {m.name: m for m in config.model_config_list.config}


# ---------------------------------------------------------------------------------------------
# what converge built


def test_every_version_is_available_over_rest(address):
    assert versions(address, 8501, "half_plus_two") == {123: ("AVAILABLE", "OK"), 124: ("AVAILABLE", "OK")}
    assert versions(address, 8501, "half_plus_two_cpu") == {123: ("AVAILABLE", "OK")}
    assert versions(address, 9501, "half_plus_two_tf2") == {123: ("AVAILABLE", "OK")}


@pytest.mark.parametrize("label,version", [("stable", 123), ("canary", 124)])
def test_predict_on_each_label(address, label, version):
    answer = rest(address, 8501, f"/v1/models/half_plus_two/labels/{label}:predict", PREDICT)
    assert answer.status_code == 200, answer.text
    assert answer.json()["predictions"] == EXPECTED
    meta = rest(address, 8501, f"/v1/models/half_plus_two/labels/{label}/metadata")
    assert meta.status_code == 200, meta.text
    assert meta.json()["model_spec"]["version"] == str(version)


def test_predict_on_the_other_models(address):
    for port, model in ((8501, "half_plus_two_cpu"), (9501, "half_plus_two_tf2")):
        answer = rest(address, port, f"/v1/models/{model}:predict", PREDICT)
        assert answer.status_code == 200, answer.text
        assert answer.json()["predictions"] == EXPECTED


def test_each_instance_serves_only_its_own_models(address):
    assert rest(address, 9501, "/v1/models/half_plus_two").status_code == 404
    assert rest(address, 8501, "/v1/models/half_plus_two_tf2").status_code == 404


def test_models_config_on_the_host_parses_with_tf_servings_schema(host):
    main = models_config(host, "main")
    assert sorted(main) == ["half_plus_two", "half_plus_two_cpu"]
    assert list(main["half_plus_two"].model_version_policy.specific.versions) == [123, 124]
    assert dict(main["half_plus_two"].version_labels) == {"stable": 123, "canary": 124}
    assert main["half_plus_two"].base_path == "/models/half_plus_two"
    assert list(models_config(host, "tf2")) == ["half_plus_two_tf2"]
    assert host.file("/etc/tfserving/main/models.config").content_string.startswith("# Managed by Ansible")


def test_model_repository_layout(host):
    for path in (
        "/srv/tfserving/models/main/half_plus_two/00000123/saved_model.pb",
        "/srv/tfserving/models/main/half_plus_two/00000124/saved_model.pb",
        "/srv/tfserving/models/main/half_plus_two_cpu/00000123/saved_model.pb",
        "/srv/tfserving/models/tf2/half_plus_two_tf2/00000123/saved_model.pb",
    ):
        assert host.file(path).is_file, path
    # No staging directory survives a run.
    assert host.check_output("find /srv/tfserving -name '.tfserving-tmp-*'") == ""


def test_containers_are_hardened_and_mount_read_only(host):
    for name, instance in (("tfserving-main", "main"), ("tfserving-tf2", "tf2")):
        data = inspect(host, name)
        hc = data["HostConfig"]
        assert hc["Privileged"] is False
        assert hc["ReadonlyRootfs"] is True
        assert hc["CapDrop"] == ["ALL"]
        assert "no-new-privileges" in hc["SecurityOpt"]
        assert hc["RestartPolicy"]["Name"] == "unless-stopped"
        assert hc["LogConfig"] == {"Type": "json-file", "Config": {"max-file": "5", "max-size": "50m"}}
        mounts = {m["Destination"]: m for m in data["Mounts"]}
        assert mounts["/models"]["Source"] == f"/srv/tfserving/models/{instance}"
        assert mounts["/etc/tfserving"]["Source"] == f"/etc/tfserving/{instance}"
        assert not mounts["/models"]["RW"] and not mounts["/etc/tfserving"]["RW"]
        # No GPU runtime on this host: the GPU instance runs on CPU without device requests.
        assert not hc.get("DeviceRequests")
        assert hc.get("Runtime") in ("runc", None, "")


def test_ports_are_published_on_the_bind_address(host):
    ports = inspect(host, "tfserving-main")["HostConfig"]["PortBindings"]
    assert ports == {
        "8500/tcp": [{"HostIp": "0.0.0.0", "HostPort": "8500"}],
        "8501/tcp": [{"HostIp": "0.0.0.0", "HostPort": "8501"}],
    }
    ports = inspect(host, "tfserving-tf2")["HostConfig"]["PortBindings"]
    assert ports["8501/tcp"] == [{"HostIp": "0.0.0.0", "HostPort": "9501"}]


def test_server_flags(host):
    args = inspect(host, "tfserving-main")["Args"]
    for flag in (
        "--model_config_file=/etc/tfserving/models.config",
        "--model_config_file_poll_wait_seconds=2",
        "--file_system_poll_wait_seconds=1",
        "--enable_batching=true",
        "--batching_parameters_file=/etc/tfserving/batching.config",
    ):
        assert flag in args, args
    assert "--monitoring_config_file=/etc/tfserving/monitoring.config" in inspect(host, "tfserving-tf2")["Args"]


def scrape(address, port):
    """{series: value} of a Prometheus text page (series = name plus its label set, as printed)."""
    answer = rest(address, port, "/monitoring/prometheus/metrics")
    assert answer.status_code == 200, answer.text
    assert answer.headers["Content-Type"].startswith("text/plain"), answer.headers
    series = {}
    for line in answer.text.splitlines():
        if line and not line.startswith("#"):
            name, value = line.rsplit(" ", 1)
            series[name] = float(value)
    return answer.text, series


def test_monitoring_endpoint_exports_the_per_model_series_a_scrape_relies_on(address):
    """What dashboards and the alert rules read, per model: requests by status, latency, loads."""
    model = "half_plus_two_tf2"
    count = f':tensorflow:serving:request_count{{model_name="{model}",status="OK"}}'
    latency = f':tensorflow:serving:request_latency_count{{model_name="{model}",API="predict",entrypoint="REST"}}'
    _, before = scrape(address, 9501)
    for _ in range(3):
        assert rest(address, 9501, f"/v1/models/{model}:predict", PREDICT).json() == {"predictions": EXPECTED}
    page, after = scrape(address, 9501)
    for kind, metric in (("counter", ":tensorflow:serving:request_count"),
                         ("histogram", ":tensorflow:serving:request_latency"),
                         ("counter", ":tensorflow:cc:saved_model:load_attempt_count")):
        assert f"# TYPE {metric} {kind}" in page, page
    assert after[count] - before.get(count, 0) == 3, page
    assert after[latency] - before.get(latency, 0) == 3, page
    inf = latency.replace("_count{", "_bucket{").replace('"}', '",le="+Inf"}')
    assert after[inf] == after[latency], page  # buckets are cumulative: +Inf holds every request
    # The version it serves was loaded once, successfully (the load-failure alert reads status="fail").
    loads = [s for s in after if s.startswith(":tensorflow:cc:saved_model:load_attempt_count{")]
    served = rf'model_path="[^"]*/{model}/0*123",status="success"'
    assert [after[s] for s in loads if re.search(served, s)] == [1], loads
    assert not [s for s in loads if 'status="fail"' in s], loads
    # The instance without monitoring exports nothing (its monitoring config is absent).
    assert rest(address, 8501, "/monitoring/prometheus/metrics").status_code == 404


def test_fleet_is_pinned_to_a_digest_and_it_is_recorded(host):
    for name, instance in (("tfserving-main", "main"), ("tfserving-tf2", "tf2")):
        data = inspect(host, name)
        assert data["Config"]["Image"].startswith(DOUBLE_REPO + "@sha256:"), data["Config"]["Image"]
        record = json.loads(host.file(f"/var/lib/tfserving/{instance}.image.json").content_string)
        assert record["image_id"] == data["Image"]
        assert record["image"] == data["Config"]["Image"]
        assert record["image"] in record["repo_digests"]


# ---------------------------------------------------------------------------------------------
# bad inventories: refused in validation, nothing touched


def _bad_duplicate_model():
    inst = instances()
    inst[0]["models"].append(copy.deepcopy(inst[0]["models"][1]))
    return inst, "instance 'main', model 'half_plus_two_cpu', field 'name'"


def _bad_colliding_ports():
    inst = instances()
    inst[1]["rest_port"] = 8501
    return inst, "instance 'tf2', field 'rest_port': port 8501 is already the REST port of instance 'main'"


def _bad_label_on_unserved_version():
    inst = instances()
    inst[0]["models"][0]["versions"] = [123]
    return inst, "instance 'main', model 'half_plus_two', field 'labels.canary': label points at version 124"


@pytest.mark.parametrize("case", [_bad_duplicate_model, _bad_colliding_ports, _bad_label_on_unserved_version])
def test_bad_inventory_fails_in_validation_and_touches_nothing(host, address, tmp_path, case):
    bad, expected = case()
    before = identity(host), files_snapshot(host)
    rc, output = run_serving(tmp_path, bad)
    assert rc != 0
    assert f"host '{HOST}', {expected}" in output, output[-3000:]
    assert re.search(
        r"TASK \[tfserving\.fleet\.tfserving : Inventory describes a deployable set of servers and models\][^\n]*\n"
        r"(?:[^\n]*\n)*?fatal: \[" + HOST,
        output,
    ), output[-3000:]
    counts = recap(output)
    assert counts["changed"] == 0 and counts["failed"] == 1
    assert (identity(host), files_snapshot(host)) == before
    assert versions(address, 8501, "half_plus_two") == {123: ("AVAILABLE", "OK"), 124: ("AVAILABLE", "OK")}


# ---------------------------------------------------------------------------------------------
# hot updates: no container restarts


def test_hot_update_adds_a_version_and_moves_the_labels_without_restart(host, address, tmp_path):
    before = identity(host)
    src = sources_dir() / "half_plus_two"
    shutil.copytree(src / "00000124", src / "00000125")
    inst = instances()
    inst[0]["models"][0].update(versions=[123, 124, 125], labels={"stable": 124, "canary": 125})

    # Check mode first: it reports the changes with their diff and makes none.
    files_before = files_snapshot(host)
    rc, output = run_serving(tmp_path, inst, "--check", "--diff")
    assert rc == 0, output[-4000:]
    assert recap(output)["changed"] > 0
    assert "+        versions: 125" in output and "+      value: 125" in output
    assert (identity(host), files_snapshot(host)) == (before, files_before)
    assert 125 not in versions(address, 8501, "half_plus_two")

    rc, output = run_serving(tmp_path, inst)
    assert rc == 0, output[-4000:]
    # The label moved in two steps: first 125 loaded under the old labels, then the labels moved.
    assert re.search(
        r"TASK \[tfserving\.fleet\.tfserving : Moving labels first stay where they are[^\n]*\n"
        r"(?:[^\n]*\n)*?changed: \[" + HOST,
        output,
    ), output[-4000:]
    assert versions(address, 8501, "half_plus_two") == {
        123: ("AVAILABLE", "OK"),
        124: ("AVAILABLE", "OK"),
        125: ("AVAILABLE", "OK"),
    }
    for label, version in (("stable", 124), ("canary", 125)):
        meta = rest(address, 8501, f"/v1/models/half_plus_two/labels/{label}/metadata")
        assert meta.json()["model_spec"]["version"] == str(version)
        answer = rest(address, 8501, f"/v1/models/half_plus_two/labels/{label}:predict", PREDICT)
        assert answer.json()["predictions"] == EXPECTED
    assert identity(host) == before
    assert host.file("/srv/tfserving/models/main/half_plus_two/00000125/saved_model.pb").is_file

    # And the updated inventory converges to nothing more to do.
    rc, output = run_serving(tmp_path, inst)
    assert rc == 0, output[-4000:]
    assert recap(output)["changed"] == 0, output[-4000:]


def test_hot_update_removes_a_model_and_a_version_without_restart(host, address, tmp_path):
    before = identity(host)
    shutil.rmtree(sources_dir() / "half_plus_two" / "00000123")
    inst = instances()
    inst[0]["models"][0].update(versions=[124, 125], labels={"stable": 124, "canary": 125})
    del inst[0]["models"][1]  # half_plus_two_cpu
    rc, output = run_serving(tmp_path, inst)
    assert rc == 0, output[-4000:]
    gone = rest(address, 8501, "/v1/models/half_plus_two_cpu")
    assert gone.status_code == 404 or all(v["state"] == "END" for v in gone.json()["model_version_status"])
    assert rest(address, 8501, "/v1/models/half_plus_two_cpu:predict", PREDICT).status_code != 200
    assert versions(address, 8501, "half_plus_two") == {124: ("AVAILABLE", "OK"), 125: ("AVAILABLE", "OK")}
    assert not host.file("/srv/tfserving/models/main/half_plus_two_cpu").exists
    assert not host.file("/srv/tfserving/models/main/half_plus_two/00000123").exists
    assert sorted(models_config(host, "main")) == ["half_plus_two"]
    assert identity(host) == before


def test_an_absent_instance_is_removed_and_the_other_keeps_running(host, address, tmp_path):
    main_before = identity(host)["tfserving-main"]
    inst = main_only()
    rc, output = run_serving(tmp_path, inst)
    assert rc == 0, output[-4000:]
    assert host.run("docker inspect tfserving-tf2").rc != 0
    for path in ("/srv/tfserving/models/tf2", "/etc/tfserving/tf2", "/var/lib/tfserving/tf2.image.json"):
        assert not host.file(path).exists, path
    assert identity_of(host, "tfserving-main") == main_before
    answer = rest(address, 8501, "/v1/models/half_plus_two/labels/stable:predict", PREDICT)
    assert answer.json()["predictions"] == EXPECTED


# ---------------------------------------------------------------------------------------------
# offline delivery (docs/runbooks/install-offline.md): the image as a `docker save` archive


def test_image_archive_from_the_control_node_is_loaded_once_and_served(host, address, tmp_path):
    """Runs last: it moves the remaining instance to an image the host only gets from the archive."""
    archived = "tfserving-ansible/tfserving-double-archived:test"
    archive = tmp_path / "tfserving-double-archived.tar"
    subprocess.run(["docker", "tag", "tfserving-double:test", archived], check=True)
    try:
        subprocess.run(["docker", "save", "-o", str(archive), archived], check=True)
    finally:
        subprocess.run(["docker", "rmi", archived], check=True, capture_output=True)
    assert host.run(f"docker image inspect {archived}").rc != 0
    inst = main_only()
    offline = json.dumps(
        {
            "tfserving_image_source": "archive",
            "tfserving_image_archive": str(archive),
            "tfserving_image_cpu": archived,
            "tfserving_image_gpu": archived,
            "tfserving_image_pin_fleet": False,
        }
    )

    rc, output = run_serving(tmp_path, inst, "-e", offline)
    assert rc == 0, output[-4000:]
    assert task_result(output, "Images of the archive are loaded") == "changed", output[-4000:]
    assert host.run(f"docker image inspect {archived}").rc == 0
    assert inspect(host, "tfserving-main")["Config"]["Image"] == archived
    assert not host.file(f"/var/lib/tfserving/images/{archive.name}").exists
    answer = rest(address, 8501, "/v1/models/half_plus_two/labels/stable:predict", PREDICT)
    assert answer.json()["predictions"] == EXPECTED

    # The image is on the host now: the archive is neither copied nor loaded again.
    rc, output = run_serving(tmp_path, inst, "-e", offline)
    assert rc == 0, output[-4000:]
    assert recap(output)["changed"] == 0, output[-4000:]
    assert task_result(output, "Image archive is on the host") == "skipping", output[-4000:]


# ---------------------------------------------------------------------------------------------
# registry credentials (docs/runbooks/rotate-registry-credentials.md): a registry that requires a login

AUTH_REGISTRY = "172.17.0.1:5001"
AUTH_DIR = pathlib.Path("/var/tmp/tfserving-ansible-registry-auth")  # scripts/registry.sh


def test_a_registry_that_requires_a_login_pulls_with_the_right_password_only(host, address, tmp_path):
    """Runs last: it moves the remaining instance to the image of the registry that requires a login."""
    password = (AUTH_DIR / "password").read_text().strip()
    wrong = "wrong-" + password[::-1]
    image = f"{AUTH_REGISTRY}/tfserving-double:test"
    unauthenticated = requests.get("http://127.0.0.1:5001/v2/tfserving-double/tags/list", timeout=10)
    assert unauthenticated.status_code == 401  # the registry really requires the login

    def run(secret):
        credentials = json.dumps({
            "tfserving_image_cpu": image, "tfserving_image_gpu": image,
            "tfserving_registry_url": AUTH_REGISTRY, "tfserving_registry_username": "tfs-test",
            "tfserving_registry_password": secret,
        })
        rc, output = run_serving(tmp_path, main_only(), "-e", credentials, "-vvv")
        for text in (password, wrong, base64.b64encode(f"tfs-test:{secret}".encode()).decode()):
            assert text not in output
        return rc, output

    before = identity_of(host, "tfserving-main")
    rc, output = run(wrong)
    assert rc != 0
    assert task_result(output, "Registry login failure is explained without the credentials") == "fatal", output[-4000:]
    assert "the registry refused the credentials. Fix tfserving_registry_username" in output
    assert identity_of(host, "tfserving-main") == before
    assert host.run(f"docker image inspect {image}").rc != 0 and "172.17.0.1:5001" not in host.run(
        "cat /root/.docker/config.json").stdout

    try:
        rc, output = run(password)
        assert rc == 0, output[-4000:]
        assert task_result(output, "Registry login is in place") == "changed", output[-4000:]
        running = inspect(host, "tfserving-main")["Config"]["Image"]
        assert running.startswith(f"{AUTH_REGISTRY}/tfserving-double@sha256:"), running  # pulled from there
        answer = rest(address, 8501, "/v1/models/half_plus_two/labels/stable:predict", PREDICT)
        assert answer.json()["predictions"] == EXPECTED
    finally:
        host.run(f"docker logout {AUTH_REGISTRY}")
