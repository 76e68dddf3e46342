"""Fair share of the job queue (kdviz/runtime/fairshare.py) and the executor contract.

The ``test_contract_*`` tests take an executor from the ``make_executor`` fixture; here it is
the local JobManager with in-thread workers running the real torch-free
``kdviz.runtime.worker:count_job``. tests/test_ray_executor.py imports them and runs them again
against the Ray executor.
"""
from __future__ import annotations

import time

import pytest

from kdviz.runtime.fairshare import FairShareError, pause_timeout_s
from kdviz.runtime.launch import thread_worker
from kdviz.runtime.manager import JobManager
from kdviz.runtime.sessions import SessionJobs

COUNT = "kdviz.runtime.worker:count_job"


def count(n: int = 5, delay_s: float = 0.0, **kw) -> dict:
    return {"fn": COUNT, "n": n, "delay_s": delay_s, "out_dir": "/unused", **kw}


@pytest.fixture
def make_executor():
    made = []

    def make(max_jobs: int = 2):
        made.append(JobManager(max_jobs=max_jobs, launcher=thread_worker))
        return made[-1]

    yield make
    for manager in made:
        manager.stop_all()


def wait_for(cond, *handles, timeout: float = 90.0) -> None:
    end = time.monotonic() + timeout
    while not cond():
        for h in handles:
            h.poll()
        if time.monotonic() > end:
            raise AssertionError(f"timed out: {[(h.id, h.state, h.status, h.error) for h in handles]}")
        time.sleep(0.02)


def settled_step(h, quiet_s: float = 0.3, timeout: float = 10.0) -> int:
    """The job's step once two polls ``quiet_s`` apart agree (AssertionError if it never settles)."""
    end, last = time.monotonic() + timeout, None
    while time.monotonic() < end:
        time.sleep(quiet_s)
        h.poll()
        if h.step() == last:
            return last
        last = h.step()
    raise AssertionError(f"the step never settled: {last}")


# ----------------------------------------------------------------------------- the contract (any executor)
def test_contract_events_arrive_and_the_job_finishes(make_executor):
    ex = make_executor()
    h = ex.submit(count(n=20), owner="a", name="count")
    wait_for(lambda: h.state == "done", h)
    assert [r["step"] for r in h.records("count")] == list(range(1, 21))
    assert h.result["sum"] == 210 == sum(range(21)) and h.error is None and ex.counts()["running"] == 0


def test_contract_pause_step_resume_stop(make_executor):
    ex = make_executor()
    h = ex.submit(count(n=100_000, delay_s=0.005), owner="a", name="count")
    wait_for(lambda: h.step() >= 3, h)
    h.pause()
    assert h.state == "paused" and "gives up its slot after" in h.status
    frozen = settled_step(h)  # records made before the pause may still be on their way (Ray: one poll behind)
    time.sleep(0.3)
    h.poll()
    h.poll()
    assert h.step() == frozen  # paused: nothing new
    h.step_once()
    wait_for(lambda: h.step() == frozen + 1, h)
    time.sleep(0.2)
    h.poll()
    assert h.step() == frozen + 1 and h.state == "paused"
    h.resume()
    wait_for(lambda: h.step() >= frozen + 5, h)
    h.stop()
    assert h.state == "stopped" and h.records("count") and ex.counts()["running"] == 0
    assert h.wait_ended(5.0)


def test_contract_queue_positions_across_owners(make_executor):
    ex = make_executor(max_jobs=1)
    hs = [ex.submit(count(n=100_000, delay_s=0.01), owner=o, name="count") for o in ("a", "b", "c")]
    assert [h.state for h in hs] == ["running", "queued", "queued"] and [h.position for h in hs] == [None, 1, 2]
    assert ex.counts() == {"running": 1, "queued": 2, "max": 1}
    hs[0].stop()
    assert hs[1].state == "running" and hs[2].position == 1
    assert ex.stop_all() == 2 and not any(h.active for h in hs)


