"""Token-level KD for sequences: the reduction trap, per-position KL, and vocabulary alignment.

The KD term itself is ``kdviz.losses.kd_loss`` (masked mean over counted positions). The one
other formula here is the *trap*: ``F.kl_div(..., reduction="batchmean")`` over ``[B, S, V]``
divides the sum over every position (padding included) by B, not by the number of tokens, so
the KD term grows with sequence length and silently outweighs CE.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

from kdviz.lm.corpus import Vocab
from kdviz.losses import check_alpha, check_same_shape, check_temperature, kd_loss

REDUCTIONS = ("token", "batchmean")  # masked per-token mean (right) | F.kl_div batchmean (the trap)


def kd_batchmean(student_logits: torch.Tensor, teacher_logits: torch.Tensor, T: float) -> torch.Tensor:
    """The common mistake: ``F.kl_div(log p_s, log p_t, reduction="batchmean") · T²`` on ``[B, S, V]``
    = (sum of KL over all B·S positions, padding included) / B."""
    T = check_temperature(T)
    check_same_shape(student_logits, teacher_logits, "student logits", "teacher logits")
    log_p_s = F.log_softmax(student_logits / T, dim=-1)
    log_p_t = F.log_softmax(teacher_logits.detach() / T, dim=-1)
    return F.kl_div(log_p_s, log_p_t, reduction="batchmean", log_target=True) * T * T


def kd_term(student_logits, teacher_logits, T: float, mask: torch.Tensor, reduction: str = "token",
            check: bool = True) -> torch.Tensor:
    """``check=False`` skips ``kd_loss``'s input checks (see there)."""
    if reduction == "token":
        return kd_loss(student_logits, teacher_logits, T, mask=mask, check=check)
    if reduction == "batchmean":
        return kd_batchmean(student_logits, teacher_logits, T)
    raise ValueError(f"reduction must be one of {REDUCTIONS}, got {reduction!r}")


def reductions(student_logits, teacher_logits, T: float, mask: torch.Tensor) -> dict[str, float]:
    """The same batch's KD term three ways: batchmean (÷B), per-token mean (÷B·S), masked per-token mean."""
    return {
        "batchmean": float(kd_batchmean(student_logits, teacher_logits, T)),
        "token_mean": float(kd_loss(student_logits, teacher_logits, T)),
        "masked_token_mean": float(kd_loss(student_logits, teacher_logits, T, mask=mask)),
    }


def effective_kd_share(alpha: float, kd_scale: float) -> float:
    """The KD term's share of the objective's weight when the KD value is ``kd_scale`` × the right one:
    alpha·s / (alpha·s + 1 − alpha). With batchmean, s ≈ tokens per sequence."""
    alpha = check_alpha(alpha)
    den = alpha * kd_scale + (1.0 - alpha)
    return alpha * kd_scale / den if den > 0 else 0.0


def per_position_kd(student_logits: torch.Tensor, teacher_logits: torch.Tensor, T: float) -> list[float]:
    """KD term (KL · T²) at each position of one sequence ``[S, V]`` — ``kd_loss`` on that row alone."""
    if student_logits.ndim != 2:
        raise ValueError(f"one sequence's logits must be [S, V], got shape {tuple(student_logits.shape)}")
    return [float(kd_loss(student_logits[i:i + 1], teacher_logits[i:i + 1], T)) for i in range(student_logits.shape[0])]


def bsv_worked_example(student_logits: torch.Tensor, teacher_logits: torch.Tensor, mask: torch.Tensor, T: float) -> dict:
    """Steps of the ``[B, S, V]`` calculator: per-position KL·T², then batchmean vs per-token means.

    Returns plain numbers: ``per_position`` ([B][S]), ``total`` (sum over all positions),
    ``B``, ``positions``, ``counted``, and the three reductions.
    """
    if student_logits.ndim != 3:
        raise ValueError(f"the [B, S, V] calculator needs 3-d logits, got shape {tuple(student_logits.shape)}")
    if mask.shape != student_logits.shape[:2]:
        raise ValueError(f"mask shape {tuple(mask.shape)} does not match positions {tuple(student_logits.shape[:2])}")
    per_pos = [per_position_kd(s, t, T) for s, t in zip(student_logits, teacher_logits)]
    total = sum(sum(row) for row in per_pos)
    b, s = mask.shape
    return {"per_position": per_pos, "total": total, "B": b, "positions": b * s, "counted": int(mask.sum()),
            "mask": mask.tolist(), **reductions(student_logits, teacher_logits, T, mask)}


