#!/usr/bin/python
# Copyright: the tfserving-ansible contributors
# Apache License 2.0 (see LICENSE)

DOCUMENTATION = r"""
---
module: tfserving_export
short_description: Convert a frozen graph, Keras or ONNX model into a TF Serving model version
description:
  - Converts O(src) into a SavedModel with the C(serve) tag and the signature O(signature_name),
    and writes it into the model's base path O(base_path) as a numbered version directory, the
    only layout TensorFlow Serving loads.
  - Runs the C(tfserving_export) Python package (the C(tfserving-export) command) in-process. It
    needs TensorFlow, so run this module on the control node (C(delegate_to=localhost),
    C(run_once=true)) and copy the version to the hosts afterwards, for example with
    M(ansible.posix.synchronize).
  - The export is written to a hidden directory beside the versions (a non-numeric name TF Serving
    ignores), loaded with TensorFlow's session loader (the loader TF Serving uses), its predictions
    compared with the source model's on random inputs, and only then renamed into place. On any
    error nothing is written.
  - Idempotent. Every version it writes records the SHA-256 of the source and the conversion
    options in C(assets.extra/tfserving_export.json). Without O(version), nothing changes when the
    latest version already holds the same export; otherwise the next free number is used. With
    O(version), that version must be free or already hold the same export.
version_added: "0.1.0"
author:
  - tfserving-ansible maintainers (!UNKNOWN)
requirements:
  - tfserving_export, tensorflow (C(pip install 'tfserving-ansible[export]')) on the host the module runs on
  - onnx2tf, onnx, onnxruntime for O(format=onnx) (C(pip install 'tfserving-ansible[onnx]'))
options:
  format:
    description:
      - V(graphdef) is a frozen TensorFlow graph (binary C(.pb) or text C(.pbtxt)).
      - V(keras) is a Keras model file (C(.keras), or legacy C(.h5)).
      - V(onnx) is an ONNX model, for example written by C(torch.onnx.export).
    type: str
    required: true
    choices: [graphdef, keras, onnx]
  src:
    description: Path of the model file to convert, on the host the module runs on.
    type: path
    required: true
  base_path:
    description:
      - The model's directory in the model repository (TF Serving's C(base_path)). Created when
        missing. The version is written as C(base_path/<version>).
    type: path
    required: true
  version:
    description:
      - Version number to write. By default the next free number (latest + 1), or nothing when
        the latest version already holds this export.
    type: int
  signature_name:
    description: Name of the signature clients address (C(signature_name) in requests).
    type: str
    default: serving_default
  inputs:
    description:
      - Signature input names mapped to what they feed; keys are the new names, values the source names.
      - For V(graphdef), required; the source name is a tensor of the graph (C(input:0), or
        C(input) for output 0 of that operation).
      - For V(keras) and V(onnx), optional renames of the model's own input names; inputs not
        listed keep their names.
    type: dict
    default: {}
  outputs:
    description:
      - Signature output names mapped to the tensors or model outputs they return, as O(inputs).
      - Required for V(graphdef).
    type: dict
    default: {}
  channels_last:
    description:
      - V(onnx) only. Let onnx2tf transpose 3D-5D inputs to channels-last (NHWC). By default the
        ONNX layout (NCHW) is kept, so clients send the tensors the PyTorch model took.
    type: bool
    default: false
  verify:
    description:
      - Compare the exported signature's predictions with the source model's on random inputs
        before publishing, and fail on a difference. Models with string inputs are not compared.
    type: bool
    default: true
  warmup_requests:
    description:
      - A JSON file of sample inputs in TF Serving's REST predict format (an object with C(instances),
        the row format, or C(inputs), the columnar format; or a list of such objects) written into the version as
        C(assets.extra/tf_serving_warmup_requests), the TFRecord of C(PredictionLog) records TF Serving
        replays when it loads the version (C(--enable_model_warmup), on by default).
      - Each record is read back and run on the export before it is published. Needs the
        C(tensorflow-serving-api) package (extra C(warmup)). Part of the export's fingerprint.
    type: path
attributes:
  check_mode:
    support: full
    description:
      - Checks the source and the base path and reports the version directory that would be
        written (RV(path), RV(version)), without converting or writing anything.
  diff_mode:
    support: full
    description: Shows the version directories of O(base_path) before and after.
notes:
  - TensorFlow prints start-up messages on standard error; they do not affect the result.
  - Versions are immutable once written. To replace a model, export a new version and let the
    version policy (or a label) move to it.
  - The same conversion is available as the C(tfserving-export) command; see C(docs/export.md).
seealso:
  - name: Serving a TensorFlow model
    description: TF Serving's guide to SavedModels and version directories.
    link: https://github.com/tensorflow/serving/blob/master/tensorflow_serving/g3doc/serving_basic.md
"""

