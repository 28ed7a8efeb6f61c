# Copyright: the tfserving-ansible authors
# Apache License 2.0
"""Filters of the fleet status report (playbooks/status.yml), the drift part: what each host really
runs, against the inventory and against the rest of the fleet. Pure data transforms, no I/O.

- ``tfserving_fleet_targets``: the containers the inventory declares on a host, with the image
  reference and GPUs each should run (the rule of the role's plan).
- ``tfserving_fleet_known_servers`` / ``tfserving_fleet_servers_to_ask``: server versions already known
  from the previous report (by image ID), and the running containers whose server still has to be asked.
- ``tfserving_fleet_drift``: one row per host and instance from what the host reported (container,
  image ID and repo digests, ``tensorflow_model_server --version``, ``docker version``, nvidia_gpu
  facts), each field compared with the inventory and with the fleet's majority; ``drift`` lists the
  fields that differ and why.
- ``tfserving_fleet_drift_summary``: counts and marks.

The drift table as text, Markdown and HTML is in tfserving_fleet_report.py.
"""

from __future__ import annotations

import json
from collections import Counter

from ansible.errors import AnsibleFilterError
from ansible_collections.tfserving.fleet.plugins.module_utils.tfserving_inventory import gpu_set, present_instances

# Fields compared with the majority of the hosts (one value per host) and of the instances that run the
# same image reference (one value per instance).
HOST_FIELDS = ("docker_version", "containerd_version", "runc_version", "driver_version", "cuda_version")
IMAGE_FIELDS = ("image_id", "tfserving_version")
FIELD_NAMES = {
    "image": "image reference",
    "image_id": "image ID",
    "tfserving_version": "TF Serving version",
    "docker_version": "Docker version",
    "containerd_version": "containerd version",
    "runc_version": "runc version",
    "driver_version": "driver",
    "cuda_version": "CUDA",
    "gpus": "GPUs",
    "container": "container",
}


def _gpu_list(gpus):
    """'all', a list of device ids as strings, or [] (no GPU): the role's reading of ``gpus``."""
    found = gpu_set(gpus)
    if found is None:
        raise AnsibleFilterError(f"tfserving_fleet_targets: gpus {gpus!r} is not 'all', a device id or a list")
    return found if found == "all" else list(found)


def targets(instances, settings=None):
    """[{instance, container, image, gpus}]: what the role runs for each present instance of a host.

    ``settings``: ``prefix`` (tfserving_container_name_prefix), ``image_cpu``, ``image_gpu``, ``gpu``
    (true when the host runs GPU containers: tfserving_gpu_mode toolkit/legacy, or auto with a GPU) and
    ``pinned`` (tfserving_image_pin_fleet: containers run ``repo@digest`` of the inventory's tag). As
    in the role's plan, an instance's own image wins, GPU instances run the GPU image, and a GPU instance
    on a host without GPU runs the CPU image with no GPU.
    """
    if not isinstance(instances, list):
        raise AnsibleFilterError("tfserving_fleet_targets expects tfserving_instances, a list")
    cfg = {"prefix": "tfserving-", "image_cpu": None, "image_gpu": None, "gpu": False, "pinned": False,
           **(settings or {})}
    out = []
    for inst in present_instances(instances):
        gpus = _gpu_list(inst.get("gpus"))
        use_gpu = bool(gpus) and bool(cfg["gpu"])
        out.append({
            "instance": inst["name"],
            "container": str(cfg["prefix"]) + str(inst["name"]),
            "image": inst.get("image") or (cfg["image_gpu"] if use_gpu else cfg["image_cpu"]),
            "gpus": gpus if use_gpu else [],
            "pinned": bool(cfg["pinned"]),
        })
    return out


def _repository(ref):
    """'registry:5000/tfs/serving:2.19' and '...serving@sha256:..' -> 'registry:5000/tfs/serving'."""
    repo = (ref or "").split("@", 1)[0]
    tail = repo.rsplit("/", 1)[-1]
    return repo[: len(repo) - len(tail)] + tail.split(":", 1)[0]


def _pinned_to(ref, running):
    """True when ``running`` is the digest reference the role pins ``ref`` (a tag) to, in one repository."""
    if not ref or not running or "@" not in running or "@" in ref:
        return False
    return _repository(ref) == _repository(running)


