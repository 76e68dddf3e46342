"""Distillation losses as small pure tensor functions (no state, no Streamlit).

Every function validates its inputs and raises ``ValueError`` naming the offending
values or shapes: a mismatched pair of logits must never broadcast silently.
Conventions: logits are raw (pre-softmax); ``alpha`` weights the *distillation* term.
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F

IGNORE_INDEX = -100


# ----------------------------------------------------------------------------- checks
def check_temperature(T: float) -> float:
    if not isinstance(T, (int, float)) or not math.isfinite(T) or T <= 0:
        raise ValueError(f"temperature T must be a finite number > 0, got T={T!r}")
    return float(T)


def check_alpha(alpha: float) -> float:
    if not isinstance(alpha, (int, float)) or not math.isfinite(alpha) or not 0.0 <= alpha <= 1.0:
        raise ValueError(f"alpha must lie in [0, 1] (it weights the distillation term), got alpha={alpha!r}")
    return float(alpha)


def check_same_shape(a: torch.Tensor, b: torch.Tensor, what_a: str, what_b: str) -> None:
    if a.shape != b.shape:
        raise ValueError(
            f"{what_a} shape {tuple(a.shape)} does not match {what_b} shape {tuple(b.shape)}; "
            "they must be identical (no broadcasting)"
        )


def check_finite(x: torch.Tensor, what: str) -> None:
    if not torch.isfinite(x).all():
        bad = int((~torch.isfinite(x)).sum())
        raise ValueError(f"{what} contains {bad} non-finite value(s) (NaN or ±inf)")


def check_labels(labels: torch.Tensor, logits: torch.Tensor) -> None:
    if labels.shape != logits.shape[:-1]:
        raise ValueError(
            f"labels shape {tuple(labels.shape)} does not match logits shape {tuple(logits.shape)} "
            f"(expected labels of shape {tuple(logits.shape[:-1])})"
        )
    num_classes = logits.shape[-1]
    valid = labels != IGNORE_INDEX
    bad = valid & ((labels < 0) | (labels >= num_classes))
    if bad.any():
        values = sorted(set(labels[bad].tolist()))[:5]
        raise ValueError(f"labels out of range [0, {num_classes - 1}] (or {IGNORE_INDEX} to ignore): {values}")


# ----------------------------------------------------------------------------- soft targets
def soft_targets(logits: torch.Tensor, T: float) -> torch.Tensor:
    """Hinton, Vinyals & Dean 2015, "Distilling the Knowledge in a Neural Network": p = softmax(z / T)."""
    T = check_temperature(T)
    return F.softmax(logits / T, dim=-1)


def entropy(probs: torch.Tensor) -> torch.Tensor:
    """Shannon entropy in nats over the last dimension: H = -Σ p log p (0 log 0 := 0)."""
    return -(probs * torch.log(probs.clamp_min(1e-30))).sum(-1)


def kd_loss(
    student_logits: torch.Tensor,
    teacher_logits: torch.Tensor,
    T: float,
    mask: torch.Tensor | None = None,
) -> torch.Tensor:
    """Hinton et al. 2015 soft-target loss: KL(softmax(t/T) ‖ softmax(s/T)) · T², mean over counted positions.

    Shapes: ``[B, C]`` or token-level ``[B, S, C]`` (any leading dims are positions).
    ``mask`` (bool, shape = leading dims) selects the positions that count. The teacher is
    detached. Both sides use ``log_softmax`` so logits of ±1000 stay finite. The T² factor
    keeps gradient magnitudes comparable across temperatures (∂/∂s scales as 1/T²).
    """
    T = check_temperature(T)
    check_same_shape(student_logits, teacher_logits, "student logits", "teacher logits")
    check_finite(student_logits, "student logits")
    check_finite(teacher_logits, "teacher logits")
    log_p_t = F.log_softmax(teacher_logits.detach() / T, dim=-1)
    log_p_s = F.log_softmax(student_logits / T, dim=-1)
    # Per-position KL: Σ_c p_t (log p_t − log p_s); shape = leading dims.
    kl = (log_p_t.exp() * (log_p_t - log_p_s)).sum(-1)
    if mask is not None:
        if mask.shape != kl.shape:
            raise ValueError(f"mask shape {tuple(mask.shape)} does not match positions shape {tuple(kl.shape)}")
        mask = mask.to(torch.bool)
        count = mask.sum()
        if int(count) == 0:
            raise ValueError("mask selects no positions: nothing to distil")
        return (kl * mask).sum() / count * T * T
    return kl.mean() * T * T


def ce_loss(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Cross-entropy on hard labels, ignoring ``-100``; 0 when no label is present (unlabelled batch)."""
    check_labels(labels, logits)
    valid = labels != IGNORE_INDEX
    if not bool(valid.any()):
        return logits.sum() * 0.0  # keeps the graph (and the device) without a NaN from an empty mean
    return F.cross_entropy(logits.reshape(-1, logits.shape[-1]), labels.reshape(-1), ignore_index=IGNORE_INDEX)


