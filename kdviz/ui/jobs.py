"""Jobs for the app: training runs in worker processes, polled by the page without blocking.

Pages use five functions (all called from the Streamlit script thread only)::

    h = start_job("distill", spec)   # submit; a job of the same name in this session is stopped first
    h = get_job("distill")           # this session's handle (or None); survives page changes
    forget_job("distill")            # stop it and drop its curves (the "reset" button)
    stop_session_jobs()              # the sidebar's "stop all"
    get_manager().counts()           # {"running": n, "queued": m}, server-wide

``spec`` is plain data: ``{"fn": "kdviz.runtime.tasks:teacher_job", ...}`` (see ``kdviz/jobs.py``);
``out_dir`` is filled in when missing (``$KDVIZ_JOBS_DIR``, else ``<tmp>/kdviz-jobs``, then ``<name>-<id>``).

A :class:`JobHandle` is read by the page after ``h.poll()`` (non-blocking: drains the events
that arrived since the last poll)::

    h.state       "queued" | "running" | "paused" | "done" | "error" | "stopped"
    h.position    1-based place in the FIFO queue while queued, else None
    h.status      the last status text;  h.error: the error text or None
    h.result      the result event (dict) or None
    h.runs        {"teacher": RunLog} / {"distilled": RunLog, "scratch": RunLog}
    h.step()      latest training step (max over runs);  h.records(run), h.evals(run): dict lists
    h.pause(), h.resume(), h.step_once(), h.stop()

Records per run are downsampled to at most ``cap`` points (when full, every other point is
dropped and only every 2nd, 4th, ... new record is kept), so memory stays bounded however
long a run is; the latest record is always kept.

:class:`JobManager` is plain Python (no Streamlit): one per server through
``st.cache_resource``; at most ``max_jobs`` workers (``$KDVIZ_MAX_JOBS``, default
the CPU cores this process may use) run at once, the rest wait in a FIFO queue. A paused job keeps its slot.
A finished, failed or stopped job frees its slot at once. Each session's handles are
stopped when the session ends (``st.cache_resource(scope="session", on_release=...)``).
"""
from __future__ import annotations

import itertools
import multiprocessing as mp
import os
import queue
import shutil
import tempfile
import threading
import time
import uuid
from collections import deque
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import streamlit as st

from kdviz.hosted import job_limit, threads_per_job
from kdviz.runtime.worker import check_job_path, spare_main, start_without_main, worker_main

DEFAULT_CAP = 1500  # points kept per run and series
EVENT_QUEUE_MAX = 20000  # a worker blocks (training pauses) when this many events wait undrained
ACTIVE_STATES = ("queued", "running", "paused")
JOB_DIR_TTL_S = 24 * 3600.0
_STATE_KEY = "_kdviz_session_jobs"


# ----------------------------------------------------------------------------- bounded series
class Series:
    """A list that keeps at most ``cap`` items by halving its resolution when full."""

    def __init__(self, cap: int = DEFAULT_CAP) -> None:
        if cap < 2:
            raise ValueError(f"cap must be >= 2, got {cap}")
        self.cap, self.stride, self.seen = cap, 1, 0
        self.items: list[dict] = []

    def add(self, item: dict) -> None:
        self.seen += 1
        if (self.seen - 1) % self.stride:
            return  # between kept points at the current resolution
        self.items.append(item)
        if len(self.items) > self.cap:
            # kept indices stay multiples of the (doubled) stride: spacing remains uniform
            self.items = self.items[::2]
            self.stride *= 2


class RunLog:
    """Records of one run ("teacher", "distilled", "scratch"): all training points and test evaluations."""

    def __init__(self, cap: int = DEFAULT_CAP) -> None:
        self.train, self.evals = Series(cap), Series(cap)
        self.last: dict | None = None

    def add(self, rec: dict) -> None:
        self.train.add(rec)
        if rec.get("test_acc") is not None:
            self.evals.add(rec)
        self.last = rec

    def records(self) -> list[dict]:
        """Downsampled training records, always ending with the latest one."""
        items = self.train.items
        return items + [self.last] if self.last is not None and (not items or items[-1] is not self.last) else list(items)

    def eval_records(self) -> list[dict]:
        return list(self.evals.items)


