"""The local executor: worker processes on this machine, at most ``max_jobs`` at once, a FIFO queue.

Plain Python (no Streamlit), tested with fake workers. ``kdviz/ui/jobs.py`` keeps one
:class:`JobManager` per server and one ``SessionJobs`` (``kdviz/runtime/sessions.py``) per browser session. The job
protocol (specs, events, control, states): ``kdviz/runtime/protocol.py``; the interfaces this
module implements (:class:`~kdviz.runtime.executor.Executor`, :class:`~kdviz.runtime.executor.Job`):
``kdviz/runtime/executor.py``.

``max_jobs``: ``$KDVIZ_MAX_JOBS``, default the CPU cores this process may use. A paused job
keeps its slot (for at most ``$KDVIZ_PAUSE_TIMEOUT_S`` while others wait); a finished, failed or
stopped job frees it at once. Fair share per session and person: ``kdviz/runtime/fairshare.py``. A spec without ``out_dir``
gets a scratch folder ``<jobs_root>/<name>-<id>`` (``$KDVIZ_JOBS_DIR``, else ``<tmp>/kdviz-jobs``;
folders older than a day are purged); one without ``threads`` gets its share of the cores.
"""
from __future__ import annotations

import itertools
import os
import queue
import shutil
import tempfile
import threading
import time
import uuid
from collections import deque
from pathlib import Path

from kdviz.data import env_data_source
from kdviz.hosted import job_limit, threads_per_job
from kdviz.runtime import fairshare
from kdviz.runtime.launch import (Launcher, SparePool, Worker, fork_server_available, spawn_worker, try_quietly,
                                 warm_fork_server)
from kdviz.runtime.protocol import ACTIVE_STATES, check_job_name, validate_spec
from kdviz.runtime.records import DEFAULT_CAP, RunLog

JOB_DIR_TTL_S = 24 * 3600.0
SPARE_ENV = "KDVIZ_SPARE_WORKER"