def distillation_loss(
    student_logits: torch.Tensor,
    teacher_logits: torch.Tensor,
    labels: torch.Tensor,
    T: float,
    alpha: float,
) -> dict[str, torch.Tensor]:
    """Hinton et al. 2015 objective: total = alpha · kd + (1 − alpha) · ce (alpha weights distillation).

    Returns ``{"total", "kd", "ce"}`` with the *unweighted* kd and ce; labels may hold -100.
    """
    alpha = check_alpha(alpha)
    kd = kd_loss(student_logits, teacher_logits, T)
    ce = ce_loss(student_logits, labels)
    return {"total": alpha * kd + (1.0 - alpha) * ce, "kd": kd, "ce": ce}


# ----------------------------------------------------------------------------- feature / relation losses
# Every loss below treats the teacher as frozen: its tensors are detached, so gradients reach
# the student only. Loss weights (e.g. 1000 for AT, 25/50 for RKD) are applied by the caller.

RKD_ANGLE_MAX_BATCH = 64  # the RKD angle term builds a [B, B, B] tensor: O(B³) memory


def _check_batch(a: torch.Tensor, b: torch.Tensor, what_a: str, what_b: str, min_ndim: int = 2) -> None:
    for x, what in ((a, what_a), (b, what_b)):
        if x.ndim < min_ndim:
            raise ValueError(f"{what} must have at least {min_ndim} dims [B, ...], got shape {tuple(x.shape)}")
    if a.shape[0] != b.shape[0]:
        raise ValueError(
            f"batch sizes differ: {what_a} shape {tuple(a.shape)} vs {what_b} shape {tuple(b.shape)}"
        )


def fitnet_loss(student_feat: torch.Tensor, teacher_feat: torch.Tensor) -> torch.Tensor:
    """Romero et al. 2015, "FitNets: Hints for Thin Deep Nets": L = mean((r(f_s) − f_t)²).

    ``student_feat`` must already be regressed (see ``kdviz.methods.adapters.make_regressor``) to the
    teacher's exact shape, e.g. ``[B, C, H, W]`` or ``[B, D]``; no broadcasting.
    """
    check_same_shape(student_feat, teacher_feat, "regressed student feature", "teacher feature")
    return F.mse_loss(student_feat, teacher_feat.detach())


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
    _check_batch(student_feat, teacher_feat, "student feature", "teacher feature", min_ndim=4)
    teacher_feat = teacher_feat.detach()
    size = (min(student_feat.shape[2], teacher_feat.shape[2]), min(student_feat.shape[3], teacher_feat.shape[3]))
    if tuple(student_feat.shape[2:]) != size:
        student_feat = F.adaptive_avg_pool2d(student_feat, size)  # [B, Cs, h, w]
    if tuple(teacher_feat.shape[2:]) != size:
        teacher_feat = F.adaptive_avg_pool2d(teacher_feat, size)  # [B, Ct, h, w]
    return (attention_map(student_feat) - attention_map(teacher_feat)).pow(2).mean()


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
    _check_batch(student_emb, teacher_emb, "student embedding", "teacher embedding")
    if student_emb.shape[0] < 2:
        raise ValueError(f"RKD needs a batch of at least 2 samples, got shape {tuple(student_emb.shape)}")
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
    _check_batch(student_emb, teacher_emb, "student embedding", "teacher embedding")
    if student_emb.shape[0] < 2:
        raise ValueError(f"RKD needs a batch of at least 2 samples, got shape {tuple(student_emb.shape)}")
    s = student_emb[:RKD_ANGLE_MAX_BATCH].flatten(1)  # [b, Ds], b = min(B, RKD_ANGLE_MAX_BATCH)
    t = teacher_emb[:RKD_ANGLE_MAX_BATCH].detach().flatten(1)  # [b, Dt]
    return F.smooth_l1_loss(_triplet_cosines(s), _triplet_cosines(t))


