"""plugins/filter/tfserving_{validate,plan,config,tasks,images}.py: validation (one test per rejection), the
plan, and the rendered files.

Every rendered models.config is parsed with TF Serving's own ModelServerConfig schema
(tensorflow_serving.config.model_server_config_pb2 from tensorflow-serving-api).
"""

from __future__ import annotations

import base64
import copy

import pytest
from ansible.errors import AnsibleFilterError
from ansible_collections.tfserving.fleet.plugins.filter import (
    tfserving_config,
    tfserving_images,
    tfserving_plan,
    tfserving_tasks,
    tfserving_validate,
)
from ansible_collections.tfserving.fleet.plugins.module_utils import tfserving_model_versions as tmv
from conftest import TESTDATA
from google.protobuf import descriptor_pb2, descriptor_pool, message_factory, text_format
from tensorflow_serving.config import model_server_config_pb2

TF = TESTDATA / "tfserving"
HOST = "gpu-01"


def inventory():
    """The issue's two-instance inventory: 2_versions + cpu on one server, tf2_cpu on another."""
    return [
        {
            "name": "main",
            "grpc_port": 8500,
            "rest_port": 8501,
            "models": [
                {
                    "name": "half_plus_two",
                    "source": str(TF / "saved_model_half_plus_two_2_versions"),
                    "version_policy": "specific",
                    "versions": [123, 124],
                    "labels": {"stable": 123, "canary": 124},
                },
                {"name": "half_plus_two_cpu", "source": str(TF / "saved_model_half_plus_two_cpu")},
            ],
        },
        {
            "name": "tf2",
            "grpc_port": 9500,
            "rest_port": 9501,
            "gpus": [],
            "models": [{"name": "half_plus_two_tf2", "source": str(TF / "saved_model_half_plus_two_tf2_cpu")}],
        },
    ]


def listings_for(instances, host_paths=None):
    """What the role's listing tasks register: the module run on each source and host directory."""
    out = {}
    for ref in tfserving_tasks.model_refs(instances):
        entry = {}
        if ref["source"]:
            entry["source"] = tmv.inspect(ref["source"])
        path = (host_paths or {}).get(ref["key"])
        if ref["kind"] == "remote":
            # The role lists a base path read in place where the host keeps it (none for URIs).
            path = path or ref["host_path"]
            if path:
                entry["host"] = tmv.inspect(str(path))
        else:
            entry["host"] = tmv.inspect(str(path)) if path else {"exists": False, "versions": [], "other": []}
        out[ref["key"]] = entry
    return out


def errors_of(instances, **kwargs):
    listings = kwargs.pop("listings", None)
    if listings is None:
        listings = listings_for(instances)
    return tfserving_validate.validate(instances, HOST, listings, kwargs or None)


def the_error(instances, **kwargs):
    errors = errors_of(instances, **kwargs)
    assert len(errors) == 1, errors
    return errors[0]


def parse_models_config(text):
    config = model_server_config_pb2.ModelServerConfig()
    text_format.Parse(text, config)
    return config


# --------------------------------------------------------------------------------------------
# a valid inventory


def test_issue_inventory_is_valid():
    assert errors_of(inventory()) == []


def test_model_refs_cover_every_model_with_its_host_path():
    refs = tfserving_tasks.model_refs(inventory(), {"model_root": "/data/models/"})
    assert [r["key"] for r in refs] == [
        "main/half_plus_two",
        "main/half_plus_two_cpu",
        "tf2/half_plus_two_tf2",
    ]
    assert refs[0]["host_path"] == "/data/models/main/half_plus_two"
    assert refs[0]["source"].endswith("saved_model_half_plus_two_2_versions")


def test_model_refs_skip_unsafe_names_so_nothing_outside_the_root_is_listed():
    inst = inventory()
    inst[0]["models"][0]["name"] = "../etc"
    inst[1]["name"] = "/root"
    assert [r["key"] for r in tfserving_tasks.model_refs(inst)] == ["main/half_plus_two_cpu"]


# --------------------------------------------------------------------------------------------
# rejections: one test each, each message naming host, instance, model and field


def test_rejects_duplicate_model_names():
    inst = inventory()
    inst[0]["models"].append({"name": "half_plus_two_cpu", "source": str(TF / "saved_model_half_plus_two_cpu")})
    err = the_error(inst)
    assert err.startswith("host 'gpu-01', instance 'main', model 'half_plus_two_cpu', field 'name':")
    assert "Illegal to list model multiple times" in err


def test_rejects_relative_base_path():
    inst = inventory()
    inst[1]["models"].append({"name": "remote", "base_path": "models/remote"})
    err = the_error(inst)
    assert err.startswith("host 'gpu-01', instance 'tf2', model 'remote', field 'base_path':")
    assert "relative" in err


def test_accepts_absolute_and_uri_base_paths():
    inst = inventory()
    # An absolute path must be one the container sees: here through an extra mount of real versions.
    inst[1]["extra_mounts"] = [{"source": str(TF), "target": "/mnt/models"}]
    inst[1]["models"] += [
        {"name": "nfs", "base_path": "/mnt/models/saved_model_half_plus_two_cpu"},
        {"name": "s3", "base_path": "s3://b/m"},
    ]
    assert errors_of(inst) == []


def test_rejects_source_together_with_base_path():
    inst = inventory()
    inst[0]["models"][1]["base_path"] = "/mnt/x"
    err = the_error(inst)
    assert "instance 'main', model 'half_plus_two_cpu', field 'base_path'" in err
    assert "not both" in err


def test_rejects_unknown_platform():
    inst = inventory()
    inst[0]["models"][1]["platform"] = "pytorch"
    err = the_error(inst)
    assert err.startswith("host 'gpu-01', instance 'main', model 'half_plus_two_cpu', field 'platform':")
    assert "pytorch" in err


def test_rejects_empty_platform():
    inst = inventory()
    inst[0]["models"][1]["platform"] = ""
    assert "field 'platform'" in the_error(inst)


def test_rejects_label_on_a_version_the_specific_policy_does_not_serve():
    inst = inventory()
    inst[0]["models"][0]["versions"] = [124]
    err = the_error(inst)
    assert err.startswith("host 'gpu-01', instance 'main', model 'half_plus_two', field 'labels.stable':")
    assert "version 123" in err and "specific" in err


