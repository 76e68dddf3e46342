"""Multi-teacher (ensemble) distillation: one student learns from several teachers at once.

Three ways to combine the teachers (``ENSEMBLE_MODES``):

- ``"logits"``  — the student imitates softmax(mean of the teachers' logits / T);
- ``"probs"``   — it imitates the mean of the teachers' softened probabilities, mean_i softmax(z_i / T);
- ``"kl_mean"`` — its distillation term is the mean of one KL term per teacher, mean_i T²·KL(p_i ‖ q).

``"kl_mean"`` and ``"probs"`` move the student identically: mean_i KL(p_i ‖ q) = KL(p̄ ‖ q) + c, where
c = H(p̄) − mean_i H(p_i) does not depend on the student (tests/test_catalogue.py checks the
gradients agree). So both train through :class:`EnsembleTeacher` with the averaged probabilities;
:func:`multi_teacher_kd` gives each mode's loss value, and the result reports the constant c.
"""
from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

import torch
from torch import nn

from kdviz.data import TensorData
from kdviz.evaluation import evaluate, predict_logits

ENSEMBLE_MODES = ("logits", "probs", "kl_mean")
MAX_TEACHERS = 4
_LOG_FLOOR = 1e-12  # probabilities below this are clamped before the log (keeps logits finite)


def check_mode(mode: str) -> str:
    if mode not in ENSEMBLE_MODES:
        raise ValueError(f"ensemble mode must be one of {ENSEMBLE_MODES}, got {mode!r}")
    return mode


def check_class_counts(counts: Mapping[str, int]) -> int:
    """The common number of output classes of the named teachers; a ValueError naming them when they differ."""
    if not 2 <= len(counts) <= MAX_TEACHERS:
        raise ValueError(f"ensemble distillation needs 2 to {MAX_TEACHERS} teachers, got {len(counts)}")
    widths = set(counts.values())
    if len(widths) != 1:
        listed = ", ".join(f"{name}: {n} classes" for name, n in counts.items())
        raise ValueError(f"the teachers must predict the same classes, but their outputs differ ({listed})")
    return widths.pop()


def output_classes(model: nn.Module) -> int:
    """Output width of ``model`` (one dummy forward on a blank image)."""
    device = next(model.parameters()).device
    with torch.no_grad():
        return int(predict_logits(model, torch.zeros(1, 1, 28, 28, device=device)).shape[-1])


def combine(teacher_logits: Sequence[torch.Tensor], mode: str, T: float) -> torch.Tensor:
    """Logits ``t`` whose softmax(t / T) is the ensemble's soft target (``[B, C]``).

    "logits": the mean logits. "probs" / "kl_mean": ``T·log(mean_i softmax(z_i / T))``.
    """
    check_mode(mode)
    stacked = torch.stack(list(teacher_logits))  # [K, B, C]
    if mode == "logits":
        return stacked.mean(0)
    probs = (stacked / T).softmax(-1).mean(0)  # [B, C]
    return T * probs.clamp_min(_LOG_FLOOR).log()


def multi_teacher_kd(student_logits: torch.Tensor, teacher_logits: Sequence[torch.Tensor], T: float, mode: str) -> torch.Tensor:
    """The distillation term of ``mode`` (batch mean, scaled by T²)."""
    log_q = (student_logits / T).log_softmax(-1)  # [B, C]

    def kl(target_logits: torch.Tensor) -> torch.Tensor:
        log_p = (target_logits / T).log_softmax(-1)
        return (log_p.exp() * (log_p - log_q)).sum(-1).mean() * T * T

    if check_mode(mode) == "kl_mean":
        return torch.stack([kl(z) for z in teacher_logits]).mean()
    return kl(combine(teacher_logits, mode, T))


def kl_mean_offset(teacher_logits: Sequence[torch.Tensor], T: float) -> float:
    """c = T²·(H(p̄) − mean_i H(p_i)) ≥ 0: how far "kl_mean"'s loss value sits above "probs"'s."""
    probs = torch.stack([(z / T).softmax(-1) for z in teacher_logits])  # [K, B, C]

    def entropy(p: torch.Tensor) -> torch.Tensor:
        return -(p * p.clamp_min(_LOG_FLOOR).log()).sum(-1)

    return float((entropy(probs.mean(0)) - entropy(probs).mean(0)).mean() * T * T)


class EnsembleTeacher(nn.Module):
    """Several frozen teachers as one: its logits are :func:`combine` of theirs (fixed T)."""

    def __init__(self, teachers: Mapping[str, nn.Module], mode: str, T: float):
        super().__init__()
        check_class_counts({name: output_classes(m) for name, m in teachers.items()})
        if not (isinstance(T, (int, float)) and math.isfinite(T) and T > 0):
            raise ValueError(f"temperature T must be a finite number > 0, got {T!r}")
        self.members = nn.ModuleDict(dict(teachers))
        self.mode, self.T = check_mode(mode), float(T)
        self.requires_grad_(False)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, dict]:
        return combine([m(x)[0] for m in self.members.values()], self.mode, self.T), {}


def ensemble_report(teachers: Mapping[str, nn.Module], test: TensorData, T: float) -> dict:
    """Each teacher's test accuracy, and the accuracy of the ensemble under every mode."""
    report = {name: evaluate(m, test).accuracy for name, m in teachers.items()}
    for mode in ("logits", "probs"):
        report[f"ensemble ({mode})"] = evaluate(EnsembleTeacher(teachers, mode, T).eval(), test).accuracy
    return report
