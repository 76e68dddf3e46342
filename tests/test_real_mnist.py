"""One short training run on real MNIST (the rest of the suite uses synthetic data)."""
import math
import os
from dataclasses import replace

import pytest
from torch import nn

from kdviz import data, engine, evaluation
from kdviz.checkpoints import load_checkpoint
from kdviz.experiments.recipes import DEMO_TEACHER
from kdviz.experiments.scenarios import preset
from kdviz.methods.objective import DistillConfig
from kdviz.models import ModelConfig

pytestmark = pytest.mark.skipif(
    not os.environ.get("KDVIZ_DATA_DIR"), reason="KDVIZ_DATA_DIR is not set: real MNIST unavailable, short real run skipped"
)


def test_short_real_run_teacher_passes_96_5_percent_and_student_distils():
    bundle = data.load_mnist(download=False)
    teacher = engine.make_model(ModelConfig("mlp", hidden=(512,)), seed=0)
    cfg = engine.TrainConfig(epochs=2, batch_size=128, lr=1e-3, log_every=50)
    recs = engine.run_to_end(engine.train(teacher, bundle.train, cfg, test=bundle.test))
    acc = evaluation.evaluate(teacher, bundle.test).accuracy
    assert acc > 0.965, acc  # 97.16 % on this CPU, 97.00 % on an H200 (float rounding steers training a little)
    assert recs[-1].test_acc == pytest.approx(acc)
    # A small student distilled on 5,000 images follows the teacher closely.
    student = engine.make_model(ModelConfig("mlp", hidden=(32,)), seed=1)
    small = data.random_subset(bundle.train, 5000, seed=0)
    engine.run_to_end(engine.train(student, small, engine.TrainConfig(epochs=6, batch_size=128, lr=3e-3), teacher=teacher, distill=DistillConfig(T=4, alpha=0.9)))
    assert evaluation.evaluate(student, bundle.test).accuracy > 0.90
    assert evaluation.agreement(student, teacher, bundle.test) > 0.90


class _Sharpened(nn.Module):
    """A teacher whose logits are ``factor`` times larger: a more confident teacher than the shipped one."""

    def __init__(self, teacher: nn.Module, factor: float) -> None:
        super().__init__()
        self.teacher, self.factor = teacher, factor

    def forward(self, x):
        logits, feats = self.teacher(x)
        return logits * self.factor, feats


def test_hinton_preset_distilled_student_stays_finite_under_a_confident_teacher():
    """At T = 20 the KD gradient grows with the teacher's logit spread (≈ (z_s − z_t)/C, unbounded, unlike CE's):
    with the preset's first learning rate (0.05, momentum 0.9) this student's loss became NaN by step ~40
    even from the shipped demo teacher. Three times its logits stands in for the 60-epoch teacher."""
    bundle = data.load_mnist(download=False)
    teacher = _Sharpened(load_checkpoint(DEMO_TEACHER)[0].float().eval(), 3.0)
    cfg = preset("hinton")
    student = engine.make_model(cfg.student.model, seed=0)
    train_cfg = replace(cfg.student.train_config(0, log_every=50), max_steps=200)
    subset = data.random_subset(bundle.train, 12_800, seed=0)
    records = engine.run_to_end(engine.train(student, subset, train_cfg, teacher=teacher, distill=cfg.distill))
    assert records[-1].step == 200 and all(math.isfinite(r.total) for r in records)
    assert evaluation.evaluate(student, bundle.test).accuracy > 0.9
