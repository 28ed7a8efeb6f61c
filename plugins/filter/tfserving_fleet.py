# Copyright: the tfserving-ansible authors
# Apache License 2.0
"""Filters of the fleet status report (playbooks/status.yml): pure data transforms, no I/O.

- ``tfserving_fleet_checks``: what each instance of a host must serve, from the inventory
  (``tfserving_instances``), as the ``models`` list of module tfserving_model_status, with the
  address and REST port to ask.
- ``tfserving_fleet_rows``: the answers of every host turned into one row per host, instance, model
  and version: state, labels, error, whether the inventory expects it and whether it is as expected.
  A host that answered nothing (unreachable, or its check could not run) gets one failing row per
  instance.
- ``tfserving_fleet_summary``: counts and the list of problems; ``ok`` is false when anything the
  inventory expects is not AVAILABLE.
- ``tfserving_fleet_table`` / ``tfserving_fleet_markdown`` / ``tfserving_fleet_html``: the rows as a
  fixed-width text table, a Markdown document and a standalone HTML page (with the drift table when
  given one).

Drift (what each host really runs):

- ``tfserving_fleet_targets``: the containers the inventory declares on a host, with the image
  reference and GPUs each should run (the rule of the role's plan).
- ``tfserving_fleet_drift``: one row per host and instance from what the host reported (container,
  image ID and repo digests, ``tensorflow_model_server --version``, ``docker version``, nvidia_gpu
  facts), each field compared with the inventory and with the fleet's majority; ``drift`` lists the
  fields that differ and why.
- ``tfserving_fleet_drift_summary`` / ``tfserving_fleet_drift_table``: counts and marks; the text table.
"""

from __future__ import annotations

import html
import ipaddress
import json
from collections import Counter

from ansible.errors import AnsibleFilterError

COLUMNS = (
    ("host", "Host"),
    ("instance", "Instance"),
    ("model", "Model"),
    ("version", "Version"),
    ("labels", "Labels"),
    ("state", "State"),
    ("expected", "Expected"),
    ("result", "Result"),
    ("detail", "Error / note"),
)

# Results of a row: OK (as the inventory expects), FAIL (expected, not AVAILABLE or label elsewhere),
# WARN (not expected and in trouble: a failed load), "-" (listed, not expected: loaded or retired).
OK, FAIL, WARN, INFO = "OK", "FAIL", "WARN", "-"


def _check_address(bind):
    """The address a check on the host itself uses for a port published on ``bind``."""
    try:
        address = ipaddress.ip_address(str(bind))
    except ValueError as err:
        raise AnsibleFilterError(f"tfserving_fleet_checks: bind address {bind!r} is not an IP address") from err
    if address.is_unspecified:
        return "::1" if address.version == 6 else "127.0.0.1"
    return str(address)


def _int(value):
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, str) and value.strip().isdigit():
        return int(value.strip())
    return None


def checks(instances, bind_address="0.0.0.0"):
    """[{instance, check_address, rest_port, models}] for the present instances of a host.

    ``models`` is what tfserving_model_status expects: every version of a ``specific`` policy, every
    version the server loads for ``latest``/``all`` (at least one), and each label at its version.
    """
    if not isinstance(instances, list):
        raise AnsibleFilterError("tfserving_fleet_checks expects tfserving_instances, a list")
    out = []
    for inst in instances:
        if not isinstance(inst, dict) or inst.get("state", "present") != "present":
            continue
        expectations = []
        for model in inst.get("models") or []:
            name = model["name"]
            versions = sorted({v for v in (_int(x) for x in model.get("versions") or []) if v})
            policy = model.get("version_policy") or ("specific" if versions else "latest")
            if policy == "specific":
                expectations += [{"name": name, "version": v} for v in versions]
            else:
                expectations.append({"name": name, "all_versions": True})
            for label, version in sorted((model.get("labels") or {}).items()):
                expectations.append({"name": name, "label": label, "version": _int(version)})
        out.append(
            {
                "instance": inst["name"],
                "check_address": _check_address(inst.get("bind_address", bind_address)),
                "rest_port": _int(inst.get("rest_port", 8501)),
                "models": expectations,
            }
        )
    return out


def _row(host, instance, model, version):
    return {
        "host": host,
        "instance": instance,
        "model": model,
        "version": version,
        "labels": [],
        "state": None,
        "error_code": None,
        "error_message": None,
        "expected": False,
        "result": INFO,
        "notes": [],
    }


