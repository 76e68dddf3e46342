"""The Ray executor (kdviz/runtime/ray_executor.py) against the same executor contract as the local one.

A local Ray instance (2 CPUs, no dashboard) is started once for the module. The ``test_contract_*``
tests are those of tests/test_fair_share.py, imported here so pytest runs them again with this
module's ``make_executor`` fixture: submit, events arrive, pause/step/resume/stop, queue
positions, fair share per owner and identity, the pause timeout.
"""
from __future__ import annotations

import math

import pytest

ray = pytest.importorskip("ray", reason="ray is installed by requirements-dev.txt")

from kdviz.runtime import executors  # noqa: E402
from kdviz.runtime.ray_executor import RayLauncher, ensure_ray, map_points, ray_executor  # noqa: E402
from test_fair_share import (  # noqa: E402,F401 - collected again here, against Ray
    count,
    test_contract_a_long_pause_gives_up_the_slot_only_while_others_wait,
    test_contract_events_arrive_and_the_job_finishes,
    test_contract_fair_share_one_running_one_queued_per_owner,
    test_contract_identity_limits_hold_across_sessions,
    test_contract_pause_step_resume_stop,
    test_contract_queue_positions_across_owners,
    wait_for,
)


@pytest.fixture(scope="module", autouse=True)
def local_ray():
    ensure_ray(num_cpus=2)
    yield
    ray.shutdown()


@pytest.fixture
def make_executor():
    made = []

    def make(max_jobs: int = 2):
        made.append(ray_executor(max_jobs=max_jobs))
        return made[-1]

    yield make
    for manager in made:
        for h in manager.jobs():
            h.stop()
            h.wait_ended(5.0)


def test_jobs_run_in_ray_actors_and_free_them_when_done(make_executor):
    ex = make_executor()
    h = ex.submit(count(n=5), owner="a", name="count")
    wait_for(lambda: h.state == "done", h)
    assert isinstance(ex.launcher, RayLauncher) and ex.launcher.started == 1
    assert h.wait_ended(5.0) and h.worker.process.exitcode == 0


def test_a_bad_job_path_inside_the_actor_is_an_error_event(make_executor):
    ex = make_executor()
    h = ex.submit({"fn": "kdviz.runtime.worker:no_such_job", "out_dir": "/unused"}, owner="a", name="count")
    wait_for(lambda: not h.active, h)
    assert h.state == "error" and "no_such_job" in h.error and "not found" in h.error


def test_map_points_fans_out_in_order_and_the_selector_picks_ray(monkeypatch):
    assert map_points(math.factorial, range(6)) == [1, 1, 2, 6, 24, 120]  # by reference: workers can import it
    monkeypatch.setenv("KDVIZ_EXECUTOR", "ray")
    assert executors.map_points(math.factorial, [3, 4]) == [6, 24]
    monkeypatch.setenv("KDVIZ_MAX_JOBS", "3")
    assert executors.make_executor().max_jobs == 3
    monkeypatch.setenv("KDVIZ_EXECUTOR", "dask")
    with pytest.raises(ValueError, match="KDVIZ_EXECUTOR='dask'"):
        executors.make_executor()


def test_a_sweep_fans_its_seeds_out_to_ray_with_the_local_results(monkeypatch):
    import torch

    from kdviz import data as kdata
    from kdviz.experiments import sweeps as sw
    from test_sweeps import TINY

    torch.set_num_threads(1)
    bundle = kdata.synthetic_bundle(n_train=200, n_test=100, seed=2)
    cfg = sw.SweepConfig("T", (1, 4), seeds=(0, 1), overrides=TINY)
    monkeypatch.delenv("KDVIZ_EXECUTOR", raising=False)
    local = sw.run_sweep(cfg, bundle, device="cpu")
    monkeypatch.setenv("KDVIZ_EXECUTOR", "ray")
    statuses = []
    fanned = sw.run_sweep(cfg, bundle, device="cpu", on_event=lambda e: statuses.append(e.get("text")))
    assert "running 2 seeds in parallel on Ray" in statuses
    key = lambda p: (p["role"], str(p["value"]), p["seed"])  # noqa: E731
    assert sorted(map(key, fanned["points"])) == sorted(map(key, local["points"]))
    by_key = {key(p): p["accuracy"] for p in local["points"]}
    for p in fanned["points"]:  # same seeds, one thread each: the same training (to float noise)
        assert p["accuracy"] == pytest.approx(by_key[key(p)], abs=0.02)
