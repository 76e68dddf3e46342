"""Attention maps of CNN stages for one image, and a short attention-transfer run to watch
(driven by ``kdviz.runtime.feature_jobs``).

Maps are Zagoruyko & Komodakis' ``a(f) = normalize(vec(mean_c f_c²))`` from
:func:`kdviz.methods.at.attention_map`, reshaped to ``[H, W]`` (unit L2 norm, so maps of different
networks compare directly). Differences follow :func:`kdviz.methods.at.at_loss` exactly: when the
stages' spatial sizes differ, the larger *feature map* is average-pooled to the smaller size
before its attention map is taken, so ``difference.pow(2).mean() == at_loss`` for one image.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Iterator

import torch
import torch.nn.functional as F
from torch import nn

from kdviz.data import TensorData
from kdviz.engine import StepRecord, TrainConfig, train
from kdviz.methods.at import at_loss, attention_map
from kdviz.methods.objective import DistillConfig, Term, build_objective
from kdviz.models import ModelConfig


# ----------------------------------------------------------------------------- maps
def _eval_features(model: nn.Module, x: torch.Tensor) -> dict[str, torch.Tensor]:
    """Eval-mode features under no_grad; the model's train/eval mode is restored."""
    was_training = model.training
    model.eval()
    device = next(model.parameters()).device
    with torch.no_grad():
        _, feats = model(x.to(device))
    model.train(was_training)
    return feats


def spatial_features(model: nn.Module, x: torch.Tensor) -> dict[str, torch.Tensor]:
    """The model's spatial feature maps ``{name: [B, C, H, W]}`` for images ``[B, 1, 28, 28]``.

    Raises ``ValueError`` naming every layer and its shape when there is none (an MLP only has
    hidden vectors ``[B, D]``, which have no spatial layout to attend over).
    """
    feats = _eval_features(model, x)
    maps = {name: f for name, f in feats.items() if f.ndim == 4}
    if not maps:
        shapes = ", ".join(f"{name} {tuple(f.shape)}" for name, f in feats.items())
        raise ValueError(
            f"attention maps need spatial feature maps [B, C, H, W], but this model's layers are {shapes} "
            "(an MLP has only vectors); use a CNN teacher and student"
        )
    return maps


def attention_2d(feat: torch.Tensor) -> torch.Tensor:
    """One image's feature map ``[1, C, H, W]`` (or ``[C, H, W]``) → attention map ``[H, W]``, unit L2 norm."""
    if feat.ndim == 3:
        feat = feat.unsqueeze(0)
    if feat.ndim != 4 or feat.shape[0] != 1:
        raise ValueError(f"expected one image's feature map [1, C, H, W], got shape {tuple(feat.shape)}")
    h, w = feat.shape[2:]
    return attention_map(feat.detach().float())[0].reshape(h, w).cpu()  # [H, W]


def stage_attention(model: nn.Module, x: torch.Tensor) -> dict[str, torch.Tensor]:
    """``{stage: [H, W]}`` attention maps of every spatial stage for one image ``[1, 1, 28, 28]``."""
    if x.ndim != 4 or x.shape[0] != 1:
        raise ValueError(f"expected one image [1, 1, 28, 28], got shape {tuple(x.shape)}")
    return {name: attention_2d(f) for name, f in spatial_features(model, x).items()}


