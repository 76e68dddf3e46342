"""One queue for the whole Ray cluster: the slot broker that every Streamlit replica's job manager asks.

With several replicas behind a proxy (``docs/deployment.md``), each server process has its own
:class:`~kdviz.runtime.manager.JobManager`. On its own, each would admit ``max_jobs`` jobs and keep
its own FIFO queue, so the limits and fair share would hold per replica only. Here the decisions
move into one named Ray actor, :class:`SlotBroker` (``namespace="kdviz"``; the first replica to
ask creates it, the others find it), and :class:`BrokeredJobManager` asks it instead of deciding
alone. The rules are those of ``kdviz/runtime/fairshare.py`` (the broker calls the same
functions); what changes is their scope:

- ``max_jobs`` running (or paused) jobs in the whole cluster; one FIFO queue across replicas,
  so the position a user sees is their place in that one queue;
- per identity (a person, ``KDVIZ_IDENTITY_HEADER``): one running and one queued job, whichever
  replicas their tabs landed on; per owner (a session, which lives on one replica) as before;
- a paused job gives up its slot after the pause timeout while anyone in the cluster waits.

Each replica's manager stays the source of truth for its own jobs: every ``sync`` sends the keys
it still holds, and the broker drops the rest (a stopped, finished or dead job frees its slot
even if the release call was lost). A replica that has not synced for ``lease_s`` (crashed,
partitioned) loses its entries, so its slots cannot leak. Stop, pause and the events of a job
stay between the session and its actor (``kdviz/runtime/ray_executor.py``).
"""
from __future__ import annotations

import os
import time
import uuid
from types import SimpleNamespace

import ray

from kdviz.runtime import fairshare
from kdviz.runtime.manager import JobHandle, JobManager

BROKER_NAME, NAMESPACE, BROKER_ENV = "kdviz-slots", "kdviz", "KDVIZ_RAY_BROKER"
LEASE_S = 30.0  # a replica's sync interval is ≤ 4 s (the slowest page poll); 30 s of silence means it is gone
SYNC_CACHE_S = 0.2  # ticks come from every poll of every session; one broker call per 0.2 s is plenty


@ray.remote(num_cpus=0)
class SlotBroker:
    """The cluster's queue and slots. Entries are kept in submission order (a dict): the queue's FIFO."""

    def __init__(self, max_jobs: int, lease_s: float = LEASE_S) -> None:
        self.max_jobs, self.lease_s = int(max_jobs), float(lease_s)
        self.entries: dict[str, SimpleNamespace] = {}
        self.seen: dict[str, float] = {}

    def limit(self) -> int:
        return self.max_jobs

    def enqueue(self, key: str, job_id: int, replica: str, owner: str, identity: str) -> tuple[list[str], str | None]:
        """Queue ``key`` (job ``job_id`` of ``replica``); returns (the queued keys it replaces, None) or
        ([], the refusal's message)."""
        entry = SimpleNamespace(key=key, id=job_id, replica=replica, owner=owner, identity=identity,
                                state="queued", told=False)
        try:
            replaced = fairshare.to_replace(entry, [e for e in self.entries.values() if e.state == "queued"])
        except fairshare.FairShareError as err:
            return [], str(err)
        for old in replaced:
            self.entries.pop(old.key, None)
        self.entries[key] = entry
        self.seen[replica] = time.monotonic()
        return [old.key for old in replaced], None

    def release(self, key: str) -> None:
        self.entries.pop(key, None)

    def sync(self, replica: str, held: list[str]) -> dict:
        """``replica`` still holds ``held``: admit what may start, cluster-wide, and return this
        replica's newly admitted keys, its queue positions and the cluster's counts."""
        now = time.monotonic()
        self.seen[replica] = now
        self._forget(replica, set(held), now)
        self._admit()
        return self._view(replica)

    def _forget(self, replica: str, held: set[str], now: float) -> None:
        gone = {r for r, t in self.seen.items() if now - t > self.lease_s}
        for r in gone:
            del self.seen[r]
        self.entries = {k: e for k, e in self.entries.items()
                        if e.replica not in gone and (e.replica != replica or k in held)}

    def _admit(self) -> None:
        running = [e for e in self.entries.values() if e.state == "running"]
        for entry in self.entries.values():
            if len(running) >= self.max_jobs:
                break
            if entry.state == "queued" and fairshare.may_start(entry, running):
                entry.state = "running"
                running.append(entry)

    def _view(self, replica: str) -> dict:
        queued = [e for e in self.entries.values() if e.state == "queued"]
        admitted = [e.key for e in self.entries.values() if e.replica == replica and e.state == "running" and not e.told]
        for key in admitted:
            self.entries[key].told = True
        return {"admitted": admitted,
                "positions": {e.key: i for i, e in enumerate(queued, start=1) if e.replica == replica},
                "counts": {"running": sum(e.state == "running" for e in self.entries.values()),
                           "queued": len(queued), "max": self.max_jobs},
                "others_waiting": bool(queued)}