def _failed_load(entry):
    return entry.get("state") == "END" and entry.get("error_code") not in (None, "", "OK")


def _instance_rows(host, instance, result):
    """Rows of one instance from one tfserving_model_status result (registered, loop item)."""
    models = result.get("models")
    statuses = result.get("statuses")
    if not isinstance(models, list) or not isinstance(statuses, dict):
        # The module did not run or crashed: no per-version information at all.
        reason = result.get("msg") or "no status reported"
        row = _row(host, instance, None, None)
        row.update({"state": "UNREACHABLE" if result.get("unreachable") else "ERROR", "expected": True,
                    "result": FAIL, "notes": [str(reason).strip()]})
        return [row]
    rows = {}
    order = []

    def get(model, version):
        key = (model, version)
        if key not in rows:
            rows[key] = _row(host, instance, model, version)
            order.append(key)
        return rows[key]

    for exp in models:
        version = exp.get("requested_version") if exp.get("requested_version") is not None else exp.get("version")
        row = get(exp["name"], version)
        row["expected"] = True
        if exp.get("label"):
            row["labels"].append(exp["label"])
        if exp.get("state") is not None and exp.get("version") == version:
            row["state"] = exp["state"]
            row["error_code"] = exp.get("error_code")
            row["error_message"] = exp.get("error_message")
        if exp.get("available"):
            if row["result"] != FAIL:
                row["result"] = OK
        else:
            row["result"] = FAIL
            if exp.get("reason") and exp["reason"] not in row["notes"]:
                row["notes"].append(exp["reason"])
    for model, entries in sorted(statuses.items()):
        for entry in entries or []:
            version = _int(entry.get("version"))
            row = get(model, version)
            # The server's own listing is the truth for this version.
            row["state"] = entry.get("state")
            row["error_code"] = entry.get("error_code")
            row["error_message"] = entry.get("error_message")
            if not row["expected"] and _failed_load(entry):
                row["result"] = WARN
    for row in rows.values():
        if row["expected"] and row["state"] is None:
            row["state"] = "MISSING"
    out = [rows[k] for k in order]
    out.sort(key=lambda r: (r["model"] or "", -(r["version"] or 0)))
    return out


def host_report(hostvars_of_host, registered="__tfserving_status"):
    """What rows() and drift() need from one host's variables: its name, the instances the inventory
    lists, the registered status results (None when the host answered nothing) and what the host
    reported about its containers, images, engine and GPUs (``runtime``, None when nothing)."""
    hv = hostvars_of_host
    host = hv.get("inventory_hostname")
    instances = [
        i.get("name")
        for i in (hv.get("tfserving_instances") or [])
        if isinstance(i, dict) and i.get("state", "present") == "present"
    ]
    reg = hv.get(registered)
    report = {"host": host, "instances": instances, "results": None, "runtime": _runtime(hv)}
    if not isinstance(reg, dict):
        report["reason"] = "no status collected (host not in the play, or it failed before the check)"
    elif reg.get("unreachable"):
        first = (reg.get("results") or [{}])[0]
        report["reason"] = "host unreachable: {}".format(str(first.get("msg") or reg.get("msg", "")).strip())
    else:
        report["results"] = list(reg.get("results") or [])
    return report


def rows(host_reports):
    """One row per host, instance, model and version.

    ``host_reports``: [{host, instances: [the names the inventory lists], results: [registered
    tfserving_model_status loop results, each with item.instance] or None}]. ``results`` None (or
    missing) means the host answered nothing; every instance the inventory lists then fails.
    """
    out = []
    for report in host_reports or []:
        host = report["host"]
        results = report.get("results")
        names = list(report.get("instances") or [])
        if results is not None and not names:
            row = _row(host, None, None, None)
            row["notes"] = ["no TF Serving instance in the inventory"]
            out.append(row)
            continue
        if not results:
            reason = report.get("reason") or "host unreachable or status not collected"
            for name in names or [None]:
                row = _row(host, name, None, None)
                row.update({"state": "UNREACHABLE", "expected": bool(names), "result": FAIL if names else INFO,
                            "notes": [reason]})
                out.append(row)
            continue
        for result in results:
            instance = (result.get("item") or {}).get("instance")
            if result.get("skipped"):
                continue
            out += _instance_rows(host, instance, result)
    for row in out:
        if _failed_load(row) and row["error_message"]:
            note = f"{row['error_code']}: {row['error_message']}"
            if note not in row["notes"]:
                row["notes"].insert(0, note)
        row["detail"] = "; ".join(row["notes"])
    return out