def _reference_matches(ref, image):
    """Does ``ref`` (as an inventory writes it) name ``image`` (docker_image_info's Id/RepoTags/RepoDigests)?"""
    if not ref or not isinstance(image, dict):
        return False
    if ref == image.get("Id"):
        return True
    names = {ref}
    for prefix in ("docker.io/library/", "docker.io/"):
        if ref.startswith(prefix):
            names.add(ref[len(prefix):])
    if "@" not in ref and ":" not in ref.rsplit("/", 1)[-1]:
        names |= {f"{n}:latest" for n in names}
    if "@" in ref:
        return bool(names & set(image.get("RepoDigests") or []))
    return bool(names & set(image.get("RepoTags") or []))


def _digest(ref, repo_digests):
    """The registry (manifest) digest of what runs: the one of the reference's repository, else any; None
    for an image never pushed or pulled (its image ID is then all there is)."""
    repo = _repository(ref)
    for entry in repo_digests or []:
        if entry.split("@", 1)[0] == repo:
            return entry
    return repo_digests[0] if repo_digests else None


def _assigned_gpus(container):
    """GPUs a container was given: device requests (--gpus) or NVIDIA_VISIBLE_DEVICES (nvidia runtime)."""
    host_config = container.get("HostConfig") or {}
    gpus = []
    for request in host_config.get("DeviceRequests") or []:
        capabilities = {c for group in request.get("Capabilities") or [] for c in group or []}
        if request.get("Driver") != "nvidia" and "gpu" not in capabilities:
            continue
        if request.get("Count") == -1:
            return "all"
        if request.get("DeviceIDs"):
            gpus += [str(d) for d in request["DeviceIDs"]]
        elif request.get("Count"):
            gpus.append(f"any {request['Count']}")
    env = dict(e.split("=", 1) for e in (container.get("Config") or {}).get("Env") or [] if "=" in e)
    visible = env.get("NVIDIA_VISIBLE_DEVICES")
    if visible and host_config.get("Runtime") == "nvidia":
        if visible == "all":
            return "all"
        if visible not in ("void", "none"):
            gpus += [g for g in visible.split(",") if g]
    return gpus


def _model_server_version(stdout):
    """``tensorflow_model_server --version`` prints "TensorFlow ModelServer: V" and "TensorFlow Library: V"."""
    out = {"tfserving_version": None, "tensorflow_version": None}
    for line in (stdout or "").splitlines():
        if line.startswith("TensorFlow ModelServer:"):
            out["tfserving_version"] = line.split(":", 1)[1].strip() or None
        elif line.startswith("TensorFlow Library:"):
            out["tensorflow_version"] = line.split(":", 1)[1].strip() or None
    return out


def _docker_versions(result):
    """Engine, containerd and runc versions from ``docker version --format '{{json .}}'`` (its registered result)."""
    out = {"docker_version": None, "containerd_version": None, "runc_version": None}
    try:
        data = json.loads((result or {}).get("stdout") or "")
    except ValueError:
        return out
    server = (data or {}).get("Server") or {}
    out["docker_version"] = server.get("Version")
    for component in server.get("Components") or []:
        name = str(component.get("Name", "")).lower()
        if name == "engine":
            out["docker_version"] = component.get("Version") or out["docker_version"]
        elif name in ("containerd", "runc"):
            out[f"{name}_version"] = component.get("Version")
    return out


def _by_item(registered, key="instance"):
    return {
        (r.get("item") or {}).get(key): r
        for r in ((registered or {}).get("results") or [])
        if isinstance(r, dict) and isinstance(r.get("item"), dict)
    }


