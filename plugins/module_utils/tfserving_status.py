# Copyright: the tfserving-ansible authors
# Apache License 2.0
"""Wait until the model versions a caller expects are AVAILABLE, the way TF Serving reports them.

Used by tfserving_model_status (its whole job) and tfserving_reload_config (to wait for the
versions a label is about to point at, and to compare what a server serves with a wanted config);
the filters that build tfserving_model_status's ``models`` list for one model's policy (fleet status,
rollout) use ``model_expectations``. Works with either client (``tfserving_rest.RestClient`` or
``tfserving_grpc.GrpcClient``): both offer ``model_status(name)`` and ``label_version(name, label)``
and raise ``TFServingError``.

What TF Serving does that this logic accounts for (``docs/tfserving-behaviour.md``):
- status answers 200 / OK in every state, so only the listed state counts;
- unloaded versions stay listed as END with OK: ignored unless they are the version expected;
- a failed load ends as END with the error in ``status`` and is not retried: fail at once;
- the status endpoint and GetModelStatus ignore version labels: labels are resolved with a
  metadata request on the label, which the server answers through its own label map;
- ports open only after the start-up loads, and a restarting server refuses connections: a
  server that does not answer is waited for, until the deadline.
"""

import re

from ansible_collections.tfserving.fleet.plugins.module_utils.tfserving_common import (
    NOT_FOUND,
    UNREACHABLE,
    TFServingError,
    describe_versions,
    is_failed,
    is_retired,
)
from ansible_collections.tfserving.fleet.plugins.module_utils.tfserving_models_config import describe_policy

OK, PENDING, FAILED = "ok", "pending", "failed"

# ServerCore resolves a label to a version and then asks for that exact servable; when the version
# is not AVAILABLE the answer is NOT_FOUND "Servable not found for request: Specific(NAME, VERSION)".
_SPECIFIC = re.compile(r"Specific\((?P<name>.*), (?P<version>-?\d+)\)")


def model_expectations(name, policy, versions, labels, newest=None):
    """The ``models`` entries of tfserving_model_status for one model: each version of a ``specific``
    policy, else every version the server loads (and ``newest`` when given), then each label at its
    version."""
    out = []
    if policy == "specific":
        out += [{"name": name, "version": v} for v in sorted(versions)]
    else:
        out.append({"name": name, "all_versions": True})
        if newest is not None:
            out.append({"name": name, "version": newest})
    out += [{"name": name, "label": k, "version": v} for k, v in sorted(labels.items())]
    return out


class Expectation:
    """One entry of the caller's `models` list: a model and which of its versions must be AVAILABLE."""

    def __init__(self, name, version=None, label=None, all_versions=False):
        self.name = name
        self.version = version
        self.label = label
        self.all_versions = all_versions
        self.outcome = PENDING
        self.reason = "not checked yet"
        self.entries = []  # version_status dicts this expectation covers (satisfied or last seen)
        self.resolved = None  # the version a label pointed at, last time it resolved
        self.waited = None

    def describe(self):
        if self.label is not None and self.version is not None:
            return f"version {self.version} of model {self.name} through label {self.label}"
        if self.label is not None:
            return f"label {self.label} of model {self.name}"
        if self.version is not None:
            return f"version {self.version} of model {self.name}"
        if self.all_versions:
            return f"every version of model {self.name}"
        return f"the newest version of model {self.name}"

    def results(self):
        """Per version: what was seen. One row even when nothing was seen yet."""
        rows = []
        for entry in self.entries or [None]:
            rows.append(
                {
                    "name": self.name,
                    "label": self.label,
                    "requested_version": self.version,
                    "version": entry["version"] if entry else self.resolved,
                    "state": entry["state"] if entry else None,
                    "error_code": entry["error_code"] if entry else None,
                    "error_message": entry["error_message"] if entry else None,
                    "available": bool(entry and entry["state"] == "AVAILABLE" and self.outcome == OK),
                    "waited": self.waited,
                    "reason": None if self.outcome == OK else self.reason,
                }
            )
        return rows


def resolve_label(client, expectation):
    """(version or None, reason when None). A label the server does not know yet is not an error."""
    try:
        return client.label_version(expectation.name, expectation.label), None
    except TFServingError as err:
        if err.kind == NOT_FOUND and err.server_message:
            match = _SPECIFIC.search(err.server_message)
            if match and match.group("name") == expectation.name:
                # The label exists and points at a version that is not serving (yet).
                return int(match.group("version")), None
        if err.kind in (UNREACHABLE, NOT_FOUND) or err.code in (400, "INVALID_ARGUMENT"):
            said = err.server_message or err.message
            return None, f"label {expectation.label} of model {expectation.name} does not resolve: {said}"
        raise


