"""Keras model (.keras or legacy .h5) -> SavedModel with the ``serve`` tag and a named signature.

Keras 3 writes SavedModels through ``keras.export.ExportArchive``. The signature takes the
model's inputs under their Keras names (or the names given) and returns a dict of named outputs,
so TF Serving answers ``{"predictions": {...}}`` with names a client can rely on instead of
``output_0``. ExportArchive also registers the first endpoint as ``serving_default`` when the
signature has another name, because requests that name no signature use that one.
"""

from __future__ import annotations

import os
import pathlib
from collections.abc import Callable

from tfserving_export import _tf
from tfserving_export.errors import ExportError

KERAS_SUFFIXES = (".keras", ".h5", ".hdf5")


def _keras():
    os.environ.setdefault("KERAS_BACKEND", "tensorflow")
    _tf.tensorflow("from-keras")
    keras = _tf.optional("keras", "export", "from-keras")
    if keras.backend.backend() != "tensorflow":
        raise ExportError(
            "Keras runs on the wrong backend for a SavedModel export",
            expected="KERAS_BACKEND=tensorflow",
            found=f"KERAS_BACKEND={keras.backend.backend()}",
            fix="unset KERAS_BACKEND or set it to tensorflow for tfserving-export",
        )
    return keras


def load_model(source: pathlib.Path):
    if source.suffix.lower() not in KERAS_SUFFIXES:
        raise ExportError(
            f"{source} is not a Keras model file",
            expected=f"a file ending in {', '.join(KERAS_SUFFIXES)}",
            found=f"suffix {source.suffix or '(none)'!r}",
            fix="save the model with model.save('model.keras') (or .h5) and pass that file",
        )
    keras = _keras()
    try:
        return keras.models.load_model(str(source), compile=False)
    except Exception as exc:  # Keras raises ValueError, OSError, TypeError... for unreadable models
        message = (str(exc).strip().splitlines() or [type(exc).__name__])[0][:300]
        fix = "check that the file is a complete Keras model saved with model.save()"
        if "custom" in message.lower() or "Could not locate" in message:
            fix = ("the model uses custom layers: export it from the code that defines them, "
                   "with model.export('path', format='tf_saved_model')")
        raise ExportError(
            f"Keras cannot load {source}",
            expected="a model saved with model.save() by Keras 2 or 3",
            found=f"{type(exc).__name__}: {message}",
            fix=fix,
        ) from exc


def _structure(model) -> tuple[list[str], dict | None, list[str]]:
    """(input names, input dict structure or None, output names) in call order."""
    try:
        inputs = list(model.inputs)
    except AttributeError:
        inputs = []
    if not inputs:
        raise ExportError(
            "the Keras model has no defined inputs",
            expected="a Functional or Sequential model with Input layers",
            found=f"a {type(model).__name__} whose inputs are only known when it is called (subclassed model)",
            fix="export it from its code with model.export('path', format='tf_saved_model'), "
                "then 'tfserving-export validate' the result",
        )
    try:
        declared_input = model.input
    except (AttributeError, ValueError):
        declared_input = None
    input_struct = declared_input if isinstance(declared_input, dict) else None
    input_names = list(input_struct) if input_struct else [t.name for t in inputs]
    try:
        declared_output = model.output
    except (AttributeError, ValueError):
        declared_output = None
    if isinstance(declared_output, dict):
        output_names = list(declared_output)
    elif getattr(model, "output_names", None):
        output_names = list(model.output_names)
    elif len(model.outputs) == 1:
        output_names = [model.layers[-1].name]
    else:
        output_names = [f"output_{i}" for i in range(len(model.outputs))]
    return input_names, input_struct, output_names


def rename(kind: str, model_names: list[str], mapping: list[tuple[str, str]]) -> list[str]:
    """Apply NEW=OLD pairs to the model's names; unmapped names stay as they are."""
    final = list(model_names)
    seen = set()
    for new, old in mapping:
        if old not in model_names:
            raise ExportError(
                f"{kind} {old!r} is not in the model",
                expected=f"one of the model's {kind}s: {', '.join(model_names)}",
                found=repr(old),
                fix=f"map {kind}s as NEW=OLD with OLD among the names above",
            )
        if old in seen:
            raise ExportError(f"{kind} {old!r} is mapped twice", expected="one new name per model " + kind,
                              found="two mappings", fix="drop one of them")
        seen.add(old)
        final[model_names.index(old)] = new
    return final


def _flatten_outputs(result, output_names: list[str]) -> list:
    if isinstance(result, dict):
        return [result[name] for name in output_names]
    if isinstance(result, list | tuple):
        return list(result)
    return [result]


def convert(source: pathlib.Path, export_dir: pathlib.Path, inputs: list[tuple[str, str]],
            outputs: list[tuple[str, str]], signature_name: str) -> Callable[[dict], dict]:
    keras = _keras()
    tf = _tf.tensorflow("from-keras")
    model = load_model(source)
    model_inputs, input_struct, model_outputs = _structure(model)
    in_names = rename("input", model_inputs, inputs)
    out_names = rename("output", model_outputs, outputs)
    if len(set(in_names)) != len(in_names) or len(set(out_names)) != len(out_names):
        raise ExportError(
            "signature names collide",
            expected="distinct input names and distinct output names",
            found=f"inputs {in_names}, outputs {out_names}",
            fix="choose unique new names",
        )
    if input_struct:
        tensors = [input_struct[name] for name in model_inputs]
    else:
        tensors = list(model.inputs)
    specs = [tf.TensorSpec(t.shape, t.dtype, name=new) for t, new in zip(tensors, in_names, strict=True)]

    def call(args) -> list:
        if input_struct:
            feed = dict(zip(model_inputs, args, strict=True))
        else:
            feed = args[0] if len(args) == 1 else list(args)
        return _flatten_outputs(model(feed, training=False), model_outputs)

    def serve(*args):
        results = call(args)
        if len(results) != len(out_names):
            raise ValueError(f"model returned {len(results)} outputs, expected {len(out_names)}")
        return dict(zip(out_names, results, strict=True))

    archive = keras.export.ExportArchive()
    archive.track(model)
    archive.add_endpoint(name=signature_name, fn=serve, input_signature=specs)
    with _tf.stdout_to_stderr():
        archive.write_out(str(export_dir), verbose=False)

    def reference(feeds: dict) -> dict:
        args = [tf.constant(feeds[name]) for name in in_names]
        return {name: value.numpy() for name, value in zip(out_names, call(args), strict=True)}

    return reference
