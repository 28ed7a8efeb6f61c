"""GPU memory headroom (plugins/filter/tfserving_gpu.py) on the free memory of real nvidia-smi captures.

The GPU figures come from parsing the recorded outputs with the module's own parser: an RTX 3080 with
660 MiB free (rtx-3080-v13.xml), a Tesla T4 with 13939 MiB free, four K80s listed out of minor-number
order, and an H100 idle and under load (the capture bundle's --query-gpu CSV).
"""

from __future__ import annotations

import re

import pytest
from ansible.errors import AnsibleFilterError
from ansible_collections.tfserving.fleet.plugins.filter.tfserving_gpu import (
    gpu_demands,
    gpu_headroom,
    rollout_gpu_demands,
)
from ansible_collections.tfserving.fleet.plugins.filter.tfserving_plan import plan as tfserving_plan
from ansible_collections.tfserving.fleet.plugins.filter.tfserving_validate import validate as tfserving_validate
from ansible_collections.tfserving.fleet.plugins.module_utils import nvidia_smi as smi
from conftest import TESTDATA

DATA = TESTDATA / "nvidia-smi"
MIB = 1024 * 1024


def xml_facts(name):
    report = smi.parse_xml((DATA / name).read_text())
    return smi.facts_from(
        report["gpus"], report["driver_version"], report["cuda_version"], "/usr/bin/nvidia-smi", "xml"
    )


def bundle_facts(name, state):
    """Facts from the --query-gpu CSV of a capture bundle, state 'idle' (first) or 'load' (second)."""
    text = (DATA / name).read_text()
    parts = re.split(r"^#{80}\n(?:# .*\n)*?# \$ (.*)\n#{80}\n", text, flags=re.M)
    bodies = [
        b.strip("\n") for c, b in zip(parts[1::2], parts[2::2], strict=True) if c.startswith("nvidia-smi --query-gpu=")
    ]
    rows = smi.parse_query_csv(bodies[0 if state == "idle" else 1])
    return smi.facts_from(smi.gpus_from_query(rows), None, None, "/usr/bin/nvidia-smi", "csv")


def test_free_memory_is_read_from_every_xml_capture():
    assert [g["memory_free_mib"] for g in xml_facts("rtx-3080-v13.xml")["gpus"]] == [660]
    assert [g["memory_free_mib"] for g in xml_facts("tesla-t4.xml")["gpus"]] == [13939]
    assert [g["memory_free_mib"] for g in xml_facts("nvidia_smi_out_of_order.xml")["gpus"]] == [
        10854,
        10854,
        11441,
        11441,
    ]
    assert [g["memory_used_mib"] for g in xml_facts("a100-sxm4-v12.xml")["gpus"]] == [50]


def test_free_memory_from_the_csv_query_idle_and_under_load():
    name = "linux-x86_64__nvidia-h100-80gb-hbm3__590.48.01.txt"
    assert [g["memory_free_mib"] for g in bundle_facts(name, "idle")["gpus"]] == [81081]
    assert [g["memory_free_mib"] for g in bundle_facts(name, "load")["gpus"]] == [61263]


def demand(mib, gpus=(0,), instance="ranking", model="ranker", version=125, how="gpu_memory_mib"):
    return {
        "instance": instance,
        "gpus": list(map(str, gpus)) if gpus != "all" else "all",
        "model": model,
        "version": version,
        "mib": mib,
        "how": how,
    }


def test_a_version_that_does_not_fit_the_rtx_3080_is_refused_naming_host_gpu_free_and_needed():
    result = gpu_headroom([demand(1024)], xml_facts("rtx-3080-v13.xml"), "gpu-7")
    assert result["problems"] == [
        "host 'gpu-7': GPU 0 (NVIDIA GeForce RTX 3080, GPU-19d6d965-2acc-f646-00f8-4c76979aabb4) has 660 MiB free "
        "but 1024 MiB are needed to load instance ranking, model ranker version 125: 1024 MiB (gpu_memory_mib). "
        "Nothing was changed on this host. Fix: free memory on that GPU (retire versions or models no longer "
        "needed, stop other processes), give the instance a GPU with room (gpus), or, when the estimate is too "
        "high, set gpu_memory_mib in the model entry or lower tfserving_gpu_memory_factor."
    ]
    assert result["checked"][0]["free_mib"] == 660 and result["checked"][0]["needed_mib"] == 1024
    assert result["checked"][0]["fits"] is False


