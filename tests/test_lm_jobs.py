"""Language-model lab jobs, iterated in-process with tiny settings; the CLI table."""
from __future__ import annotations

import pytest
import torch

from kdviz import cli
from kdviz.lm.experiments import bpc_table
from kdviz.lm.jobs import lm_distill_job, lm_seeds_job, lm_teacher_job
from kdviz.lm.model import STUDENT, load_lm, make_lm, param_count

pytestmark = pytest.mark.usefixtures("one_thread")  # tests/conftest.py

TINY_TRAIN = {"steps": 6, "eval_every": 3, "log_every": 2, "batch_size": 16}


@pytest.fixture(scope="module")
def tiny_teacher(tmp_path_factory):
    folder = tmp_path_factory.mktemp("teacher")
    torch.set_num_threads(1)
    return list(lm_teacher_job({"out_dir": str(folder), "train": TINY_TRAIN, "model": {"n_layer": 1, "d_model": 16, "n_head": 2}}))


def _of(events, kind):
    return [e for e in events if e["type"] == kind]


def test_teacher_job_streams_records_and_saves_a_loadable_checkpoint(tiny_teacher):
    records = _of(tiny_teacher, "record")
    assert [r["step"] for r in records] == [2, 3, 4, 6] and all(r["run"] == "teacher" for r in records)
    assert [r["step"] for r in records if r["val_bpc"] is not None] == [3, 6]
    assert len(records[-1]["samples"]) == 6
    assert records[-1]["epoch"] > 0 and records[-1]["samples_per_s"] > 0  # the live view's Epoch and throughput
    (result,) = _of(tiny_teacher, "result")
    ckpt = load_lm(result["checkpoint"])
    assert ckpt.model.cfg.d_model == 16 and ckpt.meta["val_bpc"] == result["val_bpc"]["teacher"]
    assert 1.0 < result["val_bpc"]["teacher"] < 6.0  # log2(27) = 4.75 is a uniform guess


def test_distill_job_trains_every_method_side_by_side(tiny_teacher, tmp_path):
    teacher = _of(tiny_teacher, "result")[0]["checkpoint"]
    spec = {"out_dir": str(tmp_path), "teacher": teacher, "train": {**TINY_TRAIN, "alpha": 0.7}, "train_n": 40, "seqkd_n": 50,
            "methods": ["distilled", "scratch", "batchmean", "seqkd"]}
    events = list(lm_distill_job(spec))
    assert not _of(events, "error")
    records = _of(events, "record")
    assert [r["run"] for r in records[:4]] == ["distilled", "scratch", "batchmean", "seqkd"]  # interleaved
    distilled = [r for r in records if r["run"] == "distilled"]
    assert all(r["kd_w"] == pytest.approx(0.7 * r["kd"]) and r["ce_w"] == pytest.approx(0.3 * r["ce"]) for r in distilled)
    assert all(r["loss"] == pytest.approx(r["kd_w"] + r["ce_w"], rel=1e-5) for r in distilled)
    assert all(r.get("kd") is None for r in records if r["run"] in ("scratch", "seqkd"))
    (result,) = _of(events, "result")
    assert set(result["val_bpc"]) == {"distilled", "scratch", "batchmean", "seqkd", "teacher"}
    assert result["train_n"] == 40 and all(len(v) == 8 for v in result["samples"].values())
    # the lab's student by default: 1 layer, d = 32 (it was once LMConfig()'s 3 × 128, 4× the teacher)
    assert set(result["params"].values()) == {param_count(make_lm(STUDENT, 0))}


def test_distill_job_refuses_a_teacher_with_another_vocabulary_then_aligns_it(tiny_teacher, tmp_path):
    teacher = _of(tiny_teacher, "result")[0]["checkpoint"]
    spec = {"out_dir": str(tmp_path), "teacher": teacher, "train": TINY_TRAIN, "train_n": 20, "teacher_vocab": "other"}
    (error,) = list(lm_distill_job(spec))
    assert error["type"] == "error" and "29 tokens" in error["text"] and "27 tokens" in error["text"]
    events = list(lm_distill_job({**spec, "align": True}))
    (result,) = _of(events, "result")
    assert result["aligned"] and result["dropped_tokens"] == ["'", "-"] and 0 < result["dropped_mass"] < 0.3
    assert "teacher" not in result["val_bpc"]


@pytest.mark.parametrize("change, needle", [
    ({"methods": ["distiled"]}, "student methods"), ({"train_n": 0}, "train_n"), ({"train": {"T": 0}}, "temperature"),
    ({"train": {"stepz": 3}}, "unknown training setting"), ({"teacher": "/nonexistent.pt"}, "no language-model teacher"),
    ({"teacher_vocab": "klingon"}, "teacher_vocab"), ({"train": {"sample_temp": 0}}, "sampling temperature"),
    ({"out_dir": ""}, "out_dir")])
def test_bad_specs_end_in_one_error_event(tmp_path, change, needle):
    events = list(lm_distill_job({"out_dir": str(tmp_path), "train": TINY_TRAIN, **change}))
    assert len(events) == 1 and events[0]["type"] == "error" and needle in events[0]["text"], events


def test_seeds_job_and_table(tiny_teacher):
    teacher = _of(tiny_teacher, "result")[0]["checkpoint"]
    events = list(lm_seeds_job({"teacher": teacher, "train": TINY_TRAIN, "seeds": [0, 1], "train_n": 30, "seqkd_n": 40}))
    (result,) = _of(events, "result")
    assert {m: len(v) for m, v in result["bpc"].items()} == {"seqkd": 2, "distilled": 2, "scratch": 2}
    table = bpc_table(result)
    assert list(table.index) == ["teacher", "seqkd", "distilled", "scratch"]
    assert "±" in table.loc["distilled", "final val bpc"] and "2·SE" in table.loc["seqkd", "vs scratch"]
    assert all(min(b) <= max(f) for b, f in zip(result["best_bpc"].values(), result["bpc"].values()))


def test_bpc_table_verdicts():
    result = {"teacher_bpc": 2.5, "bpc": {"distilled": [2.80, 2.81, 2.79], "scratch": [3.00, 3.02, 2.98], "seqkd": [3.0, 2.9, 3.1]}}
    table = bpc_table(result)
    assert table.loc["distilled", "vs scratch"].endswith("— better")
    assert table.loc["seqkd", "vs scratch"].endswith("within noise")
    assert table.loc["distilled", "final val bpc"] == "2.800 ± 0.010" == table.loc["distilled", "best val bpc"]
    assert table.loc["scratch", "vs scratch"] == ""


def test_cli_prints_the_table(tiny_teacher, capsys):
    teacher = _of(tiny_teacher, "result")[0]["checkpoint"]
    code = cli.main(["lm", "--teacher", teacher, "--methods", "distilled", "scratch", "--seeds", "0", "1", "--steps", "4",
                     "--train-n", "20"])
    out = capsys.readouterr().out
    assert code == 0 and "validation bits per character" in out and "distilled" in out and "teacher" in out
    assert cli.main(["lm", "--teacher", teacher, "--train-n", "0"]) == 2
