"""Job bodies (kdviz.runtime.training_jobs, kdviz.runtime.feature_jobs), iterated directly in-process.

The runtime that runs them (protocol, worker loop, manager) is tested in ``tests/test_runtime.py``.
"""
from __future__ import annotations

import json

import pytest
import torch

from kdviz import data as kdata
from kdviz.checkpoints import load_checkpoint, save_checkpoint
from kdviz.engine import NonFiniteLoss, TrainConfig, make_model, train
from kdviz.evaluation import agreement, evaluate, model_reliability
from kdviz.methods.objective import Term
from kdviz.models import ModelConfig
from kdviz.runtime.feature_jobs import quick_pair_job, watch_at_job
from kdviz.runtime.job_specs import parse_terms
from kdviz.runtime.training_jobs import distill_job, teacher_job

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


def test_distill_job_interleaves_runs_and_reports_everything(tmp_path, teacher_ckpt, monkeypatch):
    spec = _spec(out_dir=str(tmp_path), teacher=teacher_ckpt, student={"hidden": [16]}, train=TINY_TRAIN,
                 distill={"T": 4.0, "alpha": 0.9}, transfer="without:3")
    parsed = []
    monkeypatch.setattr(kdata, "parse_transfer", lambda text, real=kdata.parse_transfer: parsed.append(text) or real(text))
    events = list(distill_job(spec))
    assert parsed == ["without:3"]  # the transfer string is parsed once per job
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
    # the figures come from one pass per network: the same as measuring each one apart
    test, teacher = kdata.synthetic_bundle().test, load_checkpoint(teacher_ckpt)[0]
    for name, path in r["checkpoints"].items():
        student = load_checkpoint(path)[0]
        assert r["test_acc"][name] == evaluate(student, test).accuracy
        assert r["agreement"][name] == agreement(teacher, student, test)
        _assert_same_reliability(r["reliability"][name], model_reliability(student, test))
    assert r["test_acc"]["teacher"] == evaluate(teacher, test).accuracy
    _assert_same_reliability(r["reliability"]["teacher"], model_reliability(teacher, test))


def _assert_same_reliability(got: dict, want: dict) -> None:
    """Equal bins and counts; confidences equal up to float rounding (the job may run on a GPU, this test on the
    CPU: the sums differ in the last digits there); NaN marks an empty bin on both sides."""
    assert got["n_bins"] == want["n_bins"] and got["count"] == want["count"]
    for key in ("ece", "confidence", "accuracy"):
        assert got[key] == pytest.approx(want[key], rel=1e-6, nan_ok=True), key


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


def test_method_terms_are_parsed_by_name():
    assert parse_terms([{"method": "at", "weight": 2, "student_layer": "stage2", "teacher_layer": "stage2"}]) == (
        Term("at", 2.0, "stage2", "stage2"),)
    assert parse_terms([{"method": "js", "param": 0.25}]) == (Term("js", 1.0, param=0.25),)
    assert parse_terms([{"method": "js"}])[0].param == 0.5  # the method's declared default


def test_quick_pair_job_trains_teacher_then_at_student_and_saves_both(tmp_path):
    events = list(quick_pair_job(_spec(out_dir=str(tmp_path), steps=12, train_teacher=True)))  # the small teacher, trained here
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
