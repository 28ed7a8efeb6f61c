# Copyright: the tfserving-ansible authors
# Apache License 2.0
"""Filters that write and read the files TF Serving reads (protobuf text format, managed header,
stable order): tfserving_models_config, tfserving_batching_config, tfserving_monitoring_config;
tfserving_config_labels reads back the labels of a models.config rendered earlier,
tfserving_models_config_parse reads any models.config (the rollout's view of a host) and
tfserving_label_steps plans the two config writes a label move needs.
"""

from __future__ import annotations

import copy

from ansible.errors import AnsibleFilterError
from ansible_collections.tfserving.fleet.plugins.module_utils import tfserving_models_config as models_config
from ansible_collections.tfserving.fleet.plugins.module_utils.tfserving_inventory import (
    BATCHING_WRAPPED_INT,
    flag_value,
)
from ansible_collections.tfserving.fleet.plugins.module_utils.tfserving_models_config import ModelEntry, policy_of


def _entries(instance, labels=None):
    """The ModelEntry list of one planned instance; ``labels`` overrides the version labels."""
    out = []
    for model in instance["models"]:
        model_labels = model["labels"] if labels is None else (labels.get(model["name"]) or {})
        policy = policy_of(model["policy"], model.get("num_versions"), model.get("versions"))
        out.append(ModelEntry(model["name"], model["base_path"], model["platform"], policy,
                              {k: int(v) for k, v in model_labels.items()}))
    return out


def render_models_config(instance, labels=None):
    """models.config (ModelServerConfig) of one planned instance.

    ``labels`` optionally overrides the version labels ({model: {label: version}}), for the first
    step of a label move.
    """
    if not isinstance(instance, dict) or "models" not in instance:
        raise AnsibleFilterError("tfserving_models_config expects one instance of tfserving_plan")
    return models_config.render(_entries(instance, labels), instance["name"])


def render_batching_config(parameters, instance=""):
    """batching.config (BatchingParameters) from a mapping of parameters; stable field order."""
    params = parameters or {}
    lines = [models_config.header(instance, "tensorflow.serving.BatchingParameters").rstrip("\n")]
    for key in BATCHING_WRAPPED_INT:
        if key in params:
            lines.append(f"{key} {{ value: {params[key]} }}")
    if "thread_pool_name" in params:
        lines.append("thread_pool_name {{ value: {} }}".format(models_config.quote(params["thread_pool_name"])))
    for size in params.get("allowed_batch_sizes") or []:
        lines.append(f"allowed_batch_sizes: {size}")
    if "pad_variable_length_inputs" in params:
        lines.append("pad_variable_length_inputs: {}".format(flag_value(bool(params["pad_variable_length_inputs"]))))
    return "\n".join(lines) + "\n"


def render_monitoring_config(path="/monitoring/prometheus/metrics", instance=""):
    """monitoring.config (MonitoringConfig) that turns the Prometheus endpoint on."""
    return "{}prometheus_config {{\n  enable: true\n  path: {}\n}}\n".format(
        models_config.header(instance, "tensorflow.serving.MonitoringConfig"),
        models_config.quote(path),
    )


def config_labels(text):
    """{model: {label: version}} from a models.config this role rendered; {} for anything else."""
    if not isinstance(text, str) or not text.startswith(models_config.HEADER_MARK):
        return {}
    try:
        return models_config.labels_of(models_config.parse(text))
    except models_config.ConfigError:
        return {}


def parse_models_config(text):
    """{model name: {name, base_path, platform, policy, versions, num_versions, labels}}; {} for no text."""
    if not text or not str(text).strip():
        return {}
    try:
        entries = models_config.parse(str(text))
    except models_config.ConfigError as err:
        raise AnsibleFilterError(str(err)) from None
    return {
        entry.name: {
            "name": entry.name,
            "base_path": entry.base_path,
            "platform": entry.model_platform,
            "policy": entry.policy,
            "versions": entry.versions,
            "num_versions": entry.num_versions,
            "labels": dict(sorted(entry.version_labels.items())),
        }
        for entry in entries
    }


def label_steps(plan_, current=None, running=None, allow_new=True):
    """Instances whose label moves need two config writes, as TF Serving requires.

    TF Serving refuses to move an existing label to a version that is not AVAILABLE yet. When a label
    moves on a running server, the role first writes a config that serves the new version and keeps
    the labels where they are (plus the versions they point at), waits for the new versions, then
    writes the final config. ``current`` maps instance -> the models.config text on the host,
    ``running`` lists the instances whose container runs. Without
    --allow_version_labels_for_unavailable_models (``allow_new`` false) new labels wait for the
    second step too. Returns [{name, instance, wait}] where ``instance`` is the first-step plan to
    render and ``wait`` the versions to see AVAILABLE before the second step.
    """
    out = []
    running = set(running or [])
    for inst in plan_ or []:
        if inst.get("state") != "present" or inst["name"] not in running:
            continue
        old = config_labels((current or {}).get(inst["name"]))
        entries, wait = models_config.stage_labels(_entries(inst), old, allow_new=allow_new)
        if entries is None:
            continue
        staged = copy.deepcopy(inst)
        by_name = {entry.name: entry for entry in entries}
        for model in staged["models"]:
            entry = by_name[model["name"]]
            held = any(model["labels"].get(k) != v for k, v in entry.version_labels.items())
            model["labels"] = entry.version_labels
            if model["policy"] == "specific" and held:  # a label held back keeps its version served
                model["versions"] = entry.versions
        out.append({"name": inst["name"], "instance": staged, "wait": wait})
    return out


class FilterModule:
    """Filters that write and read the files TF Serving reads (protobuf text format, managed header,."""

    def filters(self):
        return {
            "tfserving_models_config": render_models_config,
            "tfserving_batching_config": render_batching_config,
            "tfserving_monitoring_config": render_monitoring_config,
            "tfserving_config_labels": config_labels,
            "tfserving_label_steps": label_steps,
            "tfserving_models_config_parse": parse_models_config,
        }
