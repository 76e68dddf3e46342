"""Fair share in the app: 100 rapid Start clicks on the Teacher page (with the sidebar's job panel).

Reported bug: after 100 rapid Start clicks the sidebar said "yours: 0" while 2 runs and 2 queued
jobs kept going and nobody could stop them. Here no worker process starts (``no_spawn``: the job is
accepted, its worker idles); every fifth click the running job "sends" an event, so the next
Start is a real restart and not a no-op, and every tenth click changes the seed.
"""
from __future__ import annotations

import re
from pathlib import Path

from streamlit.testing.v1 import AppTest

ROOT = Path(__file__).resolve().parents[1]
PAGE = f"""
import runpy
from kdviz.ui.frame import render_sidebar

render_sidebar()
runpy.run_path({str(ROOT / "app_pages" / "teacher.py")!r}, run_name="__main__")
"""


def _yours(at) -> tuple[int, int]:
    text = next(m.value for m in at.sidebar.markdown if "yours:" in m.value)
    running, queued = re.search(r"yours: (\d+) running, (\d+) queued", text).groups()
    return int(running), int(queued)


def test_100_rapid_starts_keep_one_running_one_queued_and_stop_all_stops_them(no_spawn):
    manager = no_spawn
    at = AppTest.from_string(PAGE, default_timeout=60).run()
    assert not at.exception, [e.value for e in at.exception]
    seen: set[int] = set()
    for click in range(100):
        if click % 10 == 9:
            at.number_input(key="teacher_seed").set_value(click)
        at.button(key="teacher_start").click().run()
        assert not at.exception, [e.value for e in at.exception]
        session = at.session_state["_kdviz_session_jobs"]
        mine = manager.jobs(session.id)
        running = [h for h in mine if h.state in ("running", "paused")]
        queued = [h for h in mine if h.state == "queued"]
        assert len(running) <= 1 and len(queued) <= 1, (click, [(h.id, h.state) for h in mine])
        assert manager.jobs() == mine  # nothing leaked outside this session
        seen |= {h.id for h in mine}
        assert _yours(at) == (len(running), len(queued))
        if click % 5 == 4 and running:
            running[0].worker.events.put({"type": "status", "text": "training"})  # the job is past its start
    assert manager.counts()["running"] == 1 and 20 <= len(seen) < 100  # real restarts happened; double clicks were no-ops
    at.sidebar.button(key="stop_all").click().run()
    assert manager.jobs() == [] and session.active() == []
    assert _yours(at) == (0, 0)
