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
limits hold per person across their tabs; unset, hosted mode uses the browser's owner cookie
(``kdviz/ui/owner.py``) and otherwise each session is its own party.
"""
from __future__ import annotations

import logging
import os

import streamlit as st

from kdviz.hosted import hosted_mode
from kdviz.runtime.executor import Executor, Job
from kdviz.runtime.executors import make_executor
from kdviz.runtime.manager import JobHandle, jobs_root, purge_old_job_dirs
from kdviz.runtime.sessions import SessionJobs
from kdviz.ui.owner import COOKIE as OWNER_COOKIE
from kdviz.ui.retention import remove_job_dirs
from kdviz.ui.text import md_text

__all__ = ["Job", "JobHandle", "forget_job", "get_job", "get_manager", "jobs_root", "my_active_jobs", "session_jobs",
           "show_start_error", "start_job", "start_job_or_keep_error", "stop_session_jobs"]

log = logging.getLogger("kdviz.app")
_STATE_KEY = "_kdviz_session_jobs"
_START_ERROR_KEY = "_kdviz_start_error_"
IDENTITY_HEADER_ENV = "KDVIZ_IDENTITY_HEADER"


@st.cache_resource(show_spinner=False)
def _executor_or_error() -> tuple[Executor | None, str]:
    """Built once per server; a failure is kept too (retrying would wait for e.g. an unreachable Ray
    cluster on every rerun of every page)."""
    purge_old_job_dirs(jobs_root())  # start-up: what earlier servers left behind
    try:
        return make_executor(), ""
    except Exception as err:  # noqa: BLE001 - bad KDVIZ_EXECUTOR, ray missing, cluster unreachable: all say the same
        log.exception("the job executor could not start")
        return None, (f"the job executor could not start ({type(err).__name__}: {err}); training is off until "
                      "the server is restarted with a working KDVIZ_EXECUTOR / RAY_ADDRESS")


def get_manager() -> Executor:
    """The one executor of this server process: ``KDVIZ_EXECUTOR`` (local worker processes with a warm
    spare unless disabled, or Ray actors: ``kdviz/runtime/executors.py``). A ValueError saying why when
    it could not be built."""
    executor, error = _executor_or_error()
    if executor is None:
        raise ValueError(error)
    return executor


def _release_session(jobs: SessionJobs) -> None:
    jobs.stop_all()  # the tab closed: free its slots (runs on a server thread; no st calls here)
    remove_job_dirs(list(jobs.handles.values()))  # and its unsaved checkpoints


def session_identity() -> str:
    """The person behind this session: the ``$KDVIZ_IDENTITY_HEADER`` request header (set by a proxy
    that logs users in), else in hosted mode the browser's owner cookie (``kdviz/ui/owner.py``;
    present from the second visit on), else "" (each session counts on its own)."""
    header = os.environ.get(IDENTITY_HEADER_ENV, "").strip()
    try:
        if header:
            return str(st.context.headers.get(header) or "")[:200]
        return str(st.context.cookies.get(OWNER_COOKIE) or "")[:200] if hosted_mode() else ""
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


def start_job_or_keep_error(name: str, spec: dict) -> bool:
    """:func:`start_job` for a button callback: a refused Start (a bad spec, fair share, no executor) is
    kept for :func:`show_start_error` rather than raised (an exception in a callback breaks the page)."""
    key = f"{_START_ERROR_KEY}{name}"
    try:
        start_job(name, spec)
    except ValueError as err:
        st.session_state[key] = str(err)
        return False
    st.session_state.pop(key, None)
    return True


def show_start_error(name: str) -> None:
    """The message of job ``name``'s last refused Start, as plain text (it may quote user input)."""
    error = st.session_state.get(f"{_START_ERROR_KEY}{name}")
    if error:
        st.error(f"Could not start: {md_text(error)}")


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
