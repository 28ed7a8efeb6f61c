"""The serving core: which versions exist, which load, which serve, and what the status API reports.

A compact re-implementation of TF Serving's pipeline, component by component:
  FileSystemStoragePathSource (sources/storage_path/file_system_storage_path_source.cc)
      polls each base path, picks versions by policy (latest N / all / specific), emits aspired versions;
  AspiredVersionsManager + AvailabilityPreservingPolicy (core/aspired_versions_manager.cc,
      core/availability_preserving_policy.cc) loads the highest new aspired version first and unloads
      an un-aspired one only when an aspired version serves (or nothing is aspired); loads retry
      max_num_load_retries times, then the version ends in END with the load error;
  ServableStateMonitor (core/servable_state_monitor.cc) keeps the last state of every version ever seen,
      END included, which is what GetModelStatus reports;
  ServerCore (model_servers/server_core.cc): ReloadConfig with its checks, version labels with the
      availability rule, handle lookup by name / version / label.
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import copy
import dataclasses
import logging
import os
import re
import threading
import time

from . import config as cfg
from .errors import TFError, failed_precondition, invalid_argument, not_found, unavailable, unknown

LOG = logging.getLogger("tfserving_double")

# ModelVersionStatus.State (apis/get_model_status.proto).
START, LOADING, AVAILABLE, UNLOADING, END = 10, 20, 30, 40, 50
STATE_NAMES = {START: "START", LOADING: "LOADING", AVAILABLE: "AVAILABLE", UNLOADING: "UNLOADING", END: "END"}


def servable_id(name: str, version: int) -> str:
    """ServableId::DebugString()."""
    return f"{{name: {name} version: {version}}}"


# ----------------------------------------------------------------------------------------------------


@dataclasses.dataclass
class StateEvent:
    seq: int
    name: str
    version: int
    state: int
    health: TFError | None


class ServableStateMonitor:
    """Last state per (model, version), plus the ordered event stream that waits look at."""

    def __init__(self):
        self._cond = threading.Condition()
        self._states: dict[str, dict[int, StateEvent]] = {}
        self._events: list[StateEvent] = []
        self._seq = 0

    def publish(self, name: str, version: int, state: int, health: TFError | None = None):
        with self._cond:
            self._seq += 1
            event = StateEvent(self._seq, name, version, state, health)
            self._states.setdefault(name, {})[version] = event
            self._events.append(event)
            self._cond.notify_all()

    def sequence(self) -> int:
        with self._cond:
            return self._seq

    def version_states(self, name: str) -> list[StateEvent]:
        """GetVersionStates(): every version ever seen, highest first."""
        with self._cond:
            versions = self._states.get(name, {})
            return [versions[v] for v in sorted(versions, reverse=True)]

    def get_state(self, name: str, version: int) -> StateEvent | None:
        with self._cond:
            return self._states.get(name, {}).get(version)

    def wait_until_settled(self, names, since: int, stop: threading.Event | None = None) -> dict:
        """WaitUntilServablesReachState(Latest(name)..., kAvailable): per model, the first version that
        reached AVAILABLE or END after event `since`. Blocks for as long as TF Serving does (forever
        if a model never gets a version) unless `stop` is set."""
        pending = set(names)
        reached: dict[str, StateEvent] = {}
        with self._cond:
            while pending:
                for event in self._events:
                    if event.seq > since and event.name in pending and event.state in (AVAILABLE, END):
                        reached[event.name] = event
                        pending.discard(event.name)
                if pending:
                    if stop is not None and stop.is_set():
                        raise unavailable("Server is shutting down")
                    self._cond.wait(timeout=0.5)
        return reached


# ----------------------------------------------------------------------------------------------------


class _Handle:
    """A reference to a serving version; unloading waits until every handle is released (quiescing)."""

    def __init__(self, harness):
        self.harness = harness
        self.servable = harness.servable

    def release(self):
        self.harness.release()


class Harness:
    """LoaderHarness: one version's lifecycle inside the manager."""

    NEW, LOADING, READY, UNLOADING, DISABLED, ERROR = (
        "new",
        "loading",
        "ready",
        "unloading",
        "disabled",
        "error",
    )

    def __init__(self, name: str, version: int, path: str):
        self.name = name
        self.version = version
        self.path = path
        self.state = Harness.NEW
        self.aspired = True
        self.servable = None
        self.error: TFError | None = None
        self.cancel = threading.Event()
        self._refs = 0
        self._refs_cond = threading.Condition()

    def acquire(self) -> _Handle:
        with self._refs_cond:
            self._refs += 1
        return _Handle(self)

    def release(self):
        with self._refs_cond:
            self._refs -= 1
            self._refs_cond.notify_all()

    def wait_quiesced(self):
        with self._refs_cond:
            while self._refs > 0:
                self._refs_cond.wait()


