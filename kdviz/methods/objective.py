"""Distillation objectives: which loss terms a run optimises, and their weights.

A method returns its losses as a dict of *weighted* terms whose sum is the total
(mdistiller style): that dict is the loss-breakdown chart. ``raw`` holds unweighted
values (e.g. the KL without T²) so curves compare across temperatures and weights.

The total is ``alpha·KD + (1 − alpha)·CE + Σ weight·term``. A logit term ("kd" or "dkd")
in ``terms`` *replaces* the default ``alpha·KD`` soft-target term with ``weight·loss``; the
CE term stays ``(1 − alpha)·CE`` in every case. Feature terms are bound to named layers of
the two networks when the objective is built, so a pair that cannot be matched fails then,
with a ValueError naming the layers and their shapes, not in the middle of training.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import nn

from kdviz import losses
from kdviz.models import feature_shapes
from kdviz.methods.adapters import make_regressor
from kdviz.methods.schedules import check_schedule, schedule_value

# Decoupled KD (Zhao et al. 2022): the paper's CIFAR-100 setting alpha = 1 (TCKD), beta = 8 (NCKD).
# The paper also ramps the DKD weight up over the first 20 epochs; runs here last a few epochs,
# so no warm-up is applied (lower the term's weight if early steps are unstable).
DKD_ALPHA = 1.0
DKD_BETA = 8.0
# Attention transfer's default layer is the last feature map at least this many pixels on a side.
AT_MIN_MAP = 7
# CRD (Tian et al. 2020) temperature of the contrastive softmax (their nce_t = 0.07).
CRD_TAU = 0.07


@dataclass(frozen=True)
class Term:
    """One extra distillation term beside soft-target KD, e.g. ``Term("at", 1000, "stage2", "stage2")``.

    Empty layer names pick a default (see :func:`default_layer`). ``method`` must be a key of
    :data:`METHOD_INFO`.
    """

    method: str
    weight: float = 1.0
    student_layer: str = ""
    teacher_layer: str = ""

    def __post_init__(self) -> None:
        if self.method not in METHOD_INFO:
            raise ValueError(f"unknown distillation method {self.method!r}; choose one of {sorted(METHOD_INFO)}")


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
            if not isinstance(term.weight, (int, float)) or not math.isfinite(term.weight) or term.weight < 0:
                raise ValueError(f"weight of term {term.method!r} must be a finite number >= 0, got {term.weight!r}")

    def T_at(self, progress: float) -> float:
        return schedule_value(self.T_schedule, self.T, self.T_end, progress)

    def alpha_at(self, progress: float) -> float:
        return schedule_value(self.alpha_schedule, self.alpha, self.alpha_end, progress)

    @property
    def needs_teacher_features(self) -> bool:
        return any(t.teacher_layer for t in self.terms) or any(t.method in FEATURE_METHODS for t in self.terms)


# Methods that read intermediate features (of either network) rather than logits only.
FEATURE_METHODS = frozenset({"fitnet", "at", "rkd_d", "rkd_a", "sp", "crd"})
# Methods computed on the logits; listed as a term, each replaces the default alpha·KD term.
LOGIT_METHODS = frozenset({"kd", "dkd"})
# Methods that compare one embedding vector per sample (default layer: the last vector feature).
EMBEDDING_METHODS = frozenset({"rkd_d", "rkd_a", "crd"})


# ----------------------------------------------------------------------------- binding terms to layers
@dataclass(frozen=True)
class BoundTerm:
    """A :class:`Term` resolved against the two networks: concrete layers and its key in the loss dicts."""

    key: str
    method: str
    weight: float
    student_layer: str = ""
    teacher_layer: str = ""


def _fmt(shape: tuple[int, ...]) -> str:
    return "[B, " + ", ".join(str(s) for s in shape) + "]"


def _describe(shapes: dict[str, tuple[int, ...]]) -> str:
    return ", ".join(f"{k} {_fmt(s)}" for k, s in shapes.items()) or "(none)"


def default_layer(method: str, shapes: dict[str, tuple[int, ...]], other: dict[str, tuple[int, ...]]) -> str:
    """The layer a feature term uses when none is named.

    Embedding methods (RKD, CRD): the last vector feature ("pooled" for the CNN, the last hidden
    layer for the MLP). SP: the last block (last stage map, or last hidden layer). AT: the last
    map of at least ``AT_MIN_MAP``×``AT_MIN_MAP`` — a 3×3 map says little about where a network
    looks, and the paper's β = 1000 was set for maps of 8×8 and larger (the loss is a mean over
    H·W, so small maps weigh far more). FitNets: the last block when both networks have maps,
    else the last vector on each side so the regressor can pair them.
    """
    maps = [k for k, s in shapes.items() if len(s) == 3]  # [C, H, W] per sample
    vectors = [k for k, s in shapes.items() if len(s) == 1]  # [D] per sample
    embedding = vectors[-1] if vectors else (list(shapes)[-1] if shapes else "")
    last_block = maps[-1] if maps else embedding
    if method in EMBEDDING_METHODS:
        return embedding
    if method == "at":
        large = [k for k in maps if min(shapes[k][1:]) >= AT_MIN_MAP]
        return large[-1] if large else last_block
    if method == "fitnet":
        both_maps = bool(maps) and any(len(s) == 3 for s in other.values())
        return last_block if both_maps else embedding
    return last_block


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


def _make_adapter(method: str, s_layer: str, s_shape: tuple, t_layer: str, t_shape: tuple) -> nn.Module:
    """Trainable extras: the FitNets regressor, or CRD's student projection head."""
    pair = f"student layer {s_layer!r} {_fmt(s_shape)} and teacher layer {t_layer!r} {_fmt(t_shape)}"
    if method == "at" and (len(s_shape) != 3 or len(t_shape) != 3):
        raise ValueError(f"attention transfer (at) needs CNN feature maps [B, C, H, W] on both networks; got {pair}")
    if method == "fitnet":
        try:
            return make_regressor((1, *s_shape), (1, *t_shape))
        except ValueError as err:
            raise ValueError(f"FitNets cannot pair {pair}: {err}") from err
    if method == "crd":
        # Student head [B, Ds] → [B, Dt]: the teacher embedding is the common space. A teacher-side
        # head would never learn, because contrastive_loss treats the teacher side as frozen.
        return nn.Sequential(nn.Flatten(1), nn.Linear(math.prod(s_shape), math.prod(t_shape)))
    return nn.Identity()


