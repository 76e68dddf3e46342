"""Page settings in the URL (``st.query_params``), so a shared link opens the same experiment.

Usage in a page (widgets take their value from ``st.session_state[prefix + name]``; pass no ``value=``)::

    SCHEMA = {"T": (float, 4.0, (0.5, 20.0)), "student": (str, "mlp:128", ["mlp:30", "mlp:128"])}
    url_state(SCHEMA, prefix="distill_")  # first run: URL → session state; bad values → st.warning + default
    T = st.slider("Temperature T", 0.5, 20.0, step=0.5, key="distill_T")
    student = st.selectbox("Student", ["mlp:30", "mlp:128"], key="distill_student")
    sync_url(SCHEMA, prefix="distill_")   # after the widgets: current values → the URL

Schema shorthand and validation rules: ``kdviz/urlparams.py`` (pure, unit-tested). Values equal to
their default are left out of the URL. Do not combine with a widget's own ``bind="query-params"``.
"""
from __future__ import annotations

from typing import Any, Mapping

import streamlit as st

from kdviz.ui.text import md_text
from kdviz.urlparams import Param, encode_params, parse_params


def read_url(schema: Mapping[str, Param | tuple]) -> dict[str, Any]:
    """Validated values from the current URL; each refused parameter gets one ``st.warning``
    (as plain text: the message echoes what the link's author typed)."""
    query = {name: st.query_params.get_all(name) for name in schema if name in st.query_params}
    values, messages = parse_params(schema, query)
    for message in messages:
        st.warning(md_text(message), icon="⚠️")
    return values


def url_state(schema: Mapping[str, Param | tuple], prefix: str = "") -> dict[str, Any]:
    """Seed ``st.session_state[prefix + name]`` from the URL for every setting not set yet
    (the first run of this page in a session), then return the current values."""
    missing = [name for name in schema if prefix + name not in st.session_state]
    if missing:
        values = read_url({name: schema[name] for name in missing})
        for name in missing:
            value = values[name]
            st.session_state[prefix + name] = list(value) if isinstance(value, tuple) else value
    return {name: st.session_state[prefix + name] for name in schema}


def sync_url(schema: Mapping[str, Param | tuple], prefix: str = "", values: Mapping[str, Any] | None = None) -> None:
    """Write the settings (default: from session state) to the URL; defaults are removed from it."""
    if values is None:
        values = {name: st.session_state[prefix + name] for name in schema if prefix + name in st.session_state}
    try:
        wanted = encode_params(schema, values)
    except ValueError as err:  # a page bug (widget range wider than the schema): say so, keep the old URL
        st.warning(md_text(f"settings could not be written to the URL: {err}"))
        return
    for name in schema:
        if name in wanted and st.query_params.get(name) != wanted[name]:
            st.query_params[name] = wanted[name]
        elif name not in wanted and name in st.query_params:
            del st.query_params[name]
