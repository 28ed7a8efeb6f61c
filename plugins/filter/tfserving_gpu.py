# Copyright: the tfserving-ansible authors
# Apache License 2.0
"""GPU memory headroom before a model version loads: pure data, no I/O.

A hot reload holds the new version beside the versions served now, so a GPU that is nearly full
runs out of memory in the middle of a load (TF Serving then logs the OOM, the version ends in END
and the server may be left without room for its next request). The roles refuse the change before
anything on the host changes instead:

- ``tfserving_gpu_demands``: what the tfserving role is about to load on GPUs (versions it publishes
  that the policy serves), each with the memory it needs.
- ``tfserving_rollout_gpu_demands``: the same for the versions a rollout loads (not AVAILABLE now).
- ``tfserving_gpu_headroom``: those demands against the free memory nvidia-smi reported per GPU
  (``nvidia_gpu_facts``): {problems, checked, unchecked}.

What a version needs: the model entry's ``gpu_memory_mib`` when the inventory sets it, else its size
on disk (``tfserving_model_versions`` ``bytes``) times the factor (``tfserving_gpu_memory_factor``).
A demand counts on every GPU its instance sees: TensorFlow may place the model's tensors on any of
them, so the check is made for the worst case.
"""

from __future__ import annotations

import math

from ansible.errors import AnsibleFilterError
from ansible_collections.tfserving.fleet.plugins.module_utils.tfserving_inventory import model_key

MIB = 1024 * 1024


def _factor(factor):
    try:
        value = float(factor)
    except (TypeError, ValueError):
        value = None
    if value is None or not math.isfinite(value) or value <= 0:
        raise AnsibleFilterError(
            f"tfserving_gpu_memory_factor is {factor!r}; expected a positive number (GPU memory a version "
            "needs per byte of its size on disk, for example 2.0)"
        )
    return value


def _need(override, size, factor):
    """(MiB, how) for one version; (None, why) when nothing says how much it needs."""
    if override:
        return int(override), "gpu_memory_mib"
    if size is None:
        return None, "its size on disk is unknown"
    return max(1, math.ceil(size * factor / MIB)), f"{_human(size)} on disk x {factor:g}"


def _human(size):
    for unit, scale in (("GiB", 1024**3), ("MiB", MIB), ("KiB", 1024)):
        if size >= scale:
            return f"{size / scale:.1f} {unit}"
    return f"{size} B"


def _sizes(listing):
    """{version: bytes} of a tfserving_model_versions result (entries without bytes are left out)."""
    if not isinstance(listing, dict) or not listing.get("exists"):
        return {}
    return {
        int(v["version"]): v["bytes"]
        for v in listing.get("versions") or []
        if isinstance(v, dict) and v.get("bytes") is not None
    }


def gpu_demands(plan, listings=None, factor=2.0):
    """[{instance, gpus, model, version, mib, how}]: versions the tfserving role publishes on a GPU
    instance that its policy serves (so the server loads them), from ``tfserving_plan`` and the
    listings of ``tfserving_collect_listings``."""
    factor = _factor(factor)
    listings = listings or {}
    out = []
    for inst in plan or []:
        if inst.get("state") != "present" or inst.get("device_kind") != "gpu":
            continue
        for model in inst.get("models") or []:
            serve = set(model.get("serve") or [])
            sizes = _sizes((listings.get(model_key(inst["name"], model["name"])) or {}).get("source"))
            for item in model.get("publish") or []:
                if item["version"] not in serve:
                    continue
                mib, how = _need(model.get("gpu_memory_mib"), sizes.get(item["version"]), factor)
                out.append(
                    {
                        "instance": inst["name"],
                        "gpus": inst.get("gpus", "all"),
                        "model": model["name"],
                        "version": item["version"],
                        "mib": mib,
                        "how": how,
                    }
                )
    return out


def rollout_gpu_demands(targets, plan, host_listings=None, source_listings=None, factor=2.0):
    """The demands of a rollout plan's targets (``tfserving_rollout_plan`` ``targets``): each version
    that is not AVAILABLE on its server now, on an instance that runs on GPUs (``plan`` is the host's
    ``tfserving_plan``). Its size comes from the rollout source, or the host when it is there already."""
    factor = _factor(factor)
    host_listings = host_listings or {}
    source_listings = source_listings or {}
    instances = {i["name"]: i for i in plan or [] if i.get("state") == "present"}
    out = []
    for target in targets or []:
        inst = instances.get(target["instance"])
        if inst is None or inst.get("device_kind") != "gpu":
            continue
        if target["version"] in ((target.get("previous") or {}).get("available") or []):
            continue
        model = next((m for m in inst.get("models") or [] if m["name"] == target["model"]), {})
        size = _sizes(source_listings.get(target["key"])).get(target["version"])
        if size is None:
            size = _sizes(host_listings.get(target["key"])).get(target["version"])
        mib, how = _need(model.get("gpu_memory_mib"), size, factor)
        out.append(
            {
                "instance": target["instance"],
                "gpus": inst.get("gpus", "all"),
                "model": target["model"],
                "version": target["version"],
                "mib": mib,
                "how": how,
            }
        )
    return out


