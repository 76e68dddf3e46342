"""Hosted mode shows no traceback: a failing page gives a short message, the details go to the log."""
from __future__ import annotations

import logging
import shutil
from pathlib import Path

import pytest
import streamlit as st
from streamlit.testing.v1 import AppTest

from kdviz.ui.guard import MESSAGE, SHOW_ERROR_DETAILS
from kdviz.ui.hosted import _server_limits

ROOT = Path(__file__).resolve().parents[1]
SECRET = "/srv/secret/path/config.py"
FAILING_PAGE = f"import streamlit as st\nst.title('Home')\nraise RuntimeError({SECRET!r})\n"


@pytest.fixture
def failing_app(app_env, tmp_path):
    """app.py in a temp folder whose Home page raises an exception naming a server path."""
    shutil.copy(ROOT / "app.py", tmp_path / "app.py")
    shutil.copytree(ROOT / "app_pages", tmp_path / "app_pages")  # app.py lists every page; only Home runs
    (tmp_path / "app_pages" / "home.py").write_text(FAILING_PAGE)
    before = st.get_option(SHOW_ERROR_DETAILS)
    _server_limits.clear()  # hosted mode is read once per server: let this test's environment count
    yield tmp_path / "app.py"
    _server_limits.clear()
    st.set_option(SHOW_ERROR_DETAILS, before)  # a process-wide option: leave it as found


def _texts(at: AppTest) -> str:
    kinds = ("title", "markdown", "caption", "error", "warning", "info", "exception", "code", "text")
    return " ".join(str(getattr(e, "value", "")) for kind in kinds for e in at.get(kind))


def test_hosted_page_error_is_a_short_message_and_a_log_line(failing_app, monkeypatch, caplog):
    monkeypatch.setenv("KDVIZ_HOSTED", "1")
    with caplog.at_level(logging.ERROR, logger="kdviz.app"):
        at = AppTest.from_file(str(failing_app), default_timeout=60).run()
    assert not at.exception
    assert [e.value for e in at.error] == [MESSAGE]
    assert SECRET not in _texts(at) and "Traceback" not in _texts(at)
    assert st.get_option(SHOW_ERROR_DETAILS) == "none"  # also covers fragments and anything outside the page
    assert any(SECRET in r.getMessage() + str(r.exc_info[1]) for r in caplog.records if r.exc_info)


def test_locally_the_developer_still_gets_the_traceback(failing_app):
    at = AppTest.from_file(str(failing_app), default_timeout=60).run()
    assert len(at.exception) == 1 and SECRET in at.exception[0].value
    assert MESSAGE not in _texts(at)
