"""Fixtures for the real-browser suite (``pytest -m browser``): one Streamlit server, one Chromium.

The server is the real app (``streamlit run app.py``) on a free loopback port, with synthetic data
(``KDVIZ_DATA_SOURCE=synthetic``) and a temporary runs folder. Chromium is Debian's
``/usr/bin/chromium`` driven by Playwright; when either is missing every browser test is skipped
with the reason shown in pytest's summary (``-ra`` is on in pyproject.toml).
"""
from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))  # browser_support sits beside this file

from browser_support import (  # noqa: E402
    ARTIFACTS,
    CHROMIUM,
    CHROMIUM_ARGS,
    ROOT,
    StreamlitServer,
    chromium_unavailable_reason,
    server_env,
)

APP = ROOT / "app.py"


def pytest_collection_modifyitems(items) -> None:
    """Everything under tests/browser carries the ``browser`` marker (select with ``-m browser``)."""
    here = Path(__file__).parent
    for item in items:
        if here in Path(str(item.fspath)).parents:
            item.add_marker(pytest.mark.browser)


@pytest.fixture(scope="session")
def browser_available() -> None:
    reason = chromium_unavailable_reason()
    if reason:
        pytest.skip(f"browser tests skipped: {reason}")
    if not APP.exists():
        pytest.skip(f"browser tests skipped: {APP} does not exist yet")


@pytest.fixture(scope="session")
def app_server(browser_available, tmp_path_factory):
    """The real app, started once for the e2e tests; yields the server (``.url``, ``.proc.pid``)."""
    runs = tmp_path_factory.mktemp("runs")
    server = StreamlitServer(APP, server_env(runs), ARTIFACTS / "server-e2e.log")
    server.start()
    yield server
    server.stop()


@pytest.fixture(scope="session")
def app_url(app_server) -> str:
    return app_server.url


@pytest.fixture(scope="session")
def browser(browser_available):
    """A headless Chromium for the whole session (sync Playwright API)."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        chromium = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
        yield chromium
        chromium.close()


@pytest.fixture
def page(browser):
    """A fresh browser context (= a fresh Streamlit session) per test."""
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    context.set_default_timeout(30_000)
    pg = context.new_page()
    yield pg
    context.close()