def _gpu_name(gpu):
    return "GPU {} ({}{})".format(
        gpu.get("index"), gpu.get("name") or "unknown model", ", " + gpu["uuid"] if gpu.get("uuid") else ""
    )


def _assigned(gpus, facts_gpus):
    """(GPU records an instance sees, device ids nvidia-smi does not report)."""
    if gpus == "all":
        return list(facts_gpus), []
    found, missing = [], []
    for device in gpus or []:
        device = str(device)
        match = next(
            (g for g in facts_gpus if (device.isdigit() and g.get("index") == int(device)) or g.get("uuid") == device),
            None,
        )
        if match is None:
            missing.append(device)
        elif match not in found:
            found.append(match)
    return found, missing


def gpu_headroom(demands, gpu_facts=None, host=""):
    """{problems, checked, unchecked}: every GPU whose free memory is smaller than the sum of what
    is about to load on it is a problem naming host, GPU, free and needed memory, and the versions."""
    facts = gpu_facts or {}
    facts_gpus = facts.get("gpus") or []
    per_gpu = {}
    unchecked = []
    for demand in demands or []:
        what = "instance {}, model {} version {}".format(demand["instance"], demand["model"], demand["version"])
        if demand.get("mib") is None:
            unchecked.append(f"host '{host}': {what}: {demand['how']}; set gpu_memory_mib in the model entry")
            continue
        if not facts.get("available"):
            unchecked.append(
                "host '{}': {}: no GPU memory figures ({})".format(
                    host, what, facts.get("reason") or "nvidia_gpu_facts did not run"
                )
            )
            continue
        found, missing = _assigned(demand["gpus"], facts_gpus)
        for device in missing:
            unchecked.append(
                f"host '{host}': {what}: GPU {device} is not among the GPUs nvidia-smi reports "
                "(MIG devices are not checked)"
            )
        for gpu in found:
            key = (gpu.get("index"), gpu.get("uuid"))
            slot = per_gpu.setdefault(key, {"gpu": gpu, "demands": []})
            slot["demands"].append(demand)
    problems, checked = [], []
    for key in sorted(per_gpu, key=lambda k: (k[0] is None, k[0] or 0, k[1] or "")):
        gpu, items = per_gpu[key]["gpu"], per_gpu[key]["demands"]
        need = sum(d["mib"] for d in items)
        free = gpu.get("memory_free_mib")
        parts = "; ".join(
            "instance {}, model {} version {}: {} MiB ({})".format(
                d["instance"], d["model"], d["version"], d["mib"], d["how"]
            )
            for d in items
        )
        if free is None:
            unchecked.append(f"host '{host}': {_gpu_name(gpu)}: nvidia-smi does not report its free memory; {parts}")
            continue
        entry = {
            "host": host,
            "gpu": gpu.get("index"),
            "uuid": gpu.get("uuid"),
            "name": gpu.get("name"),
            "free_mib": free,
            "needed_mib": need,
            "fits": need <= free,
            "versions": [{k: d[k] for k in ("instance", "model", "version", "mib", "how")} for d in items],
        }
        checked.append(entry)
        if need > free:
            problems.append(
                f"host '{host}': {_gpu_name(gpu)} has {free} MiB free but {need} MiB are needed to load {parts}. "
                "Nothing was changed on this host. Fix: free memory on that GPU (retire versions or models "
                "no longer needed, stop other processes), give the instance a GPU with room (gpus), or, when "
                "the estimate is too high, set gpu_memory_mib in the model entry or lower "
                "tfserving_gpu_memory_factor."
            )
    return {"problems": problems, "checked": checked, "unchecked": unchecked}


class FilterModule:
    def filters(self):
        return {
            "tfserving_gpu_demands": gpu_demands,
            "tfserving_rollout_gpu_demands": rollout_gpu_demands,
            "tfserving_gpu_headroom": gpu_headroom,
        }