def test_contract_fair_share_one_running_one_queued_per_owner(make_executor):
    ex = make_executor(max_jobs=4)
    first = ex.submit(count(n=100_000, delay_s=0.01), owner="a", name="count")
    second = ex.submit(count(n=100_000, delay_s=0.01), owner="a", name="count")
    assert first.state == "running" and second.state == "queued"  # free slots, but "a" already runs one
    other = ex.submit(count(n=100_000, delay_s=0.01), owner="b", name="count")
    assert other.state == "running"  # other people are not held back by "a"
    third = ex.submit(count(n=3), owner="a", name="count")
    assert second.state == "stopped" and "replaced by a newer Start" in second.status and third.state == "queued"
    assert len(ex.jobs("a")) == 2
    first.stop()
    wait_for(lambda: third.state == "done", third)
    assert ex.stop_all("a") == 0 and other.state == "running" and ex.stop_all("b") == 1


def test_contract_identity_limits_hold_across_sessions(make_executor):
    ex = make_executor(max_jobs=4)
    tab1 = ex.submit(count(n=100_000, delay_s=0.01), owner="tab1", identity="ann", name="count")
    tab2 = ex.submit(count(n=100_000, delay_s=0.01), owner="tab2", identity="ann", name="count")
    assert tab1.state == "running" and tab2.state == "queued"
    with pytest.raises(FairShareError, match=f"job #{tab2.id} of yours is already waiting"):
        ex.submit(count(), owner="tab3", identity="ann", name="count")
    assert tab2.state == "queued" and len(ex.jobs()) == 2  # the refused Start changed nothing


def test_contract_a_long_pause_gives_up_the_slot_only_while_others_wait(make_executor, monkeypatch):
    monkeypatch.setenv("KDVIZ_PAUSE_TIMEOUT_S", "0.3")
    ex = make_executor(max_jobs=1)
    h = ex.submit(count(n=100_000, delay_s=0.005), owner="a", name="count")
    wait_for(lambda: h.step() >= 1, h)
    h.pause()
    time.sleep(0.5)
    h.poll()
    assert h.state == "paused"  # nobody waits: it keeps its slot
    waiting = ex.submit(count(n=3), owner="b", name="count")
    wait_for(lambda: waiting.state == "done", h, waiting)
    assert h.state == "stopped" and "paused for more than 0.3 s while others waited" in h.status and h.records("count")


# ----------------------------------------------------------------------------- sessions and settings
def test_session_start_is_idempotent_while_in_flight_and_stop_all_counts_everything():
    manager, session = JobManager(max_jobs=1, launcher=thread_worker), SessionJobs()
    blocker = manager.submit(count(n=100_000, delay_s=0.01), owner="someone-else", name="count")
    first = session.start("count", count(n=50), manager)
    assert first.state == "queued"
    assert all(session.start("count", count(n=50), manager) is first for _ in range(100))  # a double click is a no-op
    assert len(manager.jobs(session.id)) == 1
    changed = session.start("count", count(n=60), manager)  # new settings while queued: replaces it
    assert changed is not first and first.state == "stopped" and len(manager.jobs(session.id)) == 1
    extra = manager.submit(count(n=100_000), owner=session.id, name="other")  # a job the registry never named
    assert changed.state == "stopped" and extra.state == "queued"  # it replaced the queued one
    assert session.active() == [extra] and session.stop_all() == 1 and manager.jobs(session.id) == []
    blocker.stop()


@pytest.mark.parametrize("raw, expected", [("", 60.0), ("2.5", 2.5)])
def test_pause_timeout_from_environment(raw, expected):
    assert pause_timeout_s({"KDVIZ_PAUSE_TIMEOUT_S": raw}) == expected


@pytest.mark.parametrize("raw", ["0", "-1", "soon"])
def test_bad_pause_timeout_is_refused_by_name(raw):
    with pytest.raises(ValueError, match=f"KDVIZ_PAUSE_TIMEOUT_S={raw!r}"):
        pause_timeout_s({"KDVIZ_PAUSE_TIMEOUT_S": raw})


def test_session_end_stops_every_job_of_the_session_even_unnamed_ones():
    from kdviz.ui.jobs import _release_session

    manager, session = JobManager(max_jobs=2, launcher=thread_worker), SessionJobs()
    named = session.start("count", count(n=100_000, delay_s=0.01), manager)
    stray = manager.submit(count(n=100_000, delay_s=0.01), owner=session.id, name="stray")  # not in the registry
    other = manager.submit(count(n=100_000, delay_s=0.01), owner="another-session", name="count")
    assert (named.state, stray.state) == ("running", "queued")
    _release_session(session)  # what Streamlit calls when the tab closes
    assert not named.active and not stray.active and manager.jobs(session.id) == []
    assert other.state == "running"
    other.stop()
