"""The job runtime: protocol, worker loop, bounded records, the local executor and its sessions.

Most tests run the worker loop in-process (``queue.Queue`` stands in for the multiprocessing
queues) or use a fake launcher; two tests spawn real worker processes end to end.
The job bodies themselves are tested in ``tests/test_jobs.py``.
"""
from __future__ import annotations

import os
import queue
import re
import threading
import time
from pathlib import Path

import psutil
import pytest

from kdviz.hosted import cpu_cores
from kdviz.runtime.executor import Executor, Job
from kdviz.runtime.launch import PRELOAD_MODULES, SparePool, Worker, spawn_worker
from kdviz.runtime.manager import JobManager, local_executor, purge_old_job_dirs
from kdviz.runtime.sessions import SessionJobs
from kdviz.runtime.protocol import END, validate_spec
from kdviz.runtime.records import RunLog, Series
from kdviz.runtime.worker import NICE_ENV, lower_priority, resolve_job, worker_main, worker_nice

ROOT = Path(__file__).resolve().parent.parent
COUNT = "kdviz.runtime.worker:count_job"


# ----------------------------------------------------------------------------- worker loop (in-process)
@pytest.mark.parametrize("path", ["os:system", "kdvizevil.jobs:teacher_job", "kdviz.runtime.training_jobs", "kdviz..jobs:x",
                                  "kdviz.runtime.training_jobs:no_such_job", "kdviz.nope:job", "subprocess:run"])
def test_disallowed_or_missing_job_paths_are_refused(path):
    with pytest.raises(ValueError, match="refused|not found"):
        resolve_job(path)
    events, control = queue.Queue(), queue.Queue()
    worker_main({"fn": path}, events, control)
    got = [events.get_nowait() for _ in range(events.qsize())]
    assert [e["type"] for e in got] == ["error", "end"] and path in got[0]["text"]


def _drain(q: queue.Queue, wait: float = 0.0) -> list[dict]:
    time.sleep(wait)
    out = []
    while True:
        try:
            out.append(q.get_nowait())
        except queue.Empty:
            return out


def test_worker_obeys_pause_step_resume_stop():
    events, control = queue.Queue(), queue.Queue()
    control.put("pause")  # paused before the first event
    thread = threading.Thread(target=worker_main, args=({"fn": "kdviz.runtime.worker:count_job", "n": 1000, "delay_s": 0.002}, events, control))
    thread.start()
    try:
        assert _drain(events, 0.3) == []
        control.put("step")  # the status event, then exactly one record
        got = _drain(events, 0.3)
        assert [e["type"] for e in got] == ["status", "record"] and got[1]["step"] == 1
        control.put("resume")
        time.sleep(0.2)
        control.put("stop")
        thread.join(5)
        rest = _drain(events)
        steps = [e["step"] for e in rest if e["type"] == "record"]
        assert steps and steps == list(range(2, 2 + len(steps))) and steps[-1] < 1000  # stopped early, nothing lost
        assert rest[-2:] == [{"type": "status", "text": "stopped"}, END]
    finally:
        control.put("stop")
        thread.join(5)


# ----------------------------------------------------------------------------- bounded series
@pytest.mark.parametrize("n, cap", [(10, 100), (101, 100), (10_000, 100), (12_345, 1500)])
def test_series_is_bounded_and_uniform(n, cap):
    s = Series(cap)
    for i in range(n):
        s.add({"i": i})
    kept = [d["i"] for d in s.items]
    assert len(kept) <= cap
    assert kept == [i for i in range(n) if i % s.stride == 0]  # reference: every stride-th record
    assert len(kept) > cap // 2 or n <= cap  # never thinned more than needed


def test_runlog_always_ends_with_the_latest_record():
    log = RunLog(cap=4)
    for step in range(1, 12):
        log.add({"step": step, "test_acc": 0.5 if step % 5 == 0 else None})
    assert log.records()[-1]["step"] == 11 and len(log.records()) <= 5
    assert [r["step"] for r in log.eval_records()] == [5, 10]


