"""Learned adapters (they hold parameters, so they live outside the pure ``kdviz.losses``).

``make_regressor`` builds the FitNets regressor (Romero et al. 2015) that maps a student hint
feature onto the teacher's shape, so ``kdviz.losses.fitnet_loss`` can compare them exactly.
"""
from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn


def make_regressor(student_shape: Sequence[int], teacher_shape: Sequence[int]) -> nn.Module:
    """FitNets regressor r with r(f_s).shape == f_t.shape: 1x1 conv for maps, Linear for vectors.

    Shapes include the batch dim (ignored): maps ``[B, C, H, W]`` or vectors ``[B, D]``.
    Maps: a (learned) 1x1 conv ``Cs → Ct``, preceded by an adaptive average pool to the teacher's
    ``(H, W)`` when spatial sizes differ. Vectors: ``Linear(Ds, Dt)``. ``nn.Identity`` (no
    parameters) only when the per-sample shapes already match.
    """
    s, t = tuple(int(x) for x in student_shape), tuple(int(x) for x in teacher_shape)
    for shape, what in ((s, "student"), (t, "teacher")):
        if len(shape) not in (2, 4) or any(x <= 0 for x in shape[1:]):
            raise ValueError(f"{what} shape {shape} must be a map [B, C, H, W] or a vector [B, D]")
    if len(s) != len(t):
        raise ValueError(
            f"cannot regress between a feature map and a vector: student shape {s}, teacher shape {t}; "
            "hint and guided layers must both be maps [B, C, H, W] or both vectors [B, D]"
        )
    if s[1:] == t[1:]:
        return nn.Identity()
    if len(s) == 2:
        return nn.Linear(s[1], t[1])  # [B, Ds] → [B, Dt]
    conv = nn.Conv2d(s[1], t[1], kernel_size=1)  # [B, Cs, H, W] → [B, Ct, H, W]
    if s[2:] == t[2:]:
        return conv
    return nn.Sequential(nn.AdaptiveAvgPool2d(t[2:]), conv)  # pool [B, Cs, Hs, Ws] → [B, Cs, Ht, Wt] first


def per_sample_regressor(student_shape: Sequence[int], teacher_shape: Sequence[int]) -> nn.Module:
    """:func:`make_regressor` from per-sample shapes (no batch dim), as a ``Method.adapter``."""
    return make_regressor((1, *student_shape), (1, *teacher_shape))