@dataclasses.dataclass
class ManagerOptions:
    max_num_load_retries: int = 5
    load_retry_interval_seconds: float = 60.0
    load_threads: int = 2
    manage_interval_seconds: float = 0.05


def next_action(harnesses, specific_versions=frozenset()):
    """AvailabilityPreservingPolicy::GetNextAction() over one model's versions."""
    has_aspired = any(h.aspired for h in harnesses)
    has_aspired_serving = any(h.aspired and h.state == Harness.READY for h in harnesses)
    unaspired_serving = [h for h in harnesses if not h.aspired and h.state == Harness.READY]
    if not has_aspired or has_aspired_serving or len(unaspired_serving) > 1:
        if unaspired_serving:
            lowest = min(unaspired_serving, key=lambda h: h.version)
            if lowest.version not in specific_versions:
                return ("unload", lowest)
    new_aspired = [h for h in harnesses if h.aspired and h.state == Harness.NEW]
    if new_aspired:
        return ("load", max(new_aspired, key=lambda h: h.version))
    return None


class AspiredVersionsManager:
    def __init__(self, monitor: ServableStateMonitor, loader, options: ManagerOptions, metrics=None):
        self._monitor = monitor
        self._loader = loader  # loader(name, version, path) -> servable (raises TFError)
        self._options = options
        self._metrics = metrics
        self._lock = threading.RLock()
        self._models: dict[str, dict[int, Harness]] = {}
        self._specific: dict[str, frozenset] = {}
        self._in_flight: set[str] = set()
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._pool = concurrent.futures.ThreadPoolExecutor(
            max(1, options.load_threads), thread_name_prefix="tfs_double_load"
        )
        self._thread = threading.Thread(target=self._run, name="tfs_double_manager", daemon=True)
        self._thread.start()

    # -- fed by the source ---------------------------------------------------------------------------
    def set_aspired_versions(self, name: str, versions: dict[int, str]):
        with self._lock:
            harnesses = self._models.setdefault(name, {})
            for version, harness in list(harnesses.items()):
                aspired = version in versions
                if harness.aspired and not aspired:
                    LOG.info("Un-aspiring servable version %s", servable_id(name, version))
                harness.aspired = aspired
                if not aspired and harness.state == Harness.LOADING:
                    harness.cancel.set()
            for version, path in sorted(versions.items()):
                harness = harnesses.get(version)
                if harness is not None and harness.state == Harness.DISABLED:
                    del harnesses[version]  # fully unloaded earlier: a re-aspired version loads afresh
                    harness = None
                if harness is None:
                    harness = Harness(name, version, path)
                    harnesses[version] = harness
                    self._monitor.publish(name, version, START)
        self._wake.set()

    def set_specific_versions(self, specific: dict[str, frozenset]):
        with self._lock:
            self._specific = dict(specific)

    # -- used by request handlers --------------------------------------------------------------------
    @contextlib.contextmanager
    def handle(self, name: str, version: int | None):
        with self._lock:
            ready = {v: h for v, h in self._models.get(name, {}).items() if h.state == Harness.READY}
            chosen = ready.get(version) if version is not None else (ready[max(ready)] if ready else None)
            if chosen is None:
                request = f"Specific({name}, {version})" if version is not None else f"Latest({name})"
                raise not_found("Servable not found for request: ", request)
            handle = chosen.acquire()
        try:
            yield handle.servable
        finally:
            handle.release()

    # -- the manager's work loop -----------------------------------------------------------------------
    def _run(self):
        while not self._stop.is_set():
            self._wake.wait(self._options.manage_interval_seconds)
            self._wake.clear()
            try:
                self.manage_once()
            except Exception:  # keep managing other models whatever one of them does
                LOG.exception("manager loop error")

    def manage_once(self):
        with self._lock:
            for name, harnesses in self._models.items():
                # FlushServables(): drop versions that never loaded, failed or finished unloading and
                # are no longer aspired (the monitor keeps their last state).
                for version in [
                    v
                    for v, h in harnesses.items()
                    if not h.aspired and h.state in (Harness.NEW, Harness.DISABLED, Harness.ERROR)
                ]:
                    del harnesses[version]
                if name in self._in_flight:
                    continue
                action = next_action(list(harnesses.values()), self._specific.get(name, frozenset()))
                if action is None:
                    continue
                kind, harness = action
                self._in_flight.add(name)
                if kind == "load":
                    harness.state = Harness.LOADING
                    self._pool.submit(self._load, harness)
                else:
                    harness.state = Harness.UNLOADING
                    self._pool.submit(self._unload, harness)

    def _finish(self, name: str):
        with self._lock:
            self._in_flight.discard(name)
        self._wake.set()

    def _load(self, harness: Harness):
        name, version = harness.name, harness.version
        try:
            LOG.info("Approving load for servable version %s", servable_id(name, version))
            self._monitor.publish(name, version, LOADING)
            attempts = 1 + max(0, self._options.max_num_load_retries)
            error = None
            for attempt in range(attempts):
                if attempt:
                    LOG.info(
                        "Retrying load on servable version %s retry: %d", servable_id(name, version), attempt
                    )
                LOG.info("Loading servable version %s", servable_id(name, version))
                started = time.monotonic()
                try:
                    servable = self._loader(name, version, harness.path)
                    if self._metrics is not None:
                        self._metrics.record_load(harness.path, True, time.monotonic() - started)
                    error = None
                    break
                except TFError as err:
                    error = err
                    if self._metrics is not None:
                        self._metrics.record_load(harness.path, False, time.monotonic() - started)
                    LOG.error("Loading servable: %s failed: %s", servable_id(name, version), err)
                if attempt + 1 < attempts:
                    interval = max(0.0, self._options.load_retry_interval_seconds)
                    if harness.cancel.wait(interval) or not harness.aspired:
                        LOG.info(
                            "Load retries for servable %s cancelled: no longer aspired",
                            servable_id(name, version),
                        )
                        break
            with self._lock:
                if error is None:
                    harness.servable = servable
                    harness.state = Harness.READY
                else:
                    harness.error = error
                    harness.state = Harness.ERROR
            if error is None:
                LOG.info("Successfully loaded servable version %s", servable_id(name, version))
                self._monitor.publish(name, version, AVAILABLE)
            else:
                LOG.error("Servable %s cannot be loaded: %s", servable_id(name, version), error)
                self._monitor.publish(name, version, END, error)
        finally:
            self._finish(name)

    def _unload(self, harness: Harness):
        name, version = harness.name, harness.version
        try:
            self._monitor.publish(name, version, UNLOADING)
            LOG.info("Quiescing servable version %s", servable_id(name, version))
            harness.wait_quiesced()
            LOG.info("Done quiescing servable version %s", servable_id(name, version))
            LOG.info("Unloading servable version %s", servable_id(name, version))
            servable, harness.servable = harness.servable, None
            if servable is not None:
                servable.close()
            with self._lock:
                harness.state = Harness.DISABLED
            LOG.info("Done unloading servable version %s", servable_id(name, version))
            self._monitor.publish(name, version, END)
        finally:
            self._finish(name)

    def stop(self):
        self._stop.set()
        self._wake.set()
        with self._lock:
            for harnesses in self._models.values():
                for harness in harnesses.values():
                    harness.cancel.set()
        self._pool.shutdown(wait=False, cancel_futures=True)


