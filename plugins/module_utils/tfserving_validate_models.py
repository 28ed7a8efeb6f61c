# Copyright: the tfserving-ansible authors
# Apache License 2.0
"""The checks filter tfserving_validate makes of each model of an instance: its name, platform,
source or base_path, the versions on disk (the listings), the version policy and the labels. Each
problem names host, instance, model and field. The host and instance checks are in
plugins/filter/tfserving_validate.py."""

from ansible_collections.tfserving.fleet.plugins.module_utils.tfserving_inventory import (
    LABEL_RE,
    MODEL_KEYS,
    NAME_RE,
    URI_RE,
    as_version,
    host_path_of,
    is_int,
    location,
    model_key,
    model_kind,
    served_versions,
    version_policy,
)
from ansible_collections.tfserving.fleet.plugins.module_utils.tfserving_models_config import PLATFORMS, POLICIES


class Errors:
    """The problems found so far, each a sentence that starts with where it is."""

    def __init__(self, host):
        self.host = host
        self.items = []

    def add(self, message, instance=None, model=None, field=None):
        self.items.append(f"{location(self.host, instance, model, field)}: {message}")


def check_keys(errors, data, allowed, instance, model=None, prefix="", what="key"):
    """One problem per key of ``data`` that is not ``allowed``."""
    for key in sorted(set(data) - allowed):
        errors.add(
            "unknown {}; expected one of {}".format(what, ", ".join(sorted(allowed))),
            instance,
            model,
            prefix + str(key),
        )


