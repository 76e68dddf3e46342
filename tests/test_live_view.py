"""The live view's helpers (``kdviz/ui/live.py``) on their own: the throughput it shows and how often
it rebuilds a chart. A fake ``st.session_state`` and clock stand in for a Streamlit script run."""
from __future__ import annotations

from types import SimpleNamespace

import pytest

from kdviz.ui import live


def test_images_per_s_is_the_window_rate_while_running_and_the_run_average_after():
    last = {"samples_per_s": 900.0, "samples": 6_400, "elapsed_s": 4.0}
    assert live.images_per_s(last, active=True)[0] == 900.0
    rate, help_text = live.images_per_s(last, active=False)
    assert rate == 6_400 / 4.0 and "Average over the whole run" in help_text
    assert live.images_per_s({"samples_per_s": 5.0}, active=False)[0] == 5.0  # a record without a count (an LM run)
    assert live.images_per_s(None, active=False)[0] is None


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def monotonic(self) -> float:
        return self.now


@pytest.fixture
def fake_st(monkeypatch):
    clock = Clock()
    monkeypatch.setattr(live, "st", SimpleNamespace(session_state={}))
    monkeypatch.setattr(live, "time", clock)
    return clock


def draw(handle, builds: list) -> object:
    return live.figure("chart", handle, lambda: builds.append(handle.events_seen) or object())


def test_a_running_jobs_chart_is_rebuilt_at_most_once_per_chart_refresh(fake_st):
    handle, builds = SimpleNamespace(id=1, events_seen=1, state="running"), []
    first = draw(handle, builds)
    handle.events_seen = 2
    fake_st.now += live.CHART_REFRESH_S / 2
    assert draw(handle, builds) is first  # new events, but too soon: the same figure (the browser skips it)
    fake_st.now += live.CHART_REFRESH_S / 2
    assert draw(handle, builds) is not first and builds == [1, 2]
    assert draw(handle, builds) is not first and builds == [1, 2]  # nothing new: no rebuild


@pytest.mark.parametrize("state", ["paused", "done", "stopped", "error"])
def test_a_chart_of_a_job_that_is_not_running_is_rebuilt_at_once(fake_st, state):
    handle, builds = SimpleNamespace(id=1, events_seen=1, state="running"), []
    draw(handle, builds)
    handle.events_seen, handle.state = 2, state  # e.g. Step delivered one record, or the last event arrived
    draw(handle, builds)
    assert builds == [1, 2]


def test_a_new_job_gets_its_own_chart_at_once(fake_st):
    builds = []
    draw(SimpleNamespace(id=1, events_seen=5, state="running"), builds)
    draw(SimpleNamespace(id=2, events_seen=1, state="running"), builds)
    assert builds == [5, 1]