# ----------------------------------------------------------------------------- worker processes
@dataclass
class Worker:
    """A running worker: anything with ``is_alive/join/terminate/kill/exitcode`` plus two queues."""

    process: Any
    events: Any  # worker → app: event dicts
    control: Any  # app → worker: "pause" | "resume" | "step" | "stop"

    def end(self, grace_s: float = 0.3) -> None:
        """Ask politely, then terminate, then kill; never blocks for more than ~grace_s + 2 s."""
        if self.process.is_alive():
            _try(self.control.put, "stop")
            self.process.join(grace_s)
        if self.process.is_alive():
            self.process.terminate()
            self.process.join(1.0)
        if self.process.is_alive():
            self.process.kill()
            self.process.join(1.0)
        for q in (self.events, self.control):
            _try(getattr(q, "cancel_join_thread", lambda: None))
            _try(getattr(q, "close", lambda: None))


def _try(fn: Callable, *args) -> None:
    try:
        fn(*args)
    except (OSError, ValueError, AssertionError):
        pass  # the queue or process is already closed: nothing left to clean


def _start(name: str, target: Callable, make_args: Callable[[Any, Any], tuple]) -> Worker:
    """A daemon process running ``target(*make_args(events, control))``."""
    ctx = mp.get_context("spawn")  # never fork a threaded server
    events, control = ctx.Queue(maxsize=EVENT_QUEUE_MAX), ctx.Queue()
    proc = ctx.Process(target=target, args=make_args(events, control), daemon=True, name=name)
    start_without_main(proc)  # Streamlit's __main__ is the app script: the child must not re-run it
    return Worker(proc, events, control)


def spawn_worker(spec: dict) -> Worker:
    """Start ``worker_main(spec)`` in a fresh interpreter (a cold start: seconds for torch and data)."""
    return _start(f"kdviz-{spec.get('fn', 'job')}", worker_main, lambda events, control: (spec, events, control))


class SparePool:
    """A launcher that keeps one warm worker ready (torch imported, data set loaded).

    ``pool(spec)`` hands the spec to the spare (so training starts within a poll or two) and
    starts the next spare; without a live spare it falls back to a cold start.
    """

    def __init__(self, preload: tuple[str, ...] = ("kdviz.runtime.tasks",), data_source: str | None = None) -> None:
        self.preload, self.data_source = preload, data_source
        self._spare: Worker | None = None
        self._lock = threading.Lock()
        self.warm_starts = self.cold_starts = 0

    def _new_spare(self) -> Worker:
        return _start("kdviz-spare", spare_main, lambda events, control: (events, control, self.preload, self.data_source))

    def __call__(self, spec: dict) -> Worker:
        with self._lock:
            spare, self._spare = self._spare, None
            if spare is not None and spare.process.is_alive():
                spare.control.put(dict(spec))
                self.warm_starts += 1
                worker = spare
            else:
                worker = spawn_worker(spec)
                self.cold_starts += 1
            self._spare = self._new_spare()
            return worker

    def warm_up(self) -> None:
        """Start the first spare now (e.g. when the server starts), not at the first job."""
        with self._lock:
            if self._spare is None or not self._spare.process.is_alive():
                self._spare = self._new_spare()

    def close(self) -> None:
        with self._lock:
            if self._spare is not None:
                self._spare.end(grace_s=1.0)
                self._spare = None


