# Copyright: the tfserving-ansible authors
# Apache License 2.0
"""Report filters of the fleet rollout: one-line texts of a record (tfserving_rollout_describe), of
expectations (tfserving_rollout_expectation_text), of a failed task (tfserving_rollout_failure_text),
of a restore (tfserving_rollout_restored_text), and the per-host outcomes (tfserving_rollout_outcomes),
a text table (tfserving_rollout_summary), the failed hosts (tfserving_rollout_failed), the verdict
(tfserving_rollout_verdict) and Markdown for a change log (tfserving_rollout_markdown).
"""

from __future__ import annotations


def describe(record):
    """One line for a record: instance/model: policy, versions, labels."""
    policy = record.get("version_policy")
    text = "{}/{}: {}".format(record["instance"], record["model"], policy)
    if policy == "specific":
        text += " [{}]".format(", ".join(str(v) for v in record.get("versions") or []))
    elif policy == "latest":
        text += " {}".format(record.get("num_versions") or 1)
    labels = record.get("labels") or {}
    if labels:
        text += ", labels " + ", ".join(f"{k} -> {v}" for k, v in sorted(labels.items()))
    return text


def expectation_text(expectations):
    """Short texts of tfserving_model_status expectations: 'm v124', 'm label stable -> 124', 'm (all)'."""
    out = []
    for exp in expectations or []:
        if exp.get("label"):
            out.append("{} label {} -> {}".format(exp["name"], exp["label"], exp.get("version")))
        elif exp.get("version") is not None:
            out.append("{} v{}".format(exp["name"], exp["version"]))
        else:
            out.append("{} (every loaded version)".format(exp["name"]))
    return out


def failure_text(result, limit=600):
    """The message of a failed task result; for a loop, the message of each failed item."""
    if not isinstance(result, dict):
        return str(result)[:limit]
    parts = []
    for item in result.get("results") or []:
        if isinstance(item, dict) and item.get("failed"):
            label = item.get("_ansible_item_label", item.get("item"))
            parts.append("{}: {}".format(label, " ".join(str(item.get("msg", "failed")).split())))
    text = "; ".join(parts) if parts else " ".join(str(result.get("msg", result)).split())
    return text if len(text) <= limit else text[: limit - 3] + "..."


def restored_text(plan_, reason, proofs_answered=0):
    """One paragraph: why, what is AVAILABLE again, what answered, what was removed."""
    expectations = [e for t in plan_.get("targets") or [] for e in t["previous_expectations"]]
    removed = [p["final"] for p in plan_.get("publish") or []]
    text = "{} Restored: {} AVAILABLE again".format(
        " ".join(str(reason).split()), ", ".join(expectation_text(expectations)) or "nothing to restore")
    if proofs_answered:
        text += f", {proofs_answered} prediction(s) answered"
    text += "; new version directories removed: {}.".format(", ".join(removed) if removed else "none")
    return text


RESULTS = {
    "deployed": "deployed",
    "rolled_back": "ROLLED BACK",
    "rollback_failed": "ROLLBACK FAILED",
    "refused": "REFUSED (nothing changed)",
    "nothing_to_do": "nothing to do",
    "untouched": "untouched (not reached)",
    "interrupted": "INTERRUPTED",
}


FAILED_RESULTS = ("rolled_back", "rollback_failed", "refused", "interrupted")


def outcomes(hosts, hostvars_map, fact="tfserving_rollout_outcome"):
    """[{host, result, ...}] for every host of the play: its outcome fact, or untouched."""
    out = []
    for host in hosts or []:
        hv = hostvars_map[host] if host in hostvars_map else {}
        outcome = hv.get(fact) if hasattr(hv, "get") else None
        if isinstance(outcome, dict) and outcome.get("result"):
            out.append({"host": host, **outcome})
        else:
            out.append({"host": host, "result": "untouched", "detail": "the rollout stopped before this host"})
    return out


def summary(outcomes_):
    """The outcomes as lines of text: one line per host, then the details of the failures."""
    width = max([len(o["host"]) for o in outcomes_] + [4])
    lines = []
    for o in outcomes_:
        lines.append("{}  {}{}".format(
            o["host"].ljust(width), RESULTS.get(o["result"], o["result"]),
            f": {o['detail']}" if o.get("detail") else ""))
    return lines


def verdict(outcomes_, action="rollout"):
    """One line saying how the rollout ended."""
    results = {o["result"] for o in outcomes_}
    what = action.upper()
    if results & {"rollback_failed", "interrupted"}:
        return f"{what} STOPPED: a host could not be restored or did not finish; check it first (status.yml)"
    if "rolled_back" in results:
        return f"{what} STOPPED: a batch failed and was restored; hosts not reached are untouched"
    if "refused" in results:
        return f"{what} STOPPED: refused before any change on the hosts marked REFUSED; hosts not reached are untouched"
    if "untouched" in results:
        return f"{what} IN PROGRESS"
    return f"{what} COMPLETE: every host " + ("deployed" if "deployed" in results else "had nothing to do")


def markdown(outcomes_, verdict_):
    """The summary as a Markdown document: the verdict, one row per host, the inventory records."""
    lines = [f"# {verdict_}", "", "| Host | Result | Detail |", "|---|---|---|"]
    for o in outcomes_:
        detail = str(o.get("detail") or "").replace("|", "\\|").replace("\n", " ")
        lines.append("| {} | {} | {} |".format(o["host"], RESULTS.get(o["result"], o["result"]), detail))
    records = [(o["host"], r) for o in outcomes_ for r in o.get("record") or []]
    if records:
        lines += ["", "## Record in the inventory", ""]
        lines += [f"- {host}: {describe(r)}" for host, r in records]
    return "\n".join(lines) + "\n"


def failed(outcomes_):
    return [o for o in outcomes_ if o["result"] in FAILED_RESULTS]


class FilterModule:
    """tfserving rollout report filters."""

    def filters(self):
        return {
            "tfserving_rollout_describe": describe,
            "tfserving_rollout_failure_text": failure_text,
            "tfserving_rollout_restored_text": restored_text,
            "tfserving_rollout_expectation_text": expectation_text,
            "tfserving_rollout_outcomes": outcomes,
            "tfserving_rollout_summary": summary,
            "tfserving_rollout_failed": failed,
            "tfserving_rollout_verdict": verdict,
            "tfserving_rollout_markdown": markdown,
        }