# ----------------------------------------------------------------------------------------------------

_VERSION_RE = re.compile(r"^\s*-?\d+\s*$")


def parse_version(child: str) -> int | None:
    """strings::safe_strto64(): optional sign and spaces around the digits, 64-bit range."""
    if not _VERSION_RE.match(child):
        return None
    value = int(child)
    if not -(2**63) <= value <= 2**63 - 1:
        return None
    return value


@dataclasses.dataclass(frozen=True)
class ServableToMonitor:
    name: str
    base_path: str
    policy: str  # latest | all | specific
    num_versions: int = 1
    specific: tuple = ()


def servables_from_config(config_list) -> list[ServableToMonitor]:
    out = []
    for model in config_list.config:
        kind = cfg.version_policy_kind(model)
        policy = model.model_version_policy
        out.append(
            ServableToMonitor(
                name=model.name,
                base_path=model.base_path,
                policy=kind,
                num_versions=policy.latest.num_versions if kind == "latest" else 1,
                specific=tuple(policy.specific.versions) if kind == "specific" else (),
            )
        )
    return out


def poll_servable(servable: ServableToMonitor) -> dict[int, str]:
    """PollFileSystemForServable(): the aspired versions {version: path} for one model."""
    if not os.path.exists(servable.base_path):
        raise invalid_argument(
            "Could not find base path ",
            servable.base_path,
            " for servable ",
            servable.name,
            " with error NOT_FOUND: ",
            servable.base_path,
            " not found",
        )
    try:
        children = sorted(os.listdir(servable.base_path))
    except OSError as err:
        raise cfg.io_error(servable.base_path, err) from err
    by_version: dict[int, str] = {}
    for child in children:
        version = parse_version(child)
        if version is None:
            continue
        if version in by_version:
            LOG.warning(
                "Duplicate version directories detected. Version %d will be loaded from %s, %s will be "
                "ignored.",
                version,
                child,
                by_version[version],
            )
        by_version[version] = child
    chosen: dict[int, str] = {}
    if servable.policy == "all":
        chosen = dict(by_version)
    elif servable.policy == "specific":
        wanted = set(servable.specific)
        chosen = {v: c for v, c in by_version.items() if v in wanted}
        for version in servable.specific:
            if version not in chosen:
                LOG.warning(
                    "Version %d of servable %s, which was requested to be served as a 'specific' version "
                    "in the servable's version policy, was not found in the file system",
                    version,
                    servable.name,
                )
    else:
        count = max(servable.num_versions, 1)
        chosen = {v: by_version[v] for v in sorted(by_version, reverse=True)[:count]}
    if not chosen:
        LOG.warning(
            "No versions of servable %s found under base path %s. Did you forget to name your leaf "
            "directory as a number (eg. '/1/')?",
            servable.name,
            servable.base_path,
        )
    return {v: os.path.join(servable.base_path, child) for v, child in chosen.items()}


