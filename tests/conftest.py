"""Shared fixtures: synthetic data for the app, job outputs in a temp folder, and no stray workers."""
from __future__ import annotations

import pytest


@pytest.fixture
def app_env(monkeypatch, tmp_path):
    """Environment for app tests: synthetic data, job folders under tmp_path, 2 job slots."""
    monkeypatch.setenv("KDVIZ_DATA_SOURCE", "synthetic")
    monkeypatch.setenv("KDVIZ_JOBS_DIR", str(tmp_path / "jobs"))
    monkeypatch.setenv("KDVIZ_RUNS_DIR", str(tmp_path / "runs"))
    monkeypatch.setenv("KDVIZ_DEVICE", "cpu")
    monkeypatch.delenv("KDVIZ_HOSTED", raising=False)
    yield tmp_path
    _stop_app_jobs()


def _stop_app_jobs() -> None:
    """Stop every job the app's (process-wide, cached) JobManager still runs after a test."""
    from kdviz.ui.jobs import get_manager

    try:
        manager = get_manager()
    except Exception:  # no script context: the cache still returns the manager; anything else means none
        return
    for handle in manager.jobs():
        handle.stop()
        handle.wait_ended(5.0)
