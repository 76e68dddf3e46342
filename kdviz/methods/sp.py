"""Similarity-preserving KD (Tung & Mori 2019): the student must find the same samples similar."""
from __future__ import annotations

import torch
import torch.nn.functional as F

from kdviz.losses import check_batch
from kdviz.methods.registry import Method, last_block


def sp_loss(student_feat: torch.Tensor, teacher_feat: torch.Tensor) -> torch.Tensor:
    """Tung & Mori 2019, "Similarity-Preserving Knowledge Distillation": L = ‖norm(G_s) − norm(G_t)‖_F² / B².

    G = f fᵀ on features flattened to ``[B, -1]`` (dims may differ, batch must match); ``norm`` L2-normalises
    each row of G.
    """
    check_batch(student_feat, teacher_feat, "student feature", "teacher feature")
    b = student_feat.shape[0]
    s = student_feat.reshape(b, -1)  # [B, Ds]
    t = teacher_feat.detach().reshape(b, -1)  # [B, Dt]
    g_s = F.normalize(s @ s.t(), p=2, dim=1)  # [B, B]
    g_t = F.normalize(t @ t.t(), p=2, dim=1)  # [B, B]
    return (g_s - g_t).pow(2).sum() / (b * b)


SP = Method(
    "sp", "Similarity-preserving", kind="relations", needs="features", loss=sp_loss,
    formula=r"\tfrac{1}{B^2}\lVert \hat G_s - \hat G_t \rVert_F^2,\ G = f f^\top",
    paper="Tung & Mori 2019", transfers="which samples the network finds similar",
    default_weight=3000.0, default_layer=last_block,
)
