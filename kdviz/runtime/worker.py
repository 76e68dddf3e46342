"""The worker-process side of jobs (no Streamlit): run one job and stream its events.

``worker_main(spec, events, control)`` runs in a process forked from the fork server (or
spawned; started by ``kdviz/runtime/launch.py``): it imports the job named by ``spec["fn"]``, pulls its
generator and puts every event on ``events``, obeying the control messages on ``control``
between events. Events, control messages and the path rule: ``kdviz/runtime/protocol.py``.
``events``/``control`` only need ``put`` and ``get(block, timeout)``: a ``queue.Queue`` works
too, which lets tests run the loop in-process.
"""
from __future__ import annotations

import importlib
import multiprocessing as mp
import os
import queue
import sys
import time
import traceback
from typing import Callable, Iterator

from kdviz.runtime.protocol import END, check_job_path, error_event, record_event, status_event

_WAKE_S = 0.5  # while paused: how often to check that the parent process is still alive
# Training workers run below the server's CPU priority: with more runs than cores, the server
# (which draws every session's pages) must not wait behind them, or fresh pages take > 30 s.
# Training loses little: the server is idle most of the time. 0 disables it.
NICE_ENV, DEFAULT_NICE = "KDVIZ_WORKER_NICE", 10


def resolve_job(path: str) -> Callable[[dict], Iterator[dict]]:
    """The job function named by ``path``. Anything outside ``kdviz.`` is refused (nothing imported)."""
    module, name = check_job_path(path)
    try:
        fn = getattr(importlib.import_module(module), name)
    except (ImportError, AttributeError) as err:
        raise ValueError(f"job function {path!r} not found ({type(err).__name__}: {err})") from err
    if not callable(fn):
        raise ValueError(f"job function {path!r} is not callable")
    return fn


class Control:
    """Pause/resume/step/stop state, fed from the control queue between events."""

    def __init__(self, source) -> None:
        self.source = source
        self.paused = False
        self.stopped = False
        self.step_budget = 0  # records still allowed while paused (from "step")

    def apply(self, message: str) -> None:
        if message == "stop":
            self.stopped = True
        elif message == "pause":
            self.paused, self.step_budget = True, 0
        elif message == "resume":
            self.paused, self.step_budget = False, 0
        elif message == "step":
            self.paused, self.step_budget = True, self.step_budget + 1

    def drain(self, timeout: float | None = None) -> None:
        """Apply every waiting message; block up to ``timeout`` for the first one when given."""
        try:
            self.apply(self.source.get(timeout=timeout) if timeout else self.source.get_nowait())
            while True:
                self.apply(self.source.get_nowait())
        except queue.Empty:
            pass

    def may_continue(self) -> bool:
        """Block while paused (without stepping); False once stopped or orphaned."""
        self.drain()
        while self.paused and not self.step_budget and not self.stopped:
            self.drain(timeout=_WAKE_S)
            if _parent_gone():
                self.stopped = True
        return not self.stopped

    def after(self, event: dict) -> None:
        if self.paused and self.step_budget and event.get("type") in ("record", "result", "error"):
            self.step_budget -= 1


def _parent_gone() -> bool:
    parent = mp.parent_process()  # None when the loop runs in-process (tests)
    return parent is not None and not parent.is_alive()


def run_events(fn: Callable[[dict], Iterator[dict]], spec: dict, events, control) -> None:
    """The loop: pull events from ``fn(spec)`` and forward them, obeying ``control``."""
    ctl = Control(control)
    gen = fn(spec)
    try:
        while ctl.may_continue():
            try:
                event = next(gen)
            except StopIteration:
                break
            events.put(event)
            ctl.after(event)
            if event.get("type") == "error" or _parent_gone():
                break
        if ctl.stopped:
            events.put(status_event("stopped"))
    finally:
        gen.close()


def worker_nice() -> int:
    """The niceness workers run at: ``KDVIZ_WORKER_NICE`` (0–19), default 10; a bad value gives the default."""
    try:
        return min(19, max(0, int(os.environ.get(NICE_ENV, DEFAULT_NICE))))
    except ValueError:
        return DEFAULT_NICE


def lower_priority() -> int:
    """In a worker process (never in-process tests): raise niceness to :func:`worker_nice`; idempotent."""
    if mp.parent_process() is None or not hasattr(os, "nice"):
        return 0
    current, target = os.nice(0), worker_nice()
    return os.nice(target - current) if target > current else current


def worker_main(spec: dict, events, control) -> None:
    """Process entry point: run the job (torch limited to ``spec["threads"]``, default 1), always end with ``END``.

    ``spec`` is a dict checked by ``kdviz.runtime.protocol.validate_spec`` where it entered the runtime."""
    lower_priority()
    try:
        threads = max(1, int(spec.get("threads", 1)))
        fn = resolve_job(spec.get("fn", ""))
        if "torch" in sys.modules:  # the job module uses torch (a torch-free job skips its 2 s import)
            sys.modules["torch"].set_num_threads(threads)
        run_events(fn, spec, events, control)
    except ValueError as err:
        events.put(error_event(err))
    except Exception as err:  # a bug or OOM must still reach the user as a message
        traceback.print_exc(file=sys.stderr)
        events.put(error_event(err, f"the job failed: {type(err).__name__}: {err}"))
    finally:
        events.put(dict(END))


def with_environment(environ: dict, target: Callable, *args) -> None:
    """Process entry point: make ``os.environ`` the parent's (a forked child inherits the fork
    server's, which may be older), then run ``target(*args)``."""
    os.environ.clear()
    os.environ.update(environ)
    target(*args)


def spare_main(events, control, preload: tuple[str, ...] = (), data_source: str | None = None) -> None:
    """A warm worker: import the job modules (and load the data set) *now*, then wait for a spec.

    Saves a user the interpreter start, the torch import and the data loading (seconds) when
    they press Start. The spec arrives as a dict on ``control``; ``"stop"`` ends the spare.
    Preloading is best effort: a failure here is reported by the job itself when it retries.
    """
    lower_priority()
    try:
        for module in preload:
            importlib.import_module(module)
        if data_source:
            from kdviz.data import load_bundle  # torch: only here, so a torch-free job's worker stays light

            load_bundle(data_source)
    except Exception:  # noqa: BLE001 - the job will hit (and report) the same problem
        traceback.print_exc(file=sys.stderr)
    while True:
        try:
            message = control.get(timeout=_WAKE_S)
        except queue.Empty:
            if _parent_gone():
                return
            continue
        if isinstance(message, dict):
            worker_main(message, events, control)
            return
        if message == "stop":
            return


def count_job(spec: dict) -> Iterator[dict]:
    """A trivial, torch-free job for the job machinery: ``n`` records (``run="count"``, ``step``
    1..n) ``delay_s`` apart, then a result with their sum. Used in tests and as an example."""
    try:
        n, delay = int(spec.get("n", 10)), float(spec.get("delay_s", 0.0))
    except (TypeError, ValueError) as err:
        yield error_event(err, f"count_job needs numbers n and delay_s: {err}")
        return
    yield status_event(f"counting to {n}")
    for step in range(1, n + 1):
        if delay > 0:
            time.sleep(delay)
        yield record_event("count", {"step": step, "total": float(step)})
    yield {"type": "result", "sum": n * (n + 1) // 2}