# ----------------------------------------------------------------------------- handles
class JobHandle:
    """One job as seen by the session that started it (the :class:`~kdviz.runtime.executor.Job` interface). Thread-safe."""

    def __init__(self, job_id: int, spec: dict, owner: str, manager: "JobManager", cap: int = DEFAULT_CAP,
                 identity: str = "") -> None:
        self.id, self.spec, self.owner, self.manager, self.cap = job_id, spec, owner, manager, cap
        self.identity = identity
        self.paused_at: float | None = None
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
            try_quietly(self.worker.control.put, message)
            return True

    def pause(self) -> None:
        if self._send("pause"):
            self.state, self.status, self.paused_at = "paused", fairshare.pause_note(self.manager.pause_timeout_s), time.time()

    def resume(self) -> None:
        if self._send("resume"):
            self.state, self.status, self.paused_at = "running", "running", None

    def step_once(self) -> None:
        """Run to the next record, then pause."""
        if self._send("step"):
            note = fairshare.pause_note(self.manager.pause_timeout_s)
            self.state, self.status, self.paused_at = "paused", f"{note}, stepping", time.time()

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
    def _launch(self, launcher: Launcher) -> None:
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
class JobManager:
    """Process-wide job scheduler (the :class:`~kdviz.runtime.executor.Executor` interface)."""

    def __init__(self, max_jobs: int | None = None, launcher: Launcher = spawn_worker, cap: int = DEFAULT_CAP) -> None:
        self.max_jobs = job_limit() if max_jobs is None else int(max_jobs)
        if self.max_jobs < 1:
            raise ValueError(f"max_jobs must be >= 1, got {max_jobs}")
        self.launcher, self.cap = launcher, cap
        self._running: list[JobHandle] = []
        self._queue: deque[JobHandle] = deque()
        self._ids = itertools.count(1)
        self._lock = threading.RLock()
        self.pause_timeout_s = fairshare.pause_timeout_s()

    def submit(self, spec: dict, owner: str = "", name: str = "job", identity: str = "") -> JobHandle:
        """Queue a job; it starts when a slot is free and fair share allows. A bad spec or name, or a Start
        fair share refuses, is a ValueError (nothing queued); the owner's own queued job is replaced."""
        spec = self._with_defaults(validate_spec(spec), check_job_name(name))
        with self._lock:
            handle = JobHandle(next(self._ids), spec, owner, self, self.cap, identity=identity)
            replaced = self._enter_queue(handle)  # FairShareError: nothing changed
            for old in replaced:
                self._dequeue(old)
                old._finish("stopped", f"replaced by a newer Start (job #{handle.id})")
        self.tick()
        return handle

    def _with_defaults(self, spec: dict, name: str) -> dict:
        if "out_dir" not in spec:
            purge_old_job_dirs(jobs_root())
            spec["out_dir"] = str(jobs_root() / f"{name}-{uuid.uuid4().hex[:10]}")
        spec.setdefault("threads", threads_per_job(self.max_jobs))  # full load: the jobs share the cores
        return spec

    def tick(self) -> None:
        """Free the slots of dead workers and of jobs paused too long, then start the queued jobs fair share allows."""
        with self._lock:
            self._running = [h for h in self._running if h.active and h.worker is not None and h.worker.process.is_alive()]
            self._expire_paused()
            for handle in self._admit():
                self._queue.remove(handle)
                self._running.append(handle)
                handle._launch(self.launcher)

    # -- the scheduling decisions: in this process here; cluster-wide in kdviz/runtime/ray_slots.py
    def _enter_queue(self, handle: JobHandle) -> list[JobHandle]:
        """Append ``handle`` to the queue; returns the queued jobs it replaces (FairShareError: nothing changed)."""
        replaced = fairshare.to_replace(handle, self._queue)
        self._queue.append(handle)
        return replaced

    def _admit(self) -> list[JobHandle]:
        """The queued jobs to start now, in order: FIFO into the free slots, as fair share allows."""
        chosen, running = [], list(self._running)
        for handle in self._queue:
            if len(running) >= self.max_jobs:
                break
            if fairshare.may_start(handle, running):
                chosen.append(handle)
                running.append(handle)
        return chosen

    def _others_waiting(self) -> bool:
        return bool(self._queue)

    def _expire_paused(self) -> None:
        """A job paused longer than ``pause_timeout_s`` gives up its slot while others wait (it is stopped)."""
        if not self._others_waiting():
            return
        cutoff = time.time() - self.pause_timeout_s
        for h in [h for h in self._running if h.state == "paused" and h.paused_at is not None and h.paused_at < cutoff]:
            h._drain(100000)
            h._finish("stopped", fairshare.pause_expired_note(self.pause_timeout_s))

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


def spare_enabled() -> bool:
    """``KDVIZ_SPARE_WORKER`` (1/0). Default off where workers are forked from the fork server: one
    reaches its first event in 39 ms vs 24 ms for a warm spare (``bench/memory.py``), so an idle spare
    holding ~150 MiB buys little; on where they must be spawned (seconds for the torch import)."""
    default = "0" if fork_server_available() else "1"
    return os.environ.get(SPARE_ENV, default).strip().lower() not in ("0", "false", "no", "off")


def local_executor() -> JobManager:
    """The server's executor: a JobManager whose workers fork from a warm fork server, or take a warm
    spare worker where there is none (or ``KDVIZ_SPARE_WORKER=1``)."""
    if not spare_enabled():
        warm_fork_server()
        return JobManager()
    try:
        source = env_data_source()
    except ValueError:
        source = None  # the pages report the bad KDVIZ_DATA_SOURCE; the spare just preloads no data
    pool = SparePool(data_source=source)
    pool.warm_up()
    return JobManager(launcher=pool)


# ----------------------------------------------------------------------------- scratch folders
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
