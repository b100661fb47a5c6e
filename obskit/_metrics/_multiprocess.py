"""prometheus-client's multiprocess mode, managed so multi-worker servers need no manual setup.

prometheus-client decides its mode once, when ``prometheus_client.values`` is first imported, from
``PROMETHEUS_MULTIPROC_DIR``; metric values read ``values.ValueClass`` when they are *constructed*, so the
mode can still be switched later as long as no metric value exists yet. obskit creates no value at import
time, which keeps that switch safe for the gunicorn hooks (they run after ``obskit`` is imported).

Who wipes the directory: exactly one process per server run, chosen by a marker file holding the pid of
the run's owner. A process finding a live owner joins that run; finding none (or a dead one) it wipes and
records the owner. gunicorn's master wipes from the hooks module and owns the run (workers are its forked
children); ``uvicorn --workers`` spawns fresh interpreters whose ``multiprocessing.parent_process()`` is
the supervisor, so the first worker to take the lock wipes and records the supervisor; a plain process
owns its own run. A script started beside a running server therefore joins it instead of wiping it.

Dead workers' counter and histogram files are merged into one archive file per type (totals must not go
down when a worker dies) and their live gauges removed, so files do not pile up.
"""

from __future__ import annotations

import contextlib
import os
import sys
from collections.abc import Iterable, Iterator
from typing import Any

from .._config import OPTIONS
from .._runtime._safe import SafeLogger

try:
    import fcntl
except ImportError:  # pragma: no cover - not POSIX: no cross-process lock, multiprocess mode unsupported
    fcntl = None  # type: ignore[assignment]

__all__ = [
    "activate",
    "compact_dead",
    "directory",
    "enabled",
    "ensure_prepared",
    "env_directory",
    "mark_dead",
    "prepare_from_env",
    "wipe",
]

_log = SafeLogger("obskit.metrics")
_MARKER = ".obskit-owner"
_LOCK = ".obskit.lock"
# Read before init() resolves settings (the mode is decided at import), but named and parsed by the one
# options table, so a directory init() rejects is not used here either.
_OPTION = next(o for o in OPTIONS if o.name == "multiproc_dir")
_ENV_VARS = _OPTION.variables
# Files whose values must survive their process (prometheus-client keeps them; we merge them).
_ARCHIVED = ("counter", "histogram", "summary")

_state: dict[str, Any] = {"dir": None, "explained": False, "prepared": False}


def directory() -> str | None:
    """The active multiprocess directory, or None in single-process mode."""
    d: str | None = _state["dir"]
    return d


def enabled() -> bool:
    """Whether metric values live in shared files aggregated across worker processes."""
    return _state["dir"] is not None


def env_directory() -> str | None:
    """The directory the environment names (``OBSKIT_MULTIPROC_DIR``, else ``PROMETHEUS_MULTIPROC_DIR``),
    if it is usable: a variable naming one this process cannot write to has no effect (``init()`` says so,
    naming the variable)."""
    for var in _ENV_VARS:
        value = os.environ.get(var, "").strip()
        if value:
            try:
                return str(_OPTION.parse(value))
            except ValueError:
                continue
    return None


@contextlib.contextmanager
def _locked(path: str, exclusive: bool = True) -> Iterator[None]:
    if fcntl is None:
        yield
        return
    fd = os.open(os.path.join(path, _LOCK), os.O_CREAT | os.O_RDWR, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX if exclusive else fcntl.LOCK_SH)
        yield
    finally:
        os.close(fd)  # closing releases the lock


def _read_marker(path: str) -> int | None:
    try:
        with open(os.path.join(path, _MARKER)) as f:
            return int(f.read().strip() or 0) or None
    except (OSError, ValueError):
        return None


def _write_marker(path: str, pid: int) -> None:
    tmp = os.path.join(path, f"{_MARKER}.{os.getpid()}")
    with open(tmp, "w") as f:
        f.write(str(pid))
    os.replace(tmp, os.path.join(path, _MARKER))


def wipe(path: str, owner: int) -> None:
    """Create ``path`` if needed, delete every metric file in it and record ``owner`` as this run's owner."""
    os.makedirs(path, exist_ok=True)
    with _locked(path):
        _wipe_unlocked(path, owner)