def test_the_same_version_fits_the_t4():
    result = gpu_headroom([demand(1024)], xml_facts("tesla-t4.xml"), "gpu-1")
    assert result["problems"] == [] and result["unchecked"] == []
    assert [(c["gpu"], c["free_mib"], c["needed_mib"], c["fits"]) for c in result["checked"]] == [
        (0, 13939, 1024, True)
    ]


def test_exactly_the_free_memory_fits_one_mib_more_does_not():
    facts = xml_facts("rtx-3080-v13.xml")
    assert gpu_headroom([demand(660)], facts, "h")["problems"] == []
    assert len(gpu_headroom([demand(661)], facts, "h")["problems"]) == 1


def test_demands_on_one_gpu_add_up_across_instances():
    facts = xml_facts("tesla-t4.xml")
    two = [demand(7000, instance="a"), demand(7000, instance="b", model="embedder")]
    result = gpu_headroom(two, facts, "h")
    assert result["checked"][0]["needed_mib"] == 14000
    assert "has 13939 MiB free but 14000 MiB are needed" in result["problems"][0]
    assert "instance a, model ranker version 125: 7000 MiB" in result["problems"][0]
    assert "instance b, model embedder version 125: 7000 MiB" in result["problems"][0]


def test_gpus_are_matched_by_index_not_by_minor_number_and_by_uuid():
    # nvidia_smi_out_of_order.xml: index 0 is minor 1 (587 MiB used); index 2 is idle.
    facts = xml_facts("nvidia_smi_out_of_order.xml")
    result = gpu_headroom([demand(11000, gpus=(2,))], facts, "k80")
    assert result["problems"] == [] and result["checked"][0]["free_mib"] == 11441
    result = gpu_headroom([demand(11000, gpus=(0,))], facts, "k80")
    assert "GPU 0 (Tesla K80, GPU-c3b26f7a-8dcb-619c-fa1b-8029265a4db0) has 10854 MiB free" in result["problems"][0]
    by_uuid = gpu_headroom([demand(11000, gpus=("GPU-3341aba2-f01d-2c1f-7dd4-e389779faec2",))], facts, "k80")
    assert by_uuid["problems"] == [] and by_uuid["checked"][0]["gpu"] == 3


def test_all_gpus_means_every_gpu_must_have_room():
    facts = xml_facts("nvidia_smi_out_of_order.xml")
    result = gpu_headroom([demand(11000, gpus="all")], facts, "k80")
    assert [c["gpu"] for c in result["checked"]] == [0, 1, 2, 3]
    assert [p.split(" (")[0] for p in result["problems"]] == ["host 'k80': GPU 0", "host 'k80': GPU 1"]


def test_the_h100_under_load_refuses_what_fits_it_idle():
    name = "linux-x86_64__nvidia-h100-80gb-hbm3__590.48.01.txt"
    assert gpu_headroom([demand(70000)], bundle_facts(name, "idle"), "h100")["problems"] == []
    refused = gpu_headroom([demand(70000)], bundle_facts(name, "load"), "h100")["problems"]
    assert "has 61263 MiB free but 70000 MiB are needed" in refused[0]


def test_what_cannot_be_checked_is_reported_not_refused():
    facts = xml_facts("tesla-t4.xml")
    result = gpu_headroom(
        [
            demand(100, gpus=(3,)),
            demand(None, how="its size on disk is unknown"),
            demand(100, gpus=("MIG-00000001-0000-0000-0000-000000000000",)),
        ],
        facts,
        "t4",
    )
    assert result["problems"] == [] and result["checked"] == []
    assert result["unchecked"] == [
        "host 't4': instance ranking, model ranker version 125: GPU 3 is not among the GPUs nvidia-smi reports "
        "(MIG devices are not checked)",
        "host 't4': instance ranking, model ranker version 125: its size on disk is unknown; set gpu_memory_mib "
        "in the model entry",
        "host 't4': instance ranking, model ranker version 125: GPU MIG-00000001-0000-0000-0000-000000000000 is "
        "not among the GPUs nvidia-smi reports (MIG devices are not checked)",
    ]
    no_gpu = smi.empty_facts("nvidia-smi not found (searched PATH): the NVIDIA driver is not installed")
    assert gpu_headroom([demand(100)], no_gpu, "cpu")["unchecked"] == [
        "host 'cpu': instance ranking, model ranker version 125: no GPU memory figures (nvidia-smi not found "
        "(searched PATH): the NVIDIA driver is not installed)"
    ]


