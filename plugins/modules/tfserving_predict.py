#!/usr/bin/python
# Copyright: the tfserving-ansible authors
# Apache License 2.0

DOCUMENTATION = r"""
---
module: tfserving_predict
short_description: Send a prediction to TensorFlow Serving and check the answer
description:
  - Sends one C(predict) request to a TF Serving REST port, in the row format (O(instances)) or
    the columnar format (O(inputs)), to a model by name and optionally a version or a label and
    a signature.
  - Compares the answer (C(predictions) for the row format, C(outputs) for the columnar format)
    with O(expected), number by number within a tolerance; lists and objects must have the same
    shape and keys.
  - Returns the outputs and the request latency. Fails with the server's own error message when
    the server refuses the request.
  - Read-only on the server; never reports C(changed). Does not wait for the model; run
    M(tfserving.fleet.tfserving_model_status) first.
version_added: "0.1.0"
author:
  - tfserving-ansible maintainers (!UNKNOWN)
extends_documentation_fragment:
  - tfserving.fleet.tfserving_server
  - tfserving.fleet.tfserving_rest
  - tfserving.fleet.tfserving_rest.only
options:
  model:
    description: Model name, as in models.config.
    type: str
    required: true
  version:
    description: Ask this version (C(/versions/N)). Default is the newest AVAILABLE version.
    type: int
  label:
    description: Ask the version this label points at (C(/labels/L)).
    type: str
  signature_name:
    description: Signature to run; TF Serving's default is C(serving_default).
    type: str
  instances:
    description: Row format input, one element per example; sent as the C(instances) key.
    type: raw
  inputs:
    description: Columnar format input, a list or an object of named inputs; sent as the C(inputs) key.
    type: raw
  expected:
    description:
      - Expected C(predictions) (row format) or C(outputs) (columnar format). Numbers match within
        O(tolerance) + O(relative_tolerance) * |expected|; strings, booleans and nulls must be
        equal; lists must have the same length and objects the same keys.
      - Without it the module only proves that the model answers.
    type: raw
  tolerance:
    description: Absolute tolerance for numbers.
    type: float
    default: 0.000001
  relative_tolerance:
    description: Relative tolerance for numbers, a fraction of the expected value.
    type: float
    default: 0
  timeout:
    description: Seconds the request may take.
    type: float
    default: 30
  latency_budget_ms:
    description:
      - Fail when the answer took longer than this many milliseconds (measured as RV(latency_ms)), even
        when it is correct. Sent as the first request to a freshly loaded version, this catches a
        version that is loaded but cold (no warm-up requests, or warm-up off).
    type: float
attributes:
  check_mode:
    support: full
    description: A prediction changes nothing on the server; it runs the same in check mode.
  diff_mode:
    support: none
    description: Changes nothing, so there is nothing to diff.
notes:
  - Uses Ansible's own URL helpers; the managed host needs nothing but Python.
seealso:
  - module: tfserving.fleet.tfserving_model_status
"""

EXAMPLES = r"""
- name: half_plus_two answers 0.5 * x + 2
  tfserving.fleet.tfserving_predict:
    rest_port: 8501
    model: half_plus_two
    instances: [1.0, 2.0, 5.0]
    expected: [2.5, 3.0, 4.5]

- name: The canary answers through its label, with a named signature (columnar format)
  tfserving.fleet.tfserving_predict:
    rest_port: 8501
    model: half_plus_two
    label: canary
    signature_name: serving_default
    inputs: {x: [1.0, 2.0, 5.0]}
    expected: [2.5, 3.0, 4.5]
    tolerance: 0.001
  register: __tfserving_canary

- name: Latency of the canary is printed
  ansible.builtin.debug:
    msg: "{{ __tfserving_canary.latency_ms }} ms"

- name: The first prediction of a freshly loaded version is fast (it was warmed up at load)
  tfserving.fleet.tfserving_predict:
    rest_port: 8501
    model: half_plus_two
    version: 125
    instances: [1.0]
    latency_budget_ms: 200
"""

RETURN = r"""
outputs:
  description: C(predictions) (row format) or C(outputs) (columnar format) from the answer.
  returned: success, and on a mismatch
  type: raw
  sample: [2.5, 3.0, 4.5]
format:
  description: C(row) or C(columnar).
  returned: always
  type: str
latency_ms:
  description: Milliseconds between sending the request and reading the whole answer.
  returned: when the server answered
  type: float
  sample: 3.2
url:
  description: The URL the request went to.
  returned: always
  type: str
  sample: http://127.0.0.1:8501/v1/models/half_plus_two/labels/canary:predict
over_budget:
  description: Whether the answer took longer than O(latency_budget_ms).
  returned: when O(latency_budget_ms) is set and the server answered
  type: bool
  sample: false
mismatches:
  description: Where the answer differs from O(expected) (at most 20 entries).
  returned: when the answer differs
  type: list
  elements: dict
  sample: [{path: "[1]", expected: 3.5, actual: 3.0}]
"""

import math

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.tfserving.fleet.plugins.module_utils.tfserving_common import (
    REST_CONNECTION_SPEC,
    TFServingError,
)
from ansible_collections.tfserving.fleet.plugins.module_utils.tfserving_rest import RestClient, model_path

MAX_MISMATCHES = 20


