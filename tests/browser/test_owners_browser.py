"""Two browsers (two Chromium contexts = two cookie jars) against one ``KDVIZ_HOSTED=1`` server:
a saved run belongs to the browser that saved it, unless it is published (then read-only for others).

Browser A's runs are put in the server's runs folder by the store with A's owner token, and A's
context carries that token as the ``kdviz_owner`` cookie; browser B starts with no cookie and must be
given one by the page (kept across a reload).
"""
from __future__ import annotations

from datetime import datetime, timezone

import pytest
from browser_support import ARTIFACTS, ROOT, StreamlitServer, alert_texts, assert_no_exception, prime, screenshot, server_env
from ui_actions import open_page

from kdviz.runs.store import RunStore
from kdviz.ui.owner import COOKIE

TOKEN_A = "tokenA-" + "a" * 30
RECORDS = [{"run": "distilled", "step": 10 * i, "total": 1.0 / i, "test_acc": 0.5 + 0.1 * i} for i in range(1, 4)]


@pytest.fixture(scope="module")
def owners_server(browser_available, tmp_path_factory):
    runs = tmp_path_factory.mktemp("owners-runs")
    store = RunStore(runs)
    now = datetime(2025, 3, 1, 12, 0, tzinfo=timezone.utc)
    private = store.save(name="A private run", kind="distill", config={"T": 4.0}, records=RECORDS, owner=TOKEN_A, now=now).id
    shared = store.save(name="A shared run", kind="distill", config={"T": 2.0}, records=RECORDS, owner=TOKEN_A, now=now.replace(minute=1)).id
    store.publish(shared, owner=TOKEN_A)
    server = StreamlitServer(ROOT / "app.py", server_env(runs, KDVIZ_HOSTED="1"), ARTIFACTS / "server-owners.log")
    server.start()
    yield server, store, private, shared
    server.stop()


def _main_text(page) -> str:
    return page.locator("[data-testid='stMain']").inner_text()


def _listed(page) -> str:
    """The runs this browser may pick (the table is drawn on a canvas; the multiselect's options are text)."""
    page.locator("[data-testid='stMultiSelect']").first.click()
    page.wait_for_selector("[role='option']", timeout=15_000)
    texts = "\n".join(page.locator("[role='option']").all_inner_texts())
    page.keyboard.press("Escape")
    return texts


def _expand(page, label: str) -> None:
    page.locator("[data-testid='stExpander'] summary", has_text=label).first.click()
    page.wait_for_timeout(500)


def test_two_browsers_own_their_runs(browser, owners_server):
    server, store, private, shared = owners_server
    runs_path = prime(browser, server.url)["Saved runs"]
    a_ctx, b_ctx = browser.new_context(viewport={"width": 1280, "height": 1400}), browser.new_context(viewport={"width": 1280, "height": 1400})
    try:
        a_ctx.add_cookies([{"name": COOKIE, "value": TOKEN_A, "url": server.url}])
        a = a_ctx.new_page()
        open_page(a, server.url, runs_path)
        assert "A private run" in _listed(a) and "A shared run" in _listed(a)

        b = b_ctx.new_page()
        open_page(b, server.url, runs_path)
        b.wait_for_function(f"() => document.cookie.includes('{COOKIE}=')", timeout=30_000)
        token_b = next(c["value"] for c in b_ctx.cookies() if c["name"] == COOKIE)
        assert token_b != TOKEN_A
        text = _listed(b)
        assert "A shared run" in text and "A private run" not in text  # B's list

        open_page(b, server.url, f"{runs_path}?sel={private}")  # B types A's private id into the URL
        assert_no_exception(b, "runs?sel=<private>")
        assert any("no such run" in t and private in t for t in alert_texts(b, "Warning"))
        assert "A private run" not in _main_text(b)
        assert b.locator("[data-testid='stDownloadButton']").count() == 0
        assert b.get_by_role("button", name="Rename").count() == 0 and b.get_by_role("button", name="Delete run…").count() == 0
        assert next(c["value"] for c in b_ctx.cookies() if c["name"] == COOKIE) == token_b  # the reload kept B's identity

        open_page(b, server.url, f"{runs_path}?sel={shared}")  # a published run: view and download, no changes
        _expand(b, "A shared run")
        screenshot(b, "owners_b_published")
        assert "Published by another user" in _main_text(b)
        assert b.get_by_role("button", name="Rename").count() == 0 and b.get_by_role("button", name="Delete run…").count() == 0
        assert b.get_by_role("button", name="Publish").count() == 0 and b.get_by_role("button", name="Make private").count() == 0
        with b.expect_download() as download:
            b.locator("[data-testid='stDownloadButton'] button", has_text="Metrics CSV").first.click()
        assert "test_acc" in open(download.value.path(), encoding="utf-8").read()

        open_page(a, server.url, f"{runs_path}?sel={shared}")  # the owner still may change it
        _expand(a, "A shared run")
        assert a.get_by_role("button", name="Rename").count() == 1 and a.get_by_role("button", name="Make private").count() == 1
        assert {r.name for r in store.list().runs} == {"A private run", "A shared run"}  # nothing B did changed a run
    finally:
        a_ctx.close()
        b_ctx.close()
