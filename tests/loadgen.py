#!/usr/bin/env python3
"""A bounded load generator for TF Serving's REST predict API (test and benchmark tool, stdlib only).

Threads send POST predict requests to every URL, each thread pausing `interval` seconds between
requests, until `stop()` is called, `duration` seconds have passed or `max_requests` requests were
sent, whichever comes first: it always stops by itself. A request counts as failed when it gets no
answer, an HTTP status other than 200, or (with `expected`) predictions that differ from the expected
ones. Only loopback and the private Docker ranges (172.16.0.0/12) are accepted as targets: this tool
exists to load the project's own test containers, nothing else.

    from loadgen import LoadGenerator
    with LoadGenerator(urls, {"instances": [1.0, 2.0, 5.0]}, expected=[2.5, 3.0, 4.5]) as load:
        ...                                  # the rollout under test
    print(load.result["failed"])

    .venv/bin/python tests/loadgen.py --duration 30 --max-requests 5000 --expect '[2.5, 3.0, 4.5]' \
        http://172.31.0.11:8501/v1/models/half_plus_two/labels/stable:predict

The command line prints the result as JSON and exits 1 when a request failed.
"""

from __future__ import annotations

import argparse
import collections
import ipaddress
import json
import signal
import sys
import threading
import time
import urllib.error
import urllib.parse
import urllib.request

ALLOWED = (ipaddress.ip_network("127.0.0.0/8"), ipaddress.ip_network("::1/128"),
           ipaddress.ip_network("172.16.0.0/12"))
MAX_DURATION = 1800.0
MAX_REQUESTS = 1_000_000


def check_target(url):
    """Refuse anything but loopback and the private Docker ranges."""
    host = urllib.parse.urlsplit(url).hostname or ""
    try:
        address = ipaddress.ip_address(host)
    except ValueError as err:
        raise ValueError(f"loadgen: {url}: the target must be an IP address (loopback or 172.16.0.0/12)") from err
    if not any(address in net for net in ALLOWED):
        raise ValueError(f"loadgen: {url}: only loopback and 172.16.0.0/12 (the test containers) are allowed")


def _close(actual, expected, tolerance):
    if isinstance(expected, list):
        return (isinstance(actual, list) and len(actual) == len(expected)
                and all(_close(a, e, tolerance) for a, e in zip(actual, expected, strict=True)))
    if isinstance(expected, (int, float)) and not isinstance(expected, bool):
        return isinstance(actual, (int, float)) and abs(actual - expected) <= tolerance
    return actual == expected


