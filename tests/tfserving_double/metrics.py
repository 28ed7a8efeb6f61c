"""The Prometheus page TF Serving exports when a monitoring config enables it.

Metric names, labels and text layout follow `util/prometheus_exporter.cc` (names with '/' turned into
':', metrics sorted by name, "# TYPE" lines, histogram buckets cumulative with le="+Inf" last) and the
metrics TF Serving and TensorFlow register (`/tensorflow/serving/request_count`,
`/tensorflow/serving/request_latency`, `/tensorflow/cc/saved_model/load_attempt_count`, ...). The double
records a subset; see README.md.
"""

from __future__ import annotations

import re
import threading

# monitoring::Buckets::Exponential(10, 1.8, 33), in microseconds.
LATENCY_BUCKETS = [10 * 1.8**i for i in range(33)]


def _metric_name(name: str) -> str:
    out = re.sub(r"[^a-zA-Z0-9_]", ":", name)
    return "_" + out if re.match(r"^[0-9]", out) else out


def _label_value(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"')


def _format_number(value: float) -> str:
    """absl::StrCat(double): %g with six significant digits."""
    return f"{value:g}"


class Metrics:
    def __init__(self):
        self._lock = threading.Lock()
        self._counters: dict[str, dict[tuple, int]] = {}
        self._counter_labels: dict[str, tuple] = {}
        self._histograms: dict[str, dict[tuple, list]] = {}
        self._histogram_labels: dict[str, tuple] = {}
        self._declare_counter("/tensorflow/serving/request_count", ("model_name", "status"))
        self._declare_counter("/tensorflow/cc/saved_model/load_attempt_count", ("model_path", "status"))
        self._declare_counter("/tensorflow/cc/saved_model/load_latency", ("model_path",))
        self._declare_histogram("/tensorflow/serving/request_latency", ("model_name", "API", "entrypoint"))

    def _declare_counter(self, name, labels):
        self._counters[name] = {}
        self._counter_labels[name] = labels

    def _declare_histogram(self, name, labels):
        self._histograms[name] = {}
        self._histogram_labels[name] = labels

    def increment(self, name: str, labels: tuple, by: int = 1):
        with self._lock:
            cells = self._counters[name]
            cells[labels] = cells.get(labels, 0) + by

    def observe(self, name: str, labels: tuple, value: float):
        with self._lock:
            cells = self._histograms[name]
            cell = cells.setdefault(labels, [[0] * (len(LATENCY_BUCKETS) + 1), 0.0])
            index = next(
                (i for i, limit in enumerate(LATENCY_BUCKETS) if value < limit), len(LATENCY_BUCKETS)
            )
            cell[0][index] += 1
            cell[1] += value

    def record_request(
        self, model_name: str, api: str, entrypoint: str, status_code_name: str, seconds: float
    ):
        self.increment("/tensorflow/serving/request_count", (model_name, status_code_name))
        self.observe("/tensorflow/serving/request_latency", (model_name, api, entrypoint), seconds * 1e6)

    def record_load(self, path: str, ok: bool, seconds: float):
        self.increment("/tensorflow/cc/saved_model/load_attempt_count", (path, "success" if ok else "fail"))
        if ok:
            self.increment("/tensorflow/cc/saved_model/load_latency", (path,), int(seconds * 1e6))

    def page(self) -> str:
        lines: list[str] = []
        with self._lock:
            names = sorted(list(self._counters) + list(self._histograms))
            for name in names:
                prom = _metric_name(name)
                if name in self._counters:
                    label_names = self._counter_labels[name]
                    lines.append(f"# TYPE {prom} counter")
                    for labels, value in sorted(self._counters[name].items()):
                        pairs = ",".join(
                            f'{k}="{_label_value(v)}"' for k, v in zip(label_names, labels, strict=True)
                        )
                        lines.append(f"{prom}{{{pairs}}} {value}")
                    continue
                label_names = self._histogram_labels[name]
                lines.append(f"# TYPE {prom} histogram")
                for labels, (buckets, total) in sorted(self._histograms[name].items()):
                    pairs = ",".join(
                        f'{k}="{_label_value(v)}"' for k, v in zip(label_names, labels, strict=True)
                    )
                    prefix = f"{prom}_bucket{{{pairs},"
                    cumulative = 0
                    for i, count in enumerate(buckets):
                        cumulative += count
                        limit = _format_number(LATENCY_BUCKETS[i]) if i < len(LATENCY_BUCKETS) else "+Inf"
                        lines.append(f'{prefix}le="{limit}"}} {cumulative}')
                    lines.append(f"{prom}_sum{{{pairs}}} {_format_number(total)}")
                    lines.append(f"{prom}_count{{{pairs}}} {cumulative}")
        return "\n".join(lines) + "\n"