def host_runtime(hv):
    """What one host reported about its containers, images, engine and GPUs (None when nothing)."""
    wanted = hv.get("_tfserving_status_targets")
    if not isinstance(wanted, list):
        return None
    gpu = (hv.get("ansible_facts") or {}).get("nvidia_gpu") or {}
    host = {**_docker_versions(hv.get("__tfserving_status_docker")),
            "driver_version": gpu.get("driver_version") if gpu.get("available") else None,
            "cuda_version": gpu.get("cuda_version") if gpu.get("available") else None,
            "gpu_count": gpu.get("count") if gpu.get("available") else 0}
    containers = _by_item(hv.get("__tfserving_status_containers"))
    servers = _by_item(hv.get("__tfserving_status_servers"))
    images = [i for i in ((hv.get("__tfserving_status_images") or {}).get("images") or []) if isinstance(i, dict)]
    instances = []
    for target in wanted:
        found = containers.get(target["instance"]) or {}
        container = found.get("container") if found.get("exists") else None
        entry = {**target, "exists": bool(container), "running": False, "running_image": None, "image_id": None,
                 "repo_digests": [], "expected_image_id": None, "assigned_gpus": [], "runtime": None,
                 "tfserving_version": None, "tensorflow_version": None}
        expected = next((i for i in images if _reference_matches(target["image"], i)), None)
        entry["expected_image_id"] = expected.get("Id") if expected else None
        if container:
            entry["running"] = bool((container.get("State") or {}).get("Running"))
            entry["running_image"] = (container.get("Config") or {}).get("Image")
            entry["image_id"] = container.get("Image")
            running = next((i for i in images if i.get("Id") == entry["image_id"]), {})
            entry["repo_digests"] = sorted(running.get("RepoDigests") or [])
            entry["assigned_gpus"] = _assigned_gpus(container)
            entry["runtime"] = (container.get("HostConfig") or {}).get("Runtime")
            asked = servers.get(target["instance"]) or {}
            if asked.get("stdout"):
                entry.update(_model_server_version(asked["stdout"]))
            else:
                entry.update((hv.get("_tfserving_status_known") or {}).get(entry["image_id"]) or {})
        instances.append(entry)
    return {"host": host, "instances": instances}


def known_servers(previous_report):
    """{image ID: {tfserving_version, tensorflow_version}} from the previous JSON report: an image ID names
    one binary, so a server whose image did not change is not asked again."""
    rows_ = (((previous_report or {}).get("drift") or {}).get("rows")) or []
    return {
        r["image_id"]: {"tfserving_version": r["tfserving_version"], "tensorflow_version": r.get("tensorflow_version")}
        for r in rows_
        if isinstance(r, dict) and r.get("image_id") and r.get("tfserving_version")
    }


def servers_to_ask(containers_registered, known=None):
    """[{instance, container, image_id}]: running containers whose image's server version is not known yet."""
    out = []
    for result in (containers_registered or {}).get("results") or []:
        container = result.get("container") if isinstance(result, dict) and result.get("exists") else None
        if not container or not (container.get("State") or {}).get("Running"):
            continue
        if container.get("Image") in (known or {}):
            continue
        out.append({"instance": result["item"]["instance"], "container": result["item"]["container"],
                    "image_id": container.get("Image")})
    return out


def _majority(values):
    """(value, split): the value more than half of the known values share; split when they disagree with
    no such value."""
    known = [v for v in values if v not in (None, "")]
    if not known:
        return None, False
    value, count = Counter(known).most_common(1)[0]
    if count * 2 > len(known):
        return value, False
    return None, len(set(known)) > 1


def gpu_text(gpus):
    if gpus == "all":
        return "all"
    return ",".join(gpus) if gpus else "-"


def short_image_id(image_id):
    """sha256:0123456789ab (the 12 hex digits docker shows)."""
    if isinstance(image_id, str) and image_id.startswith("sha256:"):
        return image_id[: len("sha256:") + 12]
    return image_id


