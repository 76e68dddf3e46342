"""Fixtures for the real-browser suite (``pytest -m browser``): one Streamlit server, one Chromium.

The server is the real app (``streamlit run app.py``) on a free loopback port, with synthetic data
(``KDVIZ_DATA_SOURCE=synthetic``) and a temporary runs folder; ``KDVIZ_BROWSER_MNIST=/path/to/data``
puts it on real MNIST instead (slower: for screenshots of real results, not for CI). Chromium is Debian's
``/usr/bin/chromium`` driven by Playwright; when either is missing every browser test is skipped
with the reason shown in pytest's summary (``-ra`` is on in pyproject.toml).
"""
from __future__ import annotations

import os
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
    prime,
    screenshot,
    server_env,
    slug,
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


@pytest.fixture(scope="session")
def app_server(browser_available, tmp_path_factory):
    """The real app, started once for the e2e tests; yields the server (``.url``, ``.proc.pid``)."""
    runs = tmp_path_factory.mktemp("runs")
    mnist = os.environ.get("KDVIZ_BROWSER_MNIST", "")
    extra = {"KDVIZ_DATA_SOURCE": "auto", "KDVIZ_DATA_DIR": mnist} if mnist else {}
    server = StreamlitServer(APP, server_env(runs, **extra), ARTIFACTS / "server-e2e.log")
    server.start()
    yield server
    server.stop()


@pytest.fixture(scope="session")
def app_url(app_server, nav) -> str:
    """The app's URL, after one visit to its root page (see :func:`nav` for why)."""
    return app_server.url


@pytest.fixture(scope="session")
def nav(app_server, browser) -> dict[str, str]:
    """Sidebar label → path (e.g. ``{"Teacher": "teacher", "Temperature lab": ""}``), read from the root page.

    Tests look pages up by label because the default page lives at "/" and the others at their
    url_path.
    """
    return prime(browser, app_server.url)


@pytest.fixture(scope="session")
def browser(browser_available):
    """A headless Chromium for the whole session (sync Playwright API)."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        chromium = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
        yield chromium
        chromium.close()


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item, call):
    """Keep each phase's report on the item, so the ``page`` fixture can tell that its test failed."""
    report = yield
    setattr(item, f"report_{report.when}", report)
    return report


@pytest.fixture
def page(browser, request):
    """A fresh browser context (= a fresh Streamlit session) per test; a screenshot when the test fails."""
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    context.set_default_timeout(30_000)
    pg = context.new_page()
    yield pg
    report = getattr(request.node, "report_call", None)
    if report is not None and report.failed:
        try:
            screenshot(pg, f"FAILED_{slug(request.node.name)}")
        except Exception as err:  # a crashed page must not hide the test's own failure
            print(f"(no failure screenshot: {err})")
    context.close()