def sp_loss(student_feat: torch.Tensor, teacher_feat: torch.Tensor) -> torch.Tensor:
    """Tung & Mori 2019, "Similarity-Preserving Knowledge Distillation": L = ‖norm(G_s) − norm(G_t)‖_F² / B².

    G = f fᵀ on features flattened to ``[B, -1]`` (dims may differ, batch must match); ``norm`` L2-normalises
    each row of G.
    """
    _check_batch(student_feat, teacher_feat, "student feature", "teacher feature")
    b = student_feat.shape[0]
    s = student_feat.reshape(b, -1)  # [B, Ds]
    t = teacher_feat.detach().reshape(b, -1)  # [B, Dt]
    g_s = F.normalize(s @ s.t(), p=2, dim=1)  # [B, B]
    g_t = F.normalize(t @ t.t(), p=2, dim=1)  # [B, B]
    return (g_s - g_t).pow(2).sum() / (b * b)


def _check_weight(value: float, name: str) -> float:
    if not isinstance(value, (int, float)) or not math.isfinite(value) or value < 0:
        raise ValueError(f"{name} must be a finite number >= 0, got {name}={value!r}")
    return float(value)


def _check_dkd_labels(labels: torch.Tensor, logits: torch.Tensor) -> None:
    if labels.shape != logits.shape[:1]:
        raise ValueError(
            f"labels shape {tuple(labels.shape)} does not match logits shape {tuple(logits.shape)} "
            f"(expected labels of shape {tuple(logits.shape[:1])})"
        )
    bad = (labels < 0) | (labels >= logits.shape[1])
    if bad.any():
        values = sorted(set(labels[bad].tolist()))[:5]
        raise ValueError(
            f"DKD labels must lie in [0, {logits.shape[1] - 1}] (no ignore index {IGNORE_INDEX}), got {values}"
        )


def dkd_loss(
    student_logits: torch.Tensor,
    teacher_logits: torch.Tensor,
    labels: torch.Tensor,
    alpha: float,
    beta: float,
    T: float,
) -> torch.Tensor:
    """Zhao et al. 2022, "Decoupled Knowledge Distillation": L = (α·TCKD + β·NCKD) · T², batchmean.

    TCKD = KL([p_t, 1−p_t]_teacher ‖ [p_t, 1−p_t]_student); NCKD = KL over the non-target classes only.
    Logits ``[B, C]`` (C ≥ 2), labels ``[B]`` in [0, C−1] (no -100). The target logit is removed
    exactly (the limit of mdistiller's "− 1000·onehot" mask), and log(1 − p_t) is computed as
    logsumexp(non-target) − logsumexp(all), so logits of ±1000 stay finite.
    """
    alpha, beta, T = _check_weight(alpha, "alpha"), _check_weight(beta, "beta"), check_temperature(T)
    check_same_shape(student_logits, teacher_logits, "student logits", "teacher logits")
    if student_logits.ndim != 2 or student_logits.shape[1] < 2:
        raise ValueError(f"DKD needs logits of shape [B, C] with C >= 2, got {tuple(student_logits.shape)}")
    _check_dkd_labels(labels, student_logits)
    check_finite(student_logits, "student logits")
    check_finite(teacher_logits, "teacher logits")
    b, c = student_logits.shape
    target = F.one_hot(labels, c).to(torch.bool)  # [B, C]

    def parts(z: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        z = z / T  # [B, C]
        z_nt = z[~target].reshape(b, c - 1)  # [B, C−1] non-target logits
        lse = torch.logsumexp(z, dim=1)  # [B]
        log_bin = torch.stack([z[target] - lse, torch.logsumexp(z_nt, dim=1) - lse], dim=1)  # [B, 2]
        return log_bin, F.log_softmax(z_nt, dim=1)  # [B, 2], [B, C−1]

    s_bin, s_nt = parts(student_logits)
    t_bin, t_nt = parts(teacher_logits.detach())
    tckd = (t_bin.exp() * (t_bin - s_bin)).sum() / b
    nckd = (t_nt.exp() * (t_nt - s_nt)).sum() / b
    return (alpha * tckd + beta * nckd) * T * T


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
