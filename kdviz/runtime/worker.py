"""The worker-process side of app jobs (no Streamlit here).

``worker_main(spec, events, control)`` is the target of a ``multiprocessing`` "spawn" process:
it imports the job function named by ``spec["fn"]`` ("module:function", modules under
``kdviz.`` only), iterates it and puts every event on ``events``. Between events it obeys
control messages read from ``control``:

- ``"pause"``  stop pulling the generator (training halts: the generator *is* the loop)
- ``"resume"`` pull again
- ``"step"``   run until the next record (or result/error) is out, then pause
- ``"stop"``   close the generator and end

The last event is always ``{"type": "end"}`` so the parent knows the stream is complete.
``events``/``control`` only need ``put`` and ``get(block, timeout)``: a ``queue.Queue`` works
too, which lets tests run the loop in-process.
"""
from __future__ import annotations

import importlib
import multiprocessing as mp
import multiprocessing.spawn as mp_spawn
import os
import queue
import sys
import threading
import time
import traceback
from typing import Callable, Iterator

ALLOWED_PREFIX = "kdviz."
CONTROL_MESSAGES = ("pause", "resume", "step", "stop")
END = {"type": "end"}
_WAKE_S = 0.5  # while paused: how often to check that the parent process is still alive
_SPAWN_LOCK = threading.Lock()
# Training workers run below the server's CPU priority: with more runs than cores, the server
# (which draws every session's pages) must not wait behind them, or fresh pages take > 30 s.
# Training loses little: the server is idle most of the time. 0 disables it.
NICE_ENV, DEFAULT_NICE = "KDVIZ_WORKER_NICE", 10


def check_job_path(path: str) -> tuple[str, str]:
    """``"kdviz.runtime.tasks:teacher_job"`` → ``("kdviz.runtime.tasks", "teacher_job")`` without importing anything."""
    module, sep, name = str(path).partition(":")
    parts = module.split(".")
    if not sep or not module.startswith(ALLOWED_PREFIX) or not all(p.isidentifier() for p in parts) or not name.isidentifier():
        raise ValueError(f"job function {path!r} refused: only 'kdviz.<module>:<function>' paths are allowed")
    return module, name


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
            events.put({"type": "status", "text": "stopped"})
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
    """Process entry point: run the job (torch limited to ``spec["threads"]``, default 1), always end with ``END``."""
    lower_priority()
    try:
        if not isinstance(spec, dict):
            raise ValueError(f"a job spec must be a dict, got {type(spec).__name__}")
        threads = max(1, int(spec.get("threads", 1)))
        fn = resolve_job(spec.get("fn", ""))
        if "torch" in sys.modules:  # the job module uses torch (a torch-free job skips its 2 s import)
            sys.modules["torch"].set_num_threads(threads)
        run_events(fn, spec, events, control)
    except ValueError as err:
        events.put({"type": "error", "text": str(err), "kind": type(err).__name__})
    except Exception as err:  # a bug or OOM must still reach the user as a message
        traceback.print_exc(file=sys.stderr)
        events.put({"type": "error", "text": f"the job failed: {type(err).__name__}: {err}", "kind": type(err).__name__})
    finally:
        events.put(dict(END))


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
            importlib.import_module("kdviz.runtime.tasks").load_bundle(data_source)
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
        yield {"type": "error", "text": f"count_job needs numbers n and delay_s: {err}"}
        return
    yield {"type": "status", "text": f"counting to {n}"}
    for step in range(1, n + 1):
        if delay > 0:
            time.sleep(delay)
        yield {"type": "record", "run": "count", "step": step, "total": float(step)}
    yield {"type": "result", "sum": n * (n + 1) // 2}


def start_without_main(process: mp.process.BaseProcess) -> None:
    """``process.start()`` for a "spawn" process, without re-running the parent's ``__main__`` in it.

    Streamlit installs the running app script as ``sys.modules["__main__"]``; spawn would
    re-execute that script in the child (as ``__mp_main__``: drawing pages, loading data).
    The worker needs nothing from ``__main__`` (its target lives in this module), so the
    preparation data sent to the child is stripped of the main-module entries while this
    process starts. The patch is held under a lock and undone at once.
    """
    original = mp_spawn.get_preparation_data

    def without_main(name):
        data = original(name)
        data.pop("init_main_from_path", None)
        data.pop("init_main_from_name", None)
        return data

    with _SPAWN_LOCK:
        mp_spawn.get_preparation_data = without_main
        try:
            process.start()
        finally:
            mp_spawn.get_preparation_data = original
