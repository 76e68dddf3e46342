"""The app frame (app.py + kdviz/ui/frame.py) under streamlit.testing.v1.AppTest, synthetic data.

AppTest note (Streamlit 1.67): with st.navigation, sidebar elements appear in the element
tree on the first run of an AppTest only, so sidebar checks use a fresh AppTest, and the
job-count/stop-all panel is tested in a script without navigation.
"""
from __future__ import annotations

from pathlib import Path

from streamlit.testing.v1 import AppTest

ROOT = Path(__file__).resolve().parents[1]
TIMEOUT = 60


def test_app_renders_frame_and_pages(app_env):
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=TIMEOUT).run()
    assert not at.exception and at.title[0].value == "Knowledge distillation, live"  # Home is the default page
    sidebar_text = " ".join(m.value for m in at.sidebar.markdown)
    assert "synthetic test digits" in sidebar_text and "512 train" in sidebar_text
    assert "Jobs:" in sidebar_text
    assert at.selectbox(key="device").options[0] == "cpu"
    assert at.button(key="stop_all").disabled  # nothing to stop yet
    assert any("Synthetic test digits in use" in i.value for i in at.info)  # not-MNIST banner
    at.switch_page("app_pages/distill.py").run()
    assert not at.exception and at.title[0].value == "Distill"


def test_real_app_serves_teacher_and_distill(app_env):
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=TIMEOUT)
    for page, title in (("app_pages/teacher.py", "Teacher"), ("app_pages/distill.py", "Distill")):
        at.switch_page(page).run()
        assert not at.exception and at.title[0].value == title


def test_not_mnist_banner_for_the_offline_fallback(app_env):
    def script():
        from dataclasses import replace

        from kdviz.data import load_fallback
        from kdviz.ui.frame import data_status

        data_status(replace(load_fallback(), message="MNIST not found in /nowhere"))

    at = AppTest.from_function(script, default_timeout=TIMEOUT).run()
    assert not at.exception
    assert "Not MNIST" in at.warning[0].value and "/nowhere" in at.warning[0].value
    assert "NOT MNIST" in at.sidebar.markdown[0].value


def test_job_counts_and_stop_all(app_env, tick):
    def script():
        import streamlit as st

        from kdviz.ui.frame import render_sidebar
        from kdviz.ui.jobs import start_job

        render_sidebar()
        st.button("go", key="go", on_click=lambda: start_job("count", {"fn": "kdviz.runtime.worker:count_job", "n": 10**6, "delay_s": 0.01}))

    at = AppTest.from_function(script, default_timeout=TIMEOUT).run()
    at.button(key="go").click().run()
    assert "yours: 1 running" in at.sidebar.markdown[-1].value
    assert not at.sidebar.button(key="stop_all").disabled
    handle = at.session_state["_kdviz_session_jobs"].handles["count"]
    tick(at, lambda a: handle.step() > 0, timeout=60)  # the sidebar panel drains the job's events
    at.sidebar.button(key="stop_all").click().run()
    assert handle.state == "stopped" and handle.wait_ended(5)
    assert "yours: 0 running, 0 queued" in at.sidebar.markdown[-1].value


def test_without_an_executor_the_pages_say_why_and_keep_working(app_env, monkeypatch):
    """A server whose executor cannot be built (here a bad KDVIZ_EXECUTOR; an unreachable Ray cluster is the
    same path) shows why in the sidebar and on each refused Start, and every page still draws."""
    from kdviz.ui.jobs import _executor_or_error

    monkeypatch.setenv("KDVIZ_EXECUTOR", "dask")
    _executor_or_error.clear()
    try:
        at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=TIMEOUT)
        at.switch_page("app_pages/teacher.py").run()
        assert not at.exception
        assert any("KDVIZ_EXECUTOR='dask'" in plain(e.value) for e in at.sidebar.error), [e.value for e in at.sidebar.error]
        at.button(key="teacher_start").click().run()
        assert not at.exception and any("executor could not start" in plain(e.value) for e in at.error)
        for path, button in (("app_pages/interview.py", "iv_run"), ("app_pages/feature_maps.py", "fm_train")):
            at.switch_page(path).run()
            at.button(key=button).click().run()
            assert not at.exception, (path, [e.value for e in at.exception])
            assert any("Could not start" in e.value and "KDVIZ_EXECUTOR='dask'" in plain(e.value) for e in at.error), path
    finally:
        monkeypatch.delenv("KDVIZ_EXECUTOR")
        _executor_or_error.clear()  # the next call (this test's teardown, later tests) builds the real executor


def plain(markdown: str) -> str:
    """Shown text without the backslashes that keep user-quoted strings from being read as Markdown."""
    return markdown.replace("\\", "")
