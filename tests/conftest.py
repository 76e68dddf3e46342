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


class _IdleProcess:
    """Stands in for a worker process that never sends anything (no spawn cost)."""

    exitcode = None

    def is_alive(self):
        return True

    def join(self, timeout=None):
        pass

    terminate = kill = join


@pytest.fixture
def no_spawn(app_env):
    """Jobs the app starts are accepted (specs can be inspected) but no worker process starts."""
    import queue

    from kdviz.runtime.launch import Worker
    from kdviz.ui.jobs import get_manager

    manager = get_manager()
    real, manager.launcher = manager.launcher, lambda spec: Worker(_IdleProcess(), queue.Queue(), queue.Queue())
    yield manager
    manager.stop_all()
    manager.launcher = real


@pytest.fixture
def tick():
    """``tick(at, cond, timeout)``: rerun the AppTest every 0.25 s (as the live fragment would)
    until ``cond(at)`` holds; fails with the page's errors when it never does."""
    import time

    from apptools import step_of

    def run(at, cond, timeout: float = 60.0):
        end = time.monotonic() + timeout
        while True:
            at.run()
            assert not at.exception, [e.value for e in at.exception]
            if cond(at):
                return at
            if time.monotonic() > end:
                raise AssertionError(f"condition not met; step={step_of(at)}, errors={[e.value for e in at.error]}")
            time.sleep(0.25)

    return run


@pytest.fixture
def one_thread():
    """One torch thread for the test (timing- and order-sensitive tests; the machine has 2 cores)."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)
