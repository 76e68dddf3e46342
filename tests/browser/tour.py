"""A new user's tour of the app in headless Chromium on real MNIST, with a screenshot of every page.

Not a test (pytest does not collect it): a script for the closing notes and for a quick look after a
change. It starts the real server, then as one user: runs the Home classroom demo to the end (timed),
opens the Temperature lab, trains a small teacher, starts a Distill run and switches pages while it
trains (the curves must have grown on return), trains the Feature maps quick pair, and visits
Experiments, Saved runs and Interview prep. Screenshots go to ``artifacts/tour/``::

    KDVIZ_DATA_DIR=../shared/data python tests/browser/tour.py
"""
from __future__ import annotations

import os
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from browser_support import (  # noqa: E402
    ARTIFACTS, CHROMIUM, CHROMIUM_ARGS, ROOT, StreamlitServer, exception_texts, server_env, wait_idle,
)
from ui_actions import chart_points, click, metric_value, nav_click, open_page, set_text  # noqa: E402

OUT = ARTIFACTS / "tour"


def shot(page, name: str, anchor: str | None = None) -> None:
    """Screenshot of the viewport (Streamlit scrolls its main block, not the document), scrolled to ``anchor``."""
    OUT.mkdir(parents=True, exist_ok=True)
    if anchor:
        page.locator(anchor).first.scroll_into_view_if_needed()
        time.sleep(0.5)
    page.screenshot(path=str(OUT / f"{name}.png"), full_page=True)
    errors = exception_texts(page)
    print(f"  {name}.png" + (f"  EXCEPTION: {errors}" if errors else ""), flush=True)


def wait_text(page, text: str, timeout_s: float) -> float:
    t0 = time.monotonic()
    page.wait_for_selector(f"[data-testid='stMain'] :text('{text}')", timeout=timeout_s * 1000)
    return time.monotonic() - t0


def home_demo(page, url: str) -> None:
    open_page(page, url)
    shot(page, "1_home")
    t0 = time.monotonic()
    click(page, "home_demo_start")
    page.wait_for_selector("[data-testid='stMain'] h3:has-text('Result')", timeout=300_000)
    wait_idle(page)
    print(f"  classroom demo finished in {time.monotonic() - t0:.1f} s (Start pressed → result shown)")
    shot(page, "1_home_demo_result", "[data-testid='stMain'] h3:has-text('Result')")


def teacher(page) -> None:
    nav_click(page, "Teacher")
    set_text(page, "teacher_hidden", "256")
    set_text(page, "teacher_epochs", "3")
    click(page, "teacher_start")
    wait_text(page, "Finished.", 180)
    wait_idle(page)
    shot(page, "3_teacher_trained", ".st-key-teacher_loss_chart")


def distill_while_switching(page) -> None:
    nav_click(page, "Distill")
    if page.locator(".st-key-distill_epochs").count():
        set_text(page, "distill_epochs", "20")
    click(page, "distill_start")
    page.wait_for_selector("[data-testid='stMain'] :text('● running')", timeout=120_000)
    time.sleep(6)
    before = chart_points(page, "distill_breakdown_chart")
    shot(page, "4_distill_running")
    nav_click(page, "Temperature lab")
    shot(page, "2_temperature")
    time.sleep(5)
    nav_click(page, "Distill")
    time.sleep(2)
    after = chart_points(page, "distill_breakdown_chart")
    print(f"  distill curves before leaving {before} → after coming back {after}; step {metric_value(page, 'Step')}")
    shot(page, "4_distill_after_tab_switch", ".st-key-distill_breakdown_chart")


def feature_maps(page) -> None:
    nav_click(page, "Feature maps", "Feature maps")
    click(page, "fm_train")
    page.wait_for_selector(".st-key-fm_watch button", timeout=180_000)
    wait_idle(page)
    shot(page, "5_feature_maps", ".js-plotly-plot")


def main() -> None:
    from playwright.sync_api import sync_playwright

    with tempfile.TemporaryDirectory() as tmp:
        env = server_env(Path(tmp) / "runs", KDVIZ_DATA_SOURCE="auto", KDVIZ_DATA_DIR=os.environ.get("KDVIZ_DATA_DIR", ""))
        server = StreamlitServer(ROOT / "app.py", env, Path(tmp) / "server.log").start()
        try:
            with sync_playwright() as pw:
                browser = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
                page = browser.new_context(viewport={"width": 1400, "height": 1000}).new_page()
                page.set_default_timeout(120_000)
                home_demo(page, server.url)
                teacher(page)
                distill_while_switching(page)
                feature_maps(page)
                for label, name in (("Experiments", "6_experiments"), ("Saved runs", "7_saved_runs"), ("Interview prep", "8_interview")):
                    nav_click(page, label)
                    shot(page, name)
                browser.close()
        finally:
            server.stop()


if __name__ == "__main__":
    main()
