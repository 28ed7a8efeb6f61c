"""A loaded SavedModel version, executed by TensorFlow the way TF Serving executes it.

TF Serving loads a SavedModel with the C++ loader and runs its signatures with Session::Run, feeding
and fetching the tensor names the SignatureDef lists (no static shape check on the feeds). The double
does the same with TensorFlow's v1 loader and a callable built from CallableOptions, so a TF1 model whose
signature says [-1, 1] still accepts [3] exactly as the real server does. Load failures carry the C++
loader's messages (tensorflow/cc/saved_model/reader.cc, loader.cc).
"""

from __future__ import annotations

import logging
import os
import threading
import time

from .errors import Code, TFError, internal, not_found

LOG = logging.getLogger("tfserving_double")

_tf = None


def tensorflow():
    """Import TensorFlow once, quietly (its Python deprecation chatter is not TF Serving's log)."""
    global _tf
    if _tf is None:
        os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
        import tensorflow as tf

        tf.get_logger().setLevel(logging.ERROR)
        _tf = tf
    return _tf


def from_op_error(err) -> TFError:
    return TFError(Code(err.error_code), err.message)


def read_saved_model_proto(export_dir: str):
    """reader.cc ReadSavedModel(): saved_model.pb, else saved_model.pbtxt, else NOT_FOUND."""
    from google.protobuf import text_format
    from tensorflow.core.protobuf import saved_model_pb2

    proto = saved_model_pb2.SavedModel()
    pb_path = os.path.join(export_dir, "saved_model.pb")
    pbtxt_path = os.path.join(export_dir, "saved_model.pbtxt")
    try:
        if os.path.exists(pb_path):
            with open(pb_path, "rb") as handle:
                proto.ParseFromString(handle.read())
            return proto
        if os.path.exists(pbtxt_path):
            with open(pbtxt_path, encoding="utf-8") as handle:
                text_format.Parse(handle.read(), proto)
            return proto
    except Exception as err:  # a truncated or foreign file
        raise TFError(Code.DATA_LOSS, f"Can't parse {pb_path} as binary proto") from err
    raise not_found(
        "Could not find SavedModel .pb or .pbtxt at supplied export directory path: ",
        export_dir,
        ". Check that the directory exists and that you have the right permissions for accessing it.",
    )


def find_meta_graph(saved_model, tags: list[str]):
    """loader.cc FindMetaGraphDefToLoad(): the meta graph whose tag set equals the requested one."""
    wanted = set(tags)
    for meta_graph in saved_model.meta_graphs:
        if set(meta_graph.meta_info_def.tags) == wanted:
            return meta_graph
    listed = "{ " + "".join(f"{tag} " for tag in tags) + "}"
    raise not_found(
        "Could not find meta graph def matching supplied tags: ",
        listed,
        ". To inspect available tag-sets in the SavedModel, please use the SavedModel CLI: `saved_model_cli`",
    )


# Test extension, not TF Serving: a version holding this file (a number of milliseconds) makes its first
# Session::Run after the load cost that much more, as lazy initialisation (graph optimisation, XLA, GPU
# kernels) does on a real server. Warm-up at load pays it, so clients of a warmed-up version do not.
COLD_START_FILE = os.path.join("assets.extra", "tfserving_double_cold_start_ms")


def cold_start_seconds(export_dir: str) -> float:
    try:
        with open(os.path.join(export_dir, COLD_START_FILE), encoding="utf-8") as handle:
            return max(0.0, float(handle.read().strip())) / 1000.0
    except (OSError, ValueError):
        return 0.0


class Servable:
    """One version of one model: a TensorFlow session holding the SavedModel's graph."""

    def __init__(self, name: str, version: int, path: str, session, meta_graph, cold_start: float = 0.0):
        self.name = name
        self.version = version
        self.path = path
        self.session = session
        self.meta_graph = meta_graph
        self._callables: dict = {}
        self._lock = threading.Lock()
        self._cold_start = cold_start
        self._cold_lock = threading.Lock()

    @property
    def signature_defs(self):
        return self.meta_graph.signature_def

    def run(self, feeds: dict, fetches: list[str]) -> list:
        """Session::Run with tensor names, as TF Serving's predictor does."""
        from tensorflow.core.protobuf import config_pb2

        tf = tensorflow()
        if self._cold_start:
            with self._cold_lock:  # the first run pays the start-up cost; concurrent first runs wait for it
                if self._cold_start:
                    time.sleep(self._cold_start)
                    self._cold_start = 0.0
        feed_names = tuple(feeds)
        key = (feed_names, tuple(fetches))
        with self._lock:
            runner = self._callables.get(key)
            if runner is None:
                options = config_pb2.CallableOptions(feed=list(feed_names), fetch=list(fetches))
                try:
                    runner = self.session._make_callable_from_options(options)
                except tf.errors.OpError as err:
                    raise from_op_error(err) from None
                except (KeyError, ValueError) as err:
                    raise internal(str(err)) from None
                self._callables[key] = runner
        try:
            return list(runner(*[feeds[name] for name in feed_names]))
        except tf.errors.OpError as err:
            raise from_op_error(err) from None
        except (TypeError, ValueError) as err:
            raise TFError(Code.INVALID_ARGUMENT, str(err)) from None

    def close(self):
        with self._lock:
            self._callables.clear()
            self.session.close()


def load(
    name: str, version: int, path: str, tags: list[str], intra_op: int = 0, inter_op: int = 0
) -> Servable:
    """Load one SavedModel version, raising TFError with the C++ loader's message on failure."""
    saved_model = read_saved_model_proto(path)
    meta_graph = find_meta_graph(saved_model, tags)
    tf = tensorflow()
    config = tf.compat.v1.ConfigProto(
        intra_op_parallelism_threads=intra_op,
        inter_op_parallelism_threads=inter_op,
        allow_soft_placement=True,
    )
    graph = tf.Graph()
    session = tf.compat.v1.Session(graph=graph, config=config)
    try:
        with graph.as_default():
            tf.compat.v1.saved_model.loader.load(session, tags, path)
    except tf.errors.OpError as err:
        session.close()
        raise from_op_error(err) from None
    except Exception as err:
        session.close()
        raise internal(f"Failed to load SavedModel at {path}: {err}") from None
    return Servable(name, version, path, session, meta_graph, cold_start_seconds(path))
