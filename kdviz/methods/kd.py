"""Soft-target KD (Hinton, Vinyals & Dean 2015) as a term: ``weight·KD`` in place of ``alpha·KD``.

The formula itself is :func:`kdviz.losses.kd_loss`, shared with the objective's default term.
"""
from __future__ import annotations

import torch

from kdviz.losses import kd_loss
from kdviz.methods.registry import Method


def kd_term(s_logits: torch.Tensor, t_logits: torch.Tensor, labels: torch.Tensor, T: float) -> torch.Tensor:
    return kd_loss(s_logits, t_logits, T)  # labels unused: KD reads the teacher only


KD = Method(
    "kd", "Soft targets (KD)", kind="logits", needs="logits", loss=kd_term,
    formula=r"\alpha\,T^2\,\mathrm{KL}(\sigma(t/T)\,\|\,\sigma(s/T)) + (1-\alpha)\,\mathrm{CE}(s, y)",
    paper="Hinton, Vinyals & Dean 2015", transfers="the teacher's whole output distribution (dark knowledge)",
    default_weight=1.0,
    note="Included by default in every distillation run; listing it as a term replaces alpha·KD by weight·KD.",
)
