#!/bin/bash
# The entrypoint of tensorflow/serving's image, for the TF Serving TEST DOUBLE: container arguments are
# appended, so --model_config_file=... overrides the single-model flags. (exec: signals reach the server.)
exec tensorflow_model_server --port=8500 --rest_api_port=8501 \
  --model_name="${MODEL_NAME}" --model_base_path="${MODEL_BASE_PATH}/${MODEL_NAME}" "$@"