# ----------------------------------------------------------------------------- handles
class JobHandle:
    """One job as seen by the session that started it. Thread-safe; see the module docstring."""

    def __init__(self, job_id: int, spec: dict, owner: str, manager: "JobManager", cap: int = DEFAULT_CAP) -> None:
        self.id, self.spec, self.owner, self.manager, self.cap = job_id, spec, owner, manager, cap
        self.state = "queued"
        self.status = "queued"
        self.result: dict | None = None
        self.error: str | None = None
        self.runs: dict[str, RunLog] = {}
        self.events_seen = 0
        self.submitted_at, self.started_at, self.finished_at = time.time(), None, None
        self.worker: Worker | None = None
        self._ender: threading.Thread | None = None
        # One lock for the manager and all its handles: two lock orders could deadlock
        # (a session stopping its queued job while another session's tick launches it).
        self._lock = manager._lock

    # -- reading
    @property
    def active(self) -> bool:
        return self.state in ACTIVE_STATES

    @property
    def position(self) -> int | None:
        return self.manager.position(self) if self.state == "queued" else None

    def step(self, run: str | None = None) -> int:
        logs = [self.runs[run]] if run in self.runs else ([] if run else list(self.runs.values()))
        return max((log.last["step"] for log in logs if log.last), default=0)

    def records(self, run: str) -> list[dict]:
        return self.runs[run].records() if run in self.runs else []

    def evals(self, run: str) -> list[dict]:
        return self.runs[run].eval_records() if run in self.runs else []

    def poll(self, max_events: int = 5000) -> int:
        """Take the events that have arrived (never blocks); returns how many."""
        self.manager.tick()  # may start this job if a slot freed up
        with self._lock:
            if self.worker is None or not self.active:
                return 0
            n = self._drain(max_events)
            if self.active and n < max_events and not self.worker.process.is_alive():
                n += self._drain(max_events)  # it may have put its last events just before exiting
                if self.active:
                    code = getattr(self.worker.process, "exitcode", None)
                    self._finish("error", f"the worker process ended unexpectedly (exit code {code})")
            return n

    def _drain(self, max_events: int) -> int:
        n = 0
        while n < max_events and self.active:
            try:
                event = self.worker.events.get_nowait()
            except queue.Empty:
                break
            except (OSError, EOFError, ValueError):  # queue closed under us
                break
            self._apply(event)
            n += 1
        self.events_seen += n
        return n

    def _apply(self, event: dict) -> None:
        kind = event.get("type")
        if kind == "record":
            self.runs.setdefault(str(event.get("run", "run")), RunLog(self.cap)).add(event)
        elif kind == "status":
            self.status = str(event.get("text", ""))
        elif kind == "result":
            self.result = event
        elif kind == "error":
            self.error = str(event.get("text", "unknown error"))
            self._finish("error", self.error)
        elif kind == "end":
            self._finish("done", "finished")

    # -- control
    def _send(self, message: str) -> bool:
        with self._lock:
            if self.worker is None or self.state not in ("running", "paused"):
                return False
            _try(self.worker.control.put, message)
            return True

    def pause(self) -> None:
        if self._send("pause"):
            self.state, self.status = "paused", "paused"

    def resume(self) -> None:
        if self._send("resume"):
            self.state, self.status = "running", "running"

    def step_once(self) -> None:
        """Run to the next record, then pause."""
        if self._send("step"):
            self.state, self.status = "paused", "paused (stepping)"

    def stop(self) -> None:
        """Stop now (keeping the curves so far) and free the slot."""
        with self._lock:
            if self.state == "queued":
                self.manager._dequeue(self)
                self._finish("stopped", "stopped before it started")
                return
            if not self.active:
                return
            self._drain(100000)  # keep what already arrived
            if self.active:
                self._finish("stopped", "stopped")

    # -- lifecycle (called by the manager / internally)
    def _launch(self, launcher: Callable[[dict], Worker]) -> None:
        with self._lock:
            try:
                self.worker = launcher(self.spec)
            except (OSError, RuntimeError, ValueError) as err:
                self._finish("error", f"could not start a worker process: {err}")
                return
            self.state, self.status, self.started_at = "running", "starting worker", time.time()

    def _finish(self, state: str, status: str) -> None:
        with self._lock:
            if not self.active:
                return
            self.state, self.status, self.finished_at = state, status, time.time()
            if state == "error" and self.error is None:
                self.error = status
            if self.worker is not None:
                # terminate/join off the script thread (no Streamlit calls there): stop never blocks
                self._ender = threading.Thread(target=self.worker.end, daemon=True, name=f"kdviz-end-{self.id}")
                self._ender.start()
            self.manager._release(self)

    def wait_ended(self, timeout: float = 5.0) -> bool:
        """Block until the worker process is gone (tests, shutdown); True when it is."""
        if self._ender is not None:
            self._ender.join(timeout)
        return self.worker is None or not self.worker.process.is_alive()


