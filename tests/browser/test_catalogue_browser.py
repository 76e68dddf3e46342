"""Self-distillation & ensembles page in headless Chromium: born-again networks, deep mutual
learning, a teacher-assistant chain and a multi-teacher ensemble each start from the page's Run
button and end with their result table and bar chart."""
from __future__ import annotations

import time

import pytest
from browser_support import RESULT_TABLE, assert_no_exception, screenshot, wait_rendered
from ui_actions import chart_points, click, open_page, set_text, settle

from kdviz.experiments.catalogue import config_from_spec

pytestmark = pytest.mark.browser
TITLE = "Self-distillation & ensembles"
SMALL = (("seeds", "2"), ("epochs", "5"), ("transfer", "subset:300"), ("hidden", "16"))  # each within its box's range


def bar_names(page, key: str) -> list[str]:
    """The x labels of the result bar chart (the table is a canvas; its rows are not DOM text)."""
    return page.evaluate("""key => {
        const el = document.querySelector(`.st-key-${key} .js-plotly-plot`);
        return el && el.data ? el.data[0].x : [];
    }""", key)


def _run_live(page, prefix: str, last_row: str, timeout_s: float = 240) -> list[list[int]]:
    """Start the section's job; once ``last_row`` shows in the result, return the live chart's point
    counts seen *before* the result was there (the chart drawn while the job trained)."""
    for key, value in SMALL:
        set_text(page, f"{prefix}_{key}", value)
        shown = page.locator(f".st-key-{prefix}_{key} input").first.input_value()
        assert shown.replace(".00", "") == value, f"{prefix}_{key}: typed {value}, the box shows {shown} (refused?)"
    click(page, f"{prefix}_run")
    seen: list[list[int]] = []
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if page.locator("[data-testid='stDataFrame']:visible").count() and last_row in bar_names(page, f"{prefix}_bars"):
            return seen
        points = chart_points(page, f"{prefix}_acc_chart")
        if points and (not seen or points != seen[-1]):
            seen.append(points)
        time.sleep(0.5)
    screenshot(page, f"catalogue_{prefix}_timeout")
    tables = page.locator("[data-testid='stDataFrame']").count()
    pytest.fail(f"{prefix}: no result within {timeout_s} s; charts seen {seen}; bars {bar_names(page, f'{prefix}_bars')}; tables {tables}")


def test_born_again_and_mutual_learning_train_live_and_show_their_tables(page, app_url, nav):
    open_page(page, app_url, nav[TITLE])
    assert_no_exception(page, TITLE)
    _run_live(page, "cat_born_again", "ensemble of generations")  # the live chart is not asserted: on a quiet
    # machine a small run can finish between two looks (CI saw no chart once); the result table is
    assert page.get_by_text("gains stop").count() or page.get_by_text("every generation beat").count()
    screenshot(page, "catalogue_born_again", scroll_to=RESULT_TABLE)
    page.get_by_role("tab", name="Deep mutual learning").click()
    settle(page)
    _run_live(page, "cat_mutual", "mean of peers (mutual)")
    assert page.get_by_text("within noise").count()
    assert_no_exception(page, f"{TITLE} after both runs")
    screenshot(page, "catalogue_mutual", scroll_to=RESULT_TABLE)


# The fewest the page allows: one seed, one epoch over 200 synthetic images (4 steps of 64 per network);
# the student (and the assistant) keep the page's default widths.
TINY = (("seeds", "1"), ("epochs", "1"), ("transfer", "subset:200"))
TA_ROWS = ["assistant", "via assistant", "direct", "scratch"]


def _main_text(page) -> str:
    return page.locator("[data-testid='stMain']").inner_text()


def _start_tab(page, tab: str, prefix: str) -> None:
    """On the drawn page: open the tab, set the smallest run, press Run."""
    wait_rendered(page, 90_000)
    assert_no_exception(page, TITLE)
    page.get_by_role("tab", name=tab).click()
    settle(page)
    for key, value in TINY:
        set_text(page, f"{prefix}_{key}", value)
    click(page, f"{prefix}_run")


def _result_shown(page, prefix: str) -> list[str]:
    """The result's bar names once its table is drawn too ([] before; a failed job fails the test)."""
    errors = page.locator("[data-testid='stMain'] [data-testid='stAlertContentError']").all_inner_texts()
    assert not errors, f"{prefix}: {errors}"
    if not page.locator("[data-testid='stDataFrame']:visible").count():
        return []
    return bar_names(page, f"{prefix}_bars") or []


def test_teacher_assistant_and_ensemble_train_and_show_their_tables(page, browser, app_url, nav):
    """Two browser sessions at once (one job each, the server's two slots): a teacher → assistant →
    student chain against teacher → student directly and from scratch, and a student of a
    two-teacher ensemble (the shipped CNN and an MLP the job trains) against one teacher alone and
    scratch. Each ends with its table, bars naming every run, and the notes naming the networks."""
    other = browser.new_context(viewport={"width": 1280, "height": 900})
    try:
        ens = other.new_page()
        ens.set_default_timeout(30_000)
        for pg in (page, ens):  # both sessions load at once; each is set up once drawn
            pg.goto(f"{app_url}/{nav[TITLE]}", wait_until="commit")
        _start_tab(page, "Teacher assistant", "cat_ta")
        _start_tab(ens, "Multi-teacher (ensemble)", "cat_ensemble")
        shown: dict[str, list[str]] = {}
        deadline = time.monotonic() + 240
        while time.monotonic() < deadline and len(shown) < 2:
            for pg, prefix in ((page, "cat_ta"), (ens, "cat_ensemble")):
                if prefix not in shown and "scratch" in (names := _result_shown(pg, prefix)):
                    shown[prefix] = names
            time.sleep(0.5)
        for pg, prefix in ((page, "cat_ta"), (ens, "cat_ensemble")):
            if prefix not in shown:
                screenshot(pg, f"catalogue_{prefix}_timeout")
        assert set(shown) == {"cat_ta", "cat_ensemble"}, f"no result within 240 s: {shown}"
        settle(page)  # each page redraws once, whole, after its job ended
        settle(ens)

        assert shown["cat_ta"] == TA_ROWS
        text = _main_text(page)
        ta = config_from_spec({"kind": "ta"})  # the page's defaults
        assert "teacher CNN" in text and f"assistant {ta.assistant().label()}; student {ta.student().label()}" in text, text[-1500:]
        assert_no_exception(page, f"{TITLE}: teacher assistant")
        screenshot(page, "catalogue_ta", scroll_to=RESULT_TABLE)

        names = shown["cat_ensemble"]
        assert names[:2] == ["from ensemble (logits)", "from ensemble (probs)"] and names[-1] == "scratch", names
        assert len(names) == 4 and names[2].startswith("from ") and names[2].endswith(" alone"), names
        text = _main_text(ens)
        mlp = config_from_spec({"kind": "ensemble"}).mlp_teacher().label()
        assert "teachers (one run each, full test set): CNN" in text and f"; {mlp} " in text, text[-1500:]
        assert_no_exception(ens, f"{TITLE}: ensemble")
        screenshot(ens, "catalogue_ensemble", scroll_to=RESULT_TABLE)
    finally:
        other.close()
