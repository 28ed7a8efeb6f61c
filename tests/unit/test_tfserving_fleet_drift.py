"""plugins/filter/tfserving_fleet_drift.py (and its tables in tfserving_fleet_report.py): what each host
really runs, against the inventory and the fleet.

The inputs have the shapes status.yml registers on each host: community.docker's docker_container_info
and docker_image_info results (fields as Docker's inspect API returns them), the output of
``tensorflow_model_server --version`` run in the container, ``docker version --format '{{json .}}'`` and
the nvidia_gpu facts.
"""

from __future__ import annotations

import json

import pytest
from ansible.errors import AnsibleFilterError
from ansible_collections.tfserving.fleet.plugins.filter import tfserving_fleet_drift as fleet_drift
from ansible_collections.tfserving.fleet.plugins.filter import tfserving_fleet_report as fleet_report
from ansible_collections.tfserving.fleet.plugins.filter import tfserving_fleet_status as fleet_status

REF = "registry.example:5000/tfserving:2.19.0"
GPU_REF = "registry.example:5000/tfserving:2.19.0-gpu"
ID_A = "sha256:" + "a" * 64
ID_B = "sha256:" + "b" * 64
DIGEST_A = "registry.example:5000/tfserving@sha256:" + "1" * 64
# What tensorflow_model_server --version prints (model_servers/main.cc): the server, then the library.
REAL_VERSION = "TensorFlow ModelServer: 2.19.0-rc0+dev.sha.abc1234\nTensorFlow Library: 2.19.0\n"
NO_GPU = {"available": False, "reason": "nvidia-smi not found", "count": 0}


def docker_version(engine="20.10.24+dfsg1", containerd="1.6.20~ds1", runc="1.1.5+ds1"):
    return {"rc": 0, "stdout": json.dumps({
        "Client": {"Version": engine},
        "Server": {"Version": engine, "Components": [
            {"Name": "Engine", "Version": engine}, {"Name": "containerd", "Version": containerd},
            {"Name": "runc", "Version": runc}, {"Name": "docker-init", "Version": "0.19.0"}]}})}


def container(image_id=ID_A, ref=REF, running=True, device_requests=None, runtime="runc", env=()):
    return {"Image": image_id, "State": {"Running": running, "Status": "running" if running else "exited"},
            "Config": {"Image": ref, "Env": ["PATH=/usr/bin", "MODEL_NAME=model", *env]},
            "HostConfig": {"DeviceRequests": device_requests, "Runtime": runtime}}


def image(image_id=ID_A, tags=(REF,), digests=(DIGEST_A,)):
    return {"Id": image_id, "RepoTags": list(tags), "RepoDigests": list(digests)}


def host(name, instances=None, containers=None, images=None, version=REAL_VERSION, docker=None, gpu=None,
         settings=None, known=None):
    """The hostvars status.yml leaves on one host."""
    instances = instances if instances is not None else [{"name": "main", "models": []}]
    targets = fleet_drift.targets(instances, {"prefix": "tfserving-", "image_cpu": REF, "image_gpu": GPU_REF,
                                      "gpu": bool((gpu or {}).get("available")), **(settings or {})})
    containers = containers if containers is not None else {"main": container()}
    registered = {"results": [
        {"item": t, "exists": t["instance"] in containers, "container": containers.get(t["instance"])}
        for t in targets]}
    asked = fleet_drift.servers_to_ask(registered, known)
    return {
        "inventory_hostname": name,
        "tfserving_instances": instances,
        "_tfserving_status_targets": targets,
        "_tfserving_status_known": known or {},
        "__tfserving_status_containers": registered,
        "__tfserving_status_images": {"images": images if images is not None else [image()]},
        "__tfserving_status_servers": {"results": [{"item": a, "rc": 0, "stdout": version} for a in asked]},
        "__tfserving_status_docker": docker or docker_version(),
        "ansible_facts": {"nvidia_gpu": gpu or NO_GPU},
    }


def drift(*hostvars):
    return fleet_drift.drift([fleet_status.host_report(hv) for hv in hostvars])


def marks(row):
    return [(d["field"], d["reason"]) for d in row["drift"]]