def test_rejects_label_on_a_version_the_latest_policy_does_not_serve():
    inst = inventory()
    model = inst[0]["models"][0]
    del model["versions"]
    model["version_policy"] = "latest"
    err = the_error(inst)
    # latest 1 of {123, 124} serves 124 only.
    assert "model 'half_plus_two', field 'labels.stable'" in err
    assert "serves 124" in err


def test_accepts_labels_with_latest_two_versions():
    inst = inventory()
    model = inst[0]["models"][0]
    del model["versions"]
    model.update(version_policy="latest", num_versions=2)
    assert errors_of(inst) == []


def test_rejects_label_on_a_version_that_does_not_exist_with_policy_all():
    inst = inventory()
    model = inst[0]["models"][0]
    del model["versions"]
    model.update(version_policy="all", labels={"stable": 125})
    err = the_error(inst)
    assert "field 'labels.stable'" in err and "version 125" in err


@pytest.mark.parametrize("bad", [0, -3, 1.5, "abc", True, None])
def test_rejects_non_positive_or_non_integer_versions(bad):
    inst = inventory()
    inst[0]["models"][0]["versions"] = [123, bad]
    inst[0]["models"][0]["labels"] = {"stable": 123}
    err = the_error(inst)
    assert err.startswith("host 'gpu-01', instance 'main', model 'half_plus_two', field 'versions[1]':")
    assert "positive integer" in err


@pytest.mark.parametrize("bad", [0, -1, "x", 2.0])
def test_rejects_non_positive_or_non_integer_label_versions(bad):
    inst = inventory()
    inst[0]["models"][0]["labels"] = {"stable": bad}
    err = the_error(inst)
    assert "model 'half_plus_two', field 'labels.stable'" in err and "positive integer" in err


def test_rejects_a_specific_version_that_is_not_in_the_source():
    inst = inventory()
    inst[0]["models"][0]["versions"] = [123, 124, 125]
    err = the_error(inst)
    assert "model 'half_plus_two', field 'versions[2]'" in err
    assert "version 125 is not among the versions found (123, 124)" in err


def test_rejects_a_version_listed_twice():
    inst = inventory()
    inst[0]["models"][0]["versions"] = [123, "00000123", 124]
    err = the_error(inst)
    assert "field 'versions[1]'" in err and "listed twice" in err


def test_rejects_specific_policy_without_versions():
    inst = inventory()
    model = inst[0]["models"][1]
    model["version_policy"] = "specific"
    err = the_error(inst)
    assert "model 'half_plus_two_cpu', field 'versions'" in err


def test_rejects_unknown_version_policy():
    inst = inventory()
    inst[0]["models"][1]["version_policy"] = "newest"
    err = the_error(inst)
    assert "model 'half_plus_two_cpu', field 'version_policy'" in err


def test_rejects_versions_with_a_non_specific_policy():
    inst = inventory()
    inst[0]["models"][1].update(version_policy="all", versions=[123])
    assert "field 'versions'" in the_error(inst)


def test_rejects_num_versions_below_one():
    inst = inventory()
    inst[0]["models"][1]["num_versions"] = 0
    assert "model 'half_plus_two_cpu', field 'num_versions'" in the_error(inst)


def test_rejects_ports_colliding_between_instances():
    inst = inventory()
    inst[1]["rest_port"] = 8501
    err = the_error(inst)
    assert err.startswith("host 'gpu-01', instance 'tf2', field 'rest_port':")
    assert "port 8501 is already the REST port of instance 'main'" in err


def test_rejects_grpc_port_colliding_with_another_instances_rest_port():
    inst = inventory()
    inst[1]["grpc_port"] = 8501
    err = the_error(inst)
    assert "instance 'tf2', field 'grpc_port'" in err and "REST port of instance 'main'" in err


def test_accepts_same_port_on_two_distinct_bind_addresses():
    inst = inventory()
    inst[0]["bind_address"] = "10.0.0.1"
    inst[1].update(bind_address="10.0.0.2", grpc_port=8500, rest_port=8501)
    assert errors_of(inst) == []


def test_rejects_same_port_when_one_instance_binds_every_address():
    inst = inventory()
    inst[0]["bind_address"] = "0.0.0.0"
    inst[1].update(bind_address="10.0.0.2", rest_port=8501)
    assert "instance 'tf2', field 'rest_port'" in the_error(inst)


def test_rejects_equal_grpc_and_rest_ports_in_one_instance():
    inst = inventory()
    inst[1]["rest_port"] = 9500
    assert "instance 'tf2', field 'rest_port'" in the_error(inst)


@pytest.mark.parametrize("bad", [0, 70000, "http", "-1", True, 8501.0])
def test_rejects_invalid_port_numbers(bad):
    inst = inventory()
    inst[1]["rest_port"] = bad
    assert "instance 'tf2', field 'rest_port'" in the_error(inst)


def test_rejects_invalid_bind_address():
    inst = inventory()
    inst[1]["bind_address"] = "localhost"
    assert "instance 'tf2', field 'bind_address'" in the_error(inst)


def test_rejects_a_gpu_given_to_two_instances():
    inst = inventory()
    inst[0]["gpus"] = [0, 1]
    inst[1]["gpus"] = [1, 2]
    err = the_error(inst)
    assert err.startswith("host 'gpu-01', instance 'tf2', field 'gpus':")
    assert "GPU 1 already assigned to instance 'main'" in err


def test_rejects_all_gpus_next_to_another_gpu_instance():
    inst = inventory()
    inst[0]["gpus"] = "all"
    inst[1]["gpus"] = [3]
    assert "instance 'tf2', field 'gpus'" in the_error(inst)


def test_accepts_shared_gpus_when_both_instances_ask_for_sharing():
    inst = inventory()
    inst[0].update(gpus=[0], gpu_sharing=True)
    inst[1].update(gpus=[0], gpu_sharing=True)
    assert errors_of(inst) == []


def test_sharing_asked_by_one_instance_only_is_not_enough():
    inst = inventory()
    inst[0].update(gpus=[0], gpu_sharing=True)
    inst[1].update(gpus=[0])
    assert "field 'gpus'" in the_error(inst)


