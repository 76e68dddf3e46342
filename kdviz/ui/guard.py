"""No traceback for a hosted user: an exception on a page becomes a short message and a server log line.

A traceback shows server paths and code to strangers, so in hosted mode (``KDVIZ_HOSTED=1``) ``app.py``
calls :func:`hide_error_details` (Streamlit's ``client.showErrorDetails = "none"``: every uncaught
exception, including those in fragments that rerun on their own, shows only a generic notice; the
legacy ``false`` would still show the stack trace) and runs the page through :func:`run_guarded`.
Locally, exceptions keep Streamlit's full display: that is what a developer needs.
"""
from __future__ import annotations

import logging

import streamlit as st

LOG = logging.getLogger("kdviz.app")
SHOW_ERROR_DETAILS = "client.showErrorDetails"
MESSAGE = ("Something went wrong on this page. The details were written to the server log; "
           "try again, or reload the page.")


def hide_error_details() -> None:
    """Uncaught exceptions show no message, type or traceback in the browser (set once per run: cheap)."""
    if st.get_option(SHOW_ERROR_DETAILS) != "none":
        st.set_option(SHOW_ERROR_DETAILS, "none")


def run_guarded(page, hosted: bool) -> None:
    """``page.run()``; in hosted mode an exception is logged with its traceback and the user sees :data:`MESSAGE`.

    ``st.rerun()``/``st.stop()`` raise BaseException subclasses, which pass through untouched.
    """
    if not hosted:
        page.run()
        return
    try:
        page.run()
    except Exception:  # noqa: BLE001 — any failure: the log gets the details, the user a short notice
        LOG.exception("page %r failed", getattr(page, "title", page))
        st.error(MESSAGE, icon=":material/error:")
