"""Small real models for the tfserving-export tests, built with TensorFlow, Keras and ONNX in the test.

Imported only by tests marked ``tensorflow``.
"""

from __future__ import annotations

import os
import pathlib
import shutil
import stat

import export_imports  # noqa: F401  (the package, not the module of the same name)
import numpy as np

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("KERAS_BACKEND", "tensorflow")

import tensorflow as tf

v1 = tf.compat.v1


def frozen_graph(path: pathlib.Path, seed: int = 0) -> tuple[pathlib.Path, dict]:
    """A 3 -> 4 -> 2 network with variables, frozen into constants and written as a binary .pb.

    Returns the file and a reference: the original graph's outputs for a fixed batch, computed in
    the session that held the variables, before freezing.
    """
    rng = np.random.default_rng(seed)
    x_value = rng.standard_normal((5, 3)).astype(np.float32)
    graph = tf.Graph()
    with graph.as_default():
        x = v1.placeholder(tf.float32, [None, 3], name="input")
        w1 = v1.Variable(rng.standard_normal((3, 4)).astype(np.float32), name="dense/kernel")
        b1 = v1.Variable(rng.standard_normal(4).astype(np.float32), name="dense/bias")
        w2 = v1.Variable(rng.standard_normal((4, 2)).astype(np.float32), name="head/kernel")
        hidden = tf.nn.relu(tf.matmul(x, w1) + b1, name="dense/relu")
        logits = tf.identity(tf.matmul(hidden, w2), name="head/logits")
        tf.nn.softmax(logits, name="head/probs")
        with v1.Session(graph=graph) as session:
            session.run(v1.global_variables_initializer())
            logits_value, probs_value = session.run(["head/logits:0", "head/probs:0"], {x: x_value})
            frozen = v1.graph_util.convert_variables_to_constants(
                session, graph.as_graph_def(), ["head/logits", "head/probs"]
            )
    path.write_bytes(frozen.SerializeToString())
    return path, {"x": x_value, "logits": logits_value, "probs": probs_value}


def unfrozen_graph(path: pathlib.Path) -> pathlib.Path:
    graph = tf.Graph()
    with graph.as_default():
        x = v1.placeholder(tf.float32, [None, 2], name="input")
        w = v1.Variable(np.ones((2, 1), np.float32), name="w")
        tf.matmul(x, w, name="out")
    path.write_bytes(graph.as_graph_def().SerializeToString())
    return path


def keras_two_headed(seed: int = 0):
    """A Functional model: inputs 'features' (4) and 'extra' (2), outputs 'score' (1) and 'embed' (3)."""
    import keras

    keras.utils.set_random_seed(seed)
    features = keras.Input((4,), name="features")
    extra = keras.Input((2,), name="extra")
    joined = keras.layers.Concatenate()([features, extra])
    hidden = keras.layers.Dense(8, activation="tanh", name="hidden")(joined)
    score = keras.layers.Dense(1, activation="sigmoid", name="score")(hidden)
    embed = keras.layers.Dense(3, name="embed")(hidden)
    return keras.Model([features, extra], [score, embed])


def keras_sequential(seed: int = 0):
    import keras

    keras.utils.set_random_seed(seed)
    return keras.Sequential([keras.Input((3,)), keras.layers.Dense(5, activation="relu"),
                             keras.layers.Dense(2, name="logits")])


def onnx_conv_model(path: pathlib.Path, seed: int = 0) -> pathlib.Path:
    """Conv(2->4, 3x3) + Relu + GlobalAveragePool + Flatten -> 'features', Sigmoid -> 'probability'.

    Input 'pixels' is NCHW [N, 2, 6, 6] with a symbolic batch, as torch.onnx.export writes it.
    """
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(seed)
    weight = rng.standard_normal((4, 2, 3, 3)).astype(np.float32)
    bias = rng.standard_normal(4).astype(np.float32)
    nodes = [
        helper.make_node("Conv", ["pixels", "W", "B"], ["conv"], pads=[1, 1, 1, 1]),
        helper.make_node("Relu", ["conv"], ["relu"]),
        helper.make_node("GlobalAveragePool", ["relu"], ["pool"]),
        helper.make_node("Flatten", ["pool"], ["features"]),
        helper.make_node("Sigmoid", ["features"], ["probability"]),
    ]
    graph = helper.make_graph(
        nodes, "convnet",
        [helper.make_tensor_value_info("pixels", TensorProto.FLOAT, ["batch", 2, 6, 6])],
        [helper.make_tensor_value_info("features", TensorProto.FLOAT, ["batch", 4]),
         helper.make_tensor_value_info("probability", TensorProto.FLOAT, ["batch", 4])],
        [numpy_helper.from_array(weight, "W"), numpy_helper.from_array(bias, "B")],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    onnx.save(model, str(path))
    return path


def writable_copy(source: pathlib.Path, target: pathlib.Path) -> pathlib.Path:
    """Copy read-only test data so a test may damage the copy."""
    shutil.copytree(source, target)
    for root, dirs, files in os.walk(target):
        for name in dirs + files:
            item = pathlib.Path(root) / name
            item.chmod(item.stat().st_mode | stat.S_IWUSR)
    target.chmod(target.stat().st_mode | stat.S_IWUSR)
    return target


def tree(path: pathlib.Path) -> list[str]:
    """Every path under a directory, relative and sorted: 'nothing written' compares these."""
    if not path.exists():
        return []
    return sorted(str(p.relative_to(path)) for p in path.rglob("*"))