# ----------------------------------------------------------------------------- manager (fake workers)
class FakeProcess:
    def __init__(self):
        self.alive, self.exitcode = True, None

    def is_alive(self):
        return self.alive

    def join(self, timeout=None):
        pass

    def terminate(self):
        self.alive, self.exitcode = False, -15

    kill = terminate


class FakeLauncher:
    def __init__(self):
        self.started: list[tuple[dict, Worker]] = []

    def __call__(self, spec):
        worker = Worker(FakeProcess(), queue.Queue(), queue.Queue())
        self.started.append((spec, worker))
        return worker


def test_manager_limits_concurrency_and_queues_fifo():
    launcher = FakeLauncher()
    manager = JobManager(max_jobs=2, launcher=launcher)
    handles = [manager.submit({"fn": "kdviz.runtime.worker:count_job", "i": i}) for i in range(4)]
    assert [h.state for h in handles] == ["running", "running", "queued", "queued"]
    assert [h.position for h in handles] == [None, None, 1, 2]
    assert manager.counts() == {"running": 2, "queued": 2, "max": 2} and len(launcher.started) == 2
    handles[0].stop()  # stopping frees the slot: the first queued job starts
    assert handles[0].state == "stopped" and handles[2].state == "running" and handles[3].position == 1
    assert [s["i"] for s, _ in launcher.started] == [0, 1, 2]
    handles[3].stop()  # a queued job just leaves the queue
    assert handles[3].state == "stopped" and manager.counts()["queued"] == 0 and len(launcher.started) == 3


def test_handle_collects_events_and_finishing_frees_the_slot():
    launcher = FakeLauncher()
    manager = JobManager(max_jobs=1, launcher=launcher, cap=8)
    h1, h2 = manager.submit({"fn": "kdviz.runtime.worker:count_job"}), manager.submit({"fn": "kdviz.runtime.worker:count_job"})
    worker = launcher.started[0][1]
    for step in range(1, 101):
        worker.events.put({"type": "record", "run": "count", "step": step, "total": 1.0})
    worker.events.put({"type": "status", "text": "evaluating"})
    assert h1.poll() == 101 and h1.step() == 100 and h1.status == "evaluating"
    assert len(h1.records("count")) <= 9 and h1.records("count")[-1]["step"] == 100
    worker.events.put({"type": "result", "sum": 5050})
    worker.events.put(dict(END))
    worker.process.alive = False
    h1.poll()
    assert h1.state == "done" and h1.result["sum"] == 5050 and h2.state == "running"


def test_worker_that_dies_silently_is_an_error():
    launcher = FakeLauncher()
    manager = JobManager(max_jobs=1, launcher=launcher)
    handle = manager.submit({"fn": "kdviz.runtime.worker:count_job"})
    launcher.started[0][1].process.alive = False
    launcher.started[0][1].process.exitcode = -9
    handle.poll()
    assert handle.state == "error" and "exit code -9" in handle.error and manager.counts()["running"] == 0


def test_manager_refuses_bad_specs_and_names_before_queueing_anything():
    manager = JobManager(max_jobs=1, launcher=FakeLauncher())
    with pytest.raises(ValueError, match="refused"):
        manager.submit({"fn": "os:system"})
    with pytest.raises(ValueError, match="a job spec must be a dict, got list"):
        manager.submit(["kdviz.runtime.worker:count_job"])
    with pytest.raises(ValueError, match=r"job name '\.\./x' refused"):
        manager.submit({"fn": COUNT}, name="../x")
    assert manager.counts() == {"running": 0, "queued": 0, "max": 1} and manager.launcher.started == []
    with pytest.raises(ValueError, match="must be >= 1"):
        JobManager(max_jobs=0)


def test_max_jobs_from_environment(monkeypatch):
    monkeypatch.setenv("KDVIZ_MAX_JOBS", "3")
    assert JobManager(launcher=FakeLauncher()).max_jobs == 3
    monkeypatch.setenv("KDVIZ_MAX_JOBS", "many")
    with pytest.raises(ValueError, match="KDVIZ_MAX_JOBS"):
        JobManager(launcher=FakeLauncher())


# ----------------------------------------------------------------------------- real worker processes
def _wait(cond, timeout: float, handle) -> None:
    end = time.monotonic() + timeout
    while not cond():
        handle.poll()
        if time.monotonic() > end:
            raise AssertionError(f"timed out: state={handle.state} status={handle.status} error={handle.error}")
        time.sleep(0.05)


