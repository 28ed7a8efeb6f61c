"""tfserving_grpc_reloads: which changed models.config writes role tfserving sends over gRPC at once
(tasks/reload.yml), and which it leaves to TF Serving's config poll."""

from __future__ import annotations

import pytest
from ansible_collections.tfserving.fleet.plugins.filter.tfserving_tasks import grpc_reloads
from ansible_collections.tfserving.fleet.plugins.module_utils.tfserving_inventory import check_address


def instance(name="main", bind="0.0.0.0", fs_poll=1, grpc_port=8500):
    return {
        "name": name,
        "bind_address": bind,
        "check_address": check_address(bind),
        "grpc_port": grpc_port,
        "args": ["--model_config_file=/config/models.config", "--model_config_file_poll_wait_seconds=10",
                 f"--file_system_poll_wait_seconds={fs_poll}"],
    }


def final_write(inst, changed=True):
    # The final template loop of config.yml (loop_var __tfserving_instance).
    return {"changed": changed, "__tfserving_instance": inst, "ansible_loop_var": "__tfserving_instance"}


def label_step(inst, changed=True):
    # The label-step template loop of config.yml (loop_var item, the instance under item.instance).
    return {"changed": changed, "item": {"name": inst["name"], "instance": inst, "wait": []},
            "ansible_loop_var": "item"}


def test_changed_writes_of_running_servers_are_sent_to_the_host_address():
    main, tf2 = instance(), instance("tf2", grpc_port=9500)
    out = grpc_reloads([final_write(main), final_write(tf2)], ["main", "tf2"], "10.0.0.5")
    assert [(r["name"], r["address"], r["grpc_port"]) for r in out] == [("main", "10.0.0.5", 8500),
                                                                       ("tf2", "10.0.0.5", 9500)]
    assert out[0]["instance"] is main  # the whole planned instance: the reload renders the whole file


def test_label_steps_are_sent_too():
    out = grpc_reloads([label_step(instance())], ["main"], "10.0.0.5")
    assert [r["name"] for r in out] == ["main"]


def test_unchanged_and_skipped_writes_are_not_sent():
    writes = [final_write(instance(), changed=False), {"skipped": True, "changed": False, "item": {}}]
    assert grpc_reloads(writes, ["main"], "10.0.0.5") == []


def test_a_container_that_does_not_run_now_reads_the_file_when_it_starts():
    assert grpc_reloads([final_write(instance())], [], "10.0.0.5") == []


@pytest.mark.parametrize("fs_poll", [0, -1])
def test_no_reload_when_base_paths_are_not_polled(fs_poll):
    # A reload that adds a model waits for a base path poll; with none it would hang the server's config lock.
    assert grpc_reloads([final_write(instance(fs_poll=fs_poll))], ["main"], "10.0.0.5") == []


def test_an_instance_bound_to_one_address_is_reached_there():
    out = grpc_reloads([final_write(instance(bind="192.0.2.7"))], ["main"], "10.0.0.5")
    assert out[0]["address"] == "192.0.2.7"


@pytest.mark.parametrize("bind, host", [("127.0.0.1", "10.0.0.5"), ("0.0.0.0", "127.0.0.1"),
                                        ("::", "::1"), ("0.0.0.0", "localhost"), ("0.0.0.0", "")])
def test_loopback_of_another_host_is_never_addressed_from_the_control_node(bind, host):
    # It would reach a server on the control node itself (or nothing), not this host's.
    assert grpc_reloads([final_write(instance(bind=bind))], ["main"], host) == []


def test_loopback_is_addressed_when_the_host_is_the_control_node():
    out = grpc_reloads([final_write(instance(bind="127.0.0.1"))], ["main"], "localhost", local=True)
    assert out[0]["address"] == "127.0.0.1"
