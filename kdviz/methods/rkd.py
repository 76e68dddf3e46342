"""Relational KD (Park et al. 2019): match the geometry of the batch, by distances and by angles."""
from __future__ import annotations

import torch
import torch.nn.functional as F

from kdviz.losses import check_batch
from kdviz.methods.registry import Method, embedding_layer

RKD_ANGLE_MAX_BATCH = 64  # the RKD angle term builds a [B, B, B] tensor: O(B³) memory


def _check_embeddings(student_emb: torch.Tensor, teacher_emb: torch.Tensor) -> None:
    check_batch(student_emb, teacher_emb, "student embedding", "teacher embedding")
    if student_emb.shape[0] < 2:
        raise ValueError(f"RKD needs a batch of at least 2 samples, got shape {tuple(student_emb.shape)}")


def _pairwise_distances(e: torch.Tensor) -> torch.Tensor:
    """Euclidean distances ``[B, D]`` → ``[B, B]`` via the Gram matrix, diagonal exactly 0, finite grads."""
    sq = e.pow(2).sum(dim=1)  # [B]
    d2 = (sq.unsqueeze(1) + sq.unsqueeze(0) - 2.0 * e @ e.t()).clamp_min(1e-12)  # [B, B]
    off_diag = 1.0 - torch.eye(e.shape[0], dtype=e.dtype, device=e.device)  # [B, B]
    return d2.sqrt() * off_diag  # sqrt never sees 0, so its gradient stays finite


def _mean_normalised_distances(e: torch.Tensor) -> torch.Tensor:
    d = _pairwise_distances(e)  # [B, B]
    positive = d[d > 0]  # distinct pairs i != j (the diagonal is exactly 0)
    return d / positive.mean().clamp_min(1e-12)


def rkd_distance_loss(student_emb: torch.Tensor, teacher_emb: torch.Tensor) -> torch.Tensor:
    """Park et al. 2019, "Relational Knowledge Distillation", distance term: L = mean_ij huber(ψ_s(i,j), ψ_t(i,j)).

    ψ(i,j) = ‖e_i − e_j‖ / μ with μ the mean distance over distinct pairs. Embeddings are flattened
    to ``[B, Ds]`` / ``[B, Dt]`` (dims may differ, batch must match, B ≥ 2). As in the reference code
    the Huber mean runs over the full ``[B, B]`` matrix (its zero diagonal included).
    """
    _check_embeddings(student_emb, teacher_emb)
    s = student_emb.flatten(1)  # [B, Ds]
    t = teacher_emb.detach().flatten(1)  # [B, Dt]
    return F.smooth_l1_loss(_mean_normalised_distances(s), _mean_normalised_distances(t))


def _triplet_cosines(e: torch.Tensor) -> torch.Tensor:
    """``[B, D]`` → ``[B, B, B]`` with [j, i, k] = cos∠(e_i − e_j, e_k − e_j) (0 where a vector is 0)."""
    diff = F.normalize(e.unsqueeze(0) - e.unsqueeze(1), p=2, dim=2)  # [B(j), B(i), D] = e_i − e_j
    return torch.bmm(diff, diff.transpose(1, 2))  # [B(j), B(i), B(k)]


def rkd_angle_loss(student_emb: torch.Tensor, teacher_emb: torch.Tensor) -> torch.Tensor:
    """Park et al. 2019 RKD angle term: L = mean_ijk huber(cos∠_s(i,j,k), cos∠_t(i,j,k)), angle at e_j.

    Embeddings are flattened to ``[B, Ds]`` / ``[B, Dt]`` (dims may differ, batch must match, B ≥ 2).
    The term needs ``[B, B, B]`` tensors (O(B³) memory), so only the first ``RKD_ANGLE_MAX_BATCH``
    samples of the batch are used.
    """
    _check_embeddings(student_emb, teacher_emb)
    s = student_emb[:RKD_ANGLE_MAX_BATCH].flatten(1)  # [b, Ds], b = min(B, RKD_ANGLE_MAX_BATCH)
    t = teacher_emb[:RKD_ANGLE_MAX_BATCH].detach().flatten(1)  # [b, Dt]
    return F.smooth_l1_loss(_triplet_cosines(s), _triplet_cosines(t))


RKD_D = Method(
    "rkd_d", "RKD distance", kind="relations", needs="features", loss=rkd_distance_loss,
    formula=r"\sum_{i,j} \ell_\delta\big(\tfrac{\lVert s_i-s_j\rVert}{\mu_s}, \tfrac{\lVert t_i-t_j\rVert}{\mu_t}\big)",
    paper="Park et al. 2019", transfers="the geometry of the batch: pairwise distances",
    default_weight=25.0, default_layer=embedding_layer,
)
RKD_A = Method(
    "rkd_a", "RKD angle", kind="relations", needs="features", loss=rkd_angle_loss,
    formula=r"\sum_{i,j,k} \ell_\delta\big(\cos\angle s_i s_j s_k, \cos\angle t_i t_j t_k\big)",
    paper="Park et al. 2019", transfers="the geometry of the batch: angles of triplets",
    default_weight=50.0, default_layer=embedding_layer,
    note=f"The angle term is cubic in the batch size ([B, B, B] tensors), so it sees only the first "
         f"{RKD_ANGLE_MAX_BATCH} samples of each batch.",
)