# ----------------------------------------------------------------------------- manager
def default_max_jobs() -> int:
    """``KDVIZ_MAX_JOBS``, else one job per CPU core this process may use (see ``kdviz.hosted``)."""
    return job_limit()


class JobManager:
    """Process-wide job scheduler: at most ``max_jobs`` workers, a FIFO queue for the rest."""

    def __init__(self, max_jobs: int | None = None, launcher: Callable[[dict], Worker] = spawn_worker, cap: int = DEFAULT_CAP) -> None:
        self.max_jobs = default_max_jobs() if max_jobs is None else int(max_jobs)
        if self.max_jobs < 1:
            raise ValueError(f"max_jobs must be >= 1, got {max_jobs}")
        self.launcher, self.cap = launcher, cap
        self._running: list[JobHandle] = []
        self._queue: deque[JobHandle] = deque()
        self._ids = itertools.count(1)
        self._lock = threading.RLock()

    def submit(self, spec: dict, owner: str = "") -> JobHandle:
        """Queue a job; it starts at once when a slot is free. Raises ValueError for a bad ``fn``."""
        if not isinstance(spec, dict):
            raise ValueError(f"a job spec must be a dict, got {type(spec).__name__}")
        check_job_path(spec.get("fn", ""))
        with self._lock:
            handle = JobHandle(next(self._ids), dict(spec), owner, self, self.cap)
            self._queue.append(handle)
        self.tick()
        return handle

    def tick(self) -> None:
        """Free the slots of dead workers and start queued jobs while slots are free."""
        with self._lock:
            self._running = [h for h in self._running if h.active and h.worker is not None and h.worker.process.is_alive()]
            while self._queue and len(self._running) < self.max_jobs:
                handle = self._queue.popleft()
                self._running.append(handle)
                handle._launch(self.launcher)

    def position(self, handle: JobHandle) -> int | None:
        with self._lock:
            return next((i for i, h in enumerate(self._queue, start=1) if h is handle), None)

    def counts(self) -> dict[str, int]:
        self.tick()
        with self._lock:
            return {"running": len(self._running), "queued": len(self._queue), "max": self.max_jobs}

    def jobs(self, owner: str | None = None) -> list[JobHandle]:
        with self._lock:
            return [h for h in (*self._running, *self._queue) if owner is None or h.owner == owner]

    def stop_all(self, owner: str | None = None) -> int:
        """Stop every job (of ``owner`` when given); returns how many were stopped."""
        handles = self.jobs(owner)
        for h in reversed(handles):  # queued ones first, so none starts while we stop the rest
            h.stop()
        return len(handles)

    def _dequeue(self, handle: JobHandle) -> None:
        with self._lock:
            if handle in self._queue:
                self._queue.remove(handle)

    def _release(self, handle: JobHandle) -> None:
        with self._lock:
            if handle in self._running:
                self._running.remove(handle)
            self._dequeue(handle)
        self.tick()


