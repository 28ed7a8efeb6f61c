"""TF Serving TEST DOUBLE: a stand-in server for tests. Never a production image.

`python -m tfserving_double [tensorflow_model_server flags]` serves real SavedModels with TensorFlow
behind TF Serving's REST and gRPC APIs. See README.md for what it matches and what it does not.
"""

__version__ = "0.1.0-test-double"
