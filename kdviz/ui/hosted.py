"""Streamlit side of hosted mode (``KDVIZ_HOSTED=1``; see ``kdviz/hosted.py``): show what was clamped.

Usage in a page, after reading the widgets and before starting a job::

    from kdviz.hosted import clamp_model_config, clamp_train_config
    from kdviz.ui.hosted import limits, show_clamp_notes

    model, notes_m = clamp_model_config(model, limits())        # no-op (notes == []) when not hosted
    train, notes_t = clamp_train_config(train, limits(), n_train=len(bundle.train))
    show_clamp_notes(notes_m + notes_t)                          # one st.info listing each clamped value
    start_job("teacher", {..., "model": asdict(model), "train": asdict(train)})

Widgets can use the caps directly so users rarely exceed them: ``max_value=cap("max_epochs", 20)``
gives the hosted cap in hosted mode and ``20`` otherwise. ``hosted_badge()`` puts a one-line
notice in the sidebar (call it from ``app.py``).
"""
from __future__ import annotations

import streamlit as st

from kdviz.hosted import HostedLimits, active_limits


@st.cache_resource(show_spinner=False)
def _server_limits() -> tuple[HostedLimits | None, str]:
    """Read once per server: the environment does not change while it runs. ``(limits, error)``."""
    try:
        return active_limits(), ""
    except ValueError as err:  # a mistyped KDVIZ_* variable: say so, and stay capped to be safe
        return HostedLimits(), f"{err} — hosted limits are applied to be safe."


def limits() -> HostedLimits | None:
    """The hosted limits in force, or None when the app is not in hosted mode."""
    found, error = _server_limits()
    if error:
        st.warning(error)
    return found


def cap(field: str, default):
    """A widget bound: the hosted cap ``field`` (e.g. "max_epochs") in hosted mode, else ``default``."""
    found = limits()
    # same type as ``default``: Streamlit refuses a float max_value on an int widget
    return default if found is None else type(default)(min(default, getattr(found, field)))


def show_clamp_notes(notes: list[str]) -> None:
    """One ``st.info`` naming every value hosted mode lowered; nothing when ``notes`` is empty."""
    if notes:
        lines = "\n".join(f"- {note}" for note in notes)
        st.info(f"**Hosted playground limits applied:**\n{lines}", icon="ℹ️")


def hosted_badge() -> None:
    """A short sidebar note that this is the hosted playground, with its main caps."""
    found = limits()
    if found is not None:
        st.sidebar.caption(
            f"Hosted playground: up to {found.max_jobs} trainings at once (others queue), "
            f"{found.max_epochs:g} epochs, width {found.max_width}, depth {found.max_depth}, "
            f"batch {found.max_batch_size}, uploads ≤ {found.max_upload_bytes / 1e6:g} MB."
        )