def bind_terms(terms, s_shapes: dict, t_shapes: dict) -> tuple[list[BoundTerm], dict[str, nn.Module]]:
    """Resolve layers, check shapes and build adapters. Shapes are per sample (no batch dim)."""
    counts = {m: sum(t.method == m for t in terms) for m in {t.method for t in terms}}
    bound, adapters = [], {}
    for term in terms:
        if term.method in LOGIT_METHODS:
            if term.student_layer or term.teacher_layer:
                raise ValueError(f"{term.method} works on the logits and takes no layers, got "
                                 f"student_layer={term.student_layer!r}, teacher_layer={term.teacher_layer!r}")
            s_layer = t_layer = ""
        else:
            s_layer = _resolve_layer(term.student_layer, term.method, "student", s_shapes, t_shapes)
            t_layer = _resolve_layer(term.teacher_layer, term.method, "teacher", t_shapes, s_shapes)
        key = _unique_key(term, s_layer, t_layer, {b.key for b in bound}, counts[term.method] > 1)
        bound.append(BoundTerm(key, term.method, float(term.weight), s_layer, t_layer))
        if term.method in FEATURE_METHODS:
            adapters[key] = _make_adapter(term.method, s_layer, s_shapes[s_layer], t_layer, t_shapes[t_layer])
    return bound, adapters