class LoadGenerator:
    def __init__(self, urls, payload, expected=None, threads_per_url=1, interval=0.02, duration=300.0,
                 max_requests=100_000, timeout=10.0, tolerance=1e-4):
        if not urls:
            raise ValueError("loadgen: no target URL")
        for url in urls:
            check_target(url)
        self.urls = list(urls)
        self.body = json.dumps(payload).encode()
        self.expected = expected
        self.threads_per_url = max(1, int(threads_per_url))
        self.interval = max(0.0, float(interval))
        self.duration = min(float(duration), MAX_DURATION)
        self.max_requests = min(int(max_requests), MAX_REQUESTS)
        self.timeout = float(timeout)
        self.tolerance = float(tolerance)
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._threads = []
        self._sent = 0
        self._per_url = {url: {"sent": 0, "failed": 0} for url in self.urls}
        self._errors = collections.Counter()
        self._failures = []
        self._latencies = []
        self._started = None
        self._ended = None
        self.stopped_by = None
        self.result = None

    # -- one request -----------------------------------------------------------------------------------
    def _one(self, url):
        request = urllib.request.Request(url, data=self.body, headers={"Content-Type": "application/json"})
        began = time.monotonic()
        try:
            with urllib.request.urlopen(request, timeout=self.timeout) as answer:
                text = answer.read()
                status = answer.status
        except urllib.error.HTTPError as err:
            return f"HTTP {err.code}: {err.read()[:200].decode(errors='replace').strip()}", began
        except (urllib.error.URLError, OSError, TimeoutError) as err:
            reason = getattr(err, "reason", err)
            return f"no answer: {type(reason).__name__}: {reason}", began
        if status != 200:
            return f"HTTP {status}", began
        if self.expected is not None:
            try:
                predictions = json.loads(text).get("predictions")
            except ValueError:
                return "answer is not JSON", began
            if not _close(predictions, self.expected, self.tolerance):
                return f"unexpected predictions {predictions}", began
        return None, began

    def _take(self):
        with self._lock:
            if self._stop.is_set():
                return False
            if self._sent >= self.max_requests:
                self.stopped_by = self.stopped_by or "max_requests"
                self._stop.set()
                return False
            if time.monotonic() - self._started >= self.duration:
                self.stopped_by = self.stopped_by or "duration"
                self._stop.set()
                return False
            self._sent += 1
            return True

    def _worker(self, url):
        while self._take():
            error, began = self._one(url)
            took = time.monotonic() - began
            with self._lock:
                self._per_url[url]["sent"] += 1
                self._latencies.append(took)
                if error:
                    self._per_url[url]["failed"] += 1
                    self._errors[" ".join(error.split())[:100]] += 1
                    if len(self._failures) < 20:
                        self._failures.append({"at": round(began - self._started, 3), "url": url, "error": error})
            self._stop.wait(self.interval)

    # -- control -------------------------------------------------------------------------------------
    def start(self):
        self._started = time.monotonic()
        for url in self.urls:
            for _ in range(self.threads_per_url):
                thread = threading.Thread(target=self._worker, args=(url,), daemon=True)
                thread.start()
                self._threads.append(thread)
        return self

    def stop(self):
        with self._lock:
            self.stopped_by = self.stopped_by or "stop"
        self._stop.set()
        for thread in self._threads:
            thread.join(self.timeout + 5)
        self._ended = time.monotonic()
        latencies = sorted(self._latencies)

        def pct(p):
            return round(latencies[min(len(latencies) - 1, int(p * len(latencies)))] * 1000, 2) if latencies else None

        sent = sum(v["sent"] for v in self._per_url.values())
        failed = sum(v["failed"] for v in self._per_url.values())
        self.result = {
            "sent": sent,
            "ok": sent - failed,
            "failed": failed,
            "duration_s": round(self._ended - self._started, 2),
            "requests_per_s": round(sent / max(self._ended - self._started, 1e-9), 1),
            "stopped_by": self.stopped_by,
            "latency_ms": {"p50": pct(0.50), "p95": pct(0.95), "p99": pct(0.99),
                           "max": round(latencies[-1] * 1000, 2) if latencies else None},
            "per_url": self._per_url,
            "errors": dict(self._errors),
            "first_failures": self._failures,
        }
        return self.result

    @property
    def running(self):
        return not self._stop.is_set()

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()
        return False


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("urls", nargs="+", help="predict URLs (loopback or 172.16.0.0/12 only)")
    parser.add_argument("--payload", default='{"instances": [1.0, 2.0, 5.0]}', help="JSON request body")
    parser.add_argument("--expect", help="JSON predictions every answer must match")
    parser.add_argument("--threads", type=int, default=1, help="threads per URL")
    parser.add_argument("--interval", type=float, default=0.02, help="seconds between a thread's requests")
    parser.add_argument("--duration", type=float, default=60.0, help=f"seconds at most (cap {MAX_DURATION:.0f})")
    parser.add_argument("--max-requests", type=int, default=10_000, help="requests at most, all threads")
    parser.add_argument("--timeout", type=float, default=10.0, help="seconds per request")
    args = parser.parse_args(argv)
    try:
        load = LoadGenerator(args.urls, json.loads(args.payload),
                             expected=json.loads(args.expect) if args.expect else None,
                             threads_per_url=args.threads, interval=args.interval, duration=args.duration,
                             max_requests=args.max_requests, timeout=args.timeout)
    except ValueError as err:
        print(err, file=sys.stderr)
        return 2
    # SIGTERM (the caller is done) ends the run like Ctrl-C: the result is still printed.
    signal.signal(signal.SIGTERM, lambda *_: load._stop.set())
    load.start()
    try:
        while load.running:
            time.sleep(0.2)
    except KeyboardInterrupt:
        pass
    result = load.stop()
    print(json.dumps(result, indent=1))
    return 1 if result["failed"] else 0


if __name__ == "__main__":
    sys.exit(main())