def _common_size(a: torch.Tensor, b: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Pool the larger feature map(s) ``[B, C, H, W]`` down to the smaller spatial size (as ``at_loss``)."""
    size = (min(a.shape[2], b.shape[2]), min(a.shape[3], b.shape[3]))
    if tuple(a.shape[2:]) != size:
        a = F.adaptive_avg_pool2d(a, size)
    if tuple(b.shape[2:]) != size:
        b = F.adaptive_avg_pool2d(b, size)
    return a, b


def attention_difference(student_feat: torch.Tensor, teacher_feat: torch.Tensor) -> torch.Tensor:
    """``a(f_s) − a(f_t)`` as ``[h, w]`` for one image; features ``[1, C, H, W]`` (channels may differ).

    Different spatial sizes are pooled to the smaller one first, like ``kdviz.methods.at.at_loss``,
    so ``attention_difference(s, t).pow(2).mean()`` equals ``at_loss(s, t)``.
    """
    for f, what in ((student_feat, "student"), (teacher_feat, "teacher")):
        if f.ndim != 4 or f.shape[0] != 1:
            raise ValueError(f"expected one image's {what} feature map [1, C, H, W], got shape {tuple(f.shape)}")
    s, t = _common_size(student_feat.detach().float().cpu(), teacher_feat.detach().float().cpu())
    return attention_2d(s) - attention_2d(t)  # [h, w]


@dataclass(frozen=True)
class StageComparison:
    """One teacher stage against one student stage, for one image."""

    student_layer: str
    teacher_layer: str
    teacher_map: torch.Tensor  # [Ht, Wt]
    student_map: torch.Tensor  # [Hs, Ws]
    difference: torch.Tensor  # [h, w], h = min(Hs, Ht): student − teacher
    distance: float  # at_loss for this image = difference.pow(2).mean()


def default_pairs(teacher_layers, student_layers) -> list[tuple[str, str]]:
    """``(student_layer, teacher_layer)`` for every stage name both networks have, in order."""
    return [(name, name) for name in student_layers if name in teacher_layers]


def compare_stages(
    teacher: nn.Module,
    student: nn.Module,
    x: torch.Tensor,
    pairs: list[tuple[str, str]] | None = None,
) -> list[StageComparison]:
    """Attention maps of matching stages of two CNNs for one image ``[1, 1, 28, 28]``.

    ``pairs`` lists ``(student_layer, teacher_layer)``; by default, the stage names both share.
    Raises ``ValueError`` for an MLP (no spatial maps) or an unknown layer name.
    """
    t_feats, s_feats = spatial_features(teacher, x), spatial_features(student, x)
    pairs = default_pairs(t_feats, s_feats) if pairs is None else pairs
    if not pairs:
        raise ValueError(f"no stage to compare: teacher has {list(t_feats)}, student has {list(s_feats)}")
    out = []
    for s_name, t_name in pairs:
        for name, feats, who in ((s_name, s_feats, "student"), (t_name, t_feats, "teacher")):
            if name not in feats:
                raise ValueError(f"{who} has no spatial layer {name!r}; it has {list(feats)}")
        diff = attention_difference(s_feats[s_name][:1], t_feats[t_name][:1])
        out.append(StageComparison(s_name, t_name, attention_2d(t_feats[t_name][:1]), attention_2d(s_feats[s_name][:1]),
                                   diff, float(diff.pow(2).mean())))
    return out


def at_distance(
    teacher: nn.Module,
    student: nn.Module,
    x: torch.Tensor,
    student_layer: str,
    teacher_layer: str,
    teacher_feat: torch.Tensor | None = None,
) -> float:
    """Mean AT loss (``kdviz.methods.at.at_loss``, unweighted) over images ``[B, 1, 28, 28]``.

    ``teacher_feat`` (the teacher's ``teacher_layer`` map for ``x``) skips the teacher's forward pass.
    """
    s = spatial_features(student, x)[student_layer]
    t = teacher_feat if teacher_feat is not None else spatial_features(teacher, x)[teacher_layer]
    return float(at_loss(s, t.to(s.device)))


# ----------------------------------------------------------------------------- a short AT run
@dataclass(frozen=True)
class QuickPairConfig:
    """A small CNN teacher and an attention-transferred CNN student, trainable in seconds on a CPU
    (``kdviz.runtime.feature_jobs.quick_pair_job``; its ``steps`` go to :meth:`train_config`)."""

    teacher: ModelConfig = ModelConfig("cnn", channels=(16, 32, 64))
    student: ModelConfig = ModelConfig("cnn", channels=(8, 16, 32))
    student_layer: str = "stage2"
    teacher_layer: str = "stage2"
    at_weight: float = 1000.0  # Zagoruyko & Komodakis' β = 1000
    T: float = 4.0
    alpha: float = 0.9
    lr: float = 1e-2
    batch_size: int = 64
    seed: int = 0

    def __post_init__(self) -> None:
        if self.teacher.arch != "cnn" or self.student.arch != "cnn":
            raise ValueError(f"attention transfer needs CNNs, got {self.teacher.label()} and {self.student.label()}")
        if self.batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {self.batch_size}")

    def train_config(self, steps: int, log_every: int = 50) -> TrainConfig:
        return TrainConfig(max_steps=steps, epochs=1000, batch_size=self.batch_size, lr=self.lr,
                           seed=self.seed, log_every=max(1, log_every))


@dataclass(frozen=True)
class ATSetup:
    """The distillation config a student will train with, and whether it really contains AT."""

    distill: DistillConfig
    uses_at: bool
    note: str  # "" when AT is used, else why plain KD was used instead


def attention_transfer_setup(
    student: nn.Module,
    teacher: nn.Module,
    student_layer: str,
    teacher_layer: str,
    weight: float = 1000.0,
    T: float = 4.0,
    alpha: float = 0.9,
) -> ATSetup:
    """KD plus ``Term("at", weight, student_layer, teacher_layer)``, or plain KD (with a note saying why)
    when the objective refuses the term for this pair (``build_objective`` checks the layers' shapes)."""
    try:
        distill = DistillConfig(T=T, alpha=alpha, terms=(Term("at", weight, student_layer, teacher_layer),))
        build_objective(distill, student, teacher)
    except ValueError as err:
        note = f"Attention transfer is not available ({err}); the student used plain soft-target KD instead."
        return ATSetup(DistillConfig(T=T, alpha=alpha), False, note)
    return ATSetup(distill, True, "")


@dataclass(frozen=True)
class Snapshot:
    """The student's attention map for the probe image at one step of training."""

    step: int
    student_map: torch.Tensor  # [H, W] for probe image 0
    distance: float  # mean unweighted at_loss over the whole probe batch
    train_acc: float | None  # mean over the steps since the previous record (None at step 0)


def snapshot_steps(total: int, count: int, every: int = 1) -> list[int]:
    """``count`` steps from 0 to ``total``, spaced geometrically (early training changes fastest),
    each a multiple of ``every`` (the record interval) except ``total`` itself; no duplicates."""
    if total < 1 or count < 2 or every < 1:
        raise ValueError(f"need total >= 1, count >= 2 and every >= 1, got total={total}, count={count}, every={every}")
    steps = {0, total}
    for i in range(1, count - 1):
        raw = every * (total / every) ** (i / (count - 1))  # geometric from `every` to `total`
        steps.add(min(total, max(every, int(round(raw / every)) * every)))
    return sorted(steps)


def watch_records(
    teacher: nn.Module,
    student: nn.Module,
    data: TensorData,
    probe: torch.Tensor,
    cfg: TrainConfig,
    setup: ATSetup,
    student_layer: str,
    teacher_layer: str,
    device=None,
    at_steps=None,
) -> Iterator[tuple[StepRecord | None, Snapshot | None]]:
    """Train ``student`` against ``teacher`` step-wise: ``(None, snapshot at step 0)`` first, then
    ``(record, snapshot or None)`` for every training record (``cfg.log_every`` steps apart); a
    record carries a :class:`Snapshot` when its step is in ``at_steps`` (all when None) or it is
    the last one. ``probe`` ``[B, 1, 28, 28]``: map of image 0, distance over all B.
    Pulling the generator drives training, so a caller can stop it early (or report progress)."""
    t_feat = spatial_features(teacher, probe)  # an MLP raises a clear ValueError here, before training
    s_feat = spatial_features(student, probe[:1])
    for name, feats, who in ((teacher_layer, t_feat, "teacher"), (student_layer, s_feat, "student")):
        if name not in feats:
            raise ValueError(f"{who} has no spatial layer {name!r}; it has {list(feats)}")
    t_feat = t_feat[teacher_layer]  # [B, C, H, W], computed once

    def snap(step: int, acc: float | None) -> Snapshot:
        s_map = attention_2d(spatial_features(student, probe[:1])[student_layer])
        return Snapshot(step, s_map, at_distance(teacher, student, probe, student_layer, teacher_layer, t_feat), acc)

    yield None, snap(0, None)
    wanted = None if at_steps is None else set(at_steps)
    for rec in train(student, data, cfg, teacher=teacher, distill=setup.distill, device=device):
        yield rec, (snap(rec.step, rec.train_acc) if wanted is None or rec.step in wanted or rec.done else None)
        student.train()  # the engine does not re-enter train mode after a yield
