"""Fair share of the job queue (used by ``kdviz.runtime.manager.JobManager``; no Streamlit).

Rules, per *owner* (a browser session) and per *identity* (a person, when the server knows one):

- at most one **running** job (running or paused) and one **queued** job. A further job of an
  owner that already has one queued **replaces** its own queued job (the last Start wins; the
  replaced one ends as ``stopped`` with the status "replaced by a newer Start"). When the
  identity's queued slot is held by *another* session of the same identity, the Start is refused
  with a :class:`FairShareError` (a ``ValueError``) naming that job: one tab never kills another's.
- an owner's queued job starts only when that owner (and identity) has no running job, even when
  slots are free: other people's jobs first.
- a **paused** job keeps its slot for at most ``KDVIZ_PAUSE_TIMEOUT_S`` seconds (default 60) while
  other jobs wait for a slot; then it is stopped (curves kept) with a status saying why. Nobody
  waiting: it stays paused.

Owner ``""`` (CLI, tests, server-internal jobs) is exempt. The identity is optional: the Streamlit
adapter passes one only when ``KDVIZ_IDENTITY_HEADER`` names a request header set by the proxy
(e.g. ``X-Forwarded-User``); without it a person with two tabs counts as two owners.
"""
from __future__ import annotations

import os
from typing import Iterable, Protocol

PAUSE_TIMEOUT_ENV, DEFAULT_PAUSE_TIMEOUT_S = "KDVIZ_PAUSE_TIMEOUT_S", 60.0
RUNNING_STATES = ("running", "paused")


class FairShareError(ValueError):
    """A Start the fair-share rules refuse (the message says why and what to do)."""


class _Held(Protocol):
    id: int
    owner: str
    identity: str
    state: str


def pause_timeout_s(environ=None) -> float:
    """``KDVIZ_PAUSE_TIMEOUT_S`` (> 0), default 60; a bad value is a ValueError naming it."""
    raw = (os.environ if environ is None else environ).get(PAUSE_TIMEOUT_ENV, "").strip()
    if not raw:
        return DEFAULT_PAUSE_TIMEOUT_S
    try:
        value = float(raw)
    except ValueError:
        value = -1.0
    if not value > 0:
        raise ValueError(f"{PAUSE_TIMEOUT_ENV}={raw!r}: expected a number of seconds > 0")
    return value


def same_party(a: _Held, b: _Held) -> bool:
    """Do two jobs share an owner (non-empty) or an identity (non-empty)?"""
    return bool(a.owner and a.owner == b.owner) or bool(a.identity and a.identity == b.identity)


def may_start(handle: _Held, running: Iterable[_Held]) -> bool:
    """A queued job may take a free slot unless its owner/identity already runs one."""
    return not (handle.owner or handle.identity) or not any(same_party(handle, h) for h in running)


def to_replace(new: _Held, queued: Iterable[_Held]) -> list:
    """The queued jobs ``new`` replaces (its owner's); a FairShareError when another session of its identity holds the queued slot."""
    if not (new.owner or new.identity):
        return []
    mine = [h for h in queued if h is not new and same_party(new, h)]
    foreign = [h for h in mine if h.owner != new.owner]
    if foreign:
        raise FairShareError(f"job #{foreign[0].id} of yours is already waiting in another tab or session; "
                             "stop it there (or wait for it) before starting another")
    return mine


def pause_note(timeout_s: float) -> str:
    return f"paused (gives up its slot after {timeout_s:g} s while others wait)"


def pause_expired_note(timeout_s: float) -> str:
    return f"stopped: paused for more than {timeout_s:g} s while others waited for a slot (curves kept)"
