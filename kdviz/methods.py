"""Distillation objectives: which loss terms a run optimises, and their weights.

A method returns its losses as a dict of *weighted* terms whose sum is the total
(mdistiller style): that dict is the loss-breakdown chart. ``raw`` holds unweighted
values (e.g. the KL without T²) so curves compare across temperatures and weights.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import torch
from torch import nn

from . import losses
from .schedules import check_schedule, schedule_value


@dataclass(frozen=True)
class Term:
    """One extra distillation term beside soft-target KD, e.g. ``Term("at", 1000, "stage2", "stage2")``."""

    method: str
    weight: float = 1.0
    student_layer: str = ""
    teacher_layer: str = ""


@dataclass(frozen=True)
class DistillConfig:
    """Soft-target KD settings: ``total = alpha·KD + (1 − alpha)·CE + Σ weight·term``."""

    T: float = 4.0
    alpha: float = 0.9
    terms: tuple[Term, ...] = ()
    T_schedule: str = "constant"
    T_end: float | None = None
    alpha_schedule: str = "constant"
    alpha_end: float | None = None

    def __post_init__(self) -> None:
        losses.check_temperature(self.T)
        losses.check_alpha(self.alpha)
        check_schedule(self.T_schedule)
        check_schedule(self.alpha_schedule)
        if self.T_end is not None:
            losses.check_temperature(self.T_end)
        if self.alpha_end is not None:
            losses.check_alpha(self.alpha_end)
        object.__setattr__(self, "terms", tuple(self.terms))
        for term in self.terms:
            if not isinstance(term.weight, (int, float)) or term.weight < 0:
                raise ValueError(f"weight of term {term.method!r} must be >= 0, got {term.weight!r}")

    def T_at(self, progress: float) -> float:
        return schedule_value(self.T_schedule, self.T, self.T_end, progress)

    def alpha_at(self, progress: float) -> float:
        return schedule_value(self.alpha_schedule, self.alpha, self.alpha_end, progress)

    @property
    def needs_teacher_features(self) -> bool:
        return any(t.teacher_layer for t in self.terms) or any(t.method in FEATURE_METHODS for t in self.terms)


# Methods that read intermediate features (of either network) rather than logits only.
FEATURE_METHODS = frozenset({"fitnet", "at", "rkd_d", "rkd_a", "sp", "crd"})


class Objective(nn.Module):
    """Scratch or soft-target KD objective. Subclasses/extensions add feature terms.

    ``forward`` returns ``(weighted, raw)``: dicts of scalar tensors; ``sum(weighted.values())``
    is the loss that is back-propagated.
    """

    def __init__(self, distill: DistillConfig | None):
        super().__init__()
        self.distill = distill

    def forward(self, s_logits, s_feats, t_logits, t_feats, labels, T: float, alpha: float):
        ce = losses.ce_loss(s_logits, labels)
        if self.distill is None or t_logits is None:
            return {"ce": ce}, {"ce": ce}
        kd = losses.kd_loss(s_logits, t_logits, T)
        weighted = {"kd": alpha * kd, "ce": (1.0 - alpha) * ce}
        raw = {"kd": kd, "kl": kd / (T * T), "ce": ce}
        return weighted, raw


def build_objective(distill: DistillConfig | None, student: nn.Module, teacher: nn.Module | None) -> Objective:
    """The objective for a run; trainable extras (regressors, projections) live inside it."""
    if distill is not None and teacher is None:
        raise ValueError("distillation needs a teacher model; pass teacher=... or distill=None for scratch")
    return Objective(distill)


@dataclass(frozen=True)
class MethodInfo:
    """What the app shows about a method: its formula, paper and what it transfers."""

    name: str
    label: str
    formula: str  # LaTeX
    paper: str
    transfers: str
    needs: str  # "logits" | "maps" (CNN feature maps [B,C,H,W]) | "features" (any layer)
    default_weight: float


METHOD_INFO: dict[str, MethodInfo] = {
    m.name: m
    for m in (
        MethodInfo("kd", "Soft targets (KD)", r"\alpha\,T^2\,\mathrm{KL}(\sigma(t/T)\,\|\,\sigma(s/T)) + (1-\alpha)\,\mathrm{CE}(s, y)",
                   "Hinton, Vinyals & Dean 2015", "the teacher's whole output distribution (dark knowledge)", "logits", 1.0),
        MethodInfo("fitnet", "FitNets hints", r"\lVert r(f_s) - f_t \rVert_2^2", "Romero et al. 2015",
                   "intermediate activations, through a learned regressor r", "features", 1.0),
        MethodInfo("at", "Attention transfer", r"\tfrac{\beta}{2}\,\mathrm{mean}\big(a(f_s) - a(f_t)\big)^2,\ a(f)=\frac{\mathrm{vec}(\sum_c f_c^2)}{\lVert\cdot\rVert_2}",
                   "Zagoruyko & Komodakis 2017", "where the network looks (spatial attention maps)", "maps", 1000.0),
        MethodInfo("rkd_d", "RKD distance", r"\sum_{i,j} \ell_\delta\big(\tfrac{\lVert s_i-s_j\rVert}{\mu_s}, \tfrac{\lVert t_i-t_j\rVert}{\mu_t}\big)",
                   "Park et al. 2019", "the geometry of the batch: pairwise distances", "features", 25.0),
        MethodInfo("rkd_a", "RKD angle", r"\sum_{i,j,k} \ell_\delta\big(\cos\angle s_i s_j s_k, \cos\angle t_i t_j t_k\big)",
                   "Park et al. 2019", "the geometry of the batch: angles of triplets", "features", 50.0),
        MethodInfo("sp", "Similarity-preserving", r"\tfrac{1}{B^2}\lVert \hat G_s - \hat G_t \rVert_F^2,\ G = f f^\top",
                   "Tung & Mori 2019", "which samples the network finds similar", "features", 3000.0),
        MethodInfo("dkd", "Decoupled KD", r"\alpha\,\mathrm{TCKD} + \beta\,\mathrm{NCKD}", "Zhao et al. 2022",
                   "target-class confidence and non-target dark knowledge, weighted separately", "logits", 1.0),
        MethodInfo("crd", "Contrastive (CRD, in-batch)", r"-\tfrac{1}{B}\sum_i \log \frac{e^{s_i\cdot t_i/\tau}}{\sum_j e^{s_i\cdot t_j/\tau}}",
                   "Tian et al. 2020", "representations: each student embedding must pick out its own teacher embedding", "features", 0.8),
    )
}
