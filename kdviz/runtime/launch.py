"""Starting worker processes for the local executor: cold (:func:`spawn_worker`) or warm (:class:`SparePool`).

Parent side only (the child side is ``kdviz/runtime/worker.py``; protocol: ``kdviz/runtime/protocol.py``).
A *launcher* is any ``spec -> Worker`` callable; ``JobManager`` takes one, so tests pass fakes.
"""
from __future__ import annotations

import multiprocessing as mp
import multiprocessing.spawn as mp_spawn
import os
import threading
from dataclasses import dataclass
from typing import Any, Callable

from kdviz.runtime.worker import spare_main, with_environment, worker_main

EVENT_QUEUE_MAX = 20000  # a worker blocks (training pauses) when this many events wait undrained
# What a warm spare imports before a spec arrives: the job bodies (and through them torch and the engine).
PRELOAD_MODULES = ("kdviz.runtime.training_jobs", "kdviz.runtime.feature_jobs")
_SPAWN_LOCK = threading.Lock()

Launcher = Callable[[dict], "Worker"]


@dataclass
class Worker:
    """A running worker: anything with ``is_alive/join/terminate/kill/exitcode`` plus two queues."""

    process: Any
    events: Any  # worker → app: event dicts (needs get_nowait)
    control: Any  # app → worker: control messages (needs put)

    def end(self, grace_s: float = 0.3) -> None:
        """Ask politely, then terminate, then kill; never blocks for more than ~grace_s + 2 s."""
        if self.process.is_alive():
            try_quietly(self.control.put, "stop")
            self.process.join(grace_s)
        if self.process.is_alive():
            self.process.terminate()
            self.process.join(1.0)
        if self.process.is_alive():
            self.process.kill()
            self.process.join(1.0)
        for q in (self.events, self.control):
            try_quietly(getattr(q, "cancel_join_thread", lambda: None))
            try_quietly(getattr(q, "close", lambda: None))


def try_quietly(fn: Callable, *args) -> None:
    try:
        fn(*args)
    except (OSError, ValueError, AssertionError):
        pass  # the queue or process is already closed: nothing left to clean


def start_without_main(process: mp.process.BaseProcess) -> None:
    """``process.start()`` for a "spawn" or "forkserver" process, without re-running the parent's ``__main__`` in it.

    Streamlit installs the running app script as ``sys.modules["__main__"]``; spawn would
    re-execute that script in the child (as ``__mp_main__``: drawing pages, loading data).
    The worker needs nothing from ``__main__`` (its target lives in ``kdviz.runtime.worker``), so
    the preparation data sent to the child is stripped of the main-module entries while this
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


def _context() -> mp.context.BaseContext:
    """"forkserver" where the platform has it, else "spawn" — never plain fork of a threaded server.

    Why the fork server: each spawned worker imported torch afresh, ~300 MiB of private memory per
    process (``bench/memory.py``). The fork server is a clean single-threaded interpreter that
    imports the job modules (and torch) once; each worker is forked from it and shares those pages
    copy-on-write, so a worker costs only what it writes. It has started no threads and touched
    no GPU, so forking it is safe.
    """
    if not fork_server_available():
        return mp.get_context("spawn")
    ctx = mp.get_context("forkserver")
    ctx.set_forkserver_preload(list(PRELOAD_MODULES))
    return ctx


def fork_server_available() -> bool:
    return "forkserver" in mp.get_all_start_methods()


def warm_fork_server() -> None:
    """Start the fork server now (it imports torch and the job modules: seconds), not at the first job."""
    if fork_server_available():
        _context()
        from multiprocessing import forkserver

        forkserver.ensure_running()


def _start(name: str, target: Callable, make_args: Callable[[Any, Any], tuple]) -> Worker:
    """A daemon process running ``target(*make_args(events, control))`` with this process's environment.

    The fork server was started with the environment of its day; the child gets today's (as a
    spawned one would), so a changed ``KDVIZ_*`` setting reaches the next job.
    """
    ctx = _context()
    events, control = ctx.Queue(maxsize=EVENT_QUEUE_MAX), ctx.Queue()
    args = (dict(os.environ), target, *make_args(events, control))
    proc = ctx.Process(target=with_environment, args=args, daemon=True, name=name)
    start_without_main(proc)
    return Worker(proc, events, control)


def spawn_worker(spec: dict) -> Worker:
    """Start ``worker_main(spec)`` in a fresh interpreter (a cold start: seconds for torch and data)."""
    return _start(f"kdviz-{spec.get('fn', 'job')}", worker_main, lambda events, control: (spec, events, control))


class SparePool:
    """A launcher that keeps one warm worker ready (job modules imported, data set loaded).

    ``pool(spec)`` hands the spec to the spare (so training starts within a poll or two) and
    starts the next spare; without a live spare it falls back to a cold start.
    """

    def __init__(self, preload: tuple[str, ...] = PRELOAD_MODULES, data_source: str | None = None) -> None:
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


class _ThreadProcess:
    """A thread that looks like a process to :class:`Worker` (``terminate`` asks it to stop)."""

    def __init__(self, thread: threading.Thread, control) -> None:
        self.thread, self.control, self.exitcode = thread, control, None

    def is_alive(self) -> bool:
        return self.thread.is_alive()

    def join(self, timeout: float | None = None) -> None:
        self.thread.join(timeout)

    def terminate(self) -> None:
        self.control.put("stop")

    kill = terminate


def thread_worker(spec: dict) -> Worker:
    """A launcher running ``worker_main(spec)`` in a thread of this process: no spawn cost, for
    torch-free jobs in tests and contract checks (``kdviz.runtime.worker:count_job``)."""
    import queue

    events, control = queue.Queue(maxsize=EVENT_QUEUE_MAX), queue.Queue()
    thread = threading.Thread(target=worker_main, args=(spec, events, control), daemon=True, name="kdviz-thread-job")
    thread.start()
    return Worker(_ThreadProcess(thread, control), events, control)
