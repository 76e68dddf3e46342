"""The teacher-logit disk cache (kdviz/teacher_logits.py): the logits of a plain forward pass,
computed once per teacher and data set, never another teacher's, and a bad file is recomputed."""
from __future__ import annotations

import os

import pytest
import torch

import kdviz.teacher_logits as tl
from kdviz.data import synthetic_bundle
from kdviz.experiments import scenarios as sc
from kdviz.models import ModelConfig, build_model

TINY = {"student_hidden": [16], "teacher_hidden": [32], "teacher_epochs": 1, "epochs": 1, "batch_size": 64, "lr": 1e-2}


def _teacher(seed: int = 0):
    torch.manual_seed(seed)
    return build_model(ModelConfig(hidden=(32,))).eval()


def _forward(model, data) -> torch.Tensor:
    """The reference: the model on every image, in eval mode, in one call."""
    with torch.no_grad():
        return model(data.x)[0]


def _counting(monkeypatch) -> list[int]:
    calls, real = [], tl.teacher_logits_cache
    monkeypatch.setattr(tl, "teacher_logits_cache", lambda *a, **k: calls.append(1) or real(*a, **k))
    return calls


def test_logits_are_the_teachers_and_are_computed_once(tmp_path, monkeypatch):
    data, teacher = synthetic_bundle(300, 50).train, _teacher()
    calls = _counting(monkeypatch)
    first = tl.base_logits(teacher, data, tmp_path)
    again = tl.base_logits(teacher, data, tmp_path)
    assert len(calls) == 1 and len(list(tmp_path.glob("logits-*.pt"))) == 1
    assert torch.allclose(first, _forward(teacher, data), atol=1e-5) and torch.equal(first, again)
    view = data.select(torch.tensor([5, 0, 299, 5]))
    assert torch.allclose(tl.rows_of(first, view), _forward(teacher, view), atol=1e-5)


def test_a_cnn_teacher_with_batch_norm_works(tmp_path):
    """The shipped default teacher is a CNN: its BatchNorm layers hold 0-d step counters."""
    torch.manual_seed(0)
    teacher = build_model(ModelConfig(arch="cnn", channels=(4, 8))).eval()
    assert any(t.ndim == 0 for t in teacher.state_dict().values())
    data = synthetic_bundle(64, 16).train
    assert torch.allclose(tl.base_logits(teacher, data, tmp_path), _forward(teacher, data), atol=1e-5)
    assert torch.equal(tl.base_logits(teacher, data, tmp_path), tl.base_logits(teacher, data, tmp_path))


def test_another_teacher_or_data_set_never_reads_them(tmp_path, monkeypatch):
    data = synthetic_bundle(300, 50).train
    calls = _counting(monkeypatch)
    a = tl.base_logits(_teacher(0), data, tmp_path)
    b = tl.base_logits(_teacher(1), data, tmp_path)
    other = synthetic_bundle(300, 50, seed=1).train
    c = tl.base_logits(_teacher(0), other, tmp_path)
    assert len(calls) == 3 and len(list(tmp_path.glob("logits-*.pt"))) == 3
    assert not torch.equal(a, b) and torch.allclose(c, _forward(_teacher(0), other), atol=1e-5)


def test_a_corrupt_or_wrong_file_is_recomputed(tmp_path, monkeypatch, caplog):
    data, teacher = synthetic_bundle(300, 50).train, _teacher()
    path = tmp_path / f"logits-{tl.fingerprint(teacher, data, amp=False)}.pt"
    calls = _counting(monkeypatch)
    for bad in (b"not a torch file", None):
        if bad is None:
            torch.save(torch.full((len(data), 10), float("nan")), path)  # the right shape, not finite
        else:
            path.write_bytes(bad)
        out = tl.base_logits(teacher, data, tmp_path)
        assert torch.allclose(out, _forward(teacher, data), atol=1e-5)
    assert len(calls) == 2 and "ignoring" in caplog.text


def test_a_scenario_reads_them_on_its_second_run_with_the_same_result(tmp_path, monkeypatch):
    bundle = synthetic_bundle(400, 100)
    cfg = sc.with_overrides(sc.preset("omitted-digit"), {**TINY, "seeds": 2})
    teacher = _teacher()
    calls = _counting(monkeypatch)
    runs = [sc.run_scenario(cfg, bundle, teacher=teacher, cache_dir=str(tmp_path), device="cpu") for _ in range(2)]
    assert len(calls) == 2  # one pass over the training images, one over the test images, for both seeds of both runs
    assert runs[0]["summary"] == runs[1]["summary"] and runs[0]["logits"] == runs[1]["logits"]