# ----------------------------------------------------------------------------- session registry
class SessionJobs:
    """This session's handles by name ("teacher", "distill", ...)."""

    def __init__(self) -> None:
        self.id = uuid.uuid4().hex[:12]
        self.handles: dict[str, JobHandle] = {}

    def stop_all(self) -> None:
        for handle in list(self.handles.values()):
            handle.stop()

    def poll_all(self) -> list[JobHandle]:
        handles = list(self.handles.values())
        for handle in handles:
            handle.poll()
        return handles


def jobs_root() -> Path:
    """Scratch folder for job outputs (``$KDVIZ_JOBS_DIR``, else the temp dir). Saving a run copies
    its checkpoints into the run store; these folders are purged after ``JOB_DIR_TTL_S``."""
    return Path(os.environ.get("KDVIZ_JOBS_DIR") or Path(tempfile.gettempdir()) / "kdviz-jobs")


def purge_old_job_dirs(root: Path, max_age_s: float = JOB_DIR_TTL_S) -> int:
    """Delete job folders older than ``max_age_s`` (a public server must not fill its disk)."""
    if not root.is_dir():
        return 0
    cutoff, n = time.time() - max_age_s, 0
    for entry in root.iterdir():
        try:
            if entry.is_dir() and entry.stat().st_mtime < cutoff:
                shutil.rmtree(entry, ignore_errors=True)
                n += 1
        except OSError:
            pass
    return n


# ----------------------------------------------------------------------------- thin Streamlit layer
def spare_enabled() -> bool:
    """``KDVIZ_SPARE_WORKER=0`` turns the warm spare worker off (default on)."""
    return os.environ.get("KDVIZ_SPARE_WORKER", "1").strip().lower() not in ("0", "false", "no", "off")


@st.cache_resource(show_spinner=False)
def get_manager() -> JobManager:
    """The one JobManager of this server process (with a warm spare worker unless disabled)."""
    if not spare_enabled():
        return JobManager()
    pool = SparePool(data_source=os.environ.get("KDVIZ_DATA_SOURCE", "auto").strip().lower() or "auto")
    pool.warm_up()
    return JobManager(launcher=pool)


def _release_session(jobs: SessionJobs) -> None:
    jobs.stop_all()  # the tab closed: free its slots (runs on a server thread; no st calls here)


@st.cache_resource(scope="session", on_release=_release_session, show_spinner=False)
def _session_registry() -> SessionJobs:
    return SessionJobs()


def session_jobs() -> SessionJobs:
    """This session's registry. After a reconnect the released registry's (stopped) handles
    are carried over, so curves survive even though the jobs were stopped."""
    registry = _session_registry()
    previous = st.session_state.get(_STATE_KEY)
    if previous is not None and previous is not registry:
        for name, handle in previous.handles.items():
            registry.handles.setdefault(name, handle)
    st.session_state[_STATE_KEY] = registry
    return registry


def start_job(name: str, spec: dict) -> JobHandle:
    """Submit ``spec`` as this session's job ``name`` (a previous one of that name is stopped)."""
    registry = session_jobs()
    old = registry.handles.get(name)
    if old is not None:
        old.stop()
    spec = dict(spec)
    if "out_dir" not in spec:
        purge_old_job_dirs(jobs_root())
        spec["out_dir"] = str(jobs_root() / f"{name}-{uuid.uuid4().hex[:10]}")
    manager = get_manager()
    spec.setdefault("threads", threads_per_job(manager.max_jobs))  # full load: the jobs share the cores
    handle = manager.submit(spec, owner=registry.id)
    registry.handles[name] = handle
    return handle


def get_job(name: str) -> JobHandle | None:
    return session_jobs().handles.get(name)


def forget_job(name: str) -> None:
    handle = session_jobs().handles.pop(name, None)
    if handle is not None:
        handle.stop()


def stop_session_jobs() -> int:
    registry = session_jobs()
    n = sum(h.active for h in registry.handles.values())
    registry.stop_all()
    return n
