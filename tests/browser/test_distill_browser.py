"""Distill page in headless Chromium (issues 14 and 15): a run with the reverse-KL divergence and a
cosine temperature schedule picked in the page trains, its charts show both, and its result shows
the calibration (reliability) diagram; a shared link fills the page's widgets in a fresh session."""
from __future__ import annotations

import re

import pytest
from browser_support import alert_texts, assert_no_exception, screenshot
from ui_actions import (
    chart_data,
    chart_traces,
    choose,
    click,
    metric_value,
    open_page,
    pick_multiselect,
    settle,
    wait_until,
)

from kdviz.methods.schedules import schedule_value

pytestmark = pytest.mark.browser
NOW = re.compile(r"Now: T = ([\d.]+), α = ([\d.]+) \(step (\d+)\)")
KD_LABEL = "α·KD  (α·T²·KL)"  # the forward-KL term's trace (kdviz.figures.style.TERM_LABELS)


def _main_text(page) -> str:
    return page.locator("[data-testid='stMain']").inner_text()


def _finished(page) -> bool:
    return page.locator("[data-testid='stAlertContentSuccess']:has-text('Finished.')").count() > 0


def _slider_value(page, key: str) -> str:
    thumb = page.locator(f".st-key-{key} input[type='range']").first
    return thumb.get_attribute("aria-valuetext") or thumb.get_attribute("aria-valuenow") or ""


def test_reverse_kl_with_cosine_T_trains_and_shows_the_reliability_diagram(page, app_url, nav):
    """The default run (8 steps on the synthetic digits) with two changes made in the page: the
    divergence is reverse KL and T follows a cosine from 4 to 1. The loss breakdown has a reverse-KL
    curve and no forward-KL one; the live schedule chart is the cosine of the job's spec; the T
    the trainer reports at each step is that cosine's value; the result shows each network's ECE
    and the reliability diagram."""
    open_page(page, app_url, nav["Distill"])
    click(page, "distill_use_default")
    page.wait_for_selector("[data-testid='stAlertContentSuccess']:has-text('Current teacher')", timeout=30_000)
    settle(page)
    choose(page, "distill_T_schedule", "cosine to an end value")
    page.wait_for_selector(".st-key-distill_T_end", timeout=30_000)  # the end slider appears for a moving schedule
    t_start, t_end, alpha0 = (float(_slider_value(page, k)) for k in ("distill_T", "distill_T_end", "distill_alpha"))
    assert t_end < t_start, (t_start, t_end)  # the page's defaults: 4 → 1
    pick_multiselect(page, "distill_methods", "Reverse KL")
    page.wait_for_selector(".st-key-distill_w_reverse_kl input", timeout=30_000)  # its weight box: the term is on
    click(page, "distill_start")

    nows: set[tuple[float, float, int]] = set()

    def done() -> bool:
        for t, a, step in NOW.findall(_main_text(page)):
            nows.add((float(t), float(a), int(step)))
        if alert_texts(page, "Error"):
            return True
        return _finished(page) and len(chart_traces(page, "distill_reliability_chart")) >= 4

    wait_until(page, done, 120, "the run did not finish with a reliability diagram")
    settle(page)  # the page's one full redraw after the job ended
    assert not alert_texts(page, "Error"), alert_texts(page, "Error")
    assert_no_exception(page, "Distill page after a reverse-KL, cosine-T run")

    traces = chart_traces(page, "distill_breakdown_chart")
    assert traces.get("reverse_kl", 0) >= 2, f"no reverse-KL curve in the loss breakdown: {traces}"
    assert KD_LABEL not in traces, f"reverse KL should replace the forward-KL term: {traces}"
    assert "(1−α)·CE" in traces and "total" in traces, traces

    schedule = chart_data(page, "distill_schedule_live")["T"]
    for p, shown in zip(schedule["x"], schedule["y"]):
        assert shown == pytest.approx(schedule_value("cosine", t_start, t_end, p), abs=1e-6), (p, shown)
    assert schedule["y"][0] == pytest.approx(t_start) and schedule["y"][-1] == pytest.approx(t_end)

    total = int(metric_value(page, "Step").split("/")[-1].replace(",", ""))
    final = [(float(t), float(a), int(step)) for t, a, step in NOW.findall(_main_text(page))]
    assert final and final[0][2] == total, f"no caption of the last step ({total}): {final}"
    assert final[0][0] == pytest.approx(t_end, abs=0.005), final  # the trainer's T at the last step: the end value
    nows.update(final)
    for t, alpha, step in nows:  # whatever the live captions showed was the cosine at that step
        assert t == pytest.approx(schedule_value("cosine", t_start, t_end, (step - 1) / (total - 1)), abs=0.005), (t, step)
        assert alpha == pytest.approx(alpha0), alpha

    diagram = chart_traces(page, "distill_reliability_chart")
    names = sorted(diagram)
    assert "perfect calibration" in names and len(names) == 4, names
    for network in ("teacher", "distilled", "scratch"):
        assert any(re.fullmatch(rf"{network} \(ECE \d+\.\d\d%\)", n) for n in names), names
        ece = metric_value(page, f"ECE: {network}")
        assert ece and re.fullmatch(r"\d+\.\d\d%", ece), (network, ece)
    assert sum(diagram.values()) > 3, diagram  # bins with images drawn, not empty lines
    page.evaluate("() => document.querySelector('.st-key-distill_reliability_chart')?.scrollIntoView({block: 'center'})")
    screenshot(page, "distill_reverse_kl_cosine_reliability")
    print(f"\nreverse KL + cosine T: breakdown {traces}; T captions {sorted(nows, key=lambda n: n[2])}; reliability {diagram}")


