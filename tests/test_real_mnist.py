"""One short training run on real MNIST (the rest of the suite uses synthetic data)."""
import os

import pytest

from kdviz import data, engine, evaluation
from kdviz.methods.objective import DistillConfig
from kdviz.models import ModelConfig

pytestmark = pytest.mark.skipif(
    not os.environ.get("KDVIZ_DATA_DIR"), reason="KDVIZ_DATA_DIR is not set: real MNIST unavailable, short real run skipped"
)


def test_short_real_run_teacher_passes_97_percent_and_student_distils():
    bundle = data.load_mnist(download=False)
    teacher = engine.make_model(ModelConfig("mlp", hidden=(512,)), seed=0)
    cfg = engine.TrainConfig(epochs=2, batch_size=128, lr=1e-3, log_every=50)
    recs = engine.run_to_end(engine.train(teacher, bundle.train, cfg, test=bundle.test))
    acc = evaluation.evaluate(teacher, bundle.test).accuracy
    assert acc > 0.97, acc
    assert recs[-1].test_acc == pytest.approx(acc)
    # A small student distilled on 5,000 images follows the teacher closely.
    student = engine.make_model(ModelConfig("mlp", hidden=(32,)), seed=1)
    small = data.random_subset(bundle.train, 5000, seed=0)
    engine.run_to_end(engine.train(student, small, engine.TrainConfig(epochs=6, batch_size=128, lr=3e-3), teacher=teacher, distill=DistillConfig(T=4, alpha=0.9)))
    assert evaluation.evaluate(student, bundle.test).accuracy > 0.90
    assert evaluation.agreement(student, teacher, bundle.test) > 0.90