def _is_number(value):
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def compare(expected, actual, tolerance, relative, path="", found=None):
    """Mismatches between EXPECTED and ACTUAL as dicts {path, expected, actual, why}."""
    found = [] if found is None else found
    if len(found) >= MAX_MISMATCHES:
        return found
    where = path or "(top)"
    if _is_number(expected) and _is_number(actual):
        if math.isnan(expected) and math.isnan(actual):
            return found
        if not abs(actual - expected) <= tolerance + relative * abs(expected):
            found.append({"path": where, "expected": expected, "actual": actual,
                          "why": f"differs by {abs(actual - expected):.6g}"})
    elif isinstance(expected, list) and isinstance(actual, list):
        if len(expected) != len(actual):
            found.append({"path": where, "expected": f"{len(expected)} elements",
                          "actual": f"{len(actual)} elements", "why": "length differs"})
            return found
        for index, exp_item in enumerate(expected):
            compare(exp_item, actual[index], tolerance, relative, f"{path}[{index}]", found)
    elif isinstance(expected, dict) and isinstance(actual, dict):
        if set(expected) != set(actual):
            found.append({"path": where, "expected": sorted(expected), "actual": sorted(actual),
                          "why": "keys differ"})
            return found
        for key in sorted(expected):
            compare(expected[key], actual[key], tolerance, relative, f"{path}.{key}" if path else key, found)
    elif type(expected) is not type(actual) and not (_is_number(expected) and _is_number(actual)):
        found.append({"path": where, "expected": expected, "actual": actual,
                      "why": f"expected {type(expected).__name__}, got {type(actual).__name__}"})
    elif expected != actual:
        found.append({"path": where, "expected": expected, "actual": actual, "why": "not equal"})
    return found


def main():
    module = AnsibleModule(
        argument_spec=dict(
            **REST_CONNECTION_SPEC,
            model=dict(type="str", required=True),
            version=dict(type="int"),
            label=dict(type="str"),
            signature_name=dict(type="str"),
            instances=dict(type="raw"),
            inputs=dict(type="raw"),
            expected=dict(type="raw"),
            tolerance=dict(type="float", default=1e-6),
            relative_tolerance=dict(type="float", default=0.0),
            timeout=dict(type="float", default=30),
            latency_budget_ms=dict(type="float"),
        ),
        mutually_exclusive=[("version", "label"), ("instances", "inputs")],
        required_one_of=[("instances", "inputs")],
        supports_check_mode=True,
    )
    p = module.params
    row = p["instances"] is not None
    body = {"instances": p["instances"]} if row else {"inputs": p["inputs"]}
    if p["signature_name"]:
        body["signature_name"] = p["signature_name"]
    problems = []
    if row and not isinstance(p["instances"], list):
        got = type(p["instances"]).__name__
        problems.append(f"instances must be a list (one element per example), got {got}")
    if not row and not isinstance(p["inputs"], (list, dict)):
        got = type(p["inputs"]).__name__
        problems.append(f"inputs must be a list or a mapping of input names, got {got}")
    if p["tolerance"] < 0 or p["relative_tolerance"] < 0:
        problems.append("tolerance and relative_tolerance must be >= 0")
    if p["latency_budget_ms"] is not None and p["latency_budget_ms"] <= 0:
        problems.append(f"latency_budget_ms must be > 0, got {p['latency_budget_ms']}")
    if p["timeout"] <= 0:
        problems.append(f"timeout must be > 0, got {p['timeout']}")
    if not p["model"]:
        problems.append("model must not be empty")
    if problems:
        module.fail_json(msg="Invalid options: " + "; ".join(problems) + ". Fix them in the task.")

    client = RestClient(p["host"], p["rest_port"], scheme=p["scheme"], timeout=p["timeout"],
                        validate_certs=p["validate_certs"], use_proxy=p["use_proxy"], ca_path=p["ca_path"])
    url = client.base_url + model_path(p["model"], p["version"], p["label"]) + ":predict"
    result = dict(changed=False, url=url, format="row" if row else "columnar")
    try:
        answer, seconds = client.predict(p["model"], body, version=p["version"], label=p["label"])
    except TFServingError as err:
        result["msg"] = f"Prediction failed: {err.message}"
        module.fail_json(**result)
    result["latency_ms"] = round(seconds * 1000.0, 3)
    key = "predictions" if row else "outputs"
    if key not in answer:
        result["msg"] = (f"{url} answered without {key!r} (keys: {', '.join(sorted(answer)) or 'none'}); "
                         f"expected TF Serving's {result['format']}-format predict answer.")
        module.fail_json(**result)
    result["outputs"] = answer[key]
    if p["expected"] is not None:
        mismatches = compare(p["expected"], answer[key], p["tolerance"], p["relative_tolerance"])
        if mismatches:
            first = "; ".join(f"at {m['path']}: expected {m['expected']}, got {m['actual']} ({m['why']})"
                              for m in mismatches[:3])
            more = f" and {len(mismatches) - 3} more" if len(mismatches) > 3 else ""
            result["mismatches"] = mismatches
            result["msg"] = (
                f"Model {p['model']} answered {answer[key]}, which differs from the expected {p['expected']} "
                f"(tolerance {p['tolerance']}, relative {p['relative_tolerance']}): {first}{more}."
            )
            module.fail_json(**result)
        result["msg"] = f"Model {p['model']} answered as expected in {result['latency_ms']} ms"
    else:
        result["msg"] = f"Model {p['model']} answered in {result['latency_ms']} ms"
    budget = p["latency_budget_ms"]
    if budget is not None:
        result["over_budget"] = result["latency_ms"] > budget
        if result["over_budget"]:
            result["msg"] = (
                f"Model {p['model']} answered {url} in {result['latency_ms']} ms, over its budget of {budget:g} ms "
                "(expected at most the budget; a version without warm-up requests, or with warm-up off, pays "
                "its lazy initialisation in its first requests). Fix: export the version with warm-up requests "
                "(tfserving-export --warmup-requests) or raise the budget."
            )
            module.fail_json(**result)
        result["msg"] += f", within its budget of {budget:g} ms"
    module.exit_json(**result)


if __name__ == "__main__":
    main()