@pytest.mark.parametrize("bad", ["some", [-1], [0, 0], [{"id": 0}]])
def test_rejects_malformed_gpu_lists(bad):
    inst = inventory()
    inst[1]["gpus"] = bad
    assert "instance 'tf2', field 'gpus'" in the_error(inst)


@pytest.mark.parametrize("bad", ["my server", "-lead", "a/b", "..", "", "x" * 64, 7])
def test_rejects_instance_names_that_are_not_container_or_directory_names(bad):
    inst = inventory()
    inst[1]["name"] = bad
    err = the_error(inst)
    assert "field 'name'" in err and "not a valid instance name" in err


@pytest.mark.parametrize("bad", ["my model", "../etc", ".hidden", "a/b", ""])
def test_rejects_model_names_that_are_not_directory_names(bad):
    inst = inventory()
    inst[1]["models"][0]["name"] = bad
    err = the_error(inst)
    assert "instance 'tf2'" in err and "field 'name'" in err and "not a valid model name" in err


def test_rejects_duplicate_instance_names():
    inst = inventory()
    inst[1]["name"] = "main"
    errors = errors_of(inst)
    assert any("instance 'main', field 'name': instance listed twice" in e for e in errors)


def test_rejects_unknown_instance_keys():
    inst = inventory()
    inst[0]["rest_prot"] = 8601
    err = the_error(inst)
    assert "instance 'main', field 'rest_prot': unknown key" in err


def test_rejects_unknown_model_keys():
    inst = inventory()
    inst[0]["models"][1]["lables"] = {"stable": 123}
    assert "instance 'main', model 'half_plus_two_cpu', field 'lables': unknown key" in the_error(inst)


def test_rejects_invalid_label_names():
    inst = inventory()
    inst[0]["models"][0]["labels"] = {"stable": 123, "1st": 124}
    assert "model 'half_plus_two', field 'labels.1st'" in the_error(inst)


def test_rejects_a_source_that_does_not_exist():
    inst = inventory()
    inst[0]["models"][1]["source"] = "/nonexistent/model"
    err = the_error(inst)
    assert "instance 'main', model 'half_plus_two_cpu', field 'source'" in err


def test_rejects_a_source_version_without_saved_model(tmp_path):
    (tmp_path / "1").mkdir()
    (tmp_path / "1" / "variables").mkdir()
    inst = inventory()
    inst[0]["models"][1]["source"] = str(tmp_path)
    err = the_error(inst)
    assert "model 'half_plus_two_cpu', field 'source'" in err and "no saved_model.pb" in err


def test_rejects_the_bad_half_plus_two_test_model():
    inst = inventory()
    inst[0]["models"][1]["source"] = str(TF / "bad_half_plus_two")
    assert "version '00000123' has no saved_model.pb" in the_error(inst)


def test_rejects_a_source_without_version_directories(tmp_path):
    (tmp_path / "latest").mkdir()
    inst = inventory()
    inst[0]["models"][1]["source"] = str(tmp_path)
    assert "no version directories" in the_error(inst)


def test_rejects_two_directories_for_one_version(tmp_path):
    for name in ("7", "007"):
        (tmp_path / name).mkdir()
        (tmp_path / name / "saved_model.pb").write_bytes(b"")
    inst = inventory()
    inst[0]["models"][1]["source"] = str(tmp_path)
    assert "are both version 7" in the_error(inst)


def test_rejects_a_host_present_model_without_versions_on_the_host(tmp_path):
    inst = inventory()
    inst[1]["models"].append({"name": "preloaded"})
    listings = listings_for(inst, {"tf2/preloaded": tmp_path / "missing"})
    err = the_error(inst, listings=listings)
    assert "instance 'tf2', model 'preloaded', field 'versions'" in err


def test_accepts_a_host_present_model_with_versions_on_the_host():
    inst = inventory()
    inst[1]["models"].append({"name": "preloaded", "versions": [123], "labels": {"stable": 123}})
    listings = listings_for(inst, {"tf2/preloaded": TF / "saved_model_half_plus_two_cpu"})
    assert errors_of(inst, listings=listings) == []


def test_rejects_server_flags_the_role_manages():
    inst = inventory()
    inst[0]["server_flags"] = {"rest_api_port": 9000}
    assert "instance 'main', field 'server_flags.rest_api_port'" in the_error(inst)


def test_rejects_unknown_server_flags():
    inst = inventory()
    inst[0]["server_flags"] = {"enable_batchin": True}
    err = the_error(inst)
    assert "field 'server_flags.enable_batchin'" in err and "unknown argument" in err


def test_rejects_zero_poll_intervals():
    inst = inventory()
    inst[0]["model_config_poll_wait_seconds"] = 0
    assert "instance 'main', field 'model_config_poll_wait_seconds'" in the_error(inst)


def test_rejects_role_level_zero_poll_interval():
    err = the_error(inventory(), file_system_poll_wait_seconds=0)
    assert "field 'tfserving_file_system_poll_wait_seconds'" in err


def test_rejects_unknown_batching_parameters():
    inst = inventory()
    inst[0]["batching"] = {"enabled": True, "parameters": {"max_batch": 8}}
    assert "field 'batching.parameters.max_batch'" in the_error(inst)


def test_rejects_allowed_batch_sizes_not_ending_with_max_batch_size():
    inst = inventory()
    inst[0]["batching"] = {"parameters": {"max_batch_size": 32, "allowed_batch_sizes": [8, 16]}}
    assert "field 'batching.parameters.allowed_batch_sizes'" in the_error(inst)


def test_rejects_monitoring_path_without_slash():
    inst = inventory()
    inst[0]["monitoring"] = {"enabled": True, "path": "metrics"}
    assert "field 'monitoring.path'" in the_error(inst)


def test_rejects_an_instance_without_models():
    inst = inventory()
    inst[1]["models"] = []
    assert "instance 'tf2', field 'models'" in the_error(inst)


def test_rejects_extra_mounts_over_the_roles_own_mounts():
    inst = inventory()
    inst[0]["extra_mounts"] = [{"source": "/data", "target": "/models"}]
    assert "field 'extra_mounts[0]'" in the_error(inst)


