"""Job functions, the worker loop and the JobManager.

Most tests run the worker loop in-process (``queue.Queue`` stands in for the multiprocessing
queues) or use a fake launcher; two tests spawn real worker processes end to end.
"""
from __future__ import annotations

import json
import os
import queue
import re
import threading
import time
from pathlib import Path

import psutil
import pytest
import torch

from kdviz import data as kdata
from kdviz.checkpoints import load_checkpoint
from kdviz.engine import NonFiniteLoss, TrainConfig, make_model, train
from kdviz.checkpoints import save_checkpoint
from kdviz.runtime.tasks import distill_job, parse_terms, quick_pair_job, teacher_job, transfer_set, watch_at_job
from kdviz.methods.objective import Term
from kdviz.models import ModelConfig
from kdviz.ui.jobs import JobManager, RunLog, Series, Worker
from kdviz.runtime.worker import END, resolve_job, worker_main, worker_nice

TINY_TEACHER = {"arch": "mlp", "hidden": [32]}
TINY_TRAIN = {"epochs": 2, "batch_size": 64, "log_every": 2}


@pytest.fixture(autouse=True)
def _one_thread():
    torch.set_num_threads(1)


@pytest.fixture(scope="module")
def teacher_ckpt(tmp_path_factory) -> str:
    out = tmp_path_factory.mktemp("teacher")
    events = list(teacher_job({"data": "synthetic", "out_dir": str(out), "model": TINY_TEACHER, "train": TINY_TRAIN}))
    return events[-1]["checkpoint"]


def _spec(**kw) -> dict:
    return {"data": "synthetic", **kw}


# ----------------------------------------------------------------------------- job functions
def test_teacher_job_streams_records_then_saves_a_loadable_checkpoint(tmp_path):
    events = list(teacher_job(_spec(out_dir=str(tmp_path), model=TINY_TEACHER, train=TINY_TRAIN)))
    kinds = [e["type"] for e in events]
    assert kinds[-1] == "result" and "error" not in kinds
    records = [e for e in events if e["type"] == "record"]
    assert {r["run"] for r in records} == {"teacher"}
    steps = [r["step"] for r in records]
    assert steps == sorted(steps) and steps[-1] == 16  # 2 epochs × (512 // 64) full batches
    assert any(r["test_acc"] is not None for r in records[:-1])  # live evaluations before the end
    result = events[-1]
    model, cfg, meta = load_checkpoint(result["checkpoint"])
    assert cfg == ModelConfig(**TINY_TEACHER)
    assert result["params"] == 784 * 32 + 32 + 32 * 10 + 10
    assert sum(map(sum, result["confusion"])) == 256 and meta["test_acc"] == result["test_acc"]
    assert result["ms_per_batch"] > 0 and result["checkpoints"] == {"teacher": result["checkpoint"]}


@pytest.mark.parametrize("spec, needle", [
    ({"model": {"hiden": [3]}}, "unknown model setting"),
    ({"model": {"hidden": 5}}, "invalid model settings"),
    ({"train": {"lr": -1}}, "learning rate"),
    ({"data": "imagenet"}, "data source"),
    ({"out_dir": ""}, "out_dir"),
])
def test_teacher_job_bad_spec_gives_one_error_event(tmp_path, spec, needle):
    events = list(teacher_job({"data": "synthetic", "out_dir": str(tmp_path), **spec}))
    assert len(events) == 1 and events[0]["type"] == "error"
    assert needle in events[0]["text"]