# ---------------------------------------------------------------- demands from the role's plan


def instances(gpus=(0,), **model):
    return [
        {
            "name": "ranking",
            "gpus": list(gpus),
            "models": [{"name": "ranker", "source": "/srv/exports/ranker", "versions": [124, 125], **model}],
        }
    ]


def listings(sizes):
    versions = [
        {"name": f"{v:08d}", "version": v, "saved_model": "saved_model.pb", "bytes": b} for v, b in sizes.items()
    ]
    return {
        "ranking/ranker": {
            "source": {"exists": True, "kind": "directory", "versions": versions, "other": [], "prefix": ""},
            "host": {"exists": True, "kind": "directory", "versions": versions[:1], "other": [], "prefix": ""},
        }
    }


SETTINGS = {"host": "gpu-7", "gpu_mode": "toolkit"}


def test_the_role_demands_the_versions_it_publishes_and_serves_size_times_factor():
    found = listings({124: 300 * MIB, 125: 400 * MIB, 126: 900 * MIB})
    plan = tfserving_plan(instances(), SETTINGS, found)
    # 126 is published (it is in the source) but the specific policy does not serve it: no GPU memory.
    assert gpu_demands(plan, found, 1.5) == [
        {
            "instance": "ranking",
            "gpus": ["0"],
            "model": "ranker",
            "version": 125,
            "mib": 600,
            "how": "400.0 MiB on disk x 1.5",
        },
    ]


def test_the_model_entry_override_wins_over_the_estimate():
    found = listings({124: 300 * MIB, 125: 400 * MIB})
    plan = tfserving_plan(instances(gpu_memory_mib=4096), SETTINGS, found)
    assert [(d["mib"], d["how"]) for d in gpu_demands(plan, found)] == [(4096, "gpu_memory_mib")]


def test_cpu_instances_and_cpu_hosts_demand_nothing():
    found = listings({124: 300 * MIB, 125: 400 * MIB})
    assert gpu_demands(tfserving_plan(instances(gpus=()), SETTINGS, found), found) == []
    assert gpu_demands(tfserving_plan(instances(), {"host": "h", "gpu_mode": "none"}, found), found) == []


@pytest.mark.parametrize("value", [0, -5, "4g", 1.5, True])
def test_a_bad_override_names_host_instance_model_field_value_and_what_is_expected(value):
    found = listings({124: 300 * MIB, 125: 400 * MIB})
    problems = tfserving_validate(instances(gpu_memory_mib=value), "gpu-7", found, SETTINGS)
    assert problems == [
        "host 'gpu-7', instance 'ranking', model 'ranker', field 'gpu_memory_mib': expected the GPU memory one "
        f"version of this model needs, in MiB (a positive integer such as 6144), got {value!r}"
    ]


@pytest.mark.parametrize("factor", [0, -1, "two", None, float("nan")])
def test_a_bad_factor_names_the_variable_value_and_fix(factor):
    with pytest.raises(AnsibleFilterError, match=r"tfserving_gpu_memory_factor is .*; expected a positive number"):
        gpu_demands([], {}, factor)


def test_rollout_demands_only_versions_not_available_now_with_their_source_size():
    found = listings({124: 300 * MIB, 125: 400 * MIB})
    plan = tfserving_plan(instances(), SETTINGS, found)
    targets = [
        {
            "key": "ranking/ranker",
            "instance": "ranking",
            "model": "ranker",
            "version": 126,
            "previous": {"available": [124, 125]},
        },
        {
            "key": "ranking/ranker",
            "instance": "ranking",
            "model": "ranker",
            "version": 125,
            "previous": {"available": [124, 125]},
        },
    ]
    source = {"ranking/ranker": {"exists": True, "versions": [{"name": "126", "version": 126, "bytes": 512 * MIB}]}}
    assert rollout_gpu_demands(targets, plan, {}, source, 2) == [
        {
            "instance": "ranking",
            "gpus": ["0"],
            "model": "ranker",
            "version": 126,
            "mib": 1024,
            "how": "512.0 MiB on disk x 2",
        },
    ]
    # A rollback to a version on the host but no longer loaded: its size on the host counts.
    host = {"ranking/ranker": {"exists": True, "versions": [{"name": "123", "version": 123, "bytes": 100 * MIB}]}}
    back = [{**targets[0], "version": 123}]
    assert [d["mib"] for d in rollout_gpu_demands(back, plan, host, {}, 2)] == [200]