def test_rejects_bad_resource_limits():
    inst = inventory()
    inst[0].update(memory="lots", cpus=0)
    errors = errors_of(inst)
    assert any("field 'memory'" in e for e in errors) and any("field 'cpus'" in e for e in errors)


def test_rejects_unsafe_archive_members(tmp_path):
    import tarfile

    archive = tmp_path / "evil.tar.gz"
    payload = tmp_path / "saved_model.pb"
    payload.write_bytes(b"")
    with tarfile.open(archive, "w:gz") as tar:
        tar.add(payload, arcname="1/saved_model.pb")
        tar.add(payload, arcname="../escape")
    inst = inventory()
    inst[0]["models"][1]["source"] = str(archive)
    err = the_error(inst)
    assert "field 'source'" in err and "outside the model directory" in err


def test_absent_instances_need_only_a_name():
    inst = inventory()
    inst.append({"name": "old", "state": "absent"})
    assert errors_of(inst) == []


def test_reports_every_problem_at_once():
    inst = inventory()
    inst[0]["models"].append(copy.deepcopy(inst[0]["models"][1]))
    inst[1]["rest_port"] = 8501
    inst[0]["models"][0]["versions"] = [124]
    assert len(errors_of(inst)) == 3


# --------------------------------------------------------------------------------------------
# the plan


def settings(**extra):
    return {"host": HOST, "model_root": "/srv/models", "config_root": "/etc/tfserving", **extra}


def test_plan_publishes_every_source_version_missing_on_the_host(tmp_path):
    inst = inventory()
    host = tmp_path / "half_plus_two"
    (host / "00000123").mkdir(parents=True)
    (host / "00000123" / "saved_model.pb").write_bytes(b"")
    (host / "00000099").mkdir()
    (host / "00000099" / "saved_model.pb").write_bytes(b"")
    (host / ".tfserving-tmp-00000124").mkdir()
    listings = listings_for(inst, {"main/half_plus_two": host})
    plan = tfserving_plan.plan(inst, settings(), listings, {"main": ["half_plus_two", "old_model", ".tfserving-tmp-x"]})
    main = plan[0]
    model = main["models"][0]
    assert model["publish"] == [
        {"name": "00000124", "version": 124, "staged": "/srv/models/main/half_plus_two/.tfserving-tmp-00000124"}
    ]
    assert model["retire"] == [{"name": "00000099", "version": 99}]
    assert model["stale_temp"] == ["/srv/models/main/half_plus_two/.tfserving-tmp-00000124"]
    assert model["serve"] == [123, 124]
    assert model["host_dir"] == "/srv/models/main/half_plus_two"
    assert model["base_path"] == "/models/half_plus_two"
    assert main["retire_models"] == ["old_model"]
    assert main["stale_temp"] == ["/srv/models/main/.tfserving-tmp-x"]


def test_plan_serves_the_latest_version_by_default():
    plan = tfserving_plan.plan(inventory(), settings(), listings_for(inventory()))
    cpu = plan[0]["models"][1]
    assert cpu["policy"] == "latest" and cpu["serve"] == [123]
    assert [p["name"] for p in cpu["publish"]] == ["00000123"]


def test_plan_refuses_an_invalid_inventory():
    inst = inventory()
    inst[1]["rest_port"] = 8501
    with pytest.raises(AnsibleFilterError, match="field 'rest_port'"):
        tfserving_plan.plan(inst, settings(), listings_for(inst))


def test_plan_server_flags_and_mounts():
    inst = inventory()
    inst[0]["batching"] = {"enabled": True, "parameters": {"max_batch_size": 16}}
    inst[0]["monitoring"] = {"enabled": True}
    inst[0]["server_flags"] = {"enable_model_warmup": True, "rest_api_timeout_in_ms": 5000}
    plan = tfserving_plan.plan(inst, settings(model_config_poll_wait_seconds=5), listings_for(inst))
    main, tf2 = plan
    assert main["args"] == [
        "--model_config_file=/etc/tfserving/models.config",
        "--model_config_file_poll_wait_seconds=5",
        "--file_system_poll_wait_seconds=1",
        "--allow_version_labels_for_unavailable_models=true",
        "--enable_batching=true",
        "--batching_parameters_file=/etc/tfserving/batching.config",
        "--monitoring_config_file=/etc/tfserving/monitoring.config",
        "--enable_model_warmup=true",
        "--rest_api_timeout_in_ms=5000",
    ]
    assert "--enable_batching=true" not in tf2["args"]
    container = main["container"]
    assert container["name"] == "tfserving-main"
    assert container["mounts"] == [
        {"type": "bind", "source": "/srv/models/main", "target": "/models", "read_only": True},
        {"type": "bind", "source": "/etc/tfserving/main", "target": "/etc/tfserving", "read_only": True},
    ]
    assert container["published_ports"] == ["0.0.0.0:8500:8500", "0.0.0.0:8501:8501"]
    assert tf2["container"]["published_ports"] == ["0.0.0.0:9500:8500", "0.0.0.0:9501:8501"]
    assert main["check_address"] == "127.0.0.1"


def test_plan_leaves_model_warmup_at_tf_servings_default_on_and_an_instance_may_turn_it_off():
    inst = inventory()
    inst[1]["model_warmup"] = False
    main, tf2 = tfserving_plan.plan(inst, settings(), listings_for(inst))
    # On is TF Serving's default: no flag, so a role upgrade leaves running containers' commands alone.
    assert [a for a in main["args"] if "warmup" in a] == []
    assert [a for a in tf2["args"] if "warmup" in a] == ["--enable_model_warmup=false"]
    main, _ = tfserving_plan.plan(inst, settings(model_warmup=False), listings_for(inst))
    assert [a for a in main["args"] if "warmup" in a] == ["--enable_model_warmup=false"]
    # An older inventory's server_flags.enable_model_warmup wins, and the flag is never given twice.
    inst[0]["server_flags"] = {"enable_model_warmup": False}
    main, _ = tfserving_plan.plan(inst, settings(), listings_for(inst))
    assert [a for a in main["args"] if "warmup" in a] == ["--enable_model_warmup=false"]


