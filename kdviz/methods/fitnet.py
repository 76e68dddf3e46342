"""FitNets hints (Romero et al. 2015): a regressed student layer must match a teacher layer."""
from __future__ import annotations

import torch
import torch.nn.functional as F

from kdviz.losses import check_same_shape
from kdviz.methods.adapters import per_sample_regressor
from kdviz.methods.registry import Method, Shapes, embedding_layer, last_block, maps_of


def fitnet_loss(student_feat: torch.Tensor, teacher_feat: torch.Tensor) -> torch.Tensor:
    """Romero et al. 2015, "FitNets: Hints for Thin Deep Nets": L = mean((r(f_s) − f_t)²).

    ``student_feat`` must already be regressed (see :func:`kdviz.methods.adapters.make_regressor`) to
    the teacher's exact shape, e.g. ``[B, C, H, W]`` or ``[B, D]``; no broadcasting.
    """
    check_same_shape(student_feat, teacher_feat, "regressed student feature", "teacher feature")
    return F.mse_loss(student_feat, teacher_feat.detach())


def fitnet_layer(shapes: Shapes, other: Shapes) -> str:
    """The last block when both networks have maps, else the last vector on each side (the regressor pairs them)."""
    return last_block(shapes) if maps_of(shapes) and maps_of(other) else embedding_layer(shapes)


FITNET = Method(
    "fitnet", "FitNets hints", kind="features", needs="features", loss=fitnet_loss,
    formula=r"\lVert r(f_s) - f_t \rVert_2^2", paper="Romero et al. 2015",
    transfers="intermediate activations, through a learned regressor r", default_weight=1.0,
    adapter=per_sample_regressor, default_layer=fitnet_layer,
    note="The regressor r (1×1 conv or linear) is trained jointly with the student, not in a separate stage.",
)
