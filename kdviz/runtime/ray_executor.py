"""The Ray executor: each job runs in a Ray actor; one queue for the cluster; stop and pause from the driver.

Selected with ``KDVIZ_EXECUTOR=ray`` (``kdviz.runtime.executors.make_executor``). It plugs in at
the *launcher* level of ``kdviz/runtime/executor.py``: :class:`RayLauncher` turns a spec into a
:class:`~kdviz.runtime.launch.Worker` whose "process" is a :class:`JobActor` running the usual
worker loop (``kdviz.runtime.worker.worker_main``), with its events and control queues inside the
actor (:class:`ActorEvents` fetches events in batches without blocking the server). So the
events, control messages and states are exactly those of ``kdviz/runtime/protocol.py``. Each Streamlit server process (replica) has one driver-side job
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

from kdviz.hosted import job_limit
from kdviz.runtime.launch import EVENT_QUEUE_MAX, Worker
from kdviz.runtime.manager import JobManager
from kdviz.runtime.ray_slots import BrokeredJobManager
from kdviz.runtime.worker import worker_main, worker_nice

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


@ray.remote(num_cpus=1, max_concurrency=3)
class JobActor:
    """Runs one job's worker loop in one thread (``run`` returns when the job has ended, its ``end``
    event queued), while other threads hand its events out (``take``) and pass control messages in
    (``send``). Keeping both queues inside the actor, rather than in two ``ray.util.queue.Queue``
    actors, saves two Python processes per job (about 80 MB each) and lets one call fetch a batch."""

    def __init__(self) -> None:
        if hasattr(os, "nice"):  # as local workers do (kdviz/runtime/worker.py): the server's replies come first
            os.nice(max(0, worker_nice() - os.nice(0)))
        self.events: queue.Queue = queue.Queue(maxsize=EVENT_QUEUE_MAX)
        self.control: queue.Queue = queue.Queue()

    def run(self, spec: dict) -> int:
        worker_main(spec, self.events, self.control)
        return 0

    def take(self, most: int = 5000) -> list[dict]:
        """Every waiting event (at most ``most``), never blocking."""
        out = []
        while len(out) < most:
            try:
                out.append(self.events.get_nowait())
            except queue.Empty:
                break
        return out

    def send(self, message) -> None:
        self.control.put(message)


class ActorProcess:
    """The process-like face of a :class:`JobActor` (what :class:`Worker` and ``JobManager`` expect)."""

    def __init__(self, actor, done_ref) -> None:
        self.actor, self.done_ref = actor, done_ref
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
        """Kill the actor (once the job's events are no longer needed)."""
        try:
            ray.kill(self.actor)
        except (ValueError, ray.exceptions.RayError):
            pass  # already gone


class ActorEvents:
    """``get_nowait`` over a :class:`JobActor`'s events that never blocks the server while the job runs.

    One ``take`` call is in flight at a time; its batch is used once it has arrived (the session's
    next poll). Waiting for each reply instead held the job manager's lock for one Ray round trip per
    poll: with 20 sessions on 2 cores the pages stopped rendering (the load test's fresh sessions
    timed out at 30 s). Once the job has ended, the rest is fetched waiting, so no event is lost."""

    def __init__(self, process: ActorProcess) -> None:
        self.process, self.buffer, self.pending = process, deque(), None

    def get_nowait(self) -> dict:
        if not self.buffer:
            try:
                self._collect(wait=not self.process.is_alive())
            except ray.exceptions.RayError as err:  # the actor is gone: like a closed queue
                raise OSError(str(err)) from err
        if not self.buffer:
            raise queue.Empty
        return self.buffer.popleft()

    def _collect(self, wait: bool) -> None:
        if self.pending is None:
            self.pending = self.process.actor.take.remote()
        if not wait and not ray.wait([self.pending], timeout=0)[0]:
            return  # not arrived yet: the next poll takes it
        self.buffer.extend(ray.get(self.pending, timeout=10))
        self.pending = None
        if wait:  # the job has ended: also what it queued after that call was sent
            self.buffer.extend(ray.get(self.process.actor.take.remote(), timeout=10))

    def close(self) -> None:
        """Called by ``Worker.end`` once the job is over: free the actor."""
        self.buffer.clear()
        self.process.release()


class ActorControl:
    def __init__(self, actor) -> None:
        self.actor = actor

    def put(self, message) -> None:
        self.actor.send.remote(message)  # calls from one caller arrive in order


class RayLauncher:
    """``spec -> Worker`` on Ray (a launcher for ``JobManager``)."""

    def __init__(self) -> None:
        ensure_ray()
        self.started = 0

    def __call__(self, spec: dict) -> Worker:
        actor = JobActor.options(num_cpus=max(1, int(spec.get("threads", 1)))).remote()
        process = ActorProcess(actor, actor.run.remote(dict(spec)))
        self.started += 1
        return Worker(process, ActorEvents(process), ActorControl(actor))


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
