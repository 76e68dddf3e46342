"""The Language models page in headless Chromium: retrain a teacher live, distil both students live,
the heatmap and reduction plot, and the vocabulary-mismatch refusal followed by the fix.
Screenshots: ``artifacts/screenshots/lm_*.png``."""
from __future__ import annotations

import pytest
from browser_support import alert_texts, assert_no_exception, screenshot
from ui_actions import click, open_page, set_text

pytestmark = pytest.mark.browser
MAIN = "[data-testid='stMain']"


def _wait_text(page, pattern: str, timeout_ms: float = 300_000) -> None:
    page.wait_for_selector(f"{MAIN} :text-matches('{pattern}')", timeout=timeout_ms)


def test_lm_page_trains_live_and_shows_views_and_vocab_fix(page, app_url, nav):
    open_page(page, app_url, nav["Language models"])
    for key in ("lm_heat_teacher", "lm_heat_student", "lm_kl_chart", "lm_reduction_chart", "lm_share_chart"):
        page.wait_for_selector(f".st-key-{key} .js-plotly-plot", timeout=60_000)
    assert_no_exception(page, "lm page")
    screenshot(page, "lm_views")

    set_text(page, "lm_teacher_steps", "60")
    click(page, "lm_teacher_start")
    page.wait_for_selector(f".st-key-lm_teacher_chart .js-plotly-plot", timeout=120_000)
    _wait_text(page, "Teacher: trained here")  # the finished teacher was adopted
    screenshot(page, "lm_teacher_retrained")

    set_text(page, "lm_steps", "40")
    click(page, "lm_distill_start")
    page.wait_for_selector(f".st-key-lm_bpc_chart .js-plotly-plot", timeout=120_000)
    _wait_text(page, "Trained on [0-9,]+ real names")  # the caption under the final metrics
    assert_no_exception(page, "lm distil")
    screenshot(page, "lm_students_trained")

    page.locator(".st-key-lm_other_vocab label").first.click()
    page.wait_for_selector(f"[data-testid='stAlertContentError']:has-text('29 tokens')", timeout=60_000)
    assert any("27 tokens" in t for t in alert_texts(page, "Error"))
    screenshot(page, "lm_vocab_refused")
    click(page, "lm_align_start")
    _wait_text(page, "Trained with the aligned teacher")
    assert_no_exception(page, "lm vocab fix")
    screenshot(page, "lm_vocab_fixed")
