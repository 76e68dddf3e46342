"""Contrastive representation distillation (Tian et al. 2020), with in-batch negatives."""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from kdviz.losses import check_same_shape
from kdviz.methods.registry import Method, embedding_layer

# Temperature of the contrastive softmax (the paper's nce_t = 0.07).
CRD_TAU = 0.07


def contrastive_loss(student_emb: torch.Tensor, teacher_emb: torch.Tensor, tau: float) -> torch.Tensor:
    """Tian et al. 2020, "Contrastive Representation Distillation" (in-batch InfoNCE form): L = CE(ŝ t̂ᵀ / τ, arange(B)).

    ``student_emb`` and ``teacher_emb`` are ``[B, D]`` with the same D (the caller projects); both are
    L2-normalised; positives are the diagonal pairs (same sample), the rest of the batch are negatives.
    """
    if not isinstance(tau, (int, float)) or not math.isfinite(tau) or tau <= 0:
        raise ValueError(f"temperature tau must be a finite number > 0, got tau={tau!r}")
    if student_emb.ndim != 2 or teacher_emb.ndim != 2:
        raise ValueError(
            f"contrastive loss needs embeddings [B, D]; got student {tuple(student_emb.shape)}, "
            f"teacher {tuple(teacher_emb.shape)}"
        )
    check_same_shape(student_emb, teacher_emb, "student embedding", "teacher embedding")
    s = F.normalize(student_emb, p=2, dim=1)  # [B, D]
    t = F.normalize(teacher_emb.detach(), p=2, dim=1)  # [B, D]
    logits = s @ t.t() / tau  # [B, B], positives on the diagonal
    return F.cross_entropy(logits, torch.arange(s.shape[0], device=s.device))


def crd_term(s_projected: torch.Tensor, t_emb: torch.Tensor) -> torch.Tensor:
    return contrastive_loss(s_projected, t_emb.flatten(1), CRD_TAU)  # the head already projected s to [B, Dt]


def projection_head(s_shape: tuple, t_shape: tuple) -> nn.Module:
    """Student head ``[B, Ds] → [B, Dt]``: the teacher embedding is the common space. A teacher-side
    head would never learn, because ``contrastive_loss`` treats the teacher side as frozen."""
    return nn.Sequential(nn.Flatten(1), nn.Linear(math.prod(s_shape), math.prod(t_shape)))


CRD = Method(
    "crd", "Contrastive (CRD, in-batch)", kind="relations", needs="features", loss=crd_term,
    formula=r"-\tfrac{1}{B}\sum_i \log \frac{e^{s_i\cdot t_i/\tau}}{\sum_j e^{s_i\cdot t_j/\tau}}",
    paper="Tian et al. 2020", transfers="representations: each student embedding must pick out its own teacher embedding",
    default_weight=0.8, adapter=projection_head, default_layer=embedding_layer,
    note=f"In-batch negatives instead of the paper's 16k-sample memory bank; tau={CRD_TAU:g}; a linear head "
         "projects the student embedding into the teacher's embedding space.",
)