SHARED = {"hidden": "32, 16", "T": "8", "alpha": "0.5", "transfer": "subset", "transfer_n": "300", "epochs": "3",
          "seed": "7", "lr": "0.003", "batch": "64"}


def test_shared_distill_link_fills_the_widgets(page, app_url, nav):
    """A link with the Distill settings in its query opens, in a new browser session, with every
    one of them in its widget, no warning, and the settings still in the address bar."""
    query = "&".join(f"{k}={v.replace(', ', '%2C%20')}" for k, v in SHARED.items())
    open_page(page, app_url, f"{nav['Distill']}?{query}")
    assert_no_exception(page, "shared Distill link")
    warnings = [w for w in alert_texts(page, "Warning") if not w.startswith("Distillation needs a teacher")]
    assert not warnings, f"the link's values were refused: {warnings}"
    value = lambda key: page.locator(f".st-key-distill_{key} input").first.input_value()  # noqa: E731
    combo = lambda key: page.locator(f".st-key-distill_{key} [role='combobox']").first.input_value()  # noqa: E731
    assert value("hidden") == "32, 16"
    assert float(_slider_value(page, "distill_T")) == 8.0 and float(_slider_value(page, "distill_alpha")) == 0.5
    assert combo("transfer") == "A random subset of N images"
    assert int(value("transfer_n")) == 300 and float(value("epochs")) == 3.0 and int(value("seed")) == 7
    assert float(_slider_value(page, "distill_lr")) == 0.003
    assert combo("batch") == "64"
    url = page.url
    for key in ("T=8", "alpha=0.5", "transfer=subset", "transfer_n=300", "seed=7", "batch=64"):
        assert key in url, f"{key} left the address bar: {url}"
    screenshot(page, "distill_shared_link")


def test_run_the_next_seed_starts_a_second_run_and_gives_a_verdict(page, app_url, nav):
    """The default run, then "Run the next seed" pressed in its result: a second run starts and trains to
    its end (the button sits in the live panel's fragment, which must start ticking again), and the
    result then speaks of 2 seeds with mean ± std instead of "one seed: noise unknown"."""
    open_page(page, app_url, nav["Distill"])
    click(page, "distill_use_default")
    page.wait_for_selector("[data-testid='stAlertContentSuccess']:has-text('Current teacher')", timeout=30_000)
    settle(page)
    click(page, "distill_start")
    wait_until(page, lambda: "noise unknown" in _main_text(page), 120, "the first run gave no one-seed result")
    settle(page)
    first_seed = int(page.locator(".st-key-distill_seed input").first.input_value())
    click(page, "distill_next_seed")
    wait_until(page, lambda: "Over 2 seeds" in _main_text(page) or bool(alert_texts(page, "Error")), 120,
               "the next seed's run did not finish with a verdict over 2 seeds")
    assert not alert_texts(page, "Error"), alert_texts(page, "Error")
    text = _main_text(page)
    assert re.search(rf"seeds {first_seed}, {first_seed + 1}\)", text), text[-2000:]
    assert re.search(r"distilled − scratch [+−-]\d+\.\d\d points \(2·SE \d+\.\d\d\) — (within|beyond) noise", text), text[-2000:]
    assert int(page.locator(".st-key-distill_seed input").first.input_value()) == first_seed + 1
    assert_no_exception(page, "Distill page after the next seed's run")
