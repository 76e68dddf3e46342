"""Jobs for the app: the Streamlit adapter of the job runtime (session scoping only).

Pages use these functions (from the Streamlit script thread only)::

    h = start_job("distill", spec)   # submit; a job of the same name in this session is stopped
    h = get_job("distill")           # this session's handle (or None); survives page changes
    forget_job("distill")            # stop it and drop its curves (the "reset" button)
    stop_session_jobs()              # the sidebar's "stop all"
    get_manager().counts()           # {"running": n, "queued": m, "max": k}, server-wide

and read a handle (``kdviz.runtime.executor.Job``) after ``h.poll()``: ``h.state, h.position,
h.status, h.error, h.result, h.step(), h.records(run), h.evals(run)``; control it with
``h.pause(), h.resume(), h.step_once(), h.stop()``. Specs, events, control and states:
``kdviz/runtime/protocol.py``; the executor (worker processes, queue, scratch folders):
``kdviz/runtime/manager.py``.

Scoping: one executor per server (``st.cache_resource``); one :class:`SessionJobs` registry per
browser session, whose jobs are stopped when the session ends (``scope="session", on_release``).
After a reconnect the released registry's (stopped) handles are carried over, so curves survive.

Fair share (``kdviz/runtime/fairshare.py``): one running + one queued job per session — a further
Start replaces the session's own queued job; pressing Start again while a start is in flight is a
no-op. ``KDVIZ_IDENTITY_HEADER`` (e.g. ``X-Forwarded-User``, set by the proxy) makes the same
limits hold per person across their tabs; unset, each session is its own party.
"""
from __future__ import annotations

import streamlit as st

from kdviz.runtime.executor import Executor, Job
import os

from kdviz.runtime.executors import make_executor
from kdviz.runtime.manager import JobHandle, SessionJobs, jobs_root

__all__ = ["Job", "JobHandle", "forget_job", "get_job", "get_manager", "jobs_root", "my_active_jobs", "session_jobs", "start_job", "stop_session_jobs"]

_STATE_KEY = "_kdviz_session_jobs"
IDENTITY_HEADER_ENV = "KDVIZ_IDENTITY_HEADER"


@st.cache_resource(show_spinner=False)
def get_manager() -> Executor:
    """The one executor of this server process: ``KDVIZ_EXECUTOR`` (local worker processes with a warm
    spare unless disabled, or Ray actors: ``kdviz/runtime/executors.py``)."""
    return make_executor()


def _release_session(jobs: SessionJobs) -> None:
    jobs.stop_all()  # the tab closed: free its slots (runs on a server thread; no st calls here)


def session_identity() -> str:
    """The person behind this session: the ``$KDVIZ_IDENTITY_HEADER`` request header, "" when unset or absent."""
    header = os.environ.get(IDENTITY_HEADER_ENV, "").strip()
    if not header:
        return ""
    try:
        return str(st.context.headers.get(header) or "")[:200]
    except (AttributeError, RuntimeError):  # no request context (AppTest, a thread)
        return ""


@st.cache_resource(scope="session", on_release=_release_session, show_spinner=False)
def _session_registry() -> SessionJobs:
    return SessionJobs(identity=session_identity())


def session_jobs() -> SessionJobs:
    """This session's registry (with the handles of a released one carried over after a reconnect)."""
    registry = _session_registry()
    previous = st.session_state.get(_STATE_KEY)
    if previous is not None and previous is not registry:
        registry.adopt(previous)
    st.session_state[_STATE_KEY] = registry
    return registry


def start_job(name: str, spec: dict) -> Job:
    """Submit ``spec`` as this session's job ``name``; a bad spec is a ValueError naming what is wrong."""
    return session_jobs().start(name, spec, get_manager())


def get_job(name: str) -> Job | None:
    return session_jobs().handles.get(name)


def forget_job(name: str) -> None:
    session_jobs().forget(name)


def stop_session_jobs() -> int:
    """Stop every job this session started (not only the latest of each name); returns how many were active."""
    return session_jobs().stop_all()


def my_active_jobs() -> list[Job]:
    """Every active job of this session (what the sidebar counts and "Stop all my jobs" stops)."""
    return session_jobs().active()