EXAMPLES = r"""
- name: Frozen ResNet graph is version N of resnet in the model repository
  tfserving.fleet.tfserving_export:
    format: graphdef
    src: /srv/build/resnet_frozen.pb
    base_path: /srv/model-repo/resnet
    inputs:
      image: input_tensor:0
    outputs:
      scores: softmax_tensor:0
  delegate_to: localhost
  run_once: true
  register: __resnet_export

- name: Keras churn model is version 7 of churn
  tfserving.fleet.tfserving_export:
    format: keras
    src: /srv/build/churn.keras
    base_path: /srv/model-repo/churn
    version: 7
    signature_name: predict
  delegate_to: localhost
  run_once: true

- name: PyTorch classifier (exported to ONNX) is the latest version of classifier
  tfserving.fleet.tfserving_export:
    format: onnx
    src: /srv/build/classifier.onnx
    base_path: /srv/model-repo/classifier
    inputs:
      image: pixels
  delegate_to: localhost
  run_once: true
"""

RETURN = r"""
version:
  description: The version number written, or already holding this export.
  returned: success
  type: int
  sample: 3
path:
  description: The version directory.
  returned: success
  type: str
  sample: /srv/model-repo/resnet/3
base_path:
  description: The model base path, absolute.
  returned: success
  type: str
  sample: /srv/model-repo/resnet
existing_versions:
  description: Version numbers present under O(base_path) before the run.
  returned: success
  type: list
  elements: int
  sample: [1, 2]
fingerprint:
  description: SHA-256 of the source file's digest and the conversion options; identifies the export.
  returned: success
  type: str
signature:
  description: The exported signature as TF Serving will expose it (not in check mode).
  returned: success and not check mode
  type: dict
  contains:
    name:
      description: Signature key.
      type: str
      sample: serving_default
    inputs:
      description: Input name to C(dtype), C(dtype_enum), C(shape) (-1 is any size), C(tensor).
      type: dict
      sample: {"image": {"dtype": "float32", "dtype_enum": "DT_FLOAT", "shape": [-1, 224, 224, 3]}}
    outputs:
      description: Output name to C(dtype), C(dtype_enum), C(shape), C(tensor).
      type: dict
    signatures:
      description: Every callable signature in the SavedModel.
      type: list
      elements: str
verification:
  description: Whether the export's predictions were compared with the source model, and the result.
  returned: changed and not check mode
  type: dict
  sample: {"verified": true, "max_abs_diff": 0.0, "detail": "predictions equal the source model ..."}
warmup:
  description: Where the warm-up requests were written and how many records they hold.
  returned: changed, not check mode, and O(warmup_requests) given
  type: dict
  sample: {"path": "/srv/model-repo/resnet/3/assets.extra/tf_serving_warmup_requests", "records": 2}
msg:
  description: What happened, or would happen in check mode.
  returned: always
  type: str
  sample: wrote version 3 to /srv/model-repo/resnet/3
"""

import importlib
import pathlib
import traceback

from ansible.module_utils.basic import AnsibleModule, missing_required_lib

# Imported lazily in main(): TensorFlow takes seconds to import and is absent on most hosts.
INSTALL_HINT = "pip install 'tfserving-ansible[export]'"


