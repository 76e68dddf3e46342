"""The frame every page shares: data set status, device choice, job counts, stop-all.

``app.py`` calls :func:`render_sidebar` before running the selected page. Pages call
:func:`current_device`, :func:`data_source` and :func:`get_bundle`; those work on their own
too (a page run alone by ``AppTest`` has no sidebar, so they fall back to defaults).

``KDVIZ_DATA_SOURCE=synthetic`` makes the whole app (and the jobs it starts) use
``kdviz.data.synthetic_bundle`` — for tests; the default ``auto`` loads MNIST or the fallback.
"""
from __future__ import annotations

import streamlit as st
import torch

from kdviz import data as kdata
from kdviz.ui.jobs import get_manager, session_jobs, stop_session_jobs
from kdviz.ui.live import QUEUED_REFRESH_S
from kdviz.ui.text import md_text

DEVICE_KEY = "device"


def data_source() -> str:
    """``KDVIZ_DATA_SOURCE`` ("auto" | "synthetic"), default "auto"; another value is a ValueError naming it."""
    return kdata.env_data_source()


@st.cache_resource(show_spinner="Loading the data set…")
def get_bundle(source: str | None = None) -> kdata.DataBundle:
    """The data set, loaded once per server (MNIST is ~190 MB as float tensors)."""
    return kdata.load_bundle(source or data_source())


def device_options() -> list[str]:
    return ["cpu", "cuda"] if torch.cuda.is_available() else ["cpu"]


def current_device() -> str:
    """The device chosen in the sidebar; CUDA by default when present, else CPU."""
    chosen = st.session_state.get(DEVICE_KEY)
    options = device_options()
    return chosen if chosen in options else options[-1]


def data_status(bundle: kdata.DataBundle) -> None:
    """Sidebar line plus, when not on MNIST, a banner at the top of the page."""
    st.sidebar.markdown(f"**Data:** {bundle.name}  \n{len(bundle.train):,} train · {len(bundle.test):,} test images")
    if bundle.source == "fallback":
        st.warning(f"**Not MNIST — offline fallback in use.** {bundle.message}", icon=":material/warning:")
    elif bundle.source == "synthetic":
        st.info("Synthetic test digits in use (KDVIZ_DATA_SOURCE=synthetic): accuracies mean nothing here.", icon=":material/science:")


def device_selector() -> str:
    options = device_options()
    if st.session_state.get(DEVICE_KEY) not in options:
        st.session_state[DEVICE_KEY] = options[-1]
    st.sidebar.selectbox("Device for training", options, key=DEVICE_KEY,
                         help="Jobs started from now on use this device. CUDA appears only when a GPU is present.")
    return current_device()


def jobs_panel() -> None:
    """Live job counts (server-wide and this session's) and a stop-all button for this session."""
    registry = session_jobs()
    mine_now = registry.active()  # every job this session started, not only the latest of each name
    active = bool(mine_now)
    # only queued jobs: nothing to drain, so tick as slowly as the queued live view does
    only_queued = active and all(h.state == "queued" for h in mine_now)

    # 2 s: this only keeps jobs drained while their own page is not open (the live view polls its job
    # 2.5× a second); every rerun costs the server a thread start, which matters with many sessions
    @st.fragment(run_every=(QUEUED_REFRESH_S if only_queued else 2.0) if active else None)
    def _counts() -> None:
        handles = registry.poll_all()  # keeps every job of this session drained, whatever page is open
        try:
            counts = get_manager().counts()
        except ValueError as err:  # no executor (bad KDVIZ_EXECUTOR, Ray unreachable): say so, draw the rest
            st.error(md_text(err))
            return
        mine = sum(h.state in ("running", "paused") for h in handles), sum(h.state == "queued" for h in handles)
        st.markdown(f"**Jobs:** {counts['running']} running, {counts['queued']} queued "
                    f"(of {counts['max']} slots)  \nyours: {mine[0]} running, {mine[1]} queued")
        if active and not any(h.active for h in handles):
            st.rerun()  # the last one finished: redraw the page and stop ticking
        if only_queued and any(h.state != "queued" for h in handles if h.active):
            st.rerun()  # one started: tick at the running rate

    with st.sidebar:
        _counts()
        st.button("Stop all my jobs", key="stop_all", disabled=not active, on_click=_stop_all, width="stretch")


def _stop_all() -> None:
    st.toast(f"Stopped {stop_session_jobs()} job(s).")


def render_sidebar() -> kdata.DataBundle | None:
    """Draw the shared frame; returns the data bundle (None when it could not be loaded)."""
    try:
        bundle = get_bundle(data_source())
    except ValueError as err:
        st.error(f"Data set unavailable: {err}")
        bundle = None
    if bundle is not None:
        data_status(bundle)
    device_selector()
    jobs_panel()
    return bundle