def test_divergence_is_an_error_event_naming_the_step(tmp_path):
    train_cfg = {"lr": 10.0, "optimizer": "sgd", "epochs": 3, "batch_size": 32, "log_every": 1}
    model_cfg = {"hidden": [64]}
    events = list(teacher_job(_spec(out_dir=str(tmp_path), model=model_cfg, train=train_cfg)))
    assert events[-1]["type"] == "error" and events[-1]["kind"] == "NonFiniteLoss"
    # reference: the engine itself, driven directly with the same seed, data and eval schedule
    bundle = kdata.synthetic_bundle()
    cfg = TrainConfig(**train_cfg, eval_every=max(1, 48 // 10))
    with pytest.raises(NonFiniteLoss) as err:
        for _ in train(make_model(ModelConfig(**model_cfg), 0), bundle.train, cfg, test=bundle.test):
            pass
    assert f"at step {err.value.step}:" in events[-1]["text"]
    assert all(e["step"] < err.value.step for e in events if e["type"] == "record")


def test_distill_job_interleaves_runs_and_reports_everything(tmp_path, teacher_ckpt):
    spec = _spec(out_dir=str(tmp_path), teacher=teacher_ckpt, student={"hidden": [16]}, train=TINY_TRAIN,
                 distill={"T": 4.0, "alpha": 0.9}, transfer="without:3")
    events = list(distill_job(spec))
    runs = [e["run"] for e in events if e["type"] == "record"]
    assert runs[:4] == ["distilled", "scratch", "distilled", "scratch"]  # side by side, chunk by chunk
    assert runs.count("distilled") == runs.count("scratch")
    r = events[-1]
    assert r["type"] == "result" and set(r["test_acc"]) == {"teacher", "distilled", "scratch"}
    assert all(0 <= r["agreement"][k] <= 1 for k in ("distilled", "scratch"))
    assert all(sum(map(sum, m)) == 256 for m in r["confusion"].values())
    assert r["transfer_n"] == 512 - sum(1 for y in kdata.synthetic_bundle().train.y.tolist() if y == 3)
    assert r["student"]["params"] == 784 * 16 + 16 + 16 * 10 + 10 and r["teacher"]["params"] > r["student"]["params"]
    assert r["student"]["ms_per_batch"] > 0 and r["teacher"]["ms_per_batch"] > 0
    for name, path in r["checkpoints"].items():
        assert load_checkpoint(path)[2]["role"] == name


def test_distilled_and_scratch_start_identical(tmp_path, teacher_ckpt):
    """alpha = 0 makes the distilled objective pure CE: with the same init, seed and data order the
    two students must then follow exactly the same trajectory."""
    spec = _spec(out_dir=str(tmp_path), teacher=teacher_ckpt, student={"hidden": [16]}, train=TINY_TRAIN,
                 distill={"T": 4.0, "alpha": 0.0})
    events = list(distill_job(spec))
    totals = {run: [e["total"] for e in events if e.get("run") == run and e["type"] == "record"] for run in ("distilled", "scratch")}
    assert totals["distilled"] == totals["scratch"] and len(totals["scratch"]) == 16  # eval_every = 16 // 10 = 1
    assert events[-1]["test_acc"]["distilled"] == events[-1]["test_acc"]["scratch"]


@pytest.mark.parametrize("spec, needle", [
    ({"teacher": "/nonexistent/teacher.pt"}, "not found"),
    ({"transfer": "subset:abc"}, "transfer set 'subset:abc' is invalid"),
    ({"transfer": "without:0,1,2,3,4,5,6,7,8,9"}, "is empty"),
    ({"distill": {"T": 0}}, "temperature"),
    ({"terms": [{"weight": 1}]}, "'method' key"),
    ({"terms": [{"method": "at", "layer": "x"}]}, "unknown method term setting"),
])
def test_distill_job_bad_spec_gives_one_error_event(tmp_path, teacher_ckpt, spec, needle):
    events = list(distill_job(_spec(**{"out_dir": str(tmp_path), "teacher": teacher_ckpt, **spec})))
    assert [e["type"] for e in events if e["type"] != "status"] == ["error"]  # one error, nothing trained
    assert needle in events[-1]["text"]


def test_transfer_sets_and_terms():
    data = kdata.synthetic_bundle().train
    assert len(transfer_set(data, "subset:100")) == 100
    assert 3 not in transfer_set(data, "without:3").y.tolist()
    assert transfer_set(data, "labelled:50").labelled_count() == 50
    assert transfer_set(data, "full") is data
    for bad in ("all", "subset:", "without:x", "labelled:-1", "full:3"):
        with pytest.raises(ValueError, match="transfer set"):
            transfer_set(data, bad)
    assert parse_terms([{"method": "at", "weight": 2, "student_layer": "stage2", "teacher_layer": "stage2"}]) == (
        Term("at", 2.0, "stage2", "stage2"),)


def test_quick_pair_job_trains_teacher_then_at_student_and_saves_both(tmp_path):
    events = list(quick_pair_job(_spec(out_dir=str(tmp_path), steps=12)))
    assert "error" not in [e["type"] for e in events]
    runs = [e["run"] for e in events if e["type"] == "record"]
    assert runs == sorted(runs, key=["teacher", "student"].index)  # the teacher first, then the student
    for run in ("teacher", "student"):
        assert [e["step"] for e in events if e.get("run") == run][-1] == 12
    r = events[-1]
    assert r["type"] == "result" and r["uses_at"] and r["note"] == "" and r["steps"] == 12
    for role, path in r["checkpoints"].items():
        _, cfg, meta = load_checkpoint(path)
        assert cfg.arch == "cnn" and meta["role"] == role and meta["test_acc"] == r["test_acc"][role]
    assert r["labels"] == {"teacher": "CNN 16-32-64", "student": "CNN 8-16-32"}


@pytest.mark.parametrize("steps", [0, -3, "20", 2.5, True])
def test_quick_pair_job_refuses_bad_steps(tmp_path, steps):
    events = list(quick_pair_job(_spec(out_dir=str(tmp_path), steps=steps)))
    assert [e["type"] for e in events] == ["error"] and "steps must be a whole number >= 1" in events[0]["text"]


@pytest.fixture(scope="module")
def cnn_pair(tmp_path_factory) -> dict:
    """Untrained CNN teacher and student checkpoints (the watch job only needs their weights and architectures)."""
    out, paths = tmp_path_factory.mktemp("cnn_pair"), {}
    for role, cfg in (("teacher", ModelConfig("cnn", channels=(8, 16))), ("student", ModelConfig("cnn", channels=(4, 8)))):
        paths[role] = str(save_checkpoint(out / f"{role}.pt", make_model(cfg), cfg))
    return paths


def test_watch_at_job_streams_records_then_plain_snapshots(cnn_pair):
    events = list(watch_at_job(_spec(**cnn_pair, steps=12, index=3, probe_n=16)))
    kinds = [e["type"] for e in events]
    assert "error" not in kinds and kinds[-1] == "result" and kinds.count("result") == 1
    records = [e for e in events if e["type"] == "record"]
    assert {r["run"] for r in records} == {"student"} and [r["step"] for r in records] == list(range(1, 13))
    assert records[-1]["raw"]["at"] > 0  # the student really trained with attention transfer
    r = events[-1]
    assert {"steps", "layer", "uses_at", "note", "index", "label", "teacher_map", "snapshots", "labels"} <= set(r)
    assert r["steps"] == 12 and r["layer"] == "stage2" and r["uses_at"] and r["note"] == "" and r["index"] == 3
    assert r["labels"] == {"teacher": "CNN 8-16", "student": "CNN 4-8"}
    snaps = r["snapshots"]
    assert [s["step"] for s in snaps][0] == 0 and snaps[-1]["step"] == 12 and len(snaps) <= 7
    assert snaps[-1]["distance"] < snaps[0]["distance"]  # AT pulls the student's maps toward the teacher's
    h, w = len(r["teacher_map"]), len(r["teacher_map"][0])
    assert all(len(s["map"]) == h and len(s["map"][0]) == w and isinstance(s["map"][0][0], float) for s in snaps)
    assert json.loads(json.dumps(r)) == r  # plain data: crosses the process boundary as is


@pytest.mark.parametrize("change, needle", [
    ({"steps": 0}, "steps must be a whole number"),
    ({"at_weight": float("nan")}, "at_weight must be a finite number"),
    ({"index": -1}, "index must be a whole number"),
    ({"teacher": None}, "needs 'teacher'"),
    ({"student": "/no/such/file.pt"}, "no/such/file.pt"),
    ({"layer": "stage9"}, "no spatial stage 'stage9'"),
    ({"data": "mnist"}, "data source must be one of"),
])
def test_watch_at_job_bad_spec_gives_one_error_event(cnn_pair, change, needle):
    events = list(watch_at_job({**_spec(**cnn_pair, steps=4), **change}))
    assert [e["type"] for e in events] == ["error"] and needle in events[0]["text"], events


def test_watch_at_job_refuses_an_mlp_pair(teacher_ckpt):
    events = list(watch_at_job(_spec(teacher=teacher_ckpt, student=teacher_ckpt, steps=4)))
    assert [e["type"] for e in events] == ["error"] and "use a CNN teacher and student" in events[0]["text"]


# ----------------------------------------------------------------------------- worker loop (in-process)
@pytest.mark.parametrize("path", ["os:system", "kdvizevil.jobs:teacher_job", "kdviz.runtime.tasks", "kdviz..jobs:x",
                                  "kdviz.runtime.tasks:no_such_job", "kdviz.nope:job", "subprocess:run"])
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


def test_manager_refuses_paths_outside_kdviz():
    manager = JobManager(max_jobs=1, launcher=FakeLauncher())
    with pytest.raises(ValueError, match="refused"):
        manager.submit({"fn": "os:system"})
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
    teacher = manager.submit({"fn": "kdviz.runtime.tasks:teacher_job", "data": "synthetic", "out_dir": str(tmp_path),
                              "model": TINY_TEACHER, "train": {**TINY_TRAIN, "epochs": 4}, "threads": 1, "eval_points": 1})
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
    from kdviz.runtime.worker import NICE_ENV, lower_priority, worker_nice

    if value is None:
        monkeypatch.delenv(NICE_ENV, raising=False)
    else:
        monkeypatch.setenv(NICE_ENV, value)
    assert worker_nice() == expected
    assert lower_priority() == 0  # in the test process itself: never reniced


def test_spare_pool_starts_jobs_warm():
    from kdviz.ui.jobs import SparePool

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