def broker_name(name: str | None = None) -> str:
    """``name``, else ``$KDVIZ_RAY_BROKER``, else "kdviz-slots": the replicas of one deployment share it."""
    return name or os.environ.get(BROKER_ENV, "").strip() or BROKER_NAME


def slot_broker(max_jobs: int, name: str, lease_s: float = LEASE_S):
    """The cluster's broker actor ``name``: found, or created when missing, detached so that it outlives
    any one replica. An existing broker keeps the ``max_jobs`` it was created with: the cluster has one
    limit, whatever a late replica asks for."""
    return SlotBroker.options(name=name, namespace=NAMESPACE, get_if_exists=True, lifetime="detached").remote(
        max_jobs, lease_s)


class BrokeredJobManager(JobManager):
    """A :class:`JobManager` whose queue order, slot grants and counts come from the cluster's :class:`SlotBroker`.

    Jobs, handles, events and control are the base class's; only the scheduling hooks differ."""

    def __init__(self, max_jobs: int, launcher, name: str | None = None) -> None:
        self.broker_name = broker_name(name)
        self.broker = slot_broker(max_jobs, self.broker_name)
        super().__init__(max_jobs=ray.get(self.broker.limit.remote()), launcher=launcher)
        self.replica = uuid.uuid4().hex[:12]
        self._view = {"admitted": [], "positions": {}, "counts": {"running": 0, "queued": 0, "max": self.max_jobs},
                      "others_waiting": False}
        self._synced_at = float("-inf")

    def key(self, handle: JobHandle) -> str:
        return f"{self.replica}:{handle.id}"

    def _enter_queue(self, handle: JobHandle) -> list[JobHandle]:
        replaced, refusal = ray.get(self.broker.enqueue.remote(self.key(handle), handle.id, self.replica,
                                                               handle.owner, handle.identity))
        if refusal:
            raise fairshare.FairShareError(refusal)
        self._synced_at = float("-inf")  # the next tick asks again: this job may start at once
        self._queue.append(handle)
        return [h for h in self._queue if self.key(h) in set(replaced)]

    def _sync(self) -> dict:
        if time.monotonic() - self._synced_at >= SYNC_CACHE_S:
            held = [self.key(h) for h in (*self._running, *self._queue)]
            self._view = ray.get(self.broker.sync.remote(self.replica, held))
            self._synced_at = time.monotonic()
        return self._view

    def _admit(self) -> list[JobHandle]:
        admitted = set(self._sync()["admitted"])
        self._view["admitted"] = []  # told once
        return [h for h in self._queue if self.key(h) in admitted]

    def _others_waiting(self) -> bool:
        return self._sync()["others_waiting"]

    def position(self, handle: JobHandle) -> int | None:
        with self._lock:
            return self._sync()["positions"].get(self.key(handle)) if handle in self._queue else None

    def counts(self) -> dict[str, int]:
        self.tick()
        with self._lock:
            return dict(self._sync()["counts"])

    def _dequeue(self, handle: JobHandle) -> None:
        with self._lock:
            if handle in self._queue:
                self._queue.remove(handle)
                self._forget_remotely(handle)

    def _release(self, handle: JobHandle) -> None:
        self._forget_remotely(handle)
        super()._release(handle)

    def _forget_remotely(self, handle: JobHandle) -> None:
        self.broker.release.remote(self.key(handle))  # fire and forget: the next sync drops it anyway
        self._synced_at = float("-inf")