class FileSystemStoragePathSource:
    def __init__(self, manager: AspiredVersionsManager, poll_wait_seconds: int):
        self._manager = manager
        self._poll_wait = poll_wait_seconds
        self._lock = threading.Lock()
        self._servables: list[ServableToMonitor] = []
        self._stop = threading.Event()
        self._thread = None

    def update_config(self, servables: list[ServableToMonitor]):
        with self._lock:
            new_names = {s.name for s in servables}
            for old in self._servables:
                if old.name not in new_names:
                    self._manager.set_aspired_versions(old.name, {})  # UnaspireServables()
            self._servables = list(servables)

    def start(self):
        if self._poll_wait < 0:
            return  # negative: never poll (TF Serving then waits for models forever)
        self._thread = threading.Thread(target=self._run, name="tfs_double_fs_poll", daemon=True)
        self._thread.start()

    def _run(self):
        while not self._stop.is_set():
            self.poll_once()
            if self._poll_wait == 0:
                return
            self._stop.wait(self._poll_wait)

    def poll_once(self):
        with self._lock:
            servables = list(self._servables)
            versions = {}
            try:
                for servable in servables:
                    versions[servable.name] = poll_servable(servable)
            except TFError as err:
                LOG.error(
                    "FileSystemStoragePathSource encountered a filesystem access error: %s", err.message
                )
                return
            for name, aspired in versions.items():
                self._manager.set_aspired_versions(name, aspired)

    def stop(self):
        self._stop.set()