# ----------------------------------------------------------------------------- vocabulary alignment
def check_vocab(teacher: Vocab, student: Vocab) -> None:
    """Refuse a pair whose vocabularies differ (in size or order): logits would be compared index by index."""
    if teacher.chars != student.chars:
        how = "sizes differ" if teacher.size != student.size else "same size, different order"
        raise ValueError(
            f"teacher vocabulary ({teacher.size} tokens: {teacher.chars!r}) does not match the student vocabulary "
            f"({student.size} tokens: {student.chars!r}) — {how}; KD compares logits index by index, "
            "so map the teacher onto the shared vocabulary first (align the vocabularies)")


@dataclass(frozen=True)
class VocabMap:
    """Teacher ↔ student by token string: ``index[i]`` is the teacher id of student token i — used to
    translate the student's input ids for the teacher, and to read the teacher's outputs in student order."""

    teacher: Vocab
    student: Vocab
    index: tuple[int, ...]
    dropped: tuple[str, ...]  # teacher tokens the student lacks: their probability is dropped


def vocab_map(teacher: Vocab, student: Vocab) -> VocabMap:
    unreadable = [c for c in student.chars if c not in teacher.chars]
    if unreadable:
        raise ValueError(f"the teacher cannot read student characters {unreadable}: its vocabulary "
                         f"({teacher.size} tokens) lacks them, so it cannot be fed the student's text")
    index = tuple(teacher.chars.index(c) for c in student.chars)
    return VocabMap(teacher, student, index, tuple(c for c in teacher.chars if c not in student.chars))


def to_teacher_ids(ids: torch.Tensor, vmap: VocabMap) -> torch.Tensor:
    return torch.tensor(vmap.index, dtype=torch.long, device=ids.device)[ids]


def align_logits(teacher_logits: torch.Tensor, vmap: VocabMap) -> torch.Tensor:
    """Teacher logits ``[..., Vt]`` → ``[..., Vs]`` in the student's order. Softmax of the result is the
    teacher's distribution restricted to shared tokens and renormalised (at any T)."""
    if teacher_logits.shape[-1] != vmap.teacher.size:
        raise ValueError(f"teacher logits have {teacher_logits.shape[-1]} classes, its vocabulary {vmap.teacher.size}")
    index = torch.tensor(vmap.index, dtype=torch.long, device=teacher_logits.device)
    return teacher_logits.index_select(-1, index)


def dropped_mass(teacher_logits: torch.Tensor, vmap: VocabMap, T: float, mask: torch.Tensor | None = None) -> float:
    """Mean teacher probability (at T) on tokens the student lacks — removed by the renormalisation."""
    p = F.softmax(teacher_logits.detach() / check_temperature(T), dim=-1)
    kept = p.index_select(-1, torch.tensor(vmap.index, dtype=torch.long, device=p.device)).sum(-1)
    lost = 1.0 - kept
    return float(lost[mask].mean() if mask is not None else lost.mean())


# ----------------------------------------------------------------------------- the [B, S, V] calculator's input
BSV_DEFAULTS = {"teacher": "2, 1, 0; 0, 2, 1; 1, 0, 2 | 2, 0, 1; 0, 1, 2; 3, -1, 0",
                "student": "1, 1, 0; 0, 1, 1; 1, 0, 1 | 1, 0, 1; 0, 1, 1; -2, 2, 0", "lengths": "3, 2"}


def parse_bsv(text: str, what: str) -> torch.Tensor:
    """``"a, b; c, d | e, f; g, h"`` → ``[B, S, V]`` (``|`` separates sequences, ``;`` positions)."""
    try:
        rows = [[[float(v) for v in pos.split(",")] for pos in seq.split(";")] for seq in str(text).split("|")]
    except ValueError as err:
        raise ValueError(f"{what}: numbers separated by ',' ';' '|' expected ({err})") from err
    shapes = {(len(seq), len(pos)) for seq in rows for pos in seq}
    if len(shapes) != 1:
        raise ValueError(f"{what}: every sequence needs the same number of positions and every position the same "
                         f"number of values, got (positions, values) {sorted(shapes)}")
    return torch.tensor(rows, dtype=torch.float64)


def lengths_mask(text: str, batch: int, positions: int) -> torch.Tensor:
    """``"3, 2"`` (real positions per sequence) → bool mask ``[B, S]``; the rest is padding."""
    try:
        lengths = [int(v) for v in str(text).split(",")]
    except ValueError as err:
        raise ValueError(f"lengths: whole numbers separated by ',' expected, got {text!r}") from err
    if len(lengths) != batch or any(not 1 <= n <= positions for n in lengths):
        raise ValueError(f"lengths: need {batch} numbers in [1, {positions}] (one per sequence), got {lengths}")
    return torch.arange(positions)[None, :] < torch.tensor(lengths)[:, None]