# ----------------------------------------------------------------------------- the objective
def _crd(s: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
    return losses.contrastive_loss(s, t.flatten(1), CRD_TAU)  # s is already projected to [B, Dt]


# Feature losses as loss(adapter(student_feature), teacher_feature); the teacher side is detached inside.
FEATURE_LOSSES = {
    "fitnet": losses.fitnet_loss,
    "at": losses.at_loss,
    "rkd_d": losses.rkd_distance_loss,
    "rkd_a": losses.rkd_angle_loss,
    "sp": losses.sp_loss,
    "crd": _crd,
}


def dkd_targets(labels: torch.Tensor, t_logits: torch.Tensor) -> torch.Tensor:
    """DKD needs a target class per sample: the label, or the teacher's prediction where it is hidden (-100)."""
    hidden = labels == losses.IGNORE_INDEX
    return torch.where(hidden, t_logits.argmax(-1), labels) if bool(hidden.any()) else labels


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

    "dkd": ``weighted["dkd"] = weight·DKD(alpha=DKD_ALPHA, beta=DKD_BETA, T)`` replaces ``alpha·KD``;
    CE stays ``(1 − alpha)·CE``, so ``alpha = 0`` gives the paper's ``CE + DKD`` and ``alpha = 1``
    a label-free run. Hidden labels (-100) use the teacher's prediction as DKD's target class.
    """

    def __init__(self, distill: DistillConfig | None, bound: list[BoundTerm] | tuple = (), adapters: dict | None = None):
        super().__init__()
        self.distill = distill
        self.bound = tuple(bound)
        self.adapters = nn.ModuleDict(adapters or {})
        self.replaces_kd = any(b.method in LOGIT_METHODS for b in self.bound)

    def forward(self, s_logits, s_feats, t_logits, t_feats, labels, T: float, alpha: float):
        ce = losses.ce_loss(s_logits, labels)
        if self.distill is None or t_logits is None:
            return {"ce": ce}, {"ce": ce}
        weighted, raw = {}, {}
        if not self.replaces_kd:
            kd = losses.kd_loss(s_logits, t_logits, T)
            weighted["kd"], raw["kd"], raw["kl"] = alpha * kd, kd, kd / (T * T)
        weighted["ce"], raw["ce"] = (1.0 - alpha) * ce, ce
        for b in self.bound:
            loss = self._term_loss(b, s_logits, s_feats, t_logits, t_feats, labels, T)
            weighted[b.key], raw[b.key] = b.weight * loss, loss
        return weighted, raw

    def _term_loss(self, b: BoundTerm, s_logits, s_feats, t_logits, t_feats, labels, T) -> torch.Tensor:
        if b.method == "kd":
            return losses.kd_loss(s_logits, t_logits, T)
        if b.method == "dkd":
            return losses.dkd_loss(s_logits, t_logits, dkd_targets(labels, t_logits), DKD_ALPHA, DKD_BETA, T)
        s = self.adapters[b.key](_feature(s_feats, b.student_layer, "student", b.method))
        return FEATURE_LOSSES[b.method](s, _feature(t_feats, b.teacher_layer, "teacher", b.method))


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
    needs_shapes = any(t.method in FEATURE_METHODS for t in distill.terms)
    s_shapes = feature_shapes(student, _device_of(student)) if needs_shapes else {}
    t_shapes = feature_shapes(teacher, _device_of(teacher)) if needs_shapes else {}
    bound, adapters = bind_terms(distill.terms, s_shapes, t_shapes)
    return Objective(distill, bound, adapters).to(_device_of(student))


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
    note: str = ""  # a caveat of this implementation the user should see (caps, simplifications)


METHOD_INFO: dict[str, MethodInfo] = {
    m.name: m
    for m in (
        MethodInfo("kd", "Soft targets (KD)", r"\alpha\,T^2\,\mathrm{KL}(\sigma(t/T)\,\|\,\sigma(s/T)) + (1-\alpha)\,\mathrm{CE}(s, y)",
                   "Hinton, Vinyals & Dean 2015", "the teacher's whole output distribution (dark knowledge)", "logits", 1.0,
                   "Included by default in every distillation run; listing it as a term replaces alpha·KD by weight·KD."),
        MethodInfo("fitnet", "FitNets hints", r"\lVert r(f_s) - f_t \rVert_2^2", "Romero et al. 2015",
                   "intermediate activations, through a learned regressor r", "features", 1.0,
                   "The regressor r (1×1 conv or linear) is trained jointly with the student, not in a separate stage."),
        MethodInfo("at", "Attention transfer", r"\tfrac{\beta}{2}\,\mathrm{mean}\big(a(f_s) - a(f_t)\big)^2,\ a(f)=\frac{\mathrm{vec}(\sum_c f_c^2)}{\lVert\cdot\rVert_2}",
                   "Zagoruyko & Komodakis 2017", "where the network looks (spatial attention maps)", "maps", 1000.0,
                   f"Needs CNN feature maps on both networks; by default the last map of at least {AT_MIN_MAP}×{AT_MIN_MAP} "
                   "(stage2 of the MNIST CNN); maps of different sizes are pooled to the smaller one."),
        MethodInfo("rkd_d", "RKD distance", r"\sum_{i,j} \ell_\delta\big(\tfrac{\lVert s_i-s_j\rVert}{\mu_s}, \tfrac{\lVert t_i-t_j\rVert}{\mu_t}\big)",
                   "Park et al. 2019", "the geometry of the batch: pairwise distances", "features", 25.0),
        MethodInfo("rkd_a", "RKD angle", r"\sum_{i,j,k} \ell_\delta\big(\cos\angle s_i s_j s_k, \cos\angle t_i t_j t_k\big)",
                   "Park et al. 2019", "the geometry of the batch: angles of triplets", "features", 50.0,
                   f"The angle term is cubic in the batch size ([B, B, B] tensors), so it sees only the first "
                   f"{losses.RKD_ANGLE_MAX_BATCH} samples of each batch."),
        MethodInfo("sp", "Similarity-preserving", r"\tfrac{1}{B^2}\lVert \hat G_s - \hat G_t \rVert_F^2,\ G = f f^\top",
                   "Tung & Mori 2019", "which samples the network finds similar", "features", 3000.0),
        MethodInfo("dkd", "Decoupled KD", r"\alpha\,\mathrm{TCKD} + \beta\,\mathrm{NCKD}", "Zhao et al. 2022",
                   "target-class confidence and non-target dark knowledge, weighted separately", "logits", 1.0,
                   f"Replaces alpha·KD with weight·DKD (alpha={DKD_ALPHA:g}, beta={DKD_BETA:g}, the paper's CIFAR setting; "
                   "no warm-up); CE keeps its (1 − alpha) weight. Hidden labels use the teacher's prediction as target."),
        MethodInfo("crd", "Contrastive (CRD, in-batch)", r"-\tfrac{1}{B}\sum_i \log \frac{e^{s_i\cdot t_i/\tau}}{\sum_j e^{s_i\cdot t_j/\tau}}",
                   "Tian et al. 2020", "representations: each student embedding must pick out its own teacher embedding", "features", 0.8,
                   f"In-batch negatives instead of the paper's 16k-sample memory bank; tau={CRD_TAU:g}; a linear head "
                   "projects the student embedding into the teacher's embedding space."),
    )
}
