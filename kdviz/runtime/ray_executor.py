"""The Ray executor: each job runs in a Ray actor; one queue for the cluster; stop and pause from the driver.

Selected with ``KDVIZ_EXECUTOR=ray`` (``kdviz.runtime.executors.make_executor``). It plugs in at
the *launcher* level of ``kdviz/runtime/executor.py``: :class:`RayLauncher` turns a spec into a
:class:`~kdviz.runtime.launch.Worker` whose "process" is a :class:`JobActor` running the usual
worker loop (``kdviz.runtime.worker.worker_main``) and whose two queues are
``ray.util.queue.Queue`` actors. So the events, control messages and states are exactly those of
``kdviz/runtime/protocol.py``. Each Streamlit server process (replica) has one driver-side job
manager, :class:`~kdviz.runtime.ray_slots.BrokeredJobManager`: handles, events and control are
the local executor's; the queue order, slot grants and fair share are decided cluster-wide by one
named broker actor (``kdviz/runtime/ray_slots.py``).

Cluster: ``ray.init()`` connects to ``$RAY_ADDRESS`` when set (kdviz must be installed on the
nodes, the data under ``$KDVIZ_DATA_DIR`` on each); without it a local Ray instance starts, with
this checkout on the workers' ``PYTHONPATH``. ``KDVIZ_*`` variables travel to the workers.
This module and ``ray_slots.py`` are the only ones that import ``ray`` (an optional dependency:
requirements-optional.txt).
"""
from __future__ import annotations

import os
import queue
from collections import deque
from pathlib import Path
from typing import Callable, Iterable

import ray
from ray.util.queue import Queue

from kdviz.hosted import job_limit
from kdviz.runtime.launch import EVENT_QUEUE_MAX, Worker
from kdviz.runtime.manager import JobManager
from kdviz.runtime.ray_slots import BrokeredJobManager
from kdviz.runtime.worker import worker_main

REPO_ROOT = str(Path(__file__).resolve().parents[2])


def ensure_ray(**init_kwargs) -> None:
    """Connect to ``$RAY_ADDRESS`` (or start a local Ray) once per process; a no-op inside a Ray worker."""
    if ray.is_initialized():
        return
    env = {k: v for k, v in os.environ.items() if k.startswith("KDVIZ_")}
    if not os.environ.get("RAY_ADDRESS"):
        init_kwargs.setdefault("address", "local")  # a new instance, never a cluster this machine happens to run
        env["PYTHONPATH"] = os.pathsep.join(p for p in (REPO_ROOT, os.environ.get("PYTHONPATH", "")) if p)
    init_kwargs.setdefault("include_dashboard", False)
    ray.init(runtime_env={"env_vars": env}, ignore_reinit_error=True, log_to_driver=False, **init_kwargs)


@ray.remote(num_cpus=1)
class JobActor:
    """Runs one job's worker loop; ``run`` returns when the job has ended (its ``end`` event sent)."""

    def run(self, spec: dict, events: Queue, control: Queue) -> int:
        worker_main(spec, events, control)
        return 0


class ActorProcess:
    """The process-like face of a :class:`JobActor` (what :class:`Worker` and ``JobManager`` expect)."""

    def __init__(self, actor, done_ref, queues: tuple[Queue, Queue]) -> None:
        self.actor, self.done_ref, self.queues = actor, done_ref, queues
        self.exitcode: int | None = None

    def is_alive(self) -> bool:
        if self.exitcode is not None:
            return False
        ready, _ = ray.wait([self.done_ref], timeout=0)
        if ready:
            self.exitcode = self._code()
        return self.exitcode is None

    def _code(self) -> int:
        try:
            return int(ray.get(self.done_ref))
        except (ray.exceptions.RayError, ValueError):
            return -9  # the actor died (killed, node lost, out of memory)

    def join(self, timeout: float | None = None) -> None:
        ray.wait([self.done_ref], timeout=timeout)
        self.is_alive()

    def terminate(self) -> None:
        self.exitcode = -15 if self.exitcode is None else self.exitcode
        self.release()

    kill = terminate

    def release(self) -> None:
        """Kill the actor and its two queue actors (once the job's events are no longer needed)."""
        for actor in (self.actor, *(q.actor for q in self.queues)):
            try:
                ray.kill(actor)
            except (ValueError, ray.exceptions.RayError):
                pass  # already gone


class BatchedEvents:
    """``get_nowait`` over a Ray queue, fetching every waiting event in one call (not one actor call each)."""

    def __init__(self, source: Queue, on_close: Callable[[], None] = lambda: None) -> None:
        self.source, self.buffer, self.on_close = source, deque(), on_close

    def get_nowait(self) -> dict:
        if not self.buffer:
            try:
                n = self.source.qsize()
                if n:
                    self.buffer.extend(self.source.get_nowait_batch(n))
            except ray.exceptions.RayError as err:  # the queue actor is gone: like a closed queue
                raise OSError(str(err)) from err
        if not self.buffer:
            raise queue.Empty
        return self.buffer.popleft()

    def close(self) -> None:
        """Called by ``Worker.end`` once the job is over: free the Ray actors."""
        self.buffer.clear()
        self.on_close()


class RayLauncher:
    """``spec -> Worker`` on Ray (a launcher for ``JobManager``)."""

    def __init__(self) -> None:
        ensure_ray()
        self.started = 0

    def __call__(self, spec: dict) -> Worker:
        events, control = Queue(maxsize=EVENT_QUEUE_MAX), Queue()
        actor = JobActor.options(num_cpus=max(1, int(spec.get("threads", 1)))).remote()
        done = actor.run.remote(dict(spec), events, control)
        self.started += 1
        process = ActorProcess(actor, done, (events, control))
        return Worker(process, BatchedEvents(events, on_close=process.release), control)


def ray_executor(max_jobs: int | None = None, broker: str | None = None) -> JobManager:
    """The Ray-backed executor: a job manager launching Ray actors, whose queue and slots are the
    cluster's (``kdviz/runtime/ray_slots.py``: one broker shared by every replica, named ``broker``
    or ``$KDVIZ_RAY_BROKER``).

    ``max_jobs`` (used when this replica creates the broker) defaults to ``$KDVIZ_MAX_JOBS``, else
    the CPUs of the Ray cluster."""
    launcher = RayLauncher()
    if max_jobs is None:
        max_jobs = job_limit() if os.environ.get("KDVIZ_MAX_JOBS") else max(1, int(ray.cluster_resources().get("CPU", 1)))
    return BrokeredJobManager(max_jobs, launcher, broker)


@ray.remote
def _call(fn: Callable, item):
    return fn(item)


def map_points(fn: Callable, items: Iterable) -> list:
    """``[fn(x) for x in items]`` as parallel Ray tasks, results in order (``fn`` must pickle)."""
    ensure_ray()
    return ray.get([_call.remote(fn, item) for item in items])