def drift(host_reports):
    """One row per host and instance: what runs, and ``drift`` (field, reason) where it differs from the
    inventory or from the fleet's majority. Hosts that reported nothing get one unmarked row with a note."""
    out = []
    for report in host_reports or []:
        runtime = report.get("runtime")
        if not runtime:
            out.append({"host": report["host"], "instance": None, "collected": False,
                        "note": report.get("reason") or "runtime not collected", "drift": []})
            continue
        for entry in runtime["instances"]:
            row = {"host": report["host"], "collected": True, "note": None, "drift": [], **runtime["host"], **entry}
            row["expected_image"] = entry["image"]
            row["image"] = entry["running_image"]
            row["expected_gpus"] = entry["gpus"]
            row["gpus"] = entry["assigned_gpus"]
            for key in ("running_image", "assigned_gpus"):
                row.pop(key)
            row["digest"] = _digest(row["expected_image"], row["repo_digests"])
            out.append(row)
    rows_ = [r for r in out if r["collected"]]

    def mark(row, field, reason):
        row["drift"].append({"field": field, "reason": reason})

    # Against the inventory: what site.yml would change (docker_container compares the image ID).
    for row in rows_:
        if not row["exists"]:
            mark(row, "container", f"container {row['container']} does not exist")
            continue
        if not row["running"]:
            mark(row, "container", f"container {row['container']} is not running")
        # A pinned fleet runs repo@digest of the inventory's tag, and the tag need not be on the host: then
        # what runs is judged against the fleet's majority only (one digest per tag, below).
        pinned = row.get("pinned") and _pinned_to(row["expected_image"], row["image"])
        if row["image"] != row["expected_image"] and not pinned:
            mark(row, "image", f"runs {row['image']}, the inventory says {row['expected_image']}")
        if row["expected_image_id"] is None and pinned:
            pass
        elif row["expected_image_id"] is None:
            mark(row, "image_id", f"{row['expected_image']} is not on the host")
        elif row["image_id"] != row["expected_image_id"]:
            mark(row, "image_id", f"runs {short_image_id(row['image_id'])}, {row['expected_image']} is "
                                  f"{short_image_id(row['expected_image_id'])} on the host")
        if row["gpus"] != row["expected_gpus"]:
            mark(row, "gpus", f"has GPUs {gpu_text(row['gpus'])}, "
                              f"the inventory says {gpu_text(row['expected_gpus'])}")
    # Against the majority: per host for the engine and the driver, per image reference for what runs.
    majority = {}
    per_host = {}
    for row in rows_:
        per_host.setdefault(row["host"], row)
    for field in HOST_FIELDS:
        majority[field] = _majority([r[field] for r in per_host.values()])
    for row in rows_:
        for field in HOST_FIELDS:
            value, split = majority[field]
            _compare(row, field, row[field], value, split, len(per_host), "hosts", mark)
    for ref in sorted({r["expected_image"] for r in rows_ if r["exists"]}, key=str):
        group = [r for r in rows_ if r["exists"] and r["expected_image"] == ref]
        for field in IMAGE_FIELDS:
            value, split = _majority([r[field] for r in group])
            for row in group:
                _compare(row, field, row[field], value, split, len(group), f"instances of {ref}", mark)
    for row in out:
        fields = []
        for d in row["drift"]:
            if d["field"] not in fields:
                fields.append(d["field"])
        row["drifted"] = bool(row["drift"])
        row["drift_fields"] = fields
        row["drift_detail"] = "; ".join(d["reason"] for d in row["drift"]) or (row["note"] or "")
    return out


def _compare(row, field, mine, value, split, size, among, mark):
    if mine in (None, "") or size < 2:
        return
    shown = short_image_id if field == "image_id" else str
    if split:
        mark(row, field, f"{FIELD_NAMES[field]} {shown(mine)}: no majority among the {size} {among}")
    elif value is not None and mine != value:
        mark(row, field, f"{FIELD_NAMES[field]} {shown(mine)}, the fleet's majority runs {shown(value)}")


def drift_summary(drift_rows):
    marked = [r for r in drift_rows if r.get("drifted")]
    return {
        "ok": not marked,
        "hosts": len({r["host"] for r in drift_rows}),
        "instances": sum(1 for r in drift_rows if r.get("collected")),
        "drifted": len(marked),
        "not_collected": [r["host"] for r in drift_rows if not r.get("collected")],
        "marks": [f"{r['host']}/{r['instance']}: {r['drift_detail']}" for r in marked],
    }


class FilterModule:
    """tfserving fleet report filters: drift of what each host runs."""

    def filters(self):
        return {
            "tfserving_fleet_targets": targets,
            "tfserving_fleet_drift": drift,
            "tfserving_fleet_known_servers": known_servers,
            "tfserving_fleet_servers_to_ask": servers_to_ask,
            "tfserving_fleet_drift_summary": drift_summary,
        }