def evaluate(expectation, statuses, label_version=None, label_reason=None):
    """Decide OK / PENDING / FAILED for one expectation from the server's version list."""
    exp = expectation
    target = exp.version
    listing = f"the server lists {describe_versions(statuses)}"
    if exp.label is not None:
        if label_version is None:
            return PENDING, label_reason, []
        exp.resolved = label_version
        if exp.version is not None and label_version != exp.version:
            entry = _find(statuses, label_version)
            reason = f"label {exp.label} of model {exp.name} points at {label_version}, not {exp.version}"
            return PENDING, reason, [entry] if entry else []
        target = label_version
    if exp.all_versions:
        failed = [s for s in statuses if is_failed(s)]
        if failed:
            return FAILED, _failed_text(exp.name, failed[0]), failed
        live = [s for s in statuses if s["state"] != "END"]
        if not live:
            return PENDING, f"no version of model {exp.name} is loading or available; {listing}", []
        waiting = [s for s in live if s["state"] != "AVAILABLE"]
        if waiting:
            return PENDING, f"model {exp.name}: {describe_versions(waiting)}", live
        return OK, None, live
    if target is None:
        candidates = [s for s in statuses if not is_retired(s)]
        if not candidates:
            return PENDING, f"no version of model {exp.name} is loading or available; {listing}", []
        target = max(s["version"] for s in candidates)
    entry = _find(statuses, target)
    if entry is None:
        reason = (
            f"version {target} of model {exp.name} is not known to the server ({listing}); check that "
            f"base_path holds a directory named {target} and that the version policy includes it"
        )
        return PENDING, reason, []
    if entry["state"] == "AVAILABLE":
        return OK, None, [entry]
    if is_failed(entry):
        return FAILED, _failed_text(exp.name, entry), [entry]
    if is_retired(entry):
        reason = (
            f"version {target} of model {exp.name} is END (unloaded, not served): the version policy or "
            f"the model list no longer includes it; {listing}"
        )
        return PENDING, reason, [entry]
    return PENDING, f"version {target} of model {exp.name} is {entry['state']}", [entry]


def _find(statuses, version):
    for status in statuses:
        if status["version"] == version:
            return status
    return None


def _failed_text(name, entry):
    return (
        f"version {entry['version']} of model {name} failed to load: state END, "
        f"{entry['error_code']}: {entry['error_message']}"
    )


def check_round(client, expectations, elapsed):
    """One round of requests: one status request per model name, plus one metadata request per label.

    Every expectation is evaluated again each round, so success means all of them held in the same
    round (a version that was AVAILABLE and got unloaded since does not count). Returns the
    statuses seen, by model name.
    """
    statuses, errors = {}, {}
    for exp in expectations:
        if exp.name in statuses or exp.name in errors:
            continue
        try:
            statuses[exp.name] = client.model_status(exp.name)
        except TFServingError as err:
            errors[exp.name] = err
    for exp in expectations:
        outcome, reason, entries = _judge(client, exp, statuses, errors.get(exp.name))
        exp.outcome, exp.reason = outcome, reason
        if entries or outcome != PENDING:
            exp.entries = entries
        if outcome != OK:
            exp.waited = None
        elif exp.waited is None:
            exp.waited = round(elapsed(), 3)
    return statuses


def _judge(client, exp, statuses, err):
    if err is not None:
        if err.kind == UNREACHABLE:
            return PENDING, f"the server does not answer: {err.message}", []
        if err.kind == NOT_FOUND:
            return FAILED, (
                f"model {exp.name} is unknown to the server, which answered: "
                f"{err.server_message or err.message}. Expected it in the server's model config; "
                "check the model name and models.config"
            ), []
        return FAILED, err.message, []
    label_version = label_reason = None
    if exp.label is not None:
        try:
            label_version, label_reason = resolve_label(client, exp)
        except TFServingError as label_err:
            return FAILED, label_err.message, []
    return evaluate(exp, statuses[exp.name], label_version, label_reason)


