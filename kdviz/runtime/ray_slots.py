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

import logging
import os
import threading
import time
import uuid
import weakref
from types import SimpleNamespace

import ray

from kdviz.runtime import fairshare
from kdviz.runtime.manager import JobHandle, JobManager

log = logging.getLogger(__name__)
BROKER_NAME, NAMESPACE, BROKER_ENV = "kdviz-slots", "kdviz", "KDVIZ_RAY_BROKER"
HEARTBEAT_S = 5.0  # a replica syncs at least this often, polled or not (a browser throttles a hidden tab's timers to once a minute)
LEASE_S = 30.0  # six missed heartbeats: the replica is gone
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

    Jobs, handles, events and control are the base class's; only the scheduling hooks differ. A
    session's poll never waits for the broker: one ``sync`` is in flight at a time and its reply is
    used once it has arrived (a view at most ~``SYNC_CACHE_S`` + one round trip old). After this
    replica's own change (a submit, a stop, a finished job) the next tick waits for a fresh reply,
    so the user who pressed the button sees its effect at once."""

    def __init__(self, max_jobs: int, launcher, name: str | None = None) -> None:
        self.broker_name = broker_name(name)
        self.broker = slot_broker(max_jobs, self.broker_name)
        super().__init__(max_jobs=ray.get(self.broker.limit.remote()), launcher=launcher)
        self.replica = uuid.uuid4().hex[:12]
        self._view = {"positions": {}, "counts": {"running": 0, "queued": 0, "max": self.max_jobs},
                      "others_waiting": False}
        self._admitted: set[str] = set()  # the broker tells each admission once
        self._pending, self._asked_at, self._urgent = None, float("-inf"), True
        threading.Thread(target=_heartbeat, args=(weakref.ref(self),), daemon=True, name="kdviz-broker-heartbeat").start()

    def key(self, handle: JobHandle) -> str:
        return f"{self.replica}:{handle.id}"

    def _enter_queue(self, handle: JobHandle) -> list[JobHandle]:
        replaced, refusal = ray.get(self.broker.enqueue.remote(self.key(handle), handle.id, self.replica,
                                                               handle.owner, handle.identity))
        if refusal:
            raise fairshare.FairShareError(refusal)
        self._urgent = True  # the next tick waits: this job may start at once
        self._queue.append(handle)
        return [h for h in self._queue if self.key(h) in set(replaced)]

    def _ask(self):
        self._asked_at = time.monotonic()
        return self.broker.sync.remote(self.replica, [self.key(h) for h in (*self._running, *self._queue)])

    def _take(self, view: dict) -> None:
        self._admitted.update(view.pop("admitted"))
        self._view = view

    def _sync(self) -> dict:
        if self._urgent:
            self._urgent = False
            if self._pending is not None:  # an older reply: its admissions count too
                self._take(ray.get(self._pending))
            self._pending = None
            self._take(ray.get(self._ask()))
            return self._view
        if self._pending is not None and ray.wait([self._pending], timeout=0)[0]:
            self._take(ray.get(self._pending))
            self._pending = None
        if self._pending is None and time.monotonic() - self._asked_at >= SYNC_CACHE_S:
            self._pending = self._ask()
        return self._view

    def _admit(self) -> list[JobHandle]:
        self._sync()
        chosen = [h for h in self._queue if self.key(h) in self._admitted]
        self._admitted.clear()  # an admitted job no longer queued here is dropped by the next sync
        return chosen

    def _others_waiting(self) -> bool:
        return self._view["others_waiting"]

    def position(self, handle: JobHandle) -> int | None:
        with self._lock:
            return self._view["positions"].get(self.key(handle)) if handle in self._queue else None

    def counts(self) -> dict[str, int]:
        self.tick()
        with self._lock:
            return dict(self._view["counts"])

    def _release(self, handle: JobHandle) -> None:
        """Every job that leaves (finished, stopped, replaced, dequeued) passes here once."""
        self.broker.release.remote(self.key(handle))  # not waited for: calls from one caller arrive in order
        self._urgent = True
        super()._release(handle)


def _heartbeat(manager_ref) -> None:
    """Tick the manager every ``HEARTBEAT_S`` while it exists, so the broker hears from this replica
    even when no session polls (and admitted jobs start); ends with the manager or with Ray."""
    while True:
        time.sleep(HEARTBEAT_S)
        manager = manager_ref()
        if manager is None:
            return
        try:
            manager.tick()
        except Exception as err:  # noqa: BLE001 - Ray shut down or the broker is gone: a background thread ends quietly
            log.warning("broker heartbeat stopped: %s", err)
            return
        del manager