def test_rejects_bad_model_warmup_and_first_predict_budget():
    inst = inventory()
    inst[0]["model_warmup"] = "yes"
    assert "field 'model_warmup'" in the_error(inst)
    inst = inventory()
    inst[0]["models"][0]["first_predict_budget_ms"] = 250
    inst[0]["models"][1]["first_predict_budget_ms"] = 0.5
    assert errors_of(inst) == []
    for bad in (0, -5, "fast", True):
        inst[0]["models"][1]["first_predict_budget_ms"] = bad
        err = the_error(inst)
        assert "field 'first_predict_budget_ms'" in err and "positive number of milliseconds" in err


def test_plan_binds_ipv6_addresses_in_brackets():
    inst = inventory()
    inst[0]["bind_address"] = "::1"
    inst[1]["bind_address"] = "::"
    main, tf2 = tfserving_plan.plan(inst, settings(), listings_for(inst))
    assert main["container"]["published_ports"][1] == "[::1]:8501:8501"
    assert main["check_address"] == "::1" and tf2["check_address"] == "::1"


def test_plan_gpu_instances_with_the_container_toolkit():
    inst = inventory()
    inst[0]["gpus"] = [0, 1]
    inst[1]["gpus"] = "all"
    inst[1]["gpu_sharing"] = inst[0]["gpu_sharing"] = True
    main, tf2 = tfserving_plan.plan(inst, settings(gpu_mode="toolkit"), listings_for(inst))
    assert main["container"]["device_requests"] == [
        {"driver": "nvidia", "capabilities": [["gpu"]], "device_ids": ["0", "1"]}
    ]
    assert tf2["container"]["device_requests"] == [{"driver": "nvidia", "capabilities": [["gpu"]], "count": -1}]
    assert main["container"]["image"] == "tensorflow/serving:latest-gpu"
    assert main["container"]["runtime"] is None
    assert "NVIDIA_VISIBLE_DEVICES" not in main["container"]["env"]


def test_plan_gpu_instances_on_legacy_nvidia_docker2():
    inst = inventory()
    inst[0]["gpus"] = [2, 3]
    main, tf2 = tfserving_plan.plan(inst, settings(gpu_mode="legacy"), listings_for(inst))
    assert main["container"]["runtime"] == "nvidia"
    assert main["container"]["env"]["NVIDIA_VISIBLE_DEVICES"] == "2,3"
    assert main["container"]["device_requests"] == []
    # The CPU instance must not see GPUs even when nvidia is the default runtime.
    assert tf2["container"]["env"]["NVIDIA_VISIBLE_DEVICES"] == "void"
    assert tf2["container"]["runtime"] is None
    assert tf2["container"]["image"] == "tensorflow/serving:latest"


def test_plan_gpu_instance_without_a_gpu_runtime_runs_the_cpu_image():
    inst = inventory()
    inst[0]["gpus"] = "all"
    main, _ = tfserving_plan.plan(inst, settings(gpu_mode="none"), listings_for(inst))
    assert main["container"]["device_requests"] == [] and main["container"]["runtime"] is None
    assert main["container"]["image"] == "tensorflow/serving:latest"
    assert main["device_kind"] == "cpu" and main["gpu_note"]


def test_plan_keeps_an_explicit_image():
    inst = inventory()
    inst[0]["image"] = "registry.local/tfs@sha256:" + "a" * 64
    main, _ = tfserving_plan.plan(inst, settings(), listings_for(inst))
    assert main["container"]["image"] == inst[0]["image"]


def test_plan_container_is_hardened():
    main, _ = tfserving_plan.plan(
        inventory(), settings(log_options={"max-size": "10m", "max-file": 3}), listings_for(inventory())
    )
    container = main["container"]
    assert container["read_only"] is True
    assert container["cap_drop"] == ["ALL"]
    assert container["log_options"] == {"max-file": "3", "max-size": "10m"}
    assert container["restart_policy"] == "unless-stopped"
    assert all(m["read_only"] for m in container["mounts"])


def test_plan_of_an_absent_instance():
    inst = [*inventory(), {"name": "old", "state": "absent"}]
    plan = tfserving_plan.plan(inst, settings(), listings_for(inst))
    assert plan[2] == {
        "name": "old",
        "state": "absent",
        "container_name": "tfserving-old",
        "model_dir": "/srv/models/old",
        "config_dir": "/etc/tfserving/old",
    }


# --------------------------------------------------------------------------------------------
# rendered files


def planned(instances=None, **extra):
    instances = instances or inventory()
    return tfserving_plan.plan(instances, settings(**extra), listings_for(instances))


def test_models_config_parses_with_tf_servings_schema():
    main, tf2 = planned()
    config = parse_models_config(tfserving_config.render_models_config(main))
    models = config.model_config_list.config
    assert [m.name for m in models] == ["half_plus_two", "half_plus_two_cpu"]
    first, second = models
    assert first.base_path == "/models/half_plus_two"
    assert first.model_platform == "tensorflow"
    assert list(first.model_version_policy.specific.versions) == [123, 124]
    assert dict(first.version_labels) == {"stable": 123, "canary": 124}
    assert second.model_version_policy.WhichOneof("policy_choice") == "latest"
    assert second.model_version_policy.latest.num_versions == 1
    assert not config.HasField("custom_model_config")
    tf2_config = parse_models_config(tfserving_config.render_models_config(tf2))
    assert [m.name for m in tf2_config.model_config_list.config] == ["half_plus_two_tf2"]


def test_models_config_has_a_managed_header():
    text = tfserving_config.render_models_config(planned()[0])
    assert text.startswith("# Managed by Ansible (role tfserving)")
    assert "Instance: main." in text.splitlines()[1]


def test_models_config_all_policy_and_remote_base_path_parse():
    inst = inventory()
    inst[0]["models"][1]["version_policy"] = "all"
    inst[1]["models"].append({"name": "gcs", "base_path": 'gs://bucket/we"ird\\path'})
    main, tf2 = planned(inst)
    assert (
        parse_models_config(tfserving_config.render_models_config(main))
        .model_config_list.config[1]
        .model_version_policy.HasField("all")
    )
    remote = parse_models_config(tfserving_config.render_models_config(tf2)).model_config_list.config[0]
    assert remote.name == "gcs" and remote.base_path == 'gs://bucket/we"ird\\path'


