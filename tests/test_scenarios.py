"""Scenarios: transfer sets hold exactly what they claim; jobs run end to end on synthetic data."""
import json

import pytest
import torch

from kdviz import data as kdata
from kdviz.experiments import scenarios as sc
from kdviz.experiments.results import bias_accuracy
from kdviz.checkpoints import load_checkpoint

TINY = {"student_hidden": [16], "teacher_hidden": [32], "teacher_epochs": 2, "epochs": 2, "scratch_epochs": 2,
        "batch_size": 32, "n_labelled": 60, "log_every": 5}


@pytest.fixture(autouse=True)
def _one_thread():
    torch.set_num_threads(1)


@pytest.fixture(scope="module")
def bundle():
    return kdata.synthetic_bundle(n_train=300, n_test=200, seed=1)


def _cfg(kind: str, **extra) -> sc.ScenarioConfig:
    return sc.with_overrides(sc.preset(kind), {**TINY, **extra})


# ----------------------------------------------------------------------------- transfer sets
def test_omitted_digit_transfer_set_has_no_image_of_the_digit(bundle):
    cfg = _cfg("omitted-digit", omit=7)
    sets = sc.build_transfer(cfg, bundle.train, seed=0)
    y = bundle.train.y
    assert not bool((sets.distilled.y == 7).any())
    assert len(sets.distilled) == int((y != 7).sum())  # every other image is kept
    assert sets.scratch is sets.distilled  # both students see the same images
    assert sc.class_counts(sets.distilled)[7] == 0
    assert sc.class_counts(sets.distilled)[3] == int((y == 3).sum())


def test_few_labels_transfer_set_has_exactly_n_labelled_training_images(bundle):
    sets = sc.build_transfer(_cfg("few-labels", n_labelled=50), bundle.train, seed=3)
    assert len(sets.distilled) == 50 and sets.distilled.labelled_count() == 50
    # every chosen image is a training image with its true label
    flat = bundle.train.x.flatten(1)
    for x, y in zip(sets.distilled.x[:10], sets.distilled.y[:10]):
        match = (flat == x.flatten()).all(1).nonzero().squeeze(1)
        assert len(match) == 1 and int(bundle.train.y[match[0]]) == int(y)
    other = sc.build_transfer(_cfg("few-labels", n_labelled=50), bundle.train, seed=4)
    assert not torch.equal(other.distilled.x, sets.distilled.x)  # the seed picks the subset


def test_unlabelled_transfer_set_hides_all_but_n_labels(bundle):
    sets = sc.build_transfer(_cfg("unlabelled", n_labelled=40), bundle.train, seed=0)
    d = sets.distilled
    assert len(d) == len(bundle.train) and torch.equal(d.x, bundle.train.x)
    shown = d.y != kdata.HIDDEN_LABEL
    assert int(shown.sum()) == 40
    assert torch.equal(d.y[shown], bundle.train.y[shown])  # visible labels are the true ones
    # the scratch student gets exactly the 40 labelled images, nothing else
    assert len(sets.scratch) == 40 and sets.scratch.labelled_count() == 40
    assert torch.equal(sets.scratch.x, bundle.train.x[shown])
    summary = sc.transfer_summary(sets)
    assert (summary["n_images"], summary["n_labelled"], sum(summary["class_counts"])) == (300, 40, 40)


@pytest.mark.parametrize("kind", ["omitted-digit", "few-labels", "unlabelled"])
def test_scenario_transfer_sets_are_views_of_the_training_images(bundle, kind):
    """No scenario copies the training images (a private 166 MiB per demo job on MNIST without the 3s)."""
    sets = sc.build_transfer(_cfg(kind, n_labelled=40), bundle.train, seed=0)
    for part in (sets.distilled, sets.scratch):
        assert part.base is bundle.train.base
        if part.is_view:
            assert torch.equal(part.gather(torch.arange(len(part))), bundle.train.x[part.rows])


def test_too_many_labels_is_a_clear_error(bundle):
    with pytest.raises(ValueError, match="n_labelled=1000 exceeds the 300"):
        sc.build_transfer(_cfg("few-labels", n_labelled=1000), bundle.train, 0)


# ----------------------------------------------------------------------------- configuration
def test_overrides_and_validation():
    cfg = sc.with_overrides(sc.preset("few-labels"), {"seeds": 3, "T": 2, "student_hidden": [50, 50], "epochs": 4})
    assert cfg.seeds == (0, 1, 2) and cfg.T == 2 and cfg.student.model.hidden == (50, 50) and cfg.student.epochs == 4
    assert sc.preset("few-labels").T == 8.0  # presets are not mutated
    with pytest.raises(ValueError, match="unknown scenario setting"):
        sc.with_overrides(cfg, {"temperature": 3})
    with pytest.raises(ValueError, match="alpha"):
        sc.with_overrides(cfg, {"alpha": 1.5})
    with pytest.raises(ValueError, match="omitted digit"):
        sc.with_overrides(sc.preset("omitted-digit"), {"omit": 10})
    with pytest.raises(ValueError, match="seeds"):
        sc.with_overrides(cfg, {"seeds": [1, 1]})
    with pytest.raises(ValueError, match="unknown scenario"):
        sc.preset("nope")


def test_unlabelled_override_changes_scratch_recipe_too():
    cfg = sc.with_overrides(sc.preset("unlabelled"), {"student_hidden": [20], "scratch_epochs": 3})
    assert cfg.scratch_recipe.model.hidden == (20,) and cfg.scratch_recipe.epochs == 3


