"""tfserving-export: turn frozen graphs, Keras and ONNX models into servable SavedModels.

TF Serving loads only SavedModels in numbered version directories under a model's base path.
This package converts a model into that form and writes it into the base path atomically:

- :func:`tfserving_export.api.export` converts and publishes (used by the CLI and the Ansible
  module ``tfserving_export``);
- :func:`tfserving_export.savedmodel.inspect_savedmodel` and
  :func:`tfserving_export.savedmodel.validate_path` read what TF Serving will see.

TensorFlow is imported lazily, so ``tfserving-export --help`` works without it.
"""

__version__ = "0.1.0"