def _wipe_unlocked(path: str, owner: int) -> None:
    import glob

    for f in glob.glob(os.path.join(path, "*.db")):
        with contextlib.suppress(FileNotFoundError):
            os.remove(f)
    _write_marker(path, owner)


def _gunicorn_parent() -> bool:
    """A forked gunicorn worker (whose parent, the master, did not load obskit's hooks)."""
    if "gunicorn" not in sys.modules:
        return False
    try:
        with open(f"/proc/{os.getppid()}/cmdline", "rb") as f:
            return b"gunicorn" in f.read()
    except OSError:
        return False


def _owner() -> int:
    """The pid whose lifetime is this server run: the spawning supervisor, gunicorn's master, or us.

    multiprocessing is imported here, with a multiprocess directory configured, not in every process."""
    import multiprocessing

    parent = multiprocessing.parent_process()
    if parent is not None and parent.pid:
        return parent.pid
    if _gunicorn_parent():
        return os.getppid()
    return os.getpid()


def ensure_prepared() -> None:
    """Once per process, before the first metric value exists: :func:`prepare_from_env`.

    Called by ``init()`` and by the first metric definition, never at import: ``import obskit`` touches no
    file.
    """
    if not _state["prepared"]:
        _state["prepared"] = True
        prepare_from_env()


def prepare_from_env() -> str | None:
    """If a multiprocess directory is configured, create/wipe it (once per run) and switch mode.

    Never raises: an unusable directory is reported and metrics stay per process.
    """
    path = env_directory()
    if path is None:
        named = [var for var in _ENV_VARS if os.environ.get(var, "").strip()]
        if named:  # configured but unusable: said here too, as metrics may be used without init()
            from .._errors import ConfigError
            from .._runtime._safe import report_internal_error

            problem = ConfigError(f"invalid environment variable {named[0]}; expected a directory this "
                                  "process can write to (created if missing). Metrics stay per process.")
            report_internal_error(f"multiprocess metrics directory {os.environ[named[0]].strip()}", problem)
            _stay_per_process()
        return None
    try:
        return _prepare(path)
    except Exception as exc:
        from .._runtime._safe import report_internal_error

        report_internal_error(f"multiprocess metrics directory {path}", exc)
        _stay_per_process()
        return None


def _stay_per_process() -> None:
    """prometheus-client chose multiprocess values at import from ``PROMETHEUS_MULTIPROC_DIR``: undo that,
    or every metric would try to write into the unusable directory."""
    import prometheus_client.values

    values: Any = prometheus_client.values  # untyped module
    if getattr(values.ValueClass, "_multiprocess", False):
        values.ValueClass = values.MutexValue


def _prepare(path: str) -> str:
    os.makedirs(path, exist_ok=True)
    with _locked(path):
        marker = _read_marker(path)
        # A live owner means a run is in progress: join it. No owner, or a dead one: a new run starts here.
        if marker is None or not _pid_alive(marker):
            _wipe_unlocked(path, _owner())
    activate(path)
    return path


def activate(path: str) -> None:
    """Make every metric value constructed from now on live in ``path`` (prometheus-client's mmap files)."""
    path = os.path.abspath(path)
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = path
    import prometheus_client.values

    values: Any = prometheus_client.values  # untyped module
    if not getattr(values.ValueClass, "_multiprocess", False):
        values.ValueClass = values.MultiProcessValue()
    _state["dir"] = path
    zero = getattr(sys.modules.get("obskit._metrics._instruments"), "_zero_all", None)
    if zero is not None:  # instruments made before the switch get values in the shared files too
        zero()
    # The OpenTelemetry API's too: a series recorded before the switch (init() in a Celery tasks module,
    # ahead of the worker's fork) would otherwise keep writing, in every forked child, to memory no
    # scrape reads.
    api_zero = getattr(sys.modules.get("obskit._metrics._otel_api"), "reset", None)
    if api_zero is not None:
        api_zero()