# -- what the inventory declares ---------------------------------------------------------------------------
def test_targets_follow_the_role_plan_for_images_and_gpus():
    instances = [
        {"name": "cpu", "models": []},
        {"name": "gpu", "gpus": [0, 1], "models": []},
        {"name": "own", "image": "mine:1", "gpus": "all", "models": []},
        {"name": "gone", "state": "absent", "models": []},
    ]
    settings = {"prefix": "tfs-", "image_cpu": REF, "image_gpu": GPU_REF}
    assert fleet_drift.targets(instances, {**settings, "gpu": True}) == [
        {"instance": "cpu", "container": "tfs-cpu", "image": REF, "gpus": [], "pinned": False},
        {"instance": "gpu", "container": "tfs-gpu", "image": GPU_REF, "gpus": ["0", "1"], "pinned": False},
        {"instance": "own", "container": "tfs-own", "image": "mine:1", "gpus": "all", "pinned": False},
    ]
    # A host without GPU runtime runs GPU instances on the CPU image, without GPUs (the role's plan).
    assert [(t["image"], t["gpus"]) for t in fleet_drift.targets(instances, {**settings, "gpu": False})] == [
        (REF, []), (REF, []), ("mine:1", [])]
    with pytest.raises(AnsibleFilterError, match="expects tfserving_instances"):
        fleet_drift.targets({"name": "main"})
    with pytest.raises(AnsibleFilterError, match="gpus"):
        fleet_drift.targets([{"name": "a", "gpus": {"x": 1}}])
    # The role's reading of gpus (tfserving_inventory.gpu_set): a device is an index or a GPU UUID.
    with pytest.raises(AnsibleFilterError, match="gpus \\['nvidia0'\\]"):
        fleet_drift.targets([{"name": "a", "gpus": ["nvidia0"]}])


@pytest.mark.parametrize(("ref", "found"), [
    (REF, True),
    ("registry.example:5000/tfserving@sha256:" + "1" * 64, True),
    (ID_A, True),
    ("registry.example:5000/tfserving:2.18.0", False),
    ("registry.example:5000/tfserving", False),
])
def test_an_inventory_reference_names_an_image_by_tag_digest_or_id(ref, found):
    assert fleet_drift._reference_matches(ref, image()) is found


def test_docker_hub_references_match_the_names_docker_keeps():
    hub = {"Id": ID_A, "RepoTags": ["tensorflow/serving:latest"], "RepoDigests": []}
    assert fleet_drift._reference_matches("tensorflow/serving", hub)
    assert fleet_drift._reference_matches("docker.io/tensorflow/serving:latest", hub)
    assert not fleet_drift._reference_matches("tensorflow/serving:2.19.0", hub)


# -- what the server and the engine report -------------------------------------------------------------------
def test_the_server_version_is_read_as_tensorflow_model_server_prints_it():
    assert fleet_drift._model_server_version(REAL_VERSION) == {"tfserving_version": "2.19.0-rc0+dev.sha.abc1234",
                                                       "tensorflow_version": "2.19.0"}
    double = ("TensorFlow ModelServer: 0.1.0-test-double (TF Serving TEST DOUBLE, not TensorFlow Serving)\n"
              "TensorFlow Library: 2.21.0\n")
    assert fleet_drift._model_server_version(double)["tfserving_version"].startswith(
        "0.1.0-test-double (TF Serving TEST")
    assert fleet_drift._model_server_version("unknown argument: --version") == {"tfserving_version": None,
                                                                        "tensorflow_version": None}


def test_docker_versions_come_from_the_server_components():
    assert fleet_drift._docker_versions(docker_version()) == {"docker_version": "20.10.24+dfsg1",
                                                      "containerd_version": "1.6.20~ds1", "runc_version": "1.1.5+ds1"}
    assert fleet_drift._docker_versions({"rc": 1, "stdout": "", "stderr": "Cannot connect"}) == {
        "docker_version": None, "containerd_version": None, "runc_version": None}


def test_gpus_assigned_by_device_requests_or_the_nvidia_runtime():
    def gpus(**kw):
        return fleet_drift._assigned_gpus(container(**kw))

    nvidia = {"Driver": "nvidia", "Capabilities": [["gpu"]]}
    assert gpus(device_requests=[{**nvidia, "Count": -1}]) == "all"
    assert gpus(device_requests=[{**nvidia, "Count": 0, "DeviceIDs": ["0", "2"]}]) == ["0", "2"]
    assert gpus(runtime="nvidia", env=["NVIDIA_VISIBLE_DEVICES=1,3"]) == ["1", "3"]
    assert gpus(runtime="nvidia", env=["NVIDIA_VISIBLE_DEVICES=all"]) == "all"
    assert gpus(runtime="nvidia", env=["NVIDIA_VISIBLE_DEVICES=void"]) == []
    # The variable means nothing without the nvidia runtime (the CUDA base images set it).
    assert gpus(env=["NVIDIA_VISIBLE_DEVICES=all"]) == []