def test_only_the_newest_files_are_kept(tmp_path, monkeypatch):
    monkeypatch.setattr(tl, "KEEP_FILES", 2)
    data = synthetic_bundle(100, 20).train
    for seed in range(4):
        tl.base_logits(_teacher(seed), data, tmp_path)
    kept = sorted(p.name for p in tmp_path.glob("logits-*.pt"))
    newest = sorted(f"logits-{tl.fingerprint(_teacher(s), data, amp=False)}.pt" for s in (2, 3))
    assert kept == newest


def test_the_distill_job_reads_them_on_its_next_run(tmp_path, monkeypatch):
    """The Distill page's job with a cache folder: the second run (e.g. the next seed) skips the teacher pass."""
    from kdviz.checkpoints import save_checkpoint
    from kdviz.runtime.training_jobs import distill_job

    ckpt = save_checkpoint(tmp_path / "teacher.pt", _teacher(), ModelConfig(hidden=(32,)), {})
    spec = {"teacher": str(ckpt), "student": {"arch": "mlp", "hidden": [16]}, "data": "synthetic",
            "train": {"epochs": 1, "batch_size": 64}, "transfer": "labelled:100", "cache_dir": str(tmp_path / "cache"),
            "eval_points": 1}
    calls = _counting(monkeypatch)
    results = []
    for seed in (0, 0, 1):
        events = list(distill_job({**spec, "train": {**spec["train"], "seed": seed}, "out_dir": str(tmp_path / f"r{len(results)}")}))
        assert events[-1]["type"] == "result", events[-1]
        results.append(events[-1]["test_acc"])
    assert len(calls) == 1 and len(list((tmp_path / "cache").glob("logits-*.pt"))) == 1
    assert results[0] == results[1]  # read back, the same soft targets: the same run


def test_shipped_logits_are_read_first_and_never_written(tmp_path, monkeypatch):
    shipped, cache = tmp_path / "shipped", tmp_path / "cache"
    monkeypatch.setattr(tl, "SHIPPED_DIR", shipped)
    data, teacher = synthetic_bundle(300, 50).train, _teacher()
    path = tl.ship(teacher, data, shipped)
    assert path.parent == shipped and torch.allclose(torch.load(path, weights_only=True), _forward(teacher, data), atol=1e-5)
    before = path.stat().st_mtime_ns
    calls = _counting(monkeypatch)
    assert torch.equal(tl.base_logits(teacher, data, cache), torch.load(path, weights_only=True))
    assert not calls and not cache.exists() and path.stat().st_mtime_ns == before  # read, no pass, nothing written
    other = _teacher(1)  # another teacher: computed and kept in the cache folder, never in the shipped one
    assert torch.allclose(tl.base_logits(other, data, cache), _forward(other, data), atol=1e-5)
    assert len(calls) == 1 and len(list(cache.glob("logits-*.pt"))) == 1 and len(list(shipped.iterdir())) == 1
    path.write_bytes(b"torn")  # a damaged shipped file is not trusted: recomputed
    assert torch.allclose(tl.base_logits(teacher, data, cache), _forward(teacher, data), atol=1e-5) and len(calls) == 2


@pytest.mark.skipif(not os.environ.get("KDVIZ_DATA_DIR"), reason="KDVIZ_DATA_DIR unset: the shipped logits are for real MNIST")
def test_the_shipped_logits_are_the_shipped_teachers_on_mnist():
    """Each file's name is the fingerprint of a shipped teacher and MNIST images, and its rows are that
    teacher's plain forward pass (checked on 1,000 images of each)."""
    from kdviz.checkpoints import load_checkpoint
    from kdviz.data import load_mnist
    from kdviz.experiments.recipes import DEFAULT_TEACHER, DEMO_TEACHER

    bundle = load_mnist(download=False)
    wanted = {(DEMO_TEACHER, "train"), (DEMO_TEACHER, "test"), (DEFAULT_TEACHER, "train")}
    names = set()
    for ckpt, split in wanted:
        teacher, data = load_checkpoint(ckpt)[0].eval(), getattr(bundle, split)
        path = tl.SHIPPED_DIR / tl.file_name(teacher, data)
        stored = torch.load(path, weights_only=True)
        assert stored.shape == (len(data), 10) and stored.dtype == torch.float32
        assert torch.allclose(stored[:1000], _forward(teacher, data.select(torch.arange(1000))), atol=1e-4)
        names.add(path.name)
    assert names == {p.name for p in tl.SHIPPED_DIR.glob("logits-*.pt")}  # nothing stale ships