def test_spawned_workers_stream_pause_stop_and_finish(tmp_path):
    """Two real worker processes at once (they start in parallel): a slow counter that is paused,
    resumed and stopped, and a tiny teacher trained end to end; a third job waits its turn."""
    manager = JobManager(max_jobs=2)
    counter = manager.submit({"fn": "kdviz.runtime.worker:count_job", "n": 100_000, "delay_s": 0.01})
    teacher = manager.submit({"fn": "kdviz.runtime.training_jobs:teacher_job", "data": "synthetic", "out_dir": str(tmp_path),
                              "model": {"arch": "mlp", "hidden": [32]}, "train": {"epochs": 4, "batch_size": 64, "log_every": 2},
                              "threads": 1, "eval_points": 1})
    queued = manager.submit({"fn": "kdviz.runtime.worker:count_job", "n": 1})
    try:
        assert queued.position == 1
        _wait(lambda: counter.step() >= 3, 60, counter)
        assert counter.result is None and counter.state == "running"  # records arrive while it runs
        # the worker runs below the server's priority (kdviz.runtime.worker.DEFAULT_NICE), the test process does not
        assert psutil.Process(counter.worker.process.pid).nice() == max(worker_nice(), os.nice(0))
        counter.pause()
        time.sleep(0.3)
        counter.poll()
        frozen = counter.step()
        time.sleep(0.4)
        counter.poll()
        assert counter.step() == frozen  # paused: the generator is not pulled
        counter.resume()
        _wait(lambda: counter.step() > frozen, 10, counter)
        counter.stop()
        assert counter.state == "stopped" and queued.state in ("running", "done")  # its slot went to the queued job
        assert counter.wait_ended(5)
        _wait(lambda: not teacher.active, 90, teacher)
    finally:
        manager.stop_all()
    assert teacher.state == "done", teacher.error
    assert [r["step"] for r in teacher.records("teacher")] == list(range(2, 33, 2))  # every record, in order
    assert Path(teacher.result["checkpoint"]).is_file() and teacher.result["threads"] == 1
    assert teacher.wait_ended(5) and queued.wait_ended(5)


@pytest.mark.parametrize("value, expected", [(None, 10), ("0", 0), ("5", 5), ("99", 19), ("-3", 0), ("high", 10)])
def test_worker_niceness_from_environment(monkeypatch, value, expected):
    if value is None:
        monkeypatch.delenv(NICE_ENV, raising=False)
    else:
        monkeypatch.setenv(NICE_ENV, value)
    assert worker_nice() == expected
    assert lower_priority() == 0  # in the test process itself: never reniced


def test_spare_pool_starts_jobs_warm():
    pool = SparePool(preload=(), data_source=None)  # a light spare: no torch, no data
    manager = JobManager(max_jobs=1, launcher=pool)
    try:
        pool.warm_up()
        first = manager.submit({"fn": "kdviz.runtime.worker:count_job", "n": 5})
        _wait(lambda: not first.active, 30, first)
        second = manager.submit({"fn": "kdviz.runtime.worker:count_job", "n": 3})  # uses the spare started for it
        _wait(lambda: not second.active, 30, second)
        assert (first.result, second.result) == ({"type": "result", "sum": 15}, {"type": "result", "sum": 6})
        assert (pool.warm_starts, pool.cold_starts) == (2, 0)
    finally:
        manager.stop_all()
        pool.close()


# ----------------------------------------------------------------------------- protocol and executor seam
def test_validate_spec_returns_a_copy_and_names_what_is_wrong():
    spec = {"fn": COUNT, "n": 3}
    checked = validate_spec(spec)
    checked["n"] = 4
    assert spec == {"fn": COUNT, "n": 3}  # the caller's dict is never changed
    for bad, needle in ((None, "got NoneType"), ("kdviz.runtime.worker:count_job", "got str"), ({}, "'' refused"),
                        ({"fn": "kdviz.runtime.worker"}, "refused")):
        with pytest.raises(ValueError, match=needle):
            validate_spec(bad)