# ----------------------------------------------------------------------------- jobs end to end
def _events(job, spec):
    return list(job({"data": "synthetic", **spec}))


def test_omitted_digit_job_end_to_end(tmp_path):
    # lr 1e-2: enough steps on the tiny set for the scratch student to learn never to say "3"
    events = _events(sc.omitted_digit_job, {"overrides": {**TINY, "seeds": 2, "epochs": 4, "scratch_epochs": 4, "lr": 1e-2},
                                            "cache_dir": str(tmp_path)})
    kinds = [e["type"] for e in events]
    assert kinds[-1] == "result" and "error" not in kinds and "record" in kinds
    assert {e["run"] for e in events if e["type"] == "record"} >= {"teacher", "distilled s0", "scratch s1"}
    res = events[-1]
    json.dumps({k: v for k, v in res.items() if k != "logits"}, allow_nan=True)  # plain data
    assert res["transfer"]["class_counts"][3] == 0
    assert [r["seed"] for r in res["runs"]["distilled"]] == [0, 1]
    # scratch never saw a 3 and never predicts one; distilled test logits are kept for the slider
    assert res["summary"]["scratch"]["digit_acc"]["mean"] == 0.0
    z = torch.tensor(res["logits"]["distilled"])
    assert z.shape == (256, 10) and len(res["labels"]) == 256
    first = res["runs"]["distilled"][0]
    assert bias_accuracy(z, res["labels"], 3, 0.0) == pytest.approx((first["accuracy"], first["digit_acc"]))
    s = res["summary"]["distilled"]["accuracy"]
    accs = [r["accuracy"] for r in res["runs"]["distilled"]]
    assert s["mean"] == pytest.approx(sum(accs) / 2) and s["n"] == 2
    assert list(tmp_path.glob("teacher-synthetic-*.pt"))  # the trained teacher was cached
    timings = res["timings_s"]  # where the time went: each phase once, the students' parts summed over seeds
    assert list(timings) == ["data", "teacher", "distilled students", "scratch students"]
    assert all(t >= 0 for t in timings.values())
    parts = timings["teacher"] + timings["distilled students"] + timings["scratch students"]
    assert parts <= res["elapsed_s"] + 1e-6
    assert timings["distilled students"] >= sum(r["time_s"] for r in res["runs"]["distilled"])


def test_few_labels_job_uses_a_given_teacher_checkpoint(tmp_path):
    first = _events(sc.few_labels_job, {"overrides": TINY, "cache_dir": str(tmp_path)})
    path = first[-1]["teacher"]["path"]
    again = _events(sc.few_labels_job, {"overrides": TINY, "teacher_ckpt": path})
    assert again[-1]["type"] == "result" and again[-1]["teacher"]["source"] == "checkpoint"
    assert not any(e["type"] == "record" and e["run"] == "teacher" for e in again)  # not retrained
    assert again[-1]["transfer"]["n_labelled"] == 60


def test_bad_spec_gives_one_error_event():
    events = _events(sc.few_labels_job, {"overrides": {"n_labelled": 100000}})
    assert events[-1]["type"] == "error" and "n_labelled" in events[-1]["text"]
    assert _events(sc.few_labels_job, {"preset": "omitted-digit"})[-1]["type"] == "error"
    assert _events(sc.unlabelled_job, {"overrides": {"n_labelled": 50}, "teacher_ckpt": "/nonexistent/t.pt"})[-1]["text"].startswith("checkpoint file not found")


def test_hinton_is_resumable(tmp_path):
    spec = {"overrides": {**TINY, "teacher_epochs": 2, "epochs": 1}, "run_dir": str(tmp_path)}
    gen = sc.hinton_job({"data": "synthetic", **spec})
    for event in gen:  # stop in the teacher's second epoch
        if event["type"] == "record" and event["run"] == "teacher" and event["epoch"] > 1.2:
            break
    gen.close()
    _, _, meta = load_checkpoint(tmp_path / "teacher" / "teacher.pt")
    assert meta["epoch"] == 1
    events = _events(sc.hinton_job, spec)
    texts = [e["text"] for e in events if e["type"] == "status"]
    assert "teacher: resuming after epoch 1 of 2" in texts
    teacher_epochs = [e["epoch"] for e in events if e["type"] == "record" and e["run"] == "teacher"]
    assert teacher_epochs and min(teacher_epochs) > 1.0  # epoch 1 was not trained again
    res = events[-1]
    assert res["paper_errors"] == {"teacher": 67, "scratch": 146, "distilled": 74}
    assert res["summary"]["distilled"]["errors"]["mean"] >= 0
    rerun = _events(sc.hinton_job, spec)  # everything done: nothing is trained again
    assert not [e for e in rerun if e["type"] == "record"] and rerun[-1]["type"] == "result"


def test_cli_scenario(tmp_path, capsys):
    from kdviz.checkpoints import save_checkpoint
    from kdviz.engine import make_model
    from kdviz.models import ModelConfig
    from kdviz.cli import main

    cfg = ModelConfig(hidden=(8,))
    teacher = save_checkpoint(tmp_path / "t.pt", make_model(cfg, 0), cfg)  # untrained is fine: this tests the plumbing
    code = main(["scenario", "omitted-digit", "--data", "synthetic", "--seeds", "1", "--epochs", "1", "--teacher", str(teacher),
                 "--threads", "1", "--json", str(tmp_path / "r.json")])
    out = capsys.readouterr().out
    assert code == 0 and "distilled" in out and "digit 3" in out
    assert json.loads((tmp_path / "r.json").read_text())["scenario"] == "omitted-digit"
