"""The seam between the app and where jobs run: :class:`Executor` and the :class:`Job` it hands out.

Pages and ``kdviz/ui`` see only these two interfaces (through ``kdviz.ui.jobs``); the job
protocol they carry is ``kdviz/runtime/protocol.py``. The local executor is
``kdviz.runtime.manager.JobManager`` (worker processes on this machine, a FIFO queue) with its
``JobHandle``. Another executor (e.g. Ray workers) can plug in at either of two levels:

- a *launcher* ``spec -> Worker`` (``kdviz.runtime.launch``): something process-like plus an
  events queue and a control queue; the local queue, slots and handles are reused as they are;
- a whole :class:`Executor`: ``kdviz.ui.jobs.get_manager`` builds it; no page changes.
"""
from __future__ import annotations

from typing import Mapping, Protocol, runtime_checkable

from kdviz.runtime.records import RunLog


@runtime_checkable
class Job(Protocol):
    """One submitted job as the session that started it sees it (states: see the protocol)."""

    id: int
    spec: dict
    owner: str
    state: str  # "queued" | "running" | "paused" | "done" | "error" | "stopped"
    status: str  # the last status text
    result: dict | None  # the result event
    error: str | None
    runs: Mapping[str, RunLog]  # per run name: its downsampled records
    events_seen: int  # grows whenever poll() applied events (redraw only then)

    @property
    def active(self) -> bool: ...  # queued, running or paused

    @property
    def position(self) -> int | None: ...  # 1-based place in the queue while queued, else None

    def poll(self, max_events: int = 5000) -> int: ...  # apply the events that arrived; never blocks

    def step(self, run: str | None = None) -> int: ...  # latest training step (max over runs)

    def records(self, run: str) -> list[dict]: ...

    def evals(self, run: str) -> list[dict]: ...

    def pause(self) -> None: ...

    def resume(self) -> None: ...

    def step_once(self) -> None: ...  # run to the next record, then pause

    def stop(self) -> None: ...  # stop now, keep the records, free the slot

    def wait_ended(self, timeout: float = 5.0) -> bool: ...  # block until its worker is gone (tests, shutdown)


@runtime_checkable
class Executor(Protocol):
    """Runs jobs: at most ``max_jobs`` at once, the rest wait in a FIFO queue, shared fairly
    (``kdviz/runtime/fairshare.py``: per owner/identity one running and one queued job)."""

    max_jobs: int

    # ValueError for a bad spec; fairshare.FairShareError (a ValueError) for a Start fair share refuses
    def submit(self, spec: dict, owner: str = "", name: str = "job", identity: str = "") -> Job: ...

    def counts(self) -> dict[str, int]: ...  # {"running": n, "queued": m, "max": max_jobs}

    def jobs(self, owner: str | None = None) -> list[Job]: ...  # active jobs (of ``owner``)

    def stop_all(self, owner: str | None = None) -> int: ...