# -- drift ---------------------------------------------------------------------------------------------------
def test_a_uniform_fleet_has_no_drift_and_every_field():
    rows = drift(host("gpu-01"), host("gpu-02"), host("gpu-03"))
    assert [(r["host"], r["instance"], r["drifted"]) for r in rows] == [
        ("gpu-01", "main", False), ("gpu-02", "main", False), ("gpu-03", "main", False)]
    row = rows[0]
    assert {k: row[k] for k in ("container", "image", "expected_image", "image_id", "expected_image_id", "digest",
                                "repo_digests", "tfserving_version", "tensorflow_version", "docker_version",
                                "containerd_version", "runc_version", "runtime", "driver_version", "cuda_version",
                                "gpus", "expected_gpus", "drift", "drift_detail")} == {
        "container": "tfserving-main", "image": REF, "expected_image": REF, "image_id": ID_A,
        "expected_image_id": ID_A, "digest": DIGEST_A, "repo_digests": [DIGEST_A],
        "tfserving_version": "2.19.0-rc0+dev.sha.abc1234", "tensorflow_version": "2.19.0",
        "docker_version": "20.10.24+dfsg1", "containerd_version": "1.6.20~ds1", "runc_version": "1.1.5+ds1",
        "runtime": "runc", "driver_version": None, "cuda_version": None, "gpus": [], "expected_gpus": [],
        "drift": [], "drift_detail": ""}
    assert fleet_drift.drift_summary(rows) == {"ok": True, "hosts": 3, "instances": 3, "drifted": 0,
                                               "not_collected": [], "marks": []}
    # status.yml compares the rows with the previous JSON report: they survive a round trip unchanged.
    assert json.loads(json.dumps(rows)) == rows


def test_one_host_running_another_digest_is_marked_against_the_fleet():
    # Someone pulled or built another image under the same tag on gpu-02 and restarted the server there:
    # it runs what its tag names (site.yml --check changes nothing), but not what the fleet runs.
    other = image(ID_B, digests=())
    rows = drift(host("gpu-01"), host("gpu-02", containers={"main": container(ID_B)}, images=[other],
                                      version="TensorFlow ModelServer: 2.19.1\nTensorFlow Library: 2.19.0\n"),
                 host("gpu-03"))
    assert [r["drifted"] for r in rows] == [False, True, False]
    assert rows[1]["digest"] is None  # a locally built image has no repo digest: its ID is what runs
    assert marks(rows[1]) == [
        ("image_id", f"image ID {ID_B[:19]}, the fleet's majority runs {ID_A[:19]}"),
        ("tfserving_version", "TF Serving version 2.19.1, the fleet's majority runs 2.19.0-rc0+dev.sha.abc1234"),
    ]
    assert rows[1]["drift_fields"] == ["image_id", "tfserving_version"]
    summary = fleet_drift.drift_summary(rows)
    assert not summary["ok"] and summary["drifted"] == 1 and summary["marks"][0].startswith("gpu-02/main: image")


def test_a_container_behind_its_inventory_image_is_what_check_mode_would_change():
    # The tag now names ID_B on gpu-02, its container still runs ID_A: docker_container (site.yml) would
    # recreate it. The fleet agrees on ID_A, so only the inventory mark is set.
    rows = drift(host("gpu-01"), host("gpu-02", images=[image(ID_A, tags=()), image(ID_B, digests=())]),
                 host("gpu-03"))
    assert [r["drifted"] for r in rows] == [False, True, False]
    assert marks(rows[1]) == [("image_id", f"runs {ID_A[:19]}, {REF} is {ID_B[:19]} on the host")]


def test_a_container_created_from_another_reference_or_missing_or_stopped_is_marked():
    rows = drift(
        host("gpu-01", containers={"main": container(ref="registry.example:5000/tfserving:hotfix")}),
        host("gpu-02", containers={}),
        host("gpu-03", containers={"main": container(running=False)}),
    )
    assert marks(rows[0]) == [("image", f"runs registry.example:5000/tfserving:hotfix, the inventory says {REF}")]
    assert marks(rows[1]) == [("container", "container tfserving-main does not exist")]
    assert marks(rows[2]) == [("container", "container tfserving-main is not running")]
    # No server to ask on a stopped or missing container.
    assert rows[1]["tfserving_version"] is None and rows[2]["tfserving_version"] is None


