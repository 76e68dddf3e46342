"""One browser session's jobs (:class:`SessionJobs`): what it started, by name, on any executor.

Plain Python (no Streamlit); ``kdviz/ui/jobs.py`` keeps one per browser session and stops its jobs
when the session ends. The executor interface it talks to: ``kdviz/runtime/executor.py``.
"""
from __future__ import annotations

import uuid

from kdviz.runtime.executor import Job


class SessionJobs:
    """One session's jobs by name ("teacher", "distill", ...), submitted to an executor.

    Every job it ever submitted is kept in ``submitted`` (not only the latest of each name), so
    :meth:`active` counts and :meth:`stop_all` stops all of them, whatever happened to the names.
    """

    def __init__(self, identity: str = "") -> None:
        self.id = uuid.uuid4().hex[:12]
        self.identity = identity
        self.handles: dict[str, Job] = {}
        self.submitted: list[Job] = []
        self._requests: dict[str, dict] = {}  # name -> the spec as the page gave it (before defaults)
        self._executors: list = []

    def start(self, name: str, spec: dict, executor) -> Job:
        """Submit ``spec`` as job ``name``; the previous job of that name is stopped once the new one is accepted.

        Idempotent while a start is in flight: the same spec again, while the job of that name is
        queued or has not sent anything yet, returns that job (a double click is not a second job)."""
        current = self.handles.get(name)
        if current is not None and self._in_flight(current) and self._requests.get(name) == spec:
            return current
        handle = executor.submit(spec, owner=self.id, name=name, identity=self.identity)  # a bad spec raises: the old job runs on
        self._remember(name, spec, handle, executor)
        if current is not None:
            current.stop()
        return handle

    @staticmethod
    def _in_flight(handle: Job) -> bool:
        return handle.state == "queued" or (handle.state == "running" and handle.events_seen == 0)

    def _remember(self, name: str, spec: dict, handle: Job, executor) -> None:
        self.handles[name], self._requests[name] = handle, dict(spec)
        self.submitted = [h for h in self.submitted if h.active] + [handle]
        if executor not in self._executors:
            self._executors.append(executor)

    def forget(self, name: str) -> None:
        """Stop job ``name`` and drop its records."""
        handle = self.handles.pop(name, None)
        self._requests.pop(name, None)
        if handle is not None:
            handle.stop()

    def adopt(self, other: "SessionJobs") -> None:
        """Take over ``other``'s handles for names this registry lacks (a reconnected session keeps its curves)."""
        for name, handle in other.handles.items():
            self.handles.setdefault(name, handle)
        self.submitted += [h for h in other.submitted if h.active and h not in self.submitted]
        self._executors += [e for e in other._executors if e not in self._executors]

    def active(self) -> list[Job]:
        """Every active job of this session: the ones it submitted plus any the executors hold under its id."""
        found = [h for h in self.submitted if h.active]
        for executor in self._executors:
            found += [h for h in executor.jobs(self.id) if h not in found]
        return found

    def stop_all(self) -> int:
        """Stop every job of this session; returns how many were still active."""
        handles = self.active()
        for handle in sorted(handles, key=lambda h: h.state != "queued"):  # queued first: none starts meanwhile
            handle.stop()
        return len(handles)

    def poll_all(self) -> list[Job]:
        handles = list({id(h): h for h in (*self.handles.values(), *self.active())}.values())
        for handle in handles:
            handle.poll()
        return handles
