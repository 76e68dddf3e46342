"""Attention transfer (Zagoruyko & Komodakis 2017): match where the two networks look."""
from __future__ import annotations

import torch
import torch.nn.functional as F

from kdviz.losses import check_batch
from kdviz.methods.registry import Method, Shapes, last_block, maps_of

# The default layer is the last feature map at least this many pixels on a side.
AT_MIN_MAP = 7


def attention_map(feat: torch.Tensor) -> torch.Tensor:
    """Zagoruyko & Komodakis 2017, "Paying More Attention to Attention": a = normalize(vec(mean_c f_c²)).

    ``feat`` ``[B, C, H, W]`` → ``[B, H·W]``, each row of unit L2 norm (an all-zero map stays zero).
    """
    if feat.ndim != 4:
        raise ValueError(
            f"attention transfer needs spatial feature maps [B, C, H, W], got shape {tuple(feat.shape)}"
        )
    am = feat.pow(2).mean(dim=1).flatten(1)  # [B, H·W]
    return F.normalize(am, p=2, dim=1)  # [B, H·W], eps-guarded division


def at_loss(student_feat: torch.Tensor, teacher_feat: torch.Tensor) -> torch.Tensor:
    """Zagoruyko & Komodakis 2017 attention transfer: L = mean((a(f_s) − a(f_t))²), a = ``attention_map``.

    Inputs ``[B, Cs, Hs, Ws]`` and ``[B, Ct, Ht, Wt]`` (channels may differ). When the spatial sizes
    differ, the larger map is adaptive-average-pooled down to the smaller size first.
    """
    for x, what in ((student_feat, "student feature"), (teacher_feat, "teacher feature")):
        if x.ndim != 4:
            raise ValueError(
                f"attention transfer needs spatial feature maps [B, C, H, W]; {what} has shape {tuple(x.shape)}"
            )
    check_batch(student_feat, teacher_feat, "student feature", "teacher feature", min_ndim=4)
    teacher_feat = teacher_feat.detach()
    size = (min(student_feat.shape[2], teacher_feat.shape[2]), min(student_feat.shape[3], teacher_feat.shape[3]))
    if tuple(student_feat.shape[2:]) != size:
        student_feat = F.adaptive_avg_pool2d(student_feat, size)  # [B, Cs, h, w]
    if tuple(teacher_feat.shape[2:]) != size:
        teacher_feat = F.adaptive_avg_pool2d(teacher_feat, size)  # [B, Ct, h, w]
    return (attention_map(student_feat) - attention_map(teacher_feat)).pow(2).mean()


def at_layer(shapes: Shapes, other: Shapes) -> str:
    """The last map of at least AT_MIN_MAP × AT_MIN_MAP: a 3×3 map says little about where a network
    looks, and the paper's β = 1000 was set for maps of 8×8 and larger (the loss is a mean over H·W,
    so small maps weigh far more)."""
    large = [k for k in maps_of(shapes) if min(shapes[k][1:]) >= AT_MIN_MAP]
    return large[-1] if large else last_block(shapes)


AT = Method(
    "at", "Attention transfer", kind="features", needs="maps", loss=at_loss,
    formula=r"\tfrac{\beta}{2}\,\mathrm{mean}\big(a(f_s) - a(f_t)\big)^2,\ a(f)=\frac{\mathrm{vec}(\sum_c f_c^2)}{\lVert\cdot\rVert_2}",
    paper="Zagoruyko & Komodakis 2017", transfers="where the network looks (spatial attention maps)",
    default_weight=1000.0, default_layer=at_layer,
    note=f"Needs CNN feature maps on both networks; by default the last map of at least {AT_MIN_MAP}×{AT_MIN_MAP} "
         "(stage2 of the MNIST CNN); maps of different sizes are pooled to the smaller one.",
)