def wait_for(client, expectations, backoff):
    """Poll until every expectation is OK in the same round, one FAILS, or the deadline passes.

    Returns (outcome, statuses by model name) with outcome OK, FAILED or PENDING (timed out).
    """
    seen = {}
    while True:
        # A request never outlives the deadline by much; a one-shot check (timeout 0) gets request_timeout.
        left = backoff.remaining()
        client.timeout = client.request_timeout if backoff.timeout == 0 else max(
            0.5, min(client.request_timeout, left))
        backoff.rounds += 1
        seen.update(check_round(client, expectations, backoff.elapsed))
        if any(e.outcome == FAILED for e in expectations):
            return FAILED, seen
        if all(e.outcome == OK for e in expectations):
            return OK, seen
        if not backoff.wait():
            return PENDING, seen


# -- what a server serves, against a wanted config (tfserving_reload_config) ---------------------
SERVING_STATES = ("START", "LOADING", "AVAILABLE")


def serving(statuses):
    """Versions being loaded or served."""
    return sorted(s["version"] for s in statuses or [] if s["state"] in SERVING_STATES)


def available(statuses):
    return {s["version"] for s in statuses or [] if s["state"] == "AVAILABLE"}


def observe(client, entries, absent):
    """Per model name: {'statuses': [...] or None when unknown, 'labels': {label: version or None}}.

    ``entries`` are tfserving_models_config.ModelEntry items; ``absent`` names models that must
    not be served (TF Serving cannot list its models, so only named ones are asked about).
    """
    observed = {}
    wanted = {entry.name: entry for entry in entries}
    for name in list(wanted) + [n for n in absent if n not in wanted]:
        try:
            statuses = client.model_status(name)
        except TFServingError as err:
            if err.kind != NOT_FOUND:
                raise
            statuses = None
        labels = {}
        entry = wanted.get(name)
        if entry is not None and statuses is not None:
            for label in sorted(entry.version_labels):
                labels[label] = resolve_label(client, Expectation(name, label=label))[0]
        observed[name] = {"statuses": statuses, "labels": labels}
    return observed


def differences(entries, observed, absent):
    """[{model, change: add|versions|labels|remove, detail}] between the server and the entries."""
    found = []
    for entry in entries:
        seen = observed[entry.name]
        live = serving(seen["statuses"])
        if not live:
            listed = describe_versions(seen["statuses"]) if seen["statuses"] is not None else "unknown model"
            found.append({"model": entry.name, "change": "add",
                          "detail": f"not served ({listed}); wanted from {entry.base_path}"})
            continue
        wrong_specific = entry.policy == "specific" and live != entry.versions
        if wrong_specific or (entry.policy == "latest" and len(live) > entry.num_versions):
            found.append({"model": entry.name, "change": "versions",
                          "detail": f"serves {live}, wants {describe_policy(entry)}"})
        for label, version in sorted(entry.version_labels.items()):
            current = seen["labels"].get(label)
            if current != version:
                where = "nothing" if current is None else f"version {current}"
                found.append({"model": entry.name, "change": "labels",
                              "detail": f"label {label} points at {where}, wants version {version}"})
    wanted = {entry.name for entry in entries}
    for name in absent:
        live = serving(observed[name]["statuses"]) if name not in wanted else []
        if live:
            found.append({"model": name, "change": "remove", "detail": f"serves {live}, wanted absent"})
    return found


def _labels_line(labels):
    pairs = ", ".join(f"{k}: {'none' if v is None else v}" for k, v in sorted(labels.items()))
    return f"  labels: {{{pairs}}}"


def summary_before(observed):
    """Diff-mode text of what the server serves."""
    lines = []
    for name in sorted(observed):
        seen = observed[name]
        if seen["statuses"] is None:
            lines.append(f"{name}: not known to the server")
            continue
        lines += [f"{name}:", f"  serving: {serving(seen['statuses'])}"]
        if seen["labels"]:
            lines.append(_labels_line(seen["labels"]))
    return "\n".join(lines) + "\n"


def summary_after(entries, absent):
    """Diff-mode text of what the wanted config asks for."""
    lines = []
    wanted = {entry.name: entry for entry in entries}
    for name in sorted(set(wanted) | set(absent)):
        entry = wanted.get(name)
        if entry is None:
            lines.append(f"{name}: not known to the server")
            continue
        lines += [f"{name}:", f"  serving: {describe_policy(entry)}"]
        if entry.version_labels:
            lines.append(_labels_line(entry.version_labels))
    return "\n".join(lines) + "\n"
