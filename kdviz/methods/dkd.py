"""Decoupled KD (Zhao et al. 2022): target-class and non-target-class KD, weighted separately."""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from kdviz.data import HIDDEN_LABEL
from kdviz.losses import check_finite, check_same_shape, check_temperature
from kdviz.methods.registry import Method

# The paper's CIFAR-100 setting alpha = 1 (TCKD), beta = 8 (NCKD). The paper also ramps the DKD
# weight up over the first 20 epochs; runs here last a few epochs, so no warm-up is applied
# (lower the term's weight if early steps are unstable).
DKD_ALPHA = 1.0
DKD_BETA = 8.0


def _check_weight(value: float, name: str) -> float:
    if not isinstance(value, (int, float)) or not math.isfinite(value) or value < 0:
        raise ValueError(f"{name} must be a finite number >= 0, got {name}={value!r}")
    return float(value)


def _check_dkd_labels(labels: torch.Tensor, logits: torch.Tensor) -> None:
    if labels.shape != logits.shape[:1]:
        raise ValueError(
            f"labels shape {tuple(labels.shape)} does not match logits shape {tuple(logits.shape)} "
            f"(expected labels of shape {tuple(logits.shape[:1])})"
        )
    bad = (labels < 0) | (labels >= logits.shape[1])
    if bad.any():
        values = sorted(set(labels[bad].tolist()))[:5]
        raise ValueError(
            f"DKD labels must lie in [0, {logits.shape[1] - 1}] (no hidden label {HIDDEN_LABEL}), got {values}"
        )


def dkd_loss(
    student_logits: torch.Tensor,
    teacher_logits: torch.Tensor,
    labels: torch.Tensor,
    alpha: float,
    beta: float,
    T: float,
) -> torch.Tensor:
    """Zhao et al. 2022, "Decoupled Knowledge Distillation": L = (α·TCKD + β·NCKD) · T², batchmean.

    TCKD = KL([p_t, 1−p_t]_teacher ‖ [p_t, 1−p_t]_student); NCKD = KL over the non-target classes only.
    Logits ``[B, C]`` (C ≥ 2), labels ``[B]`` in [0, C−1] (no hidden label). The target logit is removed
    exactly (the limit of mdistiller's "− 1000·onehot" mask), and log(1 − p_t) is computed as
    logsumexp(non-target) − logsumexp(all), so logits of ±1000 stay finite.
    """
    alpha, beta, T = _check_weight(alpha, "alpha"), _check_weight(beta, "beta"), check_temperature(T)
    check_same_shape(student_logits, teacher_logits, "student logits", "teacher logits")
    if student_logits.ndim != 2 or student_logits.shape[1] < 2:
        raise ValueError(f"DKD needs logits of shape [B, C] with C >= 2, got {tuple(student_logits.shape)}")
    _check_dkd_labels(labels, student_logits)
    check_finite(student_logits, "student logits")
    check_finite(teacher_logits, "teacher logits")
    b, c = student_logits.shape
    target = F.one_hot(labels, c).to(torch.bool)  # [B, C]

    def parts(z: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        z = z / T  # [B, C]
        z_nt = z[~target].reshape(b, c - 1)  # [B, C−1] non-target logits
        lse = torch.logsumexp(z, dim=1)  # [B]
        log_bin = torch.stack([z[target] - lse, torch.logsumexp(z_nt, dim=1) - lse], dim=1)  # [B, 2]
        return log_bin, F.log_softmax(z_nt, dim=1)  # [B, 2], [B, C−1]

    s_bin, s_nt = parts(student_logits)
    t_bin, t_nt = parts(teacher_logits.detach())
    tckd = (t_bin.exp() * (t_bin - s_bin)).sum() / b
    nckd = (t_nt.exp() * (t_nt - s_nt)).sum() / b
    return (alpha * tckd + beta * nckd) * T * T


def dkd_targets(labels: torch.Tensor, t_logits: torch.Tensor) -> torch.Tensor:
    """DKD needs a target class per sample: the label, or the teacher's prediction where it is hidden."""
    hidden = labels == HIDDEN_LABEL
    return torch.where(hidden, t_logits.argmax(-1), labels) if bool(hidden.any()) else labels


def dkd_term(s_logits: torch.Tensor, t_logits: torch.Tensor, labels: torch.Tensor, T: float) -> torch.Tensor:
    return dkd_loss(s_logits, t_logits, dkd_targets(labels, t_logits), DKD_ALPHA, DKD_BETA, T)


DKD = Method(
    "dkd", "Decoupled KD", kind="logits", needs="logits", loss=dkd_term,
    formula=r"\alpha\,\mathrm{TCKD} + \beta\,\mathrm{NCKD}", paper="Zhao et al. 2022",
    transfers="target-class confidence and non-target dark knowledge, weighted separately", default_weight=1.0,
    note=f"Replaces alpha·KD with weight·DKD (alpha={DKD_ALPHA:g}, beta={DKD_BETA:g}, the paper's CIFAR setting; "
         "no warm-up); CE keeps its (1 − alpha) weight. Hidden labels use the teacher's prediction as target.",
)