def test_local_manager_and_handles_implement_the_executor_interface():
    manager = JobManager(max_jobs=1, launcher=FakeLauncher())
    handle = manager.submit({"fn": COUNT})
    assert isinstance(manager, Executor) and isinstance(handle, Job)
    assert not isinstance(object(), Job)  # the check really looks at the members
    members = {name for name in vars(Job) if not name.startswith("_")} | set(Job.__annotations__)
    assert {"poll", "state", "position", "status", "error", "result", "step", "records", "evals",
            "pause", "resume", "step_once", "stop", "wait_ended", "active"} <= members


def test_submit_fills_scratch_folder_and_thread_share(monkeypatch, tmp_path):
    monkeypatch.setenv("KDVIZ_JOBS_DIR", str(tmp_path))
    manager = JobManager(max_jobs=2, launcher=FakeLauncher())
    spec = manager.submit({"fn": COUNT}, name="distill").spec
    folder = Path(spec["out_dir"])
    assert folder.parent == tmp_path and re.fullmatch(r"distill-[0-9a-f]{10}", folder.name)
    assert spec["threads"] == max(1, cpu_cores() // 2)  # two slots share the cores
    kept = manager.submit({"fn": COUNT, "out_dir": "/x", "threads": 3}).spec
    assert (kept["out_dir"], kept["threads"]) == ("/x", 3)


def test_old_job_folders_are_purged(tmp_path):
    old, new = tmp_path / "old-1", tmp_path / "new-1"
    old.mkdir(), new.mkdir()
    day_ago = time.time() - 25 * 3600
    os.utime(old, (day_ago, day_ago))
    assert purge_old_job_dirs(tmp_path) == 1 and not old.exists() and new.is_dir()
    assert purge_old_job_dirs(tmp_path / "missing") == 0


def test_session_replaces_a_job_only_once_the_new_spec_is_accepted():
    manager, session = JobManager(max_jobs=1, launcher=FakeLauncher()), SessionJobs()
    first = session.start("count", {"fn": COUNT, "out_dir": "/x"}, manager)
    with pytest.raises(ValueError, match="refused"):
        session.start("count", {"fn": "os:system"}, manager)
    assert session.handles["count"] is first and first.state == "running"  # a bad Start leaves the run alone
    second = session.start("count", {"fn": COUNT, "out_dir": "/y"}, manager)
    assert first.state == "stopped" and second.state == "running" and second.owner == session.id
    other = SessionJobs()
    other.adopt(session)
    assert other.handles == {"count": second}
    assert session.stop_all() == 1 and second.state == "stopped" and session.stop_all() == 0
    session.forget("count")
    assert session.handles == {}


def test_local_executor_without_spare_starts_cold(monkeypatch):
    monkeypatch.setenv("KDVIZ_SPARE_WORKER", "off")
    monkeypatch.setenv("KDVIZ_MAX_JOBS", "2")
    executor = local_executor()
    assert executor.launcher is spawn_worker and executor.max_jobs == 2


def test_every_job_path_in_the_code_resolves_and_runtime_jobs_are_preloaded():
    """Spec strings in pages and the core name existing jobs; the warm spare imports the job modules."""
    sources = [*ROOT.glob("app_pages/*.py"), *ROOT.glob("kdviz/**/*.py"), *ROOT.glob("bench/*.py")]
    paths = {m for f in sources for m in re.findall(r'"(kdviz\.[\w.]+:\w+_job)"', f.read_text())}
    assert {"kdviz.runtime.training_jobs:teacher_job", "kdviz.runtime.training_jobs:distill_job",
            "kdviz.runtime.feature_jobs:quick_pair_job", "kdviz.runtime.feature_jobs:watch_at_job"} <= paths
    for path in paths:
        assert callable(resolve_job(path)), path
    # the worker module itself (its count_job, used by benches) is what every worker runs: always loaded
    runtime_modules = {p.partition(":")[0] for p in paths if p.startswith("kdviz.runtime.")} - {"kdviz.runtime.worker"}
    assert runtime_modules <= set(PRELOAD_MODULES) and set(PRELOAD_MODULES) == set(SparePool().preload)
