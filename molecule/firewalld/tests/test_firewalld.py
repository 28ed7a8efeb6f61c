"""What molecule/firewalld proves against a real firewalld (see ../README.md). Tests run in file
order: converged state, check mode, then the removal of one instance. Every test takes the host
fixture: pytest runs parametrized tests before the others, which would put a check-mode run after
the removal."""

import json
import os
import subprocess

testinfra_hosts = ["tfs-firewalld-host"]
SCENARIO_DIR = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
ZONE = "internal"
RANKING = ["8500/tcp", "8501/tcp"]
SEARCH = ["9500/tcp", "9501/tcp"]
# The inventory of molecule.yml with instance 'search' marked absent.
SEARCH_REMOVED = [
    {"name": "ranking", "grpc_port": 8500, "rest_port": 8501, "monitoring": {"enabled": True},
     "models": [{"name": "half_plus_two", "base_path": "/models/half_plus_two"}]},
    {"name": "search", "state": "absent", "grpc_port": 9500, "rest_port": "9501"},
]


def converge(*args):
    """converge.yml against the scenario's inventory; (rc, output, changed count of the host)."""
    env = {**os.environ, "ANSIBLE_FORCE_COLOR": "0", "ANSIBLE_NOCOLOR": "1", "NO_COLOR": "1"}
    inventory = os.path.dirname(os.environ["MOLECULE_INVENTORY_FILE"])
    command = ["ansible-playbook", "-i", inventory, os.path.join(SCENARIO_DIR, "converge.yml"), *args]
    proc = subprocess.run(command, capture_output=True, text=True, env=env, check=False, timeout=600)
    out = proc.stdout + proc.stderr
    recap = out.split("PLAY RECAP")[-1]
    changed = int(recap.split("changed=")[1].split()[0]) if "changed=" in recap else -1
    return proc.returncode, out, changed


def ports(host, *flags):
    cmd = host.run("firewall-cmd " + " ".join(flags) + f" --zone={ZONE} --list-ports")
    assert cmd.rc == 0, cmd.stdout + cmd.stderr
    return sorted(cmd.stdout.split())


def test_firewalld_is_running(host):
    assert host.run("firewall-cmd --state").stdout.strip() == "running"


def test_instance_ports_are_open_at_once_and_permanently(host):
    assert ports(host) == RANKING + SEARCH
    assert ports(host, "--permanent") == RANKING + SEARCH


def test_the_default_zone_is_left_alone(host):
    # tfserving_firewalld_zone is 'internal' here: nothing of the role lands in 'public'.
    cmd = host.run("firewall-cmd --zone=public --list-ports")
    assert cmd.rc == 0 and cmd.stdout.strip() == ""


def test_the_running_firewall_admits_the_ports(host):
    # firewalld's own nftables ruleset (not only its configuration) holds the ports.
    ruleset = host.check_output("nft list table inet firewalld")
    for port in ("8500", "8501", "9500", "9501"):
        assert f"tcp dport {port} accept" in ruleset, ruleset


def test_check_mode_on_the_converged_host_changes_nothing(host):
    rc, out, changed = converge("--check")
    assert rc == 0 and changed == 0, out
    assert ports(host) == RANKING + SEARCH


def test_check_mode_of_a_removal_reports_the_change_and_closes_nothing(host):
    rc, out, changed = converge("--check", "-e", json.dumps({"tfserving_instances": SEARCH_REMOVED}))
    assert rc == 0 and changed == 1, out
    assert "Ports of removed instances are closed in zone internal" in out
    assert ports(host) == RANKING + SEARCH
    assert ports(host, "--permanent") == RANKING + SEARCH


def test_a_removed_instance_has_its_ports_closed_and_a_rerun_changes_nothing(host):
    rc, out, changed = converge("-e", json.dumps({"tfserving_instances": SEARCH_REMOVED}))
    assert rc == 0 and changed == 1, out
    assert ports(host) == RANKING
    assert ports(host, "--permanent") == RANKING
    rc, out, changed = converge("-e", json.dumps({"tfserving_instances": SEARCH_REMOVED}))
    assert rc == 0 and changed == 0, out


def test_a_zone_that_is_not_a_string_fails_before_the_firewall_changes(host):
    rc, out, changed = converge("-e", json.dumps({"tfserving_instances": [], "tfserving_firewalld_zone": ["internal"]}))
    assert rc == 2 and changed == 0, out
    assert "tfserving_firewalld_zone is ['internal'] (a list); expected the name of one firewalld zone" in out
    assert ports(host) == RANKING