# ----------------------------------------------------------------------------------------------------


@dataclasses.dataclass
class CoreOptions:
    file_system_poll_wait_seconds: int = 1
    allow_version_labels_for_unavailable_models: bool = False
    max_num_load_retries: int = 5
    load_retry_interval_micros: int = 60_000_000
    saved_model_tags: tuple = ("serve",)
    intra_op_parallelism: int = 0
    inter_op_parallelism: int = 0


class ServerCore:
    def __init__(self, options: CoreOptions, loader, metrics=None, before_first_load=None):
        self.options = options
        self._before_first_load = before_first_load
        self.monitor = ServableStateMonitor()
        retry_seconds = max(0, options.load_retry_interval_micros) / 1e6
        self.manager = AspiredVersionsManager(
            self.monitor,
            loader,
            ManagerOptions(
                max_num_load_retries=options.max_num_load_retries, load_retry_interval_seconds=retry_seconds
            ),
            metrics,
        )
        self._config = None
        self._config_lock = threading.Lock()
        self._labels: dict[str, dict[str, int]] | None = None
        self._labels_lock = threading.Lock()
        self._source: FileSystemStoragePathSource | None = None
        self._known_models: list[str] = []
        self._stop = threading.Event()

    def config(self):
        return copy.deepcopy(self._config)

    # -- ReloadConfig -------------------------------------------------------------------------------------
    def reload_config(self, new_config):
        with self._config_lock:
            old = self._config
            is_first = old is None or old.WhichOneof("config") is None
            cfg.check_transition(None if is_first else old, new_config)
            case = new_config.WhichOneof("config")
            if case is None:
                LOG.info("Taking no action for empty config.")
                return
            if case == "model_config_list":
                cfg.validate_model_config_list(new_config.model_config_list)
            if case == "model_config_list" and not is_first:
                cfg.validate_no_models_change_platforms(old.model_config_list, new_config.model_config_list)
            self._config = copy.deepcopy(new_config)
            self._update_model_version_label_map()
            LOG.info("Adding/updating models.")
            if case == "custom_model_config":
                LOG.critical("ModelServer does not yet support custom model config.")
                logging.shutdown()
                os.abort()
            self._add_models_via_model_config_list(is_first)
            LOG.info("Finished adding/updating models")
            LOG.info("Finished reloading config")

    def _update_model_version_label_map(self):
        new_map: dict[str, dict[str, int]] = {}
        for model in self._config.model_config_list.config:
            states = {event.version: event for event in self.monitor.version_states(model.name)}
            for label in sorted(model.version_labels):
                version = model.version_labels[label]
                allow_any = False
                if self.options.allow_version_labels_for_unavailable_models:
                    # Only new or unchanged labels may point at a version that is not AVAILABLE.
                    existing = (self._labels or {}).get(model.name, {}).get(label)
                    allow_any = existing is None or existing == version
                state = states.get(version)
                if not allow_any and (state is None or state.state != AVAILABLE):
                    raise failed_precondition(
                        "Request to assign label to version ",
                        version,
                        " of model ",
                        model.name,
                        ", which is not currently available for inference",
                    )
                new_map.setdefault(model.name, {})[label] = version
        with self._labels_lock:
            self._labels = new_map

    def _add_models_via_model_config_list(self, is_first: bool):
        config_list = self._config.model_config_list
        for model in config_list.config:
            LOG.info(" (Re-)adding model: %s", model.name)
        servables = servables_from_config(config_list)
        cfg.check_routes(config_list)
        self.manager.set_specific_versions(
            {s.name: frozenset(s.specific) for s in servables if s.policy == "specific"}
        )
        if is_first:
            source = FileSystemStoragePathSource(self.manager, self.options.file_system_poll_wait_seconds)
            source.update_config(servables)
            self._source = source
            self._known_models = [s.name for s in servables]
            since = self.monitor.sequence()
            if self._before_first_load is not None:
                self._before_first_load()
            source.start()
            reached = self.monitor.wait_until_settled([s.name for s in servables], since, self._stop)
            self._raise_unless_available(reached, "servable(s)")
        else:
            old_names = set(self._known_models)
            new_models = [s.name for s in servables if s.name not in old_names]
            since = self.monitor.sequence()
            self._source.update_config(servables)
            self._known_models = [s.name for s in servables]
            reached = self.monitor.wait_until_settled(new_models, since, self._stop)
            self._raise_unless_available(reached, "model(s)")

    def _raise_unless_available(self, reached: dict, noun: str):
        failed = [event for event in reached.values() if event.state != AVAILABLE]
        if not failed:
            return
        parts = []
        for event in sorted(failed, key=lambda e: (e.name, e.version)):
            error = f" due to error: {event.health}" if event.health is not None else ""
            parts.append("{" + servable_id(event.name, event.version) + error + "}, ")
        raise unknown(len(failed), f" {noun} did not become available: {{", "".join(parts), "}")

    # -- request handling --------------------------------------------------------------------------------
    def resolve_version(self, model_spec) -> tuple[str, int | None]:
        """ServableRequestFromModelSpec(): (name, version or None for the latest)."""
        if not model_spec.name:
            raise invalid_argument("ModelSpec has no name specified.")
        choice = model_spec.WhichOneof("version_choice")
        if choice == "version":
            return model_spec.name, model_spec.version.value
        if choice == "version_label":
            return model_spec.name, self.version_for_label(model_spec.name, model_spec.version_label)
        return model_spec.name, None

    def version_for_label(self, name: str, label: str) -> int:
        with self._labels_lock:
            if self._labels is None:
                raise unavailable("Model labels does not init yet.", label)
            version = self._labels.get(name, {}).get(label)
        if version is None:
            raise invalid_argument("Unrecognized servable version label: ", label)
        return version

    @contextlib.contextmanager
    def servable(self, model_spec):
        name, version = self.resolve_version(model_spec)
        with self.manager.handle(name, version) as servable:
            yield servable

    def model_status(self, model_spec) -> list[StateEvent]:
        """GetModelStatusImpl: one version if the spec names one, else every version (labels ignored)."""
        name = model_spec.name
        if model_spec.WhichOneof("version_choice") == "version":
            version = model_spec.version.value
            event = self.monitor.get_state(name, version)
            if event is None:
                raise not_found("Could not find version ", version, " of model ", name)
            return [event]
        events = self.monitor.version_states(name)
        if not events:
            raise not_found("Could not find any versions of model ", name)
        return events

    def stop(self):
        self._stop.set()
        if self._source is not None:
            self._source.stop()
        self.manager.stop()
