"""Teacher-assistant distillation (Mirzadeh et al. 2020): teacher → assistant → student.

When the student is much smaller than the teacher, an intermediate "assistant" (distilled from
the teacher, then teaching the student) may bridge the gap. :func:`teacher_assistant` trains,
for one seed, the three students the comparison needs: through the assistant, directly from the
teacher, and from the labels alone.
"""
from __future__ import annotations

from dataclasses import replace
from typing import Iterator

import torch
from torch import nn

from kdviz.data import TensorData
from kdviz.engine import TrainConfig, make_model, train
from kdviz.evaluation import evaluate
from kdviz.methods.objective import DistillConfig
from kdviz.models import ModelConfig

TA_RUNS = ("assistant", "via assistant", "direct", "scratch")  # what is trained, in order


def _train(cfg: ModelConfig, data, train_cfg, teacher, distill, test, device, run: str, seed: int) -> Iterator[dict]:
    model = make_model(cfg, seed, device)
    for rec in train(model, data, replace(train_cfg, seed=seed), teacher=teacher,
                     distill=distill if teacher is not None else None, test=test, device=device):
        yield {"type": "record", "run": run, "seed": seed, **rec.to_dict()}
    return model.eval()


def teacher_assistant(teacher: nn.Module, assistant_cfg: ModelConfig, student_cfg: ModelConfig, data: TensorData,
                      train_cfg: TrainConfig, distill: DistillConfig, test: TensorData, device: torch.device,
                      seed: int = 0, live_test: TensorData | None = None) -> Iterator[dict]:
    """One seed of the comparison; returns ``{run: test accuracy}`` for ``TA_RUNS``.

    The assistant and the three students see the same transfer set ``data`` and the same
    ``train_cfg`` (seeded by ``seed``); the assistant is distilled from ``teacher`` with ``distill``,
    and so are the two taught students (from the assistant, and from the teacher).
    """
    live = live_test if live_test is not None else test
    plan = [("assistant", assistant_cfg, teacher), ("via assistant", student_cfg, None),
            ("direct", student_cfg, teacher), ("scratch", student_cfg, None)]
    models: dict[str, nn.Module] = {}
    for run, cfg, source in plan:
        source = models["assistant"] if run == "via assistant" else source
        yield {"type": "status", "text": f"seed {seed}: training {run} ({cfg.label()})"}
        models[run] = yield from _train(cfg, data, train_cfg, source, distill, live, device, run, seed)
    return {run: evaluate(m, test).accuracy for run, m in models.items()}
