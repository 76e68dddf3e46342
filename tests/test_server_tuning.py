"""Server-process GC tuning (kdviz/ui/server.py): what it sets, and that it runs once."""
from __future__ import annotations

import gc
import sys
from pathlib import Path

from kdviz.ui.server import GC_THRESHOLDS, SWITCH_INTERVAL_S, tune_server_process


def test_tuning_freezes_the_heap_and_raises_thresholds():
    before, interval = gc.get_threshold(), sys.getswitchinterval()
    try:
        assert tune_server_process.__wrapped__() == GC_THRESHOLDS  # the uncached body
        assert sys.getswitchinterval() == SWITCH_INTERVAL_S < 0.005
        assert gc.get_freeze_count() > 10_000  # torch/streamlit objects moved out of the collector's way
        assert GC_THRESHOLDS[0] > 700  # rarer young collections than CPython's default
    finally:
        gc.unfreeze()
        gc.set_threshold(*before)
        sys.setswitchinterval(interval)


def test_tuning_runs_once_per_process(monkeypatch):
    calls = []
    monkeypatch.setattr(gc, "freeze", lambda: calls.append("freeze"))
    monkeypatch.setattr(gc, "set_threshold", lambda *t: calls.append(t))
    monkeypatch.setattr(sys, "setswitchinterval", lambda s: calls.append(s))
    tune_server_process.cache_clear()
    try:
        tune_server_process()
        tune_server_process()
        assert calls == ["freeze", GC_THRESHOLDS, SWITCH_INTERVAL_S]
    finally:
        tune_server_process.cache_clear()


def test_the_server_watches_no_files():
    """With the README's ``.venv`` inside the checkout, Streamlit's file watcher overflowed inotify
    and took most of a core during training; the app never reloads on edits, so it is off."""
    import tomllib

    server = tomllib.loads((Path(__file__).parents[1] / ".streamlit" / "config.toml").read_text())["server"]
    assert server["fileWatcherType"] == "none" and server["runOnSave"] is False
