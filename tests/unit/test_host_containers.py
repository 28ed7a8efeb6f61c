"""The systemd host containers are started in three places: sandbox/up.yml (demo, fleet, faults, bench)
and the docker-driver Molecule scenarios default and serving, whose molecule.yml cannot include
sandbox/fleets.yml. They must ask Docker for the same thing: a change made in one place only (a
capability, a security option) would make one suite test hosts the others never see."""

from __future__ import annotations

import pathlib

import pytest
import yaml

ROOT = pathlib.Path(__file__).resolve().parents[2]
SCENARIOS = ("default", "serving")


def sandbox():
    fleets = yaml.safe_load((ROOT / "sandbox" / "fleets.yml").read_text())
    plays = yaml.safe_load((ROOT / "sandbox" / "up.yml").read_text())
    task = next(
        t for play in plays for t in play.get("tasks", []) if "community.docker.docker_container" in t
    )["community.docker.docker_container"]
    return fleets, task


@pytest.mark.parametrize("scenario", SCENARIOS)
def test_molecule_hosts_are_started_like_the_sandbox_hosts(scenario):
    fleets, task = sandbox()
    platforms = yaml.safe_load((ROOT / "molecule" / scenario / "molecule.yml").read_text())["platforms"]
    assert platforms
    for platform in platforms:
        assert platform["image"] == fleets["sandbox_host_image"]
        assert platform["privileged"] is False and task["privileged"] is False
        assert platform["capabilities"] == fleets["sandbox_host_capabilities"]
        for key in ("security_opts", "cgroupns_mode", "tmpfs", "stop_signal"):
            assert platform[key] == task[key], key
        # The same mounts: the host's cgroup tree, and a volume of the host's own for /var/lib/docker.
        assert platform["volumes"][0] == task["volumes"][0] == "/sys/fs/cgroup:/sys/fs/cgroup:rw"
        assert platform["volumes"][1] == f"{platform['name']}-docker:/var/lib/docker"


def test_the_capability_set_leaves_out_what_this_machine_refuses():
    fleets, _ = sandbox()
    caps = fleets["sandbox_host_capabilities"]
    assert len(caps) == len(set(caps))
    assert not {"SYS_RESOURCE", "PERFMON", "BPF", "CHECKPOINT_RESTORE"} & set(caps)
    assert {"SYS_ADMIN", "NET_ADMIN", "MKNOD"} <= set(caps)  # systemd and an inner Docker engine need these