def test_models_config_order_is_stable():
    inst = inventory()
    reordered = copy.deepcopy(inst)
    reordered[0]["models"].reverse()
    reordered[0]["models"][1]["labels"] = {"canary": 124, "stable": 123}
    reordered[0]["models"][1]["versions"] = [124, 123]
    render = tfserving_config.render_models_config
    assert render(planned(inst)[0]) == render(planned(reordered)[0])


def test_models_config_label_override_for_a_two_step_move():
    text = tfserving_config.render_models_config(planned()[0], {"half_plus_two": {"stable": 123}})
    labels = dict(parse_models_config(text).model_config_list.config[0].version_labels)
    assert labels == {"stable": 123}


def test_config_labels_reads_back_what_was_rendered():
    text = tfserving_config.render_models_config(planned()[0])
    assert tfserving_config.config_labels(text) == {
        "half_plus_two": {"canary": 124, "stable": 123},
        "half_plus_two_cpu": {},
    }


def test_config_labels_ignores_files_it_did_not_render():
    good = (TF / "good_model_config.txt").read_text()
    assert tfserving_config.config_labels(good) == {}
    assert tfserving_config.config_labels(None) == {}


def _schema(name, fields, deps=()):
    """A message class built from a transcription of TF Serving's .proto (the package lacks these)."""
    pool = descriptor_pool.DescriptorPool()
    wrappers = descriptor_pb2.FileDescriptorProto()
    from google.protobuf import wrappers_pb2

    wrappers_pb2.DESCRIPTOR.CopyToProto(wrappers)
    pool.Add(wrappers)
    proto = descriptor_pb2.FileDescriptorProto(name="t.proto", package="tensorflow.serving", syntax="proto3")
    proto.dependency.append("google/protobuf/wrappers.proto")
    for dep_name, dep_fields in deps:
        _add_message(proto, dep_name, dep_fields)
    _add_message(proto, name, fields)
    pool.Add(proto)
    return message_factory.GetMessageClass(pool.FindMessageTypeByName("tensorflow.serving." + name))


def _add_message(proto, name, fields):
    msg = proto.message_type.add(name=name)
    for number, (field, kind, label, type_name) in enumerate(fields, start=1):
        f = msg.field.add(name=field, number=number, type=kind, label=label)
        if type_name:
            f.type_name = type_name


F = descriptor_pb2.FieldDescriptorProto
OPT, REP = F.LABEL_OPTIONAL, F.LABEL_REPEATED
# session_bundle_config.proto, BatchingParameters fields 1-7.
BATCHING_FIELDS = [
    ("max_batch_size", F.TYPE_MESSAGE, OPT, ".google.protobuf.Int64Value"),
    ("batch_timeout_micros", F.TYPE_MESSAGE, OPT, ".google.protobuf.Int64Value"),
    ("max_enqueued_batches", F.TYPE_MESSAGE, OPT, ".google.protobuf.Int64Value"),
    ("num_batch_threads", F.TYPE_MESSAGE, OPT, ".google.protobuf.Int64Value"),
    ("thread_pool_name", F.TYPE_MESSAGE, OPT, ".google.protobuf.StringValue"),
    ("allowed_batch_sizes", F.TYPE_INT64, REP, None),
    ("pad_variable_length_inputs", F.TYPE_BOOL, OPT, None),
]


def test_batching_config_parses_with_batching_parameters_schema():
    params = {
        "max_batch_size": 32,
        "batch_timeout_micros": 0,
        "max_enqueued_batches": 100,
        "num_batch_threads": 4,
        "thread_pool_name": "batch_threads",
        "allowed_batch_sizes": [8, 16, 32],
        "pad_variable_length_inputs": True,
    }
    text = tfserving_config.render_batching_config(params, "main")
    message = text_format.Parse(text, _schema("BatchingParameters", BATCHING_FIELDS)())
    assert message.max_batch_size.value == 32
    assert message.HasField("batch_timeout_micros") and message.batch_timeout_micros.value == 0
    assert message.num_batch_threads.value == 4
    assert message.thread_pool_name.value == "batch_threads"
    assert list(message.allowed_batch_sizes) == [8, 16, 32]
    assert message.pad_variable_length_inputs is True


def test_batching_config_of_the_tf_serving_test_data_parses_with_the_same_schema():
    # Guards the transcribed schema against TF Serving's own example file.
    message = text_format.Parse(
        (TF / "batching_config.txt").read_text(), _schema("BatchingParameters", BATCHING_FIELDS)()
    )
    assert message.max_batch_size.value == 128


def test_monitoring_config_parses_with_monitoring_config_schema():
    cls = _schema(
        "MonitoringConfig",
        [("prometheus_config", F.TYPE_MESSAGE, OPT, ".tensorflow.serving.PrometheusConfig")],
        deps=[("PrometheusConfig", [("enable", F.TYPE_BOOL, OPT, None), ("path", F.TYPE_STRING, OPT, None)])],
    )
    message = text_format.Parse(tfserving_config.render_monitoring_config("/metrics", "main"), cls())
    assert message.prometheus_config.enable is True
    assert message.prometheus_config.path == "/metrics"
    reference = text_format.Parse((TF / "monitoring_config.txt").read_text(), cls())
    assert reference.prometheus_config.path == "/monitoring/prometheus/metrics"


def test_filters_are_registered():
    names = set().union(*(m.FilterModule().filters() for m in (
        tfserving_config, tfserving_images, tfserving_plan, tfserving_tasks, tfserving_validate)))
    assert {
        "tfserving_validate",
        "tfserving_plan",
        "tfserving_models_config",
        "tfserving_model_refs",
    } <= names


# --------------------------------------------------------------------------------------------
# glue filters used by the role's tasks