def summary(rows_):
    """Counts and problems of a report; ``ok`` is false when an expected version is not as expected."""
    problems = [r for r in rows_ if r["result"] == FAIL]
    return {
        "ok": not problems,
        "hosts": len({r["host"] for r in rows_}),
        "instances": len({(r["host"], r["instance"]) for r in rows_ if r["instance"]}),
        "expected": sum(1 for r in rows_ if r["expected"]),
        "as_expected": sum(1 for r in rows_ if r["result"] == OK),
        "failed": len(problems),
        "warnings": sum(1 for r in rows_ if r["result"] == WARN),
        "problems": [
            "{}/{}/{}{}: {}".format(
                r["host"], r["instance"] or "-", r["model"] or "-",
                "" if r["version"] is None else f" v{r['version']}",
                r["detail"] or r["state"],
            )
            for r in problems
        ],
    }


def _cell(row, key):
    value = row.get(key)
    if key == "labels":
        return ",".join(value) if value else ""
    if key == "expected":
        return "yes" if value else "no"
    if value is None:
        return "-"
    return str(value)


def table(rows_, max_detail=100):
    """A fixed-width text table (one line per row), for the play output."""
    cells = [[_cell(r, k) for k, _unused in COLUMNS] for r in rows_]
    for line in cells:
        if len(line[-1]) > max_detail:
            line[-1] = line[-1][: max_detail - 3] + "..."
    head = [title for _unused, title in COLUMNS]
    widths = [max(len(x) for x in col) for col in zip(head, *cells, strict=True)]

    def fmt(values):
        return "  ".join(v.ljust(w) for v, w in zip(values, widths, strict=True)).rstrip()

    lines = [fmt(head), fmt(["-" * w for w in widths])]
    lines += [fmt(line) for line in cells]
    return "\n".join(lines)


def _md(text):
    return str(text).replace("|", "\\|").replace("\n", " ")


def markdown(rows_, title="TF Serving fleet status", since="", drift_rows=None):
    s = summary(rows_)
    verdict = "every expected version is AVAILABLE" if s["ok"] else f"{s['failed']} problem(s)"
    lines = [f"# {title}", ""]
    if since:
        lines += [f"In this state since {since}.", ""]
    lines += [
        f"**{verdict}** - {s['hosts']} host(s), {s['instances']} instance(s), "
        f"{s['as_expected']}/{s['expected']} expected version(s) as expected, {s['warnings']} warning(s).",
        "",
        "| " + " | ".join(t for _unused, t in COLUMNS) + " |",
        "|" + "|".join("---" for _unused in COLUMNS) + "|",
    ]
    lines += ["| " + " | ".join(_md(_cell(r, k)) for k, _unused in COLUMNS) + " |" for r in rows_]
    if s["problems"]:
        lines += ["", "## Problems", ""] + [f"- {_md(p)}" for p in s["problems"]]
    if drift_rows:
        lines += _drift_markdown(drift_rows)
    return "\n".join(lines) + "\n"


_CSS = """
body { font-family: system-ui, sans-serif; margin: 2em; color: #222; }
table { border-collapse: collapse; width: 100%; }
th, td { border: 1px solid #ccc; padding: 4px 8px; text-align: left; vertical-align: top; }
th { background: #eee; }
tr.OK td.result { background: #d4edda; }
tr.FAIL td { background: #f8d7da; }
tr.WARN td.result { background: #fff3cd; }
.verdict-ok { color: #155724; } .verdict-fail { color: #721c24; }
"""