def _import(name):
    try:
        return importlib.import_module(name), None
    except ImportError:
        return None, traceback.format_exc()


def _versions_text(versions):
    return "".join(f"{v}/\n" for v in versions)


def run(module, api, quiet):
    params = module.params
    try:
        request = api.ExportRequest(
            format=params["format"],
            source=pathlib.Path(params["src"]),
            base_path=pathlib.Path(params["base_path"]),
            version=params["version"],
            signature_name=params["signature_name"],
            inputs=api.parse_mapping(params["inputs"], "input"),
            outputs=api.parse_mapping(params["outputs"], "output"),
            channels_last=params["channels_last"],
            verify=params["verify"],
            warmup_requests=pathlib.Path(params["warmup_requests"]) if params["warmup_requests"] else None,
        )
        # Converters print progress; the module's stdout must carry nothing but its JSON result.
        with quiet():
            result = api.export(request, check_mode=module.check_mode)
    except api.ExportError as exc:
        module.fail_json(msg=str(exc))
    except OSError as exc:
        module.fail_json(msg=f"file system error: {exc}: expected a readable src and a writable base_path. "
                             "Fix: check the paths, their permissions and the free space; nothing was "
                             "published", exception=traceback.format_exc())
    except Exception as exc:  # a converter failed in a way tfserving_export does not know yet
        module.fail_json(msg=f"the conversion failed unexpectedly: {type(exc).__name__}: {exc}. Expected "
                             "a clean export or a diagnosed error; nothing was published. Fix: run "
                             "tfserving-export by hand on the control node to see the full output",
                         exception=traceback.format_exc())
    result.pop("check_mode", None)
    if module._diff:
        before = result["existing_versions"]
        after = sorted(set(before) | {result["version"]}) if result["changed"] else before
        result["diff"] = {
            "before_header": f"{result['base_path']} (versions)",
            "after_header": f"{result['base_path']} (versions)",
            "before": _versions_text(before),
            "after": _versions_text(after),
        }
    return result


def main():
    module = AnsibleModule(
        argument_spec={
            "format": {"type": "str", "required": True, "choices": ["graphdef", "keras", "onnx"]},
            "src": {"type": "path", "required": True},
            "base_path": {"type": "path", "required": True},
            "version": {"type": "int"},
            "signature_name": {"type": "str", "default": "serving_default"},
            "inputs": {"type": "dict", "default": {}},
            "outputs": {"type": "dict", "default": {}},
            "channels_last": {"type": "bool", "default": False},
            "verify": {"type": "bool", "default": True},
            "warmup_requests": {"type": "path"},
        },
        supports_check_mode=True,
    )
    if module.params["format"] == "graphdef" and not (module.params["inputs"] and module.params["outputs"]):
        module.fail_json(msg="format=graphdef needs the tensors to feed and fetch: expected non-empty inputs "
                             "and outputs, for example inputs: {image: 'input:0'}, found "
                             f"inputs={module.params['inputs']!r} outputs={module.params['outputs']!r}. "
                             "Fix: list the graph's input and output tensors")

    api, error = _import("tfserving_export.api")
    helpers, _unused = _import("tfserving_export._tf")
    if api is None or helpers is None:
        module.fail_json(msg=missing_required_lib("tfserving_export", reason="to convert models")
                         + f" Install it with {INSTALL_HINT}.", exception=error)
    tensorflow, error = _import("tensorflow")
    if tensorflow is None:
        module.fail_json(msg=missing_required_lib("tensorflow", reason="to convert models")
                         + f" Install it with {INSTALL_HINT}.", exception=error)
    if module.params["format"] == "onnx":
        for package in ("onnx2tf", "onnx", "onnxruntime"):
            found, error = _import(package)
            if found is None:
                module.fail_json(msg=missing_required_lib(package, reason="to convert ONNX models")
                                 + " Install it with pip install 'tfserving-ansible[onnx]'.", exception=error)

    module.exit_json(**run(module, api, helpers.stdout_to_stderr))


if __name__ == "__main__":
    main()