def test_collect_listings_from_registered_loops():
    refs = tfserving_tasks.model_refs(inventory())
    sources = {"results": [{"item": r, "changed": False, **tmv.inspect(r["source"])} for r in refs]}
    hosts = {
        "results": [
            {"item": refs[0], "exists": False, "versions": [], "other": []},
            {"item": refs[1], "skipped": True},
            {"item": refs[2], "failed": True, "msg": "permission denied"},
        ]
    }
    listings = tfserving_tasks.collect_listings(sources, hosts)
    assert set(listings) == {r["key"] for r in refs}
    assert [v["version"] for v in listings["main/half_plus_two"]["source"]["versions"]] == [123, 124]
    assert "item" not in listings["main/half_plus_two"]["source"]
    assert listings["main/half_plus_two"]["host"]["exists"] is False
    assert "host" not in listings["main/half_plus_two_cpu"]
    # A failed host listing reaches validation with its message.
    errors = tfserving_validate.validate(inventory(), HOST, listings)
    assert errors == []  # host listings only matter for host-present models
    inst = inventory()
    inst[0]["models"][0] = {"name": "half_plus_two"}
    refs = tfserving_tasks.model_refs(inst)
    listings = tfserving_tasks.collect_listings(
        {"results": []}, {"results": [{"item": refs[0], "msg": "permission denied"}]}
    )
    assert any(
        "model 'half_plus_two', field 'versions': permission denied" in e
        for e in tfserving_validate.validate(inst, HOST, listings)
    )


def test_collect_dirs_from_a_registered_find_loop():
    found = {
        "results": [
            {"item": {"name": "main"}, "files": [{"path": "/srv/m/main/a"}, {"path": "/srv/m/main/.tfserving-tmp-1"}]},
            {"item": {"name": "tf2"}, "files": []},
        ]
    }
    assert tfserving_tasks.collect_dirs(found) == {"main": [".tfserving-tmp-1", "a"], "tf2": []}


def test_current_configs_from_the_slurp_loop_leave_out_instances_without_a_file():
    text = 'model_config_list {\n  config {\n    name: "m" base_path: "/models/main/m"\n  }\n}\n'
    results = [
        {"item": {"name": "main"}, "content": base64.b64encode(text.encode()).decode(), "encoding": "base64"},
        {"item": {"name": "new"}, "failed": True, "msg": "file not found: /etc/tfserving/new/models.config"},
    ]
    assert tfserving_tasks.current_configs(results) == {"main": text}
    assert tfserving_tasks.current_configs(None) == {}


def test_collect_dirs_from_the_listing_module(tmp_path):
    (tmp_path / "main" / "half_plus_two").mkdir(parents=True)
    (tmp_path / "main" / "42").mkdir()
    results = [
        {"item": "main", **tmv.inspect(str(tmp_path / "main"))},
        {"item": "tf2", **tmv.inspect(str(tmp_path / "tf2"))},
    ]
    assert tfserving_tasks.collect_dirs(results) == {"main": ["42", "half_plus_two"], "tf2": []}


def test_expectations_name_every_served_version_and_label():
    main, _ = planned()
    assert tfserving_tasks.expectations(main) == [
        {"name": "half_plus_two", "version": 123},
        {"name": "half_plus_two", "version": 124},
        {"name": "half_plus_two", "label": "canary", "version": 124},
        {"name": "half_plus_two", "label": "stable", "version": 123},
        {"name": "half_plus_two_cpu", "version": 123},
    ]
    inst = inventory()
    inst[1]["models"].append({"name": "s3", "base_path": "s3://bucket/m"})
    assert {"name": "s3"} in tfserving_tasks.expectations(planned(inst)[1])


def test_label_steps_keep_a_moving_label_until_its_new_version_is_available(tmp_path):
    before = planned()
    render = tfserving_config.render_models_config
    current = {"main": render(before[0]), "tf2": render(before[1])}
    # Add version 125 and move canary to it.
    src = tmp_path / "hp2"
    for name in ("00000123", "00000124", "00000125"):
        (src / name).mkdir(parents=True)
        (src / name / "saved_model.pb").write_bytes(b"")
    inst = inventory()
    inst[0]["models"][0].update(source=str(src), versions=[124, 125], labels={"stable": 124, "canary": 125})
    after = planned(inst)
    steps = tfserving_config.label_steps(after, current, ["main", "tf2"])
    assert [s["name"] for s in steps] == ["main"]
    step = steps[0]
    assert step["wait"] == [
        {"name": "half_plus_two", "version": 125},
        {"name": "half_plus_two", "version": 124},
    ]
    first = parse_models_config(tfserving_config.render_models_config(step["instance"])).model_config_list.config[0]
    # First step: old labels, and every version they and the new ones point at is served.
    assert dict(first.version_labels) == {"stable": 123, "canary": 124}
    assert list(first.model_version_policy.specific.versions) == [123, 124, 125]
    final = parse_models_config(tfserving_config.render_models_config(after[0])).model_config_list.config[0]
    assert dict(final.version_labels) == {"stable": 124, "canary": 125}
    assert list(final.model_version_policy.specific.versions) == [124, 125]
    # The plan itself is left untouched.
    assert after[0]["models"][0]["labels"] == {"canary": 125, "stable": 124}


def test_label_steps_none_when_labels_stay_or_the_server_is_not_running():
    plan = planned()
    current = {"main": tfserving_config.render_models_config(plan[0])}
    assert tfserving_config.label_steps(plan, current, ["main"]) == []
    moved = copy.deepcopy(plan)
    moved[0]["models"][0]["labels"] = {"stable": 124, "canary": 124}
    assert tfserving_config.label_steps(moved, current, []) == []
    assert len(tfserving_config.label_steps(moved, current, ["main"])) == 1


def test_label_steps_defer_new_labels_without_the_allow_flag():
    plan = planned()
    bare = copy.deepcopy(plan[0])
    bare["models"][0]["labels"] = {}
    current = {"main": tfserving_config.render_models_config(bare)}
    assert tfserving_config.label_steps(plan, current, ["main"]) == []
    steps = tfserving_config.label_steps(plan, current, ["main"], allow_new=False)
    assert steps[0]["instance"]["models"][0]["labels"] == {}