def html_page(rows_, title="TF Serving fleet status", since="", drift_rows=None):
    """A standalone HTML page (inline CSS, no scripts), escaped; the drift table after the models."""
    s = summary(rows_)
    esc = html.escape
    verdict = "Every expected version is AVAILABLE" if s["ok"] else f"{s['failed']} problem(s)"
    parts = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        f"<title>{esc(title)}</title><style>{_CSS}{_DRIFT_CSS if drift_rows else ''}</style></head><body>",
        f"<h1>{esc(title)}</h1>",
    ]
    if since:
        parts.append(f"<p>In this state since {esc(since)}.</p>")
    parts.append(
        '<p class="verdict-{}"><strong>{}</strong> &mdash; {} host(s), {} instance(s), {}/{} expected '
        "version(s) as expected, {} warning(s).</p>".format(
            "ok" if s["ok"] else "fail", esc(verdict), s["hosts"], s["instances"], s["as_expected"],
            s["expected"], s["warnings"])
    )
    header = "".join(f"<th>{esc(t)}</th>" for _unused, t in COLUMNS)
    parts.append("<table><thead><tr>" + header + "</tr></thead><tbody>")
    for r in rows_:
        cells = "".join(f'<td class="{k}">{esc(_cell(r, k))}</td>' for k, _unused in COLUMNS)
        parts.append(f'<tr class="{esc(r["result"] if r["result"] != INFO else "INFO")}">{cells}</tr>')
    parts.append("</tbody></table>")
    if s["problems"]:
        parts.append("<h2>Problems</h2><ul>" + "".join(f"<li>{esc(p)}</li>" for p in s["problems"]) + "</ul>")
    if drift_rows:
        parts += _drift_html(drift_rows)
    parts.append("</body></html>")
    return "\n".join(parts) + "\n"


# ---------------------------------------------------------------------------------------------------------
# Drift: what each host really runs, against the inventory and against the rest of the fleet.

DRIFT_COLUMNS = (
    ("host", "Host"),
    ("instance", "Instance"),
    ("image", "Image"),
    ("image_id", "Image ID"),
    ("digest", "Repo digest"),
    ("tfserving_version", "TF Serving"),
    ("docker_version", "Docker"),
    ("containerd_version", "containerd"),
    ("runc_version", "runc"),
    ("runtime", "Runtime"),
    ("driver_version", "Driver"),
    ("cuda_version", "CUDA"),
    ("gpus", "GPUs"),
    ("drift_detail", "Drift"),
)

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
    """'all', a list of device ids as strings, or [] (no GPU)."""
    if gpus is None or gpus is False or gpus == "none" or gpus == []:
        return []
    if gpus == "all":
        return "all"
    if isinstance(gpus, (int, str)) and not isinstance(gpus, bool):
        gpus = [gpus]
    if not isinstance(gpus, list):
        raise AnsibleFilterError(f"tfserving_fleet_targets: gpus {gpus!r} is not 'all', a device id or a list")
    return [str(g) for g in gpus]


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
    for inst in instances:
        if not isinstance(inst, dict) or inst.get("state", "present") != "present":
            continue
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


def _runtime(hv):
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


def _gpu_text(gpus):
    if gpus == "all":
        return "all"
    return ",".join(gpus) if gpus else "-"


def _short(image_id):
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
            mark(row, "image_id", f"runs {_short(row['image_id'])}, {row['expected_image']} is "
                                  f"{_short(row['expected_image_id'])} on the host")
        if row["gpus"] != row["expected_gpus"]:
            mark(row, "gpus", f"has GPUs {_gpu_text(row['gpus'])}, "
                              f"the inventory says {_gpu_text(row['expected_gpus'])}")
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
    shown = _short if field == "image_id" else str
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


def _drift_cell(row, key):
    if not row.get("collected") and key not in ("host", "drift_detail"):
        return "-"
    value = row.get(key)
    if key == "gpus":
        return _gpu_text(value)
    if key == "digest":
        return _short(value.rsplit("@", 1)[-1]) if value else "-"
    if key == "image_id":
        return _short(value) if value else "-"
    if value in (None, ""):
        return "-"
    return str(value)


def _drift_mark(row):
    return "DRIFT" if row.get("drifted") else ""


def drift_table(drift_rows, max_detail=100):
    """A fixed-width text table of the drift rows, marked rows first column ``DRIFT``."""
    head = [""] + [title for _key, title in DRIFT_COLUMNS]
    cells = [[_drift_mark(r)] + [_drift_cell(r, k) for k, _title in DRIFT_COLUMNS] for r in drift_rows]
    for line in cells:
        if len(line[-1]) > max_detail:
            line[-1] = line[-1][: max_detail - 3] + "..."
    widths = [max(len(x) for x in col) for col in zip(head, *cells, strict=True)]

    def fmt(values):
        return "  ".join(v.ljust(w) for v, w in zip(values, widths, strict=True)).rstrip()

    return "\n".join([fmt(head), fmt(["-" * w for w in widths])] + [fmt(line) for line in cells])


