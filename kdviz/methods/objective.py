"""Distillation objectives: which loss terms a run optimises, and their weights.

A method returns its losses as a dict of *weighted* terms whose sum is the total
(mdistiller style): that dict is the loss-breakdown chart. ``raw`` holds unweighted
values (e.g. the KL without T²) so curves compare across temperatures and weights.

The total is ``alpha·KD + (1 − alpha)·CE + Σ weight·term``. A logits term (e.g. "kd" or "dkd")
in ``terms`` *replaces* the default ``alpha·KD`` soft-target term with ``weight·loss``; a
divergence (``Method.divergence``: reverse KL, JS, MSE on logits) replaces it with
``alpha·weight·loss``, so weight 1 is KD with its divergence swapped (and follows the alpha
schedule). The CE term stays ``(1 − alpha)·CE`` in every case. Feature terms are bound to named layers of
the two networks when the objective is built, so a pair that cannot be matched fails then,
with a ValueError naming the layers and their shapes, not in the middle of training.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import nn

from kdviz import losses
from kdviz.methods.registry import METHODS, Method
from kdviz.methods.schedules import check_schedule_end, schedule_value
from kdviz.models import feature_shapes


@dataclass(frozen=True)
class Term:
    """One extra distillation term beside soft-target KD, e.g. ``Term("at", 1000, "stage2", "stage2")``.

    Empty layer names pick a default (see :func:`default_layer`). ``method`` must be a key of
    :data:`kdviz.methods.METHODS`. ``param`` sets the method's own setting (``Method.param``,
    e.g. JS's β); None keeps its default.
    """

    method: str
    weight: float = 1.0
    student_layer: str = ""
    teacher_layer: str = ""
    param: float | None = None

    def __post_init__(self) -> None:
        if self.method not in METHODS:
            raise ValueError(f"unknown distillation method {self.method!r}; choose one of {sorted(METHODS)}")
        declared = METHODS[self.method].param
        if self.param is not None and declared is None:
            raise ValueError(f"{self.method} takes no setting of its own, got param={self.param!r}")
        if declared is not None:
            object.__setattr__(self, "param", declared.check(declared.default if self.param is None else self.param))


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
        check_schedule_end("T", self.T_schedule, self.T_end)
        check_schedule_end("alpha", self.alpha_schedule, self.alpha_end)
        for name, end, check in (("T_end", self.T_end, losses.check_temperature), ("alpha_end", self.alpha_end, losses.check_alpha)):
            try:
                None if end is None else check(end)
            except ValueError as err:
                raise ValueError(f"{name}={end!r} is out of range: {err}") from err
        object.__setattr__(self, "terms", tuple(self.terms))
        for term in self.terms:
            if not isinstance(term.weight, (int, float)) or not math.isfinite(term.weight) or term.weight < 0:
                raise ValueError(f"weight of term {term.method!r} must be a finite number >= 0, got {term.weight!r}")

    def T_at(self, progress: float) -> float:
        return schedule_value(self.T_schedule, self.T, self.T_end, progress)

    def alpha_at(self, progress: float) -> float:
        return schedule_value(self.alpha_schedule, self.alpha, self.alpha_end, progress)

    @property
    def needs_teacher_features(self) -> bool:
        return any(t.teacher_layer for t in self.terms) or any(not METHODS[t.method].on_logits for t in self.terms)


# ----------------------------------------------------------------------------- binding terms to layers
@dataclass(frozen=True)
class BoundTerm:
    """A :class:`Term` resolved against the two networks: concrete layers and its key in the loss dicts."""

    key: str
    method: str
    weight: float
    student_layer: str = ""
    teacher_layer: str = ""
    param: float | None = None


def _fmt(shape: tuple[int, ...]) -> str:
    return "[B, " + ", ".join(str(s) for s in shape) + "]"


def _describe(shapes: dict[str, tuple[int, ...]]) -> str:
    return ", ".join(f"{k} {_fmt(s)}" for k, s in shapes.items()) or "(none)"


def default_layer(method: str, shapes: dict[str, tuple[int, ...]], other: dict[str, tuple[int, ...]]) -> str:
    """The layer of a network (its per-sample ``shapes``) a feature term uses when none is named;
    ``other`` holds the other network's shapes. Each method declares its own rule (e.g. AT: the last
    map of at least 7×7; RKD/CRD: the embedding). "" for methods on the logits."""
    rule = METHODS[method].default_layer
    return rule(shapes, other) if rule is not None else ""


def _resolve_layer(name: str, method: str, side: str, shapes: dict, other: dict) -> str:
    layer = name or default_layer(method, shapes, other)
    if layer not in shapes:
        raise ValueError(f"{side} layer {layer!r} (for {method}) does not exist; the {side} has layers: {_describe(shapes)}")
    return layer


def _unique_key(term: Term, s_layer: str, t_layer: str, taken: set[str], repeated: bool) -> str:
    key = f"{term.method}:{s_layer}:{t_layer}" if repeated else term.method
    if key in taken:
        raise ValueError(f"distillation term {key!r} is listed twice (same method and layers)")
    return key


def _make_adapter(method: Method, s_layer: str, s_shape: tuple, t_layer: str, t_shape: tuple) -> nn.Module:
    """The method's trainable extra (e.g. the FitNets regressor, CRD's projection head), else identity."""
    pair = f"student layer {s_layer!r} {_fmt(s_shape)} and teacher layer {t_layer!r} {_fmt(t_shape)}"
    if method.needs == "maps" and (len(s_shape) != 3 or len(t_shape) != 3):
        raise ValueError(f"{method.label} ({method.name}) needs CNN feature maps [B, C, H, W] on both networks; got {pair}")
    if method.adapter is None:
        return nn.Identity()
    try:
        return method.adapter(s_shape, t_shape)
    except ValueError as err:
        raise ValueError(f"{method.label} ({method.name}) cannot pair {pair}: {err}") from err


def bind_terms(terms, s_shapes: dict, t_shapes: dict) -> tuple[list[BoundTerm], dict[str, nn.Module]]:
    """Resolve layers, check shapes and build adapters. Shapes are per sample (no batch dim)."""
    counts = {m: sum(t.method == m for t in terms) for m in {t.method for t in terms}}
    bound, adapters = [], {}
    for term in terms:
        method = METHODS[term.method]
        if method.on_logits:
            if term.student_layer or term.teacher_layer:
                raise ValueError(f"{term.method} works on the logits and takes no layers, got "
                                 f"student_layer={term.student_layer!r}, teacher_layer={term.teacher_layer!r}")
            s_layer = t_layer = ""
        else:
            s_layer = _resolve_layer(term.student_layer, term.method, "student", s_shapes, t_shapes)
            t_layer = _resolve_layer(term.teacher_layer, term.method, "teacher", t_shapes, s_shapes)
        key = _unique_key(term, s_layer, t_layer, {b.key for b in bound}, counts[term.method] > 1)
        bound.append(BoundTerm(key, term.method, float(term.weight), s_layer, t_layer, term.param))
        if not method.on_logits:
            adapters[key] = _make_adapter(method, s_layer, s_shapes[s_layer], t_layer, t_shapes[t_layer])
    return bound, adapters


# ----------------------------------------------------------------------------- the objective
def _feature(feats: dict, layer: str, side: str, method: str) -> torch.Tensor:
    if layer not in feats:
        raise ValueError(f"{method}: the {side} produced no feature {layer!r} this step "
                         f"(got {sorted(feats)}); the teacher must run every batch for feature terms")
    return feats[layer]


class Objective(nn.Module):
    """Scratch, soft-target KD, or KD plus method terms.

    ``forward`` returns ``(weighted, raw)``: dicts of scalar tensors; ``sum(weighted.values())``
    is the loss that is back-propagated. Each bound term adds ``weighted[key] = weight·loss`` and
    ``raw[key] = loss`` (key = the method name, or ``method:student_layer:teacher_layer`` when a
    method is listed more than once). Adapters (regressors, projection heads) are submodules, so
    their parameters join the optimiser through ``objective.parameters()``.

    A logits method listed as a term (e.g. "dkd") replaces ``alpha·KD`` with ``weight·loss``; CE
    stays ``(1 − alpha)·CE``, so ``alpha = 0`` gives e.g. the DKD paper's ``CE + DKD`` and
    ``alpha = 1`` a label-free run. ``check=False`` skips the per-step input checks of KD and CE
    (see :func:`kdviz.losses.kd_loss`): only for inputs validated once, with every label visible.
    """

    def __init__(self, distill: DistillConfig | None, bound: list[BoundTerm] | tuple = (), adapters: dict | None = None):
        super().__init__()
        self.distill = distill
        self.bound = tuple(bound)
        self.adapters = nn.ModuleDict(adapters or {})
        self.replaces_kd = any(METHODS[b.method].on_logits for b in self.bound)

    def forward(self, s_logits, s_feats, t_logits, t_feats, labels, T: float, alpha: float, *, check: bool = True):
        ce = losses.ce_loss(s_logits, labels, check=check)
        if self.distill is None or t_logits is None:
            return {"ce": ce}, {"ce": ce}
        weighted, raw = {}, {}
        if not self.replaces_kd:
            kd = losses.kd_loss(s_logits, t_logits, T, check=check)
            weighted["kd"], raw["kd"], raw["kl"] = alpha * kd, kd, kd.detach() / (T * T)  # kl is only shown: no autograd node
        weighted["ce"], raw["ce"] = (1.0 - alpha) * ce, ce
        for b in self.bound:
            loss = self._term_loss(b, s_logits, s_feats, t_logits, t_feats, labels, T)
            scale = alpha * b.weight if METHODS[b.method].divergence else b.weight  # a divergence takes KD's alpha
            weighted[b.key], raw[b.key] = scale * loss, loss
        return weighted, raw

    def _term_loss(self, b: BoundTerm, s_logits, s_feats, t_logits, t_feats, labels, T) -> torch.Tensor:
        method = METHODS[b.method]
        if method.on_logits:
            return method.loss(s_logits, t_logits, labels, T, *(() if b.param is None else (b.param,)))
        s = self.adapters[b.key](_feature(s_feats, b.student_layer, "student", b.method))
        return method.loss(s, _feature(t_feats, b.teacher_layer, "teacher", b.method))


def _device_of(model: nn.Module) -> torch.device:
    p = next(iter(model.parameters()), None)
    return p.device if p is not None else torch.device("cpu")


def build_objective(distill: DistillConfig | None, student: nn.Module, teacher: nn.Module | None) -> Objective:
    """The objective for a run; trainable extras (regressors, projections) live inside it.

    Raises ValueError when a term cannot apply to this pair (e.g. AT on an MLP, a missing layer),
    naming the layers and their shapes.
    """
    if distill is not None and teacher is None:
        raise ValueError("distillation needs a teacher model; pass teacher=... or distill=None for scratch")
    if distill is None or not distill.terms:
        return Objective(distill)
    needs_shapes = any(not METHODS[t.method].on_logits for t in distill.terms)
    s_shapes = feature_shapes(student, _device_of(student)) if needs_shapes else {}
    t_shapes = feature_shapes(teacher, _device_of(teacher)) if needs_shapes else {}
    bound, adapters = bind_terms(distill.terms, s_shapes, t_shapes)
    return Objective(distill, bound, adapters).to(_device_of(student))
