"""Cosine hidden-state alignment: DistilBERT's third loss (Sanh et al. 2019), 1 − cos(h_s, h_t)."""
from __future__ import annotations

import torch
import torch.nn.functional as F

from kdviz.losses import check_same_shape
from kdviz.methods.adapters import per_sample_regressor
from kdviz.methods.registry import Method, embedding_layer


def cosine_loss(student_feat: torch.Tensor, teacher_feat: torch.Tensor) -> torch.Tensor:
    """Sanh et al. 2019, "DistilBERT": L = mean_i (1 − cos(h_s,i, h_t,i)), each sample's feature flattened.

    ``student_feat`` must already have the teacher's exact shape ``[B, ...]`` (a linear / 1×1 adapter
    maps it where widths differ); only the direction of each feature counts, not its length.
    """
    check_same_shape(student_feat, teacher_feat, "adapted student feature", "teacher feature")
    b = student_feat.shape[0]
    cos = F.cosine_similarity(student_feat.reshape(b, -1), teacher_feat.detach().reshape(b, -1), dim=1)  # [B]
    return (1.0 - cos).mean()


COSINE = Method(
    "cosine", "Cosine hidden states", kind="features", needs="features", loss=cosine_loss,
    formula=r"\tfrac{1}{B}\sum_i \big(1 - \cos(r(h_{s,i}), h_{t,i})\big)",
    paper="Sanh et al. 2019 (DistilBERT)", transfers="the direction of the hidden state, sample by sample",
    default_weight=1.0,
    adapter=per_sample_regressor, default_layer=embedding_layer,
    note="DistilBERT aligns equal-width hidden states directly; where widths differ a linear (or 1×1 conv) "
         "adapter r, trained with the student, maps the student's state first.",
)