def validate_model(errors, iname, index, model, names, listings, mounts=None):
    """Add the problems of model ``index`` of instance ``iname`` to ``errors``. ``names``: the model names
    seen so far in the instance; ``listings``: as tfserving_validate takes them; ``mounts``: the
    instance's container mounts (None while its name is invalid)."""
    if not isinstance(model, dict):
        errors.add(f"expected a mapping, got {model!r}", iname, None, f"models[{index}]")
        return
    mname = model.get("name")
    shown = mname if isinstance(mname, str) and mname else f"#{index}"
    check_keys(errors, model, MODEL_KEYS, iname, shown)
    budget = model.get("first_predict_budget_ms")
    if "first_predict_budget_ms" in model and (
        isinstance(budget, bool) or not isinstance(budget, (int, float)) or budget <= 0
    ):
        errors.add(f"expected a positive number of milliseconds, got {budget!r}", iname, shown,
                   "first_predict_budget_ms")
    if not isinstance(mname, str) or not NAME_RE.match(mname):
        errors.add(
            f"{mname!r} is not a valid model name (letters, digits, '_', '.', '-'; at most 63; "
            "it becomes a directory name and a URL path segment)",
            iname,
            shown,
            "name",
        )
        return
    if mname in names:
        errors.add(
            "model listed twice in this instance (TF Serving: 'Illegal to list model multiple times')",
            iname,
            mname,
            "name",
        )
    names.add(mname)

    if "gpu_memory_mib" in model and not (is_int(model["gpu_memory_mib"]) and model["gpu_memory_mib"] > 0):
        errors.add(
            "expected the GPU memory one version of this model needs, in MiB (a positive integer such as "
            "6144), got {!r}".format(model["gpu_memory_mib"]),
            iname,
            mname,
            "gpu_memory_mib",
        )

    platform = model.get("platform", "tensorflow")
    if platform not in PLATFORMS:
        errors.add(
            "unknown model platform {!r}; TF Serving knows only {}".format(platform, ", ".join(PLATFORMS)),
            iname,
            mname,
            "platform",
        )

    kind = model_kind(model)
    if model.get("source") and model.get("base_path"):
        errors.add(
            "set either source (versions copied from the control node) or base_path "
            "(versions the server reads in place), not both",
            iname,
            mname,
            "base_path",
        )
    if "source" in model and not (isinstance(model["source"], str) and model["source"]):
        errors.add("expected a path on the control node (directory or archive)", iname, mname, "source")
    if "base_path" in model:
        base = model["base_path"]
        if not isinstance(base, str) or not base:
            errors.add("expected an absolute path or a URI", iname, mname, "base_path")
        elif not (base.startswith("/") or URI_RE.match(base)):
            errors.add(
                f"{base!r} is relative; TF Serving expects an absolute path or a URI",
                iname,
                mname,
                "base_path",
            )
        elif (
            base.startswith("/")
            and not model.get("source")
            and mounts is not None
            and host_path_of(base, mounts)[0] is None
        ):
            errors.add(
                "{!r} is not inside a directory mounted into the container ({}); the server would never "
                "find it. Add an extra_mounts entry for it".format(base, ", ".join(sorted(t for t, _unused in mounts))),
                iname,
                mname,
                "base_path",
            )

    # What is on disk decides what latest/all serve and what a label may point at.
    known = None
    listing = listings.get(model_key(iname, mname), {})
    if kind == "source" and isinstance(model.get("source"), str):
        known = _validate_listing(errors, iname, mname, listing.get("source"), "source", model["source"])
    elif kind == "host":
        known = _validate_listing(errors, iname, mname, listing.get("host"), "versions", "the host's model directory")
    elif kind == "remote" and listing.get("host") and mounts and host_path_of(model.get("base_path"), mounts)[0]:
        # A base path the server cannot list makes TF Serving wait for it forever: its config poll (or
        # a reload) never finishes, and no later config change is applied. Refused before any write.
        host_path, target = host_path_of(model["base_path"], mounts)
        if not listing["host"].get("exists") and not listing["host"].get("failed"):
            errors.add(
                "{!r} does not exist: {} on the host (mounted at {}) is missing. TF Serving would wait for it "
                "forever and apply no later config change; nothing was written".format(
                    model["base_path"], host_path, target
                ),
                iname,
                mname,
                "base_path",
            )
            known = set()
        else:
            known = _validate_listing(errors, iname, mname, listing["host"], "base_path", f"{host_path} on the host")

    policy = version_policy(model)
    if policy not in POLICIES:
        errors.add(
            "unknown version_policy {!r}; expected one of {}".format(policy, ", ".join(POLICIES)),
            iname,
            mname,
            "version_policy",
        )
        return
    versions = model.get("versions")
    if policy == "specific":
        if not isinstance(versions, list) or not versions:
            errors.add("version_policy specific needs a non-empty list of versions", iname, mname, "versions")
            versions = []
        seen = set()
        for pos, value in enumerate(versions):
            number = as_version(value)
            if number is None:
                errors.add(f"{value!r} is not a positive integer version", iname, mname, f"versions[{pos}]")
            elif number in seen:
                errors.add(f"version {number} listed twice", iname, mname, f"versions[{pos}]")
            else:
                seen.add(number)
                if known is not None and number not in known:
                    errors.add(
                        "version {} is not among the versions found ({})".format(
                            number, ", ".join(str(v) for v in sorted(known)) or "none"
                        ),
                        iname,
                        mname,
                        f"versions[{pos}]",
                    )
    elif versions is not None:
        errors.add(
            f"versions is only used with version_policy specific (policy is {policy})",
            iname,
            mname,
            "versions",
        )
    if "num_versions" in model:
        if policy != "latest":
            errors.add(
                f"num_versions is only used with version_policy latest (policy is {policy})",
                iname,
                mname,
                "num_versions",
            )
        elif not is_int(model["num_versions"]) or model["num_versions"] < 1:
            errors.add(
                "expected an integer >= 1, got {!r}".format(model["num_versions"]),
                iname,
                mname,
                "num_versions",
            )
            return

    labels = model.get("labels", {})
    if labels is None:
        labels = {}
    if not isinstance(labels, dict):
        errors.add("expected a mapping of label -> version", iname, mname, "labels")
        return
    served = served_versions(policy, model, known)
    for label in sorted(labels, key=str):
        field = f"labels.{label}"
        if not isinstance(label, str) or not LABEL_RE.match(label):
            errors.add(
                f"{label!r} is not a valid label name (a letter, then letters, digits, '_', '.', '-')",
                iname,
                mname,
                field,
            )
            continue
        number = as_version(labels[label])
        if number is None:
            errors.add(f"{labels[label]!r} is not a positive integer version", iname, mname, field)
        elif served is not None and number not in served:
            errors.add(
                "label points at version {}, which version_policy {} does not serve (serves {}); "
                "TF Serving only assigns labels to loaded versions".format(
                    number, policy, ", ".join(str(v) for v in served) or "nothing"
                ),
                iname,
                mname,
                field,
            )


def _validate_listing(errors, iname, mname, listing, field, what):
    """Versions found for a model (a set of numbers), or None when the listing says nothing."""
    if not listing:
        return None
    if listing.get("failed") or not listing.get("exists"):
        reason = listing.get("msg") or f"{what} does not exist"
        errors.add(reason, iname, mname, field)
        return set()
    for member in listing.get("unsafe_members") or []:
        errors.add(f"archive member {member!r} would land outside the model directory", iname, mname, field)
    seen = {}
    for entry in listing.get("versions") or []:
        number = int(entry["version"])
        if number <= 0:
            errors.add("version directory {!r} is not a positive version".format(entry["name"]), iname, mname, field)
            continue
        if number in seen:
            errors.add(
                f"version directories {seen[number]!r} and {entry['name']!r} are both version {number}",
                iname,
                mname,
                field,
            )
            continue
        seen[number] = entry["name"]
        if not entry.get("saved_model"):
            errors.add(
                "version {!r} has no saved_model.pb or saved_model.pbtxt in {}".format(entry["name"], what),
                iname,
                mname,
                field,
            )
    if not seen:
        errors.add(
            f"no version directories (numeric names) in {what}; TF Serving would not start this model",
            iname,
            mname,
            field,
        )
    return set(seen)
