"""The Ray executor (kdviz/runtime/ray_executor.py) against the same executor contract as the local one.

A local Ray instance (2 CPUs, no dashboard) is started once for the module. The ``test_contract_*``
tests are those of tests/test_fair_share.py, imported here so pytest runs them again with this
module's ``make_executor`` fixture: submit, events arrive, pause/step/resume/stop, queue
positions, fair share per owner and identity, the pause timeout.
"""
from __future__ import annotations

import math
import uuid

import pytest

ray = pytest.importorskip("ray", reason="ray is installed by requirements-dev.txt")

from kdviz.runtime import executors  # noqa: E402
from kdviz.runtime.fairshare import FairShareError  # noqa: E402
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
        made.append(ray_executor(max_jobs=max_jobs, broker=f"test-{uuid.uuid4().hex}"))  # a queue of its own
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
    monkeypatch.setenv("KDVIZ_RAY_BROKER", f"test-{uuid.uuid4().hex}")
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


# ----------------------------------------------------------------------------- one queue for the cluster
@pytest.fixture
def replicas():
    """``make(n, max_jobs)``: n Ray executors sharing one new broker, as n Streamlit replicas would."""
    made = []

    def make(n: int, max_jobs: int = 2):
        name = f"test-{uuid.uuid4().hex}"
        made.extend(ray_executor(max_jobs=max_jobs, broker=name) for _ in range(n))
        return made[-n:]

    yield make
    for manager in made:
        manager.stop_all()


LONG = count(n=100_000, delay_s=0.01)


def test_two_replicas_share_one_limit_and_one_fifo_queue(replicas):
    a, b = replicas(2, max_jobs=2)
    a1, a2 = (a.submit(LONG, owner=o, name="count") for o in ("a1", "a2"))
    b1, b2 = (b.submit(LONG, owner=o, name="count") for o in ("b1", "b2"))
    assert (a1.state, a2.state, b1.state, b2.state) == ("running", "running", "queued", "queued")
    assert (b1.position, b2.position) == (1, 2)  # free slots on b's machine do not matter: the cluster's are taken
    assert b.counts() == {"running": 2, "queued": 2, "max": 2}
    wait_for(lambda: a.counts() == {"running": 2, "queued": 2, "max": 2}, timeout=10)  # a's view: one sync later
    a1.stop()
    wait_for(lambda: b1.state == "running", b1, b2)
    wait_for(lambda: b2.position == 1 and a.counts() == {"running": 2, "queued": 1, "max": 2}, b2, timeout=10)


def test_a_late_replica_gets_the_clusters_limit_not_its_own(replicas, monkeypatch):
    (a,) = replicas(1, max_jobs=2)
    monkeypatch.setenv("KDVIZ_RAY_BROKER", a.broker_name)  # how replicas find the broker in production
    late = ray_executor(max_jobs=5)
    assert late.broker_name == a.broker_name and late.max_jobs == a.max_jobs == 2


def test_a_persons_limits_hold_across_replicas(replicas):
    a, b = replicas(2, max_jobs=4)
    tab1 = a.submit(LONG, owner="tab1", identity="ann", name="count")
    tab2 = b.submit(LONG, owner="tab2", identity="ann", name="count")
    assert tab1.state == "running" and tab2.state == "queued"  # slots free, but ann already runs one (on a)
    with pytest.raises(FairShareError, match=f"job #{tab2.id} of yours is already waiting"):
        a.submit(count(), owner="tab3", identity="ann", name="count")
    tab1.stop()
    wait_for(lambda: tab2.state == "running", tab2)


def test_a_pause_on_one_replica_gives_up_its_slot_when_another_replica_waits(replicas, monkeypatch):
    monkeypatch.setenv("KDVIZ_PAUSE_TIMEOUT_S", "0.5")
    a, b = replicas(2, max_jobs=1)
    paused = a.submit(LONG, owner="a", name="count")
    wait_for(lambda: paused.step() >= 1, paused)
    paused.pause()
    waiting = b.submit(count(n=3), owner="b", name="count")
    assert waiting.state == "queued"
    wait_for(lambda: waiting.state == "done", paused, waiting)
    assert paused.state == "stopped" and "while others waited" in paused.status


def test_a_vanished_replica_frees_its_slots_after_the_lease(replicas):
    from kdviz.runtime.ray_slots import slot_broker

    name = f"test-{uuid.uuid4().hex}"
    broker = slot_broker(1, name, lease_s=1.0)
    ray.get(broker.enqueue.remote("ghost:1", 1, "ghost", "g", ""))  # a replica that takes a slot, then dies
    ray.get(broker.sync.remote("ghost", ["ghost:1"]))
    b = ray_executor(broker=name)
    try:
        job = b.submit(count(n=3), owner="b", name="count")
        assert job.state == "queued" and job.position == 1 and b.max_jobs == 1
        wait_for(lambda: job.state == "done", job, timeout=30)  # ~1 s of silence from "ghost" frees its slot
    finally:
        b.stop_all()


def test_a_replica_whose_sessions_do_not_poll_keeps_its_slot(monkeypatch):
    """A hidden browser tab polls once a minute; the replica's heartbeat still renews its lease."""
    import time

    from kdviz.runtime import ray_slots

    monkeypatch.setattr(ray_slots, "HEARTBEAT_S", 0.2)
    name = f"test-{uuid.uuid4().hex}"
    ray_slots.slot_broker(1, name, lease_s=1.0)
    a, b = ray_executor(broker=name), ray_executor(broker=name)
    try:
        held = a.submit(LONG, owner="a", name="count")
        assert held.state == "running"
        time.sleep(2.5)  # no poll of a's job: only a's heartbeat speaks for it, 2.5 leases long
        waiting = b.submit(count(n=3), owner="b", name="count")
        time.sleep(1.0)
        waiting.poll()
        assert waiting.state == "queued" and waiting.position == 1  # a's slot was not given away
        held.stop()
        wait_for(lambda: waiting.state == "done", waiting, timeout=30)
    finally:
        a.stop_all()
        b.stop_all()