def _drift_verdict(s):
    if s["ok"]:
        return "no drift: every host runs what the inventory says, as the rest of the fleet does"
    return f"{s['drifted']} instance(s) drifted"


def _drift_markdown(drift_rows):
    s = drift_summary(drift_rows)
    lines = ["", "## Images and runtimes", "", f"**{_drift_verdict(s)}**.", "",
             "| | " + " | ".join(t for _key, t in DRIFT_COLUMNS) + " |",
             "|" + "|".join("---" for _column in range(len(DRIFT_COLUMNS) + 1)) + "|"]
    for r in drift_rows:
        cells = [_md(_drift_cell(r, k)) for k, _title in DRIFT_COLUMNS]
        if r.get("drifted"):
            cells = [f"**{c}**" if k in r["drift_fields"] or k == "drift_detail" else c
                     for (k, _title), c in zip(DRIFT_COLUMNS, cells, strict=True)]
        lines.append("| " + " | ".join([("**DRIFT**" if r.get("drifted") else ""), *cells]) + " |")
    return lines


_DRIFT_CSS = """
div.scroll { overflow-x: auto; }
table.drift { font-size: 0.85em; }
table.drift td { white-space: nowrap; padding: 4px 6px; }
table.drift td.image, table.drift td.tfserving_version, table.drift td.drift_detail {
  white-space: normal; overflow-wrap: anywhere; min-width: 7em; }
tr.drift td { background: #fff3cd; }
tr.drift td.drift-field { background: #f5c26b; font-weight: bold; }
tr.drift td.mark { color: #8a4b00; font-weight: bold; }
td.mark { white-space: nowrap; }
.verdict-drift { color: #8a4b00; }
"""


def _drift_html(drift_rows):
    s = drift_summary(drift_rows)
    esc = html.escape
    parts = [
        '<h2 id="drift">Images and runtimes</h2>',
        '<p class="verdict-{}"><strong>{}</strong>.</p>'.format("ok" if s["ok"] else "drift", esc(_drift_verdict(s))),
        '<div class="scroll"><table class="drift"><thead><tr><th></th>'
        + "".join(f"<th>{esc(t)}</th>" for _key, t in DRIFT_COLUMNS)
        + "</tr></thead><tbody>",
    ]
    for r in drift_rows:
        fields = set(r.get("drift_fields") or [])
        cells = [f'<td class="mark">{"&#9888; DRIFT" if r.get("drifted") else ""}</td>']
        for key, _title in DRIFT_COLUMNS:
            cls = key + (" drift-field" if key in fields else "")
            title = ""
            if key in ("digest", "image_id") and r.get(key):
                title = f' title="{esc(str(r[key]))}"'
            text = _drift_cell(r, key)
            if key == "drift_detail" and r.get("drifted"):
                # The reasons are listed under the table; the row names the fields.
                text = ", ".join(FIELD_NAMES[f] for f in r["drift_fields"])
            cells.append(f'<td class="{cls}"{title}>{esc(text)}</td>')
        parts.append('<tr class="{}">{}</tr>'.format("drift" if r.get("drifted") else "same", "".join(cells)))
    parts.append("</tbody></table></div>")
    if s["marks"]:
        parts.append('<ul class="drift">' + "".join(f"<li>{esc(m)}</li>" for m in s["marks"]) + "</ul>")
    return parts


class FilterModule:
    """tfserving fleet report filters."""

    def filters(self):
        return {
            "tfserving_fleet_checks": checks,
            "tfserving_fleet_host_report": host_report,
            "tfserving_fleet_rows": rows,
            "tfserving_fleet_summary": summary,
            "tfserving_fleet_table": table,
            "tfserving_fleet_markdown": markdown,
            "tfserving_fleet_html": html_page,
            "tfserving_fleet_targets": targets,
            "tfserving_fleet_drift": drift,
            "tfserving_fleet_known_servers": known_servers,
            "tfserving_fleet_servers_to_ask": servers_to_ask,
            "tfserving_fleet_drift_summary": drift_summary,
            "tfserving_fleet_drift_table": drift_table,
        }
