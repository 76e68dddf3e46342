"""Driving Streamlit widgets by their stable keys (``st-key-<key>`` classes) from Playwright (sync API)."""
from __future__ import annotations

import re
import time

from browser_support import screenshot, wait_idle, wait_no_skeletons, wait_rendered

SETTLE_S = 0.3  # a widget change reaches the server a moment after the key press; then a rerun starts


def open_page(page, base_url: str, path: str = "", timeout_ms: float = 90_000) -> float:
    """Load ``base_url/path`` (a fresh Streamlit session) and wait until drawn; returns the seconds taken."""
    t0 = time.perf_counter()
    # "commit", not "load": the drawn page (heading + idle script) is what counts, and it is awaited next
    page.goto(f"{base_url}/{path.lstrip('/')}", wait_until="commit", timeout=timeout_ms)
    wait_rendered(page, timeout_ms)
    return time.perf_counter() - t0


def nav_click(page, label: str, heading: str | None = None, timeout_ms: float = 90_000) -> None:
    """Go to another page through the sidebar (client-side: the same Streamlit session, no reload)."""
    page.locator("[data-testid='stSidebarNav'] a", has_text=label).first.click()
    page.wait_for_selector(f"[data-testid='stMain'] h1:has-text({heading or label!r})", timeout=timeout_ms)
    wait_idle(page, timeout_ms)
    wait_no_skeletons(page)


def settle(page, timeout_ms: float = 60_000) -> None:
    time.sleep(SETTLE_S)
    wait_idle(page, timeout_ms)


def set_text(page, key: str, value: str) -> None:
    """A text or number input: replace its text and commit with Enter."""
    box = page.locator(f".st-key-{key} input").first
    box.fill(str(value))
    box.press("Enter")
    settle(page)


def choose(page, key: str, option: str) -> None:
    """A selectbox (a react-aria combobox in Streamlit 1.67): open it and click the option with exactly this text."""
    from playwright.sync_api import TimeoutError as PlaywrightTimeout

    option_el = page.get_by_role("option", name=option, exact=True)
    for attempt in range(4):  # a click during a rerun may land on a copy that is being replaced: open it again
        box = page.locator(f".st-key-{key} [role='combobox']").first
        box.click()
        try:
            option_el.wait_for(timeout=3_000)
            break
        except PlaywrightTimeout:
            box.press("ArrowDown")  # the list also opens from the keyboard
            try:
                option_el.wait_for(timeout=2_000)
                break
            except PlaywrightTimeout:
                page.keyboard.press("Escape")
    option_el.click()
    settle(page)


def pick_multiselect(page, key: str, option: str) -> None:
    """A multiselect (react-aria combobox in Streamlit 1.67): type to filter, click the option, close the list.

    A click on the box only focuses it (the list opens on typing or ArrowDown); the filtered
    list also offers "Select N matches", hence the exact option name.
    """
    box = page.locator(f".st-key-{key} [role='combobox']").first
    box.click()
    box.press_sequentially(option)
    page.get_by_role("option", name=option, exact=True).click()
    page.keyboard.press("Escape")
    settle(page)


def slider_to_end(page, key: str) -> str:
    """Move a (select_)slider to its largest value with the End key; returns the value it shows."""
    thumb = page.locator(f".st-key-{key} input[type='range']").first  # react-aria slider in Streamlit 1.67
    thumb.focus()
    thumb.press("End")
    settle(page)
    return thumb.get_attribute("aria-valuetext") or thumb.get_attribute("aria-valuenow") or ""


def click(page, key: str) -> None:
    # during a rerun Streamlit may briefly keep a stale copy of an element: either copy triggers the widget
    page.locator(f".st-key-{key} button").first.click()


def metric_value(page, label: str) -> str | None:
    """The shown value of the ``st.metric`` whose label is exactly ``label`` (None when absent)."""
    return page.evaluate(
        """label => {
            for (const m of document.querySelectorAll("[data-testid='stMain'] [data-testid='stMetric']")) {
                const l = m.querySelector("[data-testid='stMetricLabel']");
                const v = m.querySelector("[data-testid='stMetricValue']");
                if (l && v && l.innerText.trim() === label) return v.innerText.trim();
            }
            return null;
        }""",
        label,
    )


def leading_int(text: str | None) -> int | None:
    """``"1,230 / 4,000"`` → 1230."""
    match = re.match(r"\s*([\d,]+)", text or "")
    return int(match.group(1).replace(",", "")) if match else None


def chart_points(page, key: str) -> list[int]:
    """Points per trace of the Plotly chart with this key ([] when not drawn yet)."""
    return page.evaluate(
        """key => {
            const el = document.querySelector(`.st-key-${key} .js-plotly-plot`);
            return el && el.data ? el.data.map(t => (t.x || []).length) : [];
        }""",
        key,
    )


def chart_traces(page, key: str) -> dict[str, int]:
    """Trace name → points of the Plotly chart with this key ({} when not drawn yet)."""
    return page.evaluate(
        """key => {
            const el = document.querySelector(`.st-key-${key} .js-plotly-plot`);
            return el && el.data ? Object.fromEntries(el.data.map(t => [t.name, (t.x || []).length])) : {};
        }""",
        key,
    )


def chart_data(page, key: str) -> dict[str, dict[str, list]]:
    """Trace name → {"x": [...], "y": [...]} of the Plotly chart with this key ({} when not drawn yet)."""
    return page.evaluate(
        """key => {
            const el = document.querySelector(`.st-key-${key} .js-plotly-plot`);
            return el && el.data ? Object.fromEntries(el.data.map(t => [t.name, {x: Array.from(t.x || []), y: Array.from(t.y || [])}])) : {};
        }""",
        key,
    )


def wait_until(page, what, timeout_s: float, message: str, every_s: float = 0.25):
    """Poll ``what()`` until it returns something truthy (returned); past the deadline a screenshot and an AssertionError."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        value = what()
        if value:
            return value
        time.sleep(every_s)
    screenshot(page, "FAILED_wait_until")
    raise AssertionError(f"{message} (after {timeout_s:g} s)")


def sidebar_text(page) -> str:
    return page.locator("[data-testid='stSidebarUserContent']").inner_text()


def job_counts(page) -> dict[str, int] | None:
    """Server-wide counts from the sidebar line "Jobs: 2 running, 5 queued (of 2 slots)"."""
    match = re.search(r"Jobs:\s*(\d+) running, (\d+) queued \(of (\d+) slots?\)", sidebar_text(page))
    if not match:
        return None
    return dict(zip(("running", "queued", "max"), map(int, match.groups())))