def test_a_pinned_fleet_running_the_digest_of_its_tag_is_not_marked_but_a_host_off_the_digest_is():
    # tfserving_image_pin_fleet: containers run repo@digest of the inventory's tag, and a digest pull
    # leaves no tag on the host. That is the role's own doing: no inventory mark. One digest per tag
    # across the fleet is still required.
    pinned = {"pinned": True}
    digest_b = "registry.example:5000/tfserving@sha256:" + "2" * 64
    rows = drift(
        host("gpu-01", settings=pinned, containers={"main": container(ref=DIGEST_A)}, images=[image(tags=())]),
        host("gpu-02", settings=pinned, containers={"main": container(ref=DIGEST_A)}, images=[image(tags=())]),
        host("gpu-03", settings=pinned, containers={"main": container(ID_B, ref=digest_b)},
             images=[image(ID_B, tags=(), digests=(digest_b,))]),
    )
    assert [r["drifted"] for r in rows] == [False, False, True]
    assert [f for f, _ in marks(rows[2])] == ["image_id"]
    # Without pinning, the same digest reference is another reference than the inventory's tag.
    rows = drift(host("gpu-01", containers={"main": container(ref=DIGEST_A)}, images=[image(tags=())]))
    assert [f for f, _ in marks(rows[0])] == ["image", "image_id"]
    # Pinned to another repository is never the role's pin.
    other = "elsewhere:5000/tfserving@sha256:" + "1" * 64
    rows = drift(host("gpu-01", settings=pinned, containers={"main": container(ref=other)}, images=[image()]))
    assert ("image", f"runs {other}, the inventory says {REF}") in marks(rows[0])


def test_an_image_the_host_does_not_have_is_marked():
    rows = drift(host("gpu-01", images=[image(ID_A, tags=())]))
    assert marks(rows[0]) == [("image_id", f"{REF} is not on the host")]


def test_engine_and_driver_versions_are_compared_host_by_host():
    gpu = {"available": True, "count": 2, "driver_version": "550.54.15", "cuda_version": "12.4"}
    old = {**gpu, "driver_version": "535.161.08", "cuda_version": "12.2"}
    two = [{"name": "a", "gpus": [0], "models": []}, {"name": "b", "gpus": [1], "models": []}]
    requests = [{"Driver": "nvidia", "Capabilities": [["gpu"]], "DeviceIDs": ["0"]}]
    requests_1 = [{"Driver": "nvidia", "Capabilities": [["gpu"]], "DeviceIDs": ["1"]}]
    gpu_image = image(tags=(GPU_REF,))
    containers = {"a": container(ref=GPU_REF, device_requests=requests),
                  "b": container(ref=GPU_REF, device_requests=requests_1)}
    rows = drift(
        host("gpu-01", two, containers, [gpu_image], gpu=gpu),
        host("gpu-02", two, containers, [gpu_image], gpu=old, docker=docker_version(runc="1.1.12")),
        host("gpu-03", two, containers, [gpu_image], gpu=gpu),
        host("cpu-01"),
    )
    assert [(r["host"], r["instance"], r["gpus"], r["drifted"]) for r in rows] == [
        ("gpu-01", "a", ["0"], False), ("gpu-01", "b", ["1"], False),
        ("gpu-02", "a", ["0"], True), ("gpu-02", "b", ["1"], True),
        ("gpu-03", "a", ["0"], False), ("gpu-03", "b", ["1"], False), ("cpu-01", "main", [], False)]
    # Two instances on gpu-02 do not outvote the others: one value per host; a host without GPU has no say.
    assert marks(rows[2]) == [
        ("runc_version", "runc version 1.1.12, the fleet's majority runs 1.1.5+ds1"),
        ("driver_version", "driver 535.161.08, the fleet's majority runs 550.54.15"),
        ("cuda_version", "CUDA 12.2, the fleet's majority runs 12.4"),
    ]
    assert rows[6]["driver_version"] is None and fleet_report._drift_cell(rows[6], "driver_version") == "-"


def test_a_fleet_split_in_two_has_no_majority_and_every_side_is_marked():
    rows = drift(host("gpu-01"), host("gpu-02", docker=docker_version(engine="24.0.7")))
    assert [r["drift_fields"] for r in rows] == [["docker_version"], ["docker_version"]]
    assert rows[1]["drift"][0]["reason"] == "Docker version 24.0.7: no majority among the 2 hosts"


