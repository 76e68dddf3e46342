"""Who this browser is, in hosted mode: a random owner token kept in a cookie (no login).

``owner_id()`` is None outside hosted mode (single-user: every saved run is yours). In hosted mode
(``KDVIZ_HOSTED=1``) the first page that needs an owner makes a random token, keeps it in the
session and sets the cookie ``kdviz_owner`` from the page (Streamlit can read cookies through
``st.context.cookies`` but not set them, so a one-line script does, with ``SameSite=Strict``);
after a reload the new session reads the token back from the cookie. The run store keeps only a
digest of it (``kdviz.runs.access.owner_key``). Anyone holding the cookie is the owner, as with
any session cookie; clearing cookies means losing access to one's unpublished runs. Where an
identity provider is configured for Streamlit (``st.login``, ``[auth]`` in secrets.toml), the
logged-in user's stable ``sub`` claim could replace the token here.
"""
from __future__ import annotations

import secrets

import streamlit as st

from kdviz.hosted import hosted_mode, run_quota
from kdviz.runs.access import OWNER_RE
from kdviz.runs.store import RunStore

COOKIE = "kdviz_owner"
OWNER_KEY = "_kdviz_owner"  # session_state key of this session's token
COOKIE_MAX_AGE_S = 365 * 24 * 3600


def _cookie_token() -> str | None:
    try:
        token = st.context.cookies.get(COOKIE)
    except Exception:  # noqa: BLE001 — no browser behind this session (tests, bare mode)
        return None
    return token if isinstance(token, str) and OWNER_RE.fullmatch(token) else None


def _set_cookie(token: str) -> None:
    """Ask the browser to keep ``token`` (runs on every script run until a session sees the cookie)."""
    st.html(f"<script>document.cookie = '{COOKIE}={token}; path=/; max-age={COOKIE_MAX_AGE_S}; SameSite=Strict';</script>",
            unsafe_allow_javascript=True, width="content")


def owner_id() -> str | None:
    """This browser's owner token in hosted mode, else None. Call it from the script (it may draw the cookie script)."""
    if not hosted_mode():
        return None
    token = st.session_state.get(OWNER_KEY)
    if not (isinstance(token, str) and OWNER_RE.fullmatch(token)):
        token = _cookie_token() or secrets.token_urlsafe(24)
        st.session_state[OWNER_KEY] = token
    if _cookie_token() != token:
        _set_cookie(token)
    return token


def run_store() -> RunStore:
    """The run store with the hosted caps (none outside hosted mode)."""
    return RunStore(quota=run_quota())