def test_cleanup_items(tmp_path):
    inst = inventory()
    host = tmp_path / "half_plus_two"
    for name in ("00000099", "00000123"):
        (host / name).mkdir(parents=True)
        (host / name / "saved_model.pb").write_bytes(b"")
    inst[0]["models"][1]["source"] = str(TF / "saved_model_half_plus_two_2_versions")
    listings = listings_for(inst, {"main/half_plus_two": host, "main/half_plus_two_cpu": host})
    plan = tfserving_plan.plan(inst, settings(), listings, {"main": ["half_plus_two", "half_plus_two_cpu", "gone"]})
    items = tfserving_tasks.cleanup_items(plan)
    assert items["models"] == [
        {
            "instance": "main",
            "model": "gone",
            "path": "/srv/models/main/gone",
            "url": "http://127.0.0.1:8501/v1/models/gone",
            "poll": 10,
        }
    ]
    # half_plus_two (policy specific) names versions in its config: wait for the unload first.
    assert [(v["model"], v["name"], v["version"], v["wait"]) for v in items["versions"]] == [
        ("half_plus_two", "00000099", 99, True),
        ("half_plus_two_cpu", "00000099", 99, False),
    ]
    assert items["versions"][0]["path"] == "/srv/models/main/half_plus_two/00000099"


def test_unloaded_reads_the_rest_status_body():
    end = {"status": 200, "json": {"model_version_status": [{"version": "123", "state": "END"}]}}
    live = {
        "status": 200,
        "json": {
            "model_version_status": [{"version": "124", "state": "AVAILABLE"}, {"version": "123", "state": "END"}]
        },
    }
    assert tfserving_tasks.unloaded({"status": 404, "json": {"error": "Could not find any versions of model x"}})
    assert tfserving_tasks.unloaded(end)
    assert not tfserving_tasks.unloaded(live)
    assert tfserving_tasks.unloaded(live, [123])
    assert not tfserving_tasks.unloaded(live, ["124"])


def test_image_refs_and_repositories():
    inst = inventory()
    inst[1]["image"] = "127.0.0.1:5000/tfs:2.19"
    plan = planned(inst)
    assert tfserving_images.image_refs(plan) == ["127.0.0.1:5000/tfs:2.19", "tensorflow/serving:latest"]
    assert tfserving_images.image_repository("tensorflow/serving:latest-gpu") == "tensorflow/serving"
    repository = tfserving_images.image_repository("172.17.0.1:5000/tfserving-double:test")
    assert repository == "172.17.0.1:5000/tfserving-double"
    assert tfserving_images.image_repository("172.17.0.1:5000/tfserving-double") == "172.17.0.1:5000/tfserving-double"
    assert tfserving_images.image_repository("busybox") == "busybox"
    assert tfserving_images.image_repository("r:5000/x@sha256:" + "b" * 64) == "r:5000/x"


def test_repo_digest_picks_the_digest_of_the_pulled_repository():
    info = {
        "images": [
            {
                "Id": "sha256:" + "c" * 64,
                "RepoDigests": ["mirror/tfs@sha256:" + "d" * 64, "172.17.0.1:5000/tfserving-double@sha256:" + "e" * 64],
            }
        ]
    }
    assert tfserving_images.repo_digest(info, "172.17.0.1:5000/tfserving-double:test") == (
        "172.17.0.1:5000/tfserving-double@sha256:" + "e" * 64
    )
    assert tfserving_images.repo_digest(info, "other/image:1") == ""
    assert tfserving_images.repo_digest({"images": [{"RepoDigests": None}]}, "x:1") == ""


def test_pin_map_and_image_map():
    double = "172.17.0.1:5000/tfserving-double"
    images = [
        {"RepoTags": [double + ":test"], "RepoDigests": [double + "@sha256:" + "e" * 64]},
        {"RepoTags": ["local/build:1"], "RepoDigests": []},
        {"RepoTags": ["busybox:latest"], "RepoDigests": ["busybox@sha256:" + "f" * 64]},
    ]
    refs = [double + ":test", "local/build:1", "busybox", "x@sha256:" + "0" * 64, "missing:1"]
    pins = tfserving_images.pin_map(refs, images)
    assert pins == {double + ":test": double + "@sha256:" + "e" * 64, "busybox": "busybox@sha256:" + "f" * 64}
    assert tfserving_images.image_map(refs, pins) == {
        double + ":test": double + "@sha256:" + "e" * 64,
        "local/build:1": "local/build:1",
        "busybox": "busybox@sha256:" + "f" * 64,
        "x@sha256:" + "0" * 64: "x@sha256:" + "0" * 64,
        "missing:1": "missing:1",
    }
    assert tfserving_images.image_map(["a:1"]) == {"a:1": "a:1"}


def test_missing_images():
    images = [{"RepoTags": ["tfs:test"], "RepoDigests": ["r/tfs@sha256:" + "a" * 64]}, {"RepoTags": None}]
    refs = ["tfs:test", "r/tfs@sha256:" + "a" * 64, "busybox", "tfs:other"]
    assert tfserving_images.missing_images(refs, images) == ["busybox", "tfs:other"]
    assert tfserving_images.missing_images(["tfs"], [{"RepoTags": ["tfs:latest"]}]) == []


def test_plan_stages_archive_versions_under_the_archive_prefix(tmp_path):
    import tarfile

    archive = tmp_path / "hp2.tar.gz"
    with tarfile.open(archive, "w:gz") as tar:
        tar.add(TF / "saved_model_half_plus_two_2_versions", arcname="export")
    inst = inventory()
    inst[0]["models"][0]["source"] = str(archive)
    model = planned(inst)[0]["models"][0]
    assert model["source_kind"] == "archive" and model["source_prefix"] == "export"
    assert [p["staged"] for p in model["publish"]] == [
        "/srv/models/main/half_plus_two/.tfserving-tmp-archive/export/00000123",
        "/srv/models/main/half_plus_two/.tfserving-tmp-archive/export/00000124",
    ]


def test_ports_given_as_strings_are_numbers():
    inst = inventory()
    inst[1].update(grpc_port="9500", rest_port="9501")
    assert errors_of(inst) == []
    tf2 = planned(inst)[1]
    assert tf2["rest_port"] == 9501 and tf2["container"]["published_ports"][1] == "0.0.0.0:9501:8501"
    inst[1]["rest_port"] = "8501"
    assert "field 'rest_port'" in the_error(inst)
    # The same rule as the firewalld ports (tfserving_inventory.as_port): digits with spaces around them.
    inst[1]["rest_port"] = " 9501 "
    assert errors_of(inst) == [] and planned(inst)[1]["rest_port"] == 9501
    inst[1]["rest_port"] = "95 01"
    assert "field 'rest_port'" in the_error(inst)
