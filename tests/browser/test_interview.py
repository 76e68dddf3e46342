"""Interview prep in headless Chromium: a candidate finds a bug, runs both versions and sees the
difference, then completes a quiz round and sees the score. Screenshots: artifacts/screenshots/interview_*.png."""
from __future__ import annotations

import time

import pytest
from browser_support import alert_texts, assert_no_exception, screenshot
from ui_actions import chart_points, click, metric_value, open_page, set_text, settle

from kdviz.interview.bugs import get_bug
from kdviz.interview.quiz import get_question

pytestmark = pytest.mark.browser


def pick_radio(page, key: str, label: str) -> None:
    page.locator(f".st-key-{key} label").filter(has_text=label).first.click()
    settle(page)


def wait_for(page, what, timeout_s: float, message: str):
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        value = what()
        if value:
            return value
        time.sleep(0.5)
    screenshot(page, "interview_FAILED_wait")
    raise AssertionError(message)


def test_find_the_bug_then_run_both(page, app_url):
    bug = get_bug("missing_t2")
    open_page(page, app_url, "interview?bug=missing_t2")
    assert_no_exception(page, "interview page")
    wrong = next(i for i in range(1, 13) if i not in bug.answer_lines)
    pick_radio(page, "iv_line_missing_t2", str(wrong))
    click(page, "iv_check")
    settle(page)
    assert any(f"Not line {wrong}" in t for t in alert_texts(page, "Error"))
    pick_radio(page, "iv_line_missing_t2", str(bug.answer_lines[-1]))
    click(page, "iv_check")
    settle(page)
    assert any("Right: the bug is on lines" in t for t in alert_texts(page, "Success"))
    screenshot(page, "interview_bug_found")
    thumb = page.locator(".st-key-iv_steps input[type='range']").first
    thumb.focus()
    thumb.press("Home")  # the fewest steps: a quick run
    settle(page)
    for _ in range(3):  # pressing again while it runs adds nothing
        click(page, "iv_run")
    wait_for(page, lambda: any("Finished" in t for t in alert_texts(page, "Success")), 180, "the run never finished")
    settle(page)
    # the comparison table is drawn by the rerun after the live view says "Finished": wait for it
    table = "[data-testid='stMain'] [data-testid='stDataFrame']"
    wait_for(page, lambda: page.locator(table).count() == 1, 30, "the comparison table never appeared")
    assert all(len(chart_points(page, f"iv_chart_{m}")) >= 2 for m in ("total", "grad_norm", "test_acc"))
    assert metric_value(page, "Step") == "5 / 5"
    assert_no_exception(page, "run both")
    page.locator(".st-key-iv_chart_total").scroll_into_view_if_needed()  # the main area scrolls, not the window
    screenshot(page, "interview_run_both")


def test_quiz_round_shows_the_score(page, app_url):
    open_page(page, app_url, "interview?mode=quiz&q=p1_T4")
    set_text(page, "iv_ans_p1_T4", f"{get_question('p1_T4').answer():.3f}")
    click(page, "iv_answer")
    settle(page)
    assert metric_value(page, "Score") == "1 / 1"
    click(page, "iv_next")
    settle(page)
    set_text(page, "iv_ans_p0_T1", "not a number")
    click(page, "iv_answer")
    settle(page)
    assert any("is not a number" in t for t in alert_texts(page, "Warning"))
    set_text(page, "iv_ans_p0_T1", "0.9")
    click(page, "iv_answer")
    settle(page)
    assert metric_value(page, "Score") == "1 / 2"
    assert any("Topics to revisit: temperature" in t for t in alert_texts(page, "Info"))
    assert_no_exception(page, "quiz")
    screenshot(page, "interview_quiz_score")
