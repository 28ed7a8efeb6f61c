"""Checks the serving filter makes before anything changes on a host (issue #10): image references in
Docker's grammar, and base paths read in place mapped through the container's mounts to the host
directory the role lists. docs/bad-inputs.md shows the messages end to end."""

from __future__ import annotations

import pytest
from ansible_collections.tfserving.fleet.plugins.filter import tfserving_plan, tfserving_tasks, tfserving_validate
from ansible_collections.tfserving.fleet.plugins.module_utils import tfserving_inventory
from ansible_collections.tfserving.fleet.plugins.module_utils import tfserving_model_versions as tmv
from conftest import TESTDATA

TF = TESTDATA / "tfserving"


@pytest.mark.parametrize(
    "ref",
    [
        "tensorflow/serving",
        "tensorflow/serving:latest-gpu",
        "tensorflow/serving:2.19.0-gpu",
        "serving",
        "docker.io/tensorflow/serving:2.19.0",
        "registry.example.com:5000/ml/tf-serving:2.19.0",
        "172.31.0.1:5000/tfserving-double:test",
        "localhost/serving:dev",
        "localhost:5000/a/b/c:TAG_1.x",
        "[fd00::1]:5000/serving:1",
        "tensorflow/serving@sha256:" + "a" * 64,
        "tensorflow/serving:2.19.0@sha256:" + "0123456789abcdef" * 4,
        "my_org/my__model-server",
        "Registry.Example.com/ml/serving:1",  # an upper-case first component is a registry host for Docker
    ],
)
def test_references_docker_accepts(ref):
    assert tfserving_inventory.image_ref_problem(ref) == ""


@pytest.mark.parametrize(
    ("ref", "why"),
    [
        ("", "expected an image reference"),
        (None, "expected an image reference"),
        ("tensorflow/serving:2.19.0 -gpu", "the tag after ':'"),
        ("tensorflow/serving:", "the tag after ':'"),
        ("tensorflow/serving:-gpu", "the tag after ':'"),
        ("tensorflow/serving:" + "1" * 129, "the tag after ':'"),
        ("registry.example.com/ML/serving:1", "must be lowercase"),
        ("tensorflow/Serving", "must be lowercase"),
        ("tensorflow//serving", "must be lowercase"),
        ("tensorflow/serving/", "must be lowercase"),
        ("-tensorflow/serving", "must be lowercase"),
        ("tensorflow/serving@sha256:abc", "the digest"),
        ("tensorflow/serving@latest", "the digest"),
        ("reg_istry.example.com:5000/serving:1", "registry host"),
        ("a" * 256, "longer than 255"),
    ],
)
def test_references_docker_refuses(ref, why):
    assert why in tfserving_inventory.image_ref_problem(ref)


MOUNTS_INSTANCE = {
    "name": "nlp",
    "extra_mounts": [
        {"source": "/mnt/nfs/models", "target": "/data"},
        {"source": "/mnt/nfs/models/bert-large", "target": "/data/bert"},
    ],
}
SETTINGS = dict(tfserving_inventory.SETTINGS_DEFAULTS)


@pytest.mark.parametrize(
    ("base", "host", "target"),
    [
        ("/models/ranker", "/srv/tfserving/models/nlp/ranker", "/models"),
        ("/models", "/srv/tfserving/models/nlp", "/models"),
        ("/data/gpt", "/mnt/nfs/models/gpt", "/data"),
        ("/data/bert", "/mnt/nfs/models/bert-large", "/data/bert"),  # the longest mount wins
        ("/data/bert/v2", "/mnt/nfs/models/bert-large/v2", "/data/bert"),
        ("/data/./x/../gpt", "/mnt/nfs/models/gpt", "/data"),
        ("/database/x", None, None),  # a prefix of a name is not a parent directory
        ("/models/../etc/passwd", None, None),
        ("s3://bucket/m", None, None),
        ("models/x", None, None),
    ],
)
def test_base_paths_are_mapped_through_the_containers_mounts(base, host, target):
    mounts = tfserving_inventory.container_mounts(MOUNTS_INSTANCE, SETTINGS)
    assert tfserving_inventory.host_path_of(base, mounts) == (host, target)


def _listings(instances):
    """What the role's listing tasks register, from the real module, for the refs the filter gives."""
    out = {}
    for ref in tfserving_tasks.model_refs(instances):
        if ref["host_path"]:
            out.setdefault(ref["key"], {})["host"] = tmv.inspect(ref["host_path"])
    return out


def test_model_refs_give_a_base_path_read_in_place_its_host_directory():
    instances = [
        {
            "name": "nlp",
            "extra_mounts": [{"source": str(TF), "target": "/data"}],
            "models": [
                {"name": "cpu", "base_path": "/data/saved_model_half_plus_two_cpu"},
                {"name": "s3", "base_path": "s3://bucket/m"},
                {"name": "unmounted", "base_path": "/elsewhere/m"},
            ],
        }
    ]
    refs = {r["model"]: r for r in tfserving_tasks.model_refs(instances)}
    assert refs["cpu"]["host_path"] == str(TF / "saved_model_half_plus_two_cpu")
    assert refs["s3"]["host_path"] is None and refs["unmounted"]["host_path"] is None
    problems = tfserving_validate.validate(instances, "gpu-01", _listings(instances))
    assert problems == [
        "host 'gpu-01', instance 'nlp', model 'unmounted', field 'base_path': '/elsewhere/m' is not inside a "
        "directory mounted into the container (/data, /etc/tfserving, /models); the server would never find "
        "it. Add an extra_mounts entry for it"
    ]


def test_a_base_path_read_in_place_needs_versions_there(tmp_path):
    (tmp_path / "empty").mkdir()
    instances = [
        {
            "name": "nlp",
            "extra_mounts": [{"source": str(tmp_path), "target": "/data"}],
            "models": [
                {"name": "empty", "base_path": "/data/empty"},
                {"name": "gone", "base_path": "/data/gone"},
            ],
        }
    ]
    assert tfserving_validate.validate(instances, "gpu-01", _listings(instances)) == [
        f"host 'gpu-01', instance 'nlp', model 'empty', field 'base_path': no version directories (numeric names) "
        f"in {tmp_path}/empty on the host; TF Serving would not start this model",
        f"host 'gpu-01', instance 'nlp', model 'gone', field 'base_path': '/data/gone' does not exist: "
        f"{tmp_path}/gone on the host (mounted at /data) is missing. TF Serving would wait for it forever and "
        "apply no later config change; nothing was written",
    ]


def test_the_plan_keeps_a_base_path_read_in_place_as_it_is():
    instances = [
        {
            "name": "nlp",
            "extra_mounts": [{"source": str(TF), "target": "/data"}],
            "models": [{"name": "two", "base_path": "/data/saved_model_half_plus_two_2_versions"}],
        }
    ]
    plan = tfserving_plan.plan(instances, {"host": "gpu-01"}, _listings(instances))
    model = plan[0]["models"][0]
    assert model["base_path"] == "/data/saved_model_half_plus_two_2_versions"
    assert model["host_dir"] is None and model["publish"] == [] and model["retire"] == []
    assert model["stale_temp"] == []  # nothing in a directory the role does not own is ever removed