def test_gpus_other_than_the_inventory_says_are_marked():
    gpu = {"available": True, "count": 4, "driver_version": "550.54.15", "cuda_version": "12.4"}
    rows = drift(host("gpu-01", [{"name": "main", "gpus": [0, 1], "models": []}],
                      {"main": container(ref=GPU_REF, device_requests=[
                          {"Driver": "nvidia", "Capabilities": [["gpu"]], "Count": -1}])},
                      [image(tags=(GPU_REF,))], gpu=gpu))
    assert marks(rows[0]) == [("gpus", "has GPUs all, the inventory says 0,1")]


def test_a_host_that_reported_nothing_gets_an_unmarked_row_with_the_reason():
    rows = fleet_drift.drift([fleet_status.host_report({"inventory_hostname": "gpu-09", "tfserving_instances": [],
                                       "__tfserving_status": {"unreachable": True, "msg": "timed out"}})])
    assert rows == [{"host": "gpu-09", "instance": None, "collected": False, "drifted": False, "drift": [],
                     "drift_fields": [], "note": "host unreachable: timed out", "drift_detail": "host unreachable: "
                     "timed out"}]
    assert fleet_drift.drift_summary(rows)["not_collected"] == ["gpu-09"]
    assert fleet_report._drift_cell(rows[0], "image") == "-"


def test_a_server_version_already_reported_for_the_image_is_not_asked_again():
    previous = {"drift": {"rows": drift(host("gpu-01"))}}
    known = fleet_drift.known_servers(previous)
    assert known == {ID_A: {"tfserving_version": "2.19.0-rc0+dev.sha.abc1234", "tensorflow_version": "2.19.0"}}
    hv = host("gpu-01", known=known)
    assert hv["__tfserving_status_servers"]["results"] == []
    assert drift(hv)[0]["tfserving_version"] == "2.19.0-rc0+dev.sha.abc1234"
    # Another image ID is asked.
    assert [a["image_id"] for a in fleet_drift.servers_to_ask(host("gpu-01", containers={"main": container(ID_B)})[
        "__tfserving_status_containers"], known)] == [ID_B]
    assert fleet_drift.known_servers({}) == {} and fleet_drift.known_servers(None) == {}


# -- renderings ----------------------------------------------------------------------------------------------
@pytest.fixture
def drifted_rows():
    other = host("gpu-<2>", containers={"main": container(ID_B)}, images=[image(ID_B, digests=())])
    return drift(host("gpu-01"), other, host("gpu-03"))


def test_the_text_table_marks_drift_in_its_first_column(drifted_rows):
    lines = fleet_report.drift_table(drifted_rows).split("\n")
    assert lines[0].split()[:6] == ["Host", "Instance", "Image", "Image", "ID", "Repo"]
    assert [line.startswith("DRIFT") for line in lines[2:]] == [False, True, False]
    assert ID_A[7:19] in lines[2] and ID_B[7:19] in lines[3] and "majority" in lines[3]


def test_markdown_has_the_drift_section_with_marked_rows(drifted_rows):
    text = fleet_report.markdown([], "Fleet", "", drifted_rows)
    section = text.split("## Images and runtimes", 1)[1]
    assert "**1 instance(s) drifted**" in section
    rows = [line for line in section.splitlines() if line.startswith("| ")]
    assert len(rows) == 1 + len(drifted_rows)
    assert rows[2].startswith("| **DRIFT** | gpu-<2> | main |") and "**" not in rows[1] + rows[3]
    assert f"| **{ID_B[:19]}** | - |" in rows[2]
    # Without drift rows the page is what it was.
    assert "Images and runtimes" not in fleet_report.markdown([], "Fleet")


def test_html_has_the_drift_table_with_marked_rows_and_stays_self_contained(drifted_rows):
    page = fleet_report.html_page([], "Fleet", "", drifted_rows)
    assert "<script" not in page and "<link" not in page and "src=" not in page
    assert page.count('<tr class="drift">') == 1 and page.count('<tr class="same">') == 2
    marked = page.split('<tr class="drift">', 1)[1].split("</tr>", 1)[0]
    assert "gpu-&lt;2&gt;" in marked and "DRIFT" in marked
    assert f'<td class="image_id drift-field" title="{ID_B}">{ID_B[:19]}</td>' in marked
    assert '<td class="digest">-</td>' in marked
    assert "tr.drift td" in page
    assert "<td class=\"drift_detail\">image ID</td>" in marked
    assert ("<li>gpu-&lt;2&gt;/main: image ID sha256:bbbbbbbbbbbb, the fleet&#x27;s majority runs "
            "sha256:aaaaaaaaaaaa</li>") in page
    assert 'class="drift"' not in fleet_report.html_page([], "Fleet")