def explain_once() -> None:
    """Say once per process what this mode cannot do, so nobody hunts for missing exemplars."""
    if _state["explained"] or not enabled():
        return
    _state["explained"] = True
    _log.warning(
        "obskit: metrics in multiprocess mode (%s): /metrics shows the sum over all workers; exemplars and "
        "GC metrics are not available in this mode, process metrics come per worker with a pid label "
        "(see docs/metrics.md).", _state["dir"])


def _pid_alive(pid: int) -> bool:
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _files_by_pid(path: str) -> dict[int, list[str]]:
    import glob

    out: dict[int, list[str]] = {}
    for f in glob.glob(os.path.join(path, "*.db")):
        stem = os.path.basename(f)[:-3]
        pid_part = stem.rsplit("_", 1)[-1]
        if pid_part.isdigit():
            out.setdefault(int(pid_part), []).append(f)
    return out


def _merge_into_archive(path: str, files: Iterable[str]) -> None:
    from prometheus_client import mmap_dict

    MmapedDict: Any = mmap_dict.MmapedDict  # untyped
    for f in files:
        kind = os.path.basename(f).split("_", 1)[0]
        if kind in _ARCHIVED:
            archive = MmapedDict(os.path.join(path, f"{kind}_archive.db"))
            try:
                for key, value, ts, _pos in MmapedDict.read_all_values_from_file(f):
                    current, _ = archive.read_value(key)
                    archive.write_value(key, current + value, ts)
            finally:
                archive.close()
        with contextlib.suppress(FileNotFoundError):
            os.remove(f)


def mark_dead(pid: int, path: str | None = None) -> None:
    """Fold a dead worker's files into the archive (counters, histograms) or drop them (gauges)."""
    path = path or directory()
    if not path:
        return
    with _locked(path):
        files = _files_by_pid(path).get(pid, [])
        if files:
            _merge_into_archive(path, files)


def compact_dead(path: str | None = None) -> int:
    """Fold every dead process's files; returns how many processes were folded. Cheap when none died."""
    path = path or directory()
    if not path:
        return 0
    dead = [pid for pid in _files_by_pid(path) if not _pid_alive(pid)]
    if not dead:
        return 0
    with _locked(path):
        by_pid = _files_by_pid(path)
        for pid in dead:
            _merge_into_archive(path, by_pid.get(pid, []))
    return len(dead)


def live_pids(path: str) -> list[int]:
    """Processes of this run that are alive: every pid with files here, and the run's owner."""
    pids = set(_files_by_pid(path))
    owner = _read_marker(path)
    if owner:
        pids.add(owner)
    return sorted(p for p in pids if _pid_alive(p))


class WorkerProcessCollector:
    """Process metrics (CPU, memory, open fds, start time) of every live worker, labelled ``pid``.

    Read from ``/proc/<pid>`` at scrape time by whichever process serves it, so no worker needs a thread;
    interpreter-internal figures (GC) cannot be read this way and are left out.
    """

    def __init__(self, path: str) -> None:
        self._path = path

    def collect(self) -> list[Any]:
        from prometheus_client.metrics_core import Metric
        from prometheus_client.process_collector import ProcessCollector

        merged: dict[str, Any] = {}
        for pid in live_pids(self._path):
            source = ProcessCollector(pid=lambda pid=pid: pid, registry=None)  # type: ignore[misc]
            for fam in source.collect():
                out = merged.get(fam.name)
                if out is None:
                    out = merged[fam.name] = Metric(fam.name, fam.documentation, fam.type, fam.unit)
                for sample in fam.samples:
                    out.add_sample(sample.name, {**sample.labels, "pid": str(pid)}, sample.value)
        return list(merged.values())


class AggregateCollector:
    """prometheus-client's MultiProcessCollector, serialised with compaction so no scrape double-counts."""

    def __init__(self, path: str) -> None:
        from prometheus_client import multiprocess

        collector: Any = multiprocess.MultiProcessCollector  # untyped
        self._path = path
        self._inner: Any = collector(None, path=path)

    def collect(self) -> Any:
        compact_dead(self._path)
        with _locked(self._path, exclusive=False):
            return list(self._inner.collect())
