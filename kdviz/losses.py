"""The shared pieces of every distillation loss: input checks, soft targets, KD and CE.

Each method's own loss lives beside its declaration in ``kdviz.methods`` (one file per method).
Every function validates its inputs and raises ``ValueError`` naming the offending
values or shapes: a mismatched pair of logits must never broadcast silently.
Conventions: logits are raw (pre-softmax); ``alpha`` weights the *distillation* term.
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from kdviz.data import HIDDEN_LABEL


# ----------------------------------------------------------------------------- checks
def check_temperature(T: float) -> float:
    if not isinstance(T, (int, float)) or not math.isfinite(T) or T <= 0:
        raise ValueError(f"temperature T must be a finite number > 0, got T={T!r}")
    return float(T)


def check_alpha(alpha: float) -> float:
    if not isinstance(alpha, (int, float)) or not math.isfinite(alpha) or not 0.0 <= alpha <= 1.0:
        raise ValueError(f"alpha must lie in [0, 1] (it weights the distillation term), got alpha={alpha!r}")
    return float(alpha)


def check_same_shape(a: torch.Tensor, b: torch.Tensor, what_a: str, what_b: str) -> None:
    if a.shape != b.shape:
        raise ValueError(
            f"{what_a} shape {tuple(a.shape)} does not match {what_b} shape {tuple(b.shape)}; "
            "they must be identical (no broadcasting)"
        )


def check_finite(x: torch.Tensor, what: str) -> None:
    if not torch.isfinite(x).all():
        bad = int((~torch.isfinite(x)).sum())
        raise ValueError(f"{what} contains {bad} non-finite value(s) (NaN or ±inf)")


def check_label_range(labels: torch.Tensor, num_classes: int) -> None:
    valid = labels != HIDDEN_LABEL
    bad = valid & ((labels < 0) | (labels >= num_classes))
    if bad.any():
        values = sorted(set(labels[bad].tolist()))[:5]
        raise ValueError(f"labels out of range [0, {num_classes - 1}] (or {HIDDEN_LABEL} to ignore): {values}")


def check_labels(labels: torch.Tensor, logits: torch.Tensor) -> None:
    if labels.shape != logits.shape[:-1]:
        raise ValueError(
            f"labels shape {tuple(labels.shape)} does not match logits shape {tuple(logits.shape)} "
            f"(expected labels of shape {tuple(logits.shape[:-1])})"
        )
    check_label_range(labels, logits.shape[-1])


def check_batch(a: torch.Tensor, b: torch.Tensor, what_a: str, what_b: str, min_ndim: int = 2) -> None:
    """Two per-sample tensors ``[B, ...]`` of the same batch size (their other dims may differ)."""
    for x, what in ((a, what_a), (b, what_b)):
        if x.ndim < min_ndim:
            raise ValueError(f"{what} must have at least {min_ndim} dims [B, ...], got shape {tuple(x.shape)}")
    if a.shape[0] != b.shape[0]:
        raise ValueError(
            f"batch sizes differ: {what_a} shape {tuple(a.shape)} vs {what_b} shape {tuple(b.shape)}"
        )


# ----------------------------------------------------------------------------- soft targets
def soft_targets(logits: torch.Tensor, T: float) -> torch.Tensor:
    """Hinton, Vinyals & Dean 2015, "Distilling the Knowledge in a Neural Network": p = softmax(z / T)."""
    T = check_temperature(T)
    return F.softmax(logits / T, dim=-1)


def entropy(probs: torch.Tensor) -> torch.Tensor:
    """Shannon entropy in nats over the last dimension: H = -Σ p log p (0 log 0 := 0)."""
    return -(probs * torch.log(probs.clamp_min(1e-30))).sum(-1)


def _at_least_float32(x: torch.Tensor) -> torch.Tensor:
    # Under bf16/fp16 autocast the logits arrive in half precision; the softmax of z/T runs in
    # float32 (float64 inputs, as on the Temperature page, stay float64).
    return x.float() if x.dtype in (torch.float16, torch.bfloat16) else x


def kd_loss(
    student_logits: torch.Tensor,
    teacher_logits: torch.Tensor,
    T: float,
    mask: torch.Tensor | None = None,
    *,
    check: bool = True,
) -> torch.Tensor:
    """Hinton et al. 2015 soft-target loss: KL(softmax(t/T) ‖ softmax(s/T)) · T², mean over counted positions.

    Shapes: ``[B, C]`` or token-level ``[B, S, C]`` (any leading dims are positions).
    ``mask`` (bool, shape = leading dims) selects the positions that count. The teacher is
    detached. Both sides use ``log_softmax`` so logits of ±1000 stay finite. The T² factor
    keeps gradient magnitudes comparable across temperatures (∂/∂s scales as 1/T²).
    ``check=False`` skips the input checks (T, shapes, NaN/inf, an empty mask) for callers that
    validated their inputs once, e.g. the training loop (~50 µs and a host sync per step saved).
    """
    if check:
        T = check_temperature(T)
        check_same_shape(student_logits, teacher_logits, "student logits", "teacher logits")
        check_finite(student_logits, "student logits")
        check_finite(teacher_logits, "teacher logits")
    teacher_logits = teacher_logits.detach() if teacher_logits.requires_grad else teacher_logits  # cached logits need no op
    log_p_t = F.log_softmax(_at_least_float32(teacher_logits) / T, dim=-1)
    log_p_s = F.log_softmax(_at_least_float32(student_logits) / T, dim=-1)
    # Per-position KL: Σ_c p_t (log p_t − log p_s); shape = leading dims.
    kl = (log_p_t.exp() * (log_p_t - log_p_s)).sum(-1)
    if mask is None:
        return kl.mean() * (T * T)
    if mask.shape != kl.shape:
        raise ValueError(f"mask shape {tuple(mask.shape)} does not match positions shape {tuple(kl.shape)}")
    mask = mask.to(torch.bool)
    count = mask.sum()
    if check and int(count) == 0:
        raise ValueError("mask selects no positions: nothing to distil")
    return (kl * mask).sum() / count * (T * T)


def ce_loss(logits: torch.Tensor, labels: torch.Tensor, *, check: bool = True) -> torch.Tensor:
    """Cross-entropy on hard labels, ignoring ``HIDDEN_LABEL``; 0 when no label is present (unlabelled batch).

    ``check=False`` skips the label checks and the all-hidden test (a host sync): only for labels
    validated once, with at least one visible label per batch (else the mean is NaN).
    """
    if check:
        check_labels(labels, logits)
        if not bool((labels != HIDDEN_LABEL).any()):
            return logits.sum() * 0.0  # keeps the graph (and the device) without a NaN from an empty mean
    if logits.ndim != 2:  # token-level [B, S, C]: positions as rows (a [B, C] batch skips 3 views and a backward node)
        logits, labels = logits.reshape(-1, logits.shape[-1]), labels.reshape(-1)
    return F.cross_entropy(logits, labels, ignore_index=HIDDEN_LABEL)


def distillation_loss(
    student_logits: torch.Tensor,
    teacher_logits: torch.Tensor,
    labels: torch.Tensor,
    T: float,
    alpha: float,
) -> dict[str, torch.Tensor]:
    """Hinton et al. 2015 objective: total = alpha · kd + (1 − alpha) · ce (alpha weights distillation).

    Returns ``{"total", "kd", "ce"}`` with the *unweighted* kd and ce; labels may hold ``HIDDEN_LABEL``.
    """
    alpha = check_alpha(alpha)
    kd = kd_loss(student_logits, teacher_logits, T)
    ce = ce_loss(student_logits, labels)
    return {"total": alpha * kd + (1.0 - alpha) * ce, "kd": kd, "ce": ce}
