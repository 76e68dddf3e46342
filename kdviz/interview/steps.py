"""Distillation training steps, each with one classic bug, and their fixes: the code the Interview page shows.

Every function computes the loss of one training step, ``step(student, teacher, x, y, T, alpha) -> loss``,
where both models return logits (``kdviz.interview.runner.LogitsOnly`` adapts kdviz models). The page
shows a function's own source (``inspect.getsource``) as the snippet, so what the candidate reads is
exactly what "Run both" trains with. That is also why the buggy functions carry no comments about their
bug: a comment would give the answer away. The bugs are explained in ``kdviz.interview.bugs``.

The fixes call ``kdviz.losses.kd_loss`` / ``ce_loss`` instead of writing the formula again.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

from kdviz.losses import ce_loss, kd_loss
from kdviz.data import HIDDEN_LABEL


# ----------------------------------------------------------------------------- buggy steps
def mean_reduction_step(student, teacher, x, y, T=4.0, alpha=0.9):
    teacher.eval()
    with torch.no_grad():
        t_logits = teacher(x)
    s_logits = student(x)
    soft = F.kl_div(
        F.log_softmax(s_logits / T, dim=-1),
        F.softmax(t_logits / T, dim=-1),
        reduction="mean",
    ) * T * T
    hard = F.cross_entropy(s_logits, y)
    return alpha * soft + (1 - alpha) * hard


def missing_t2_step(student, teacher, x, y, T=4.0, alpha=0.9):
    teacher.eval()
    with torch.no_grad():
        t_logits = teacher(x)
    s_logits = student(x)
    soft = F.kl_div(
        F.log_softmax(s_logits / T, dim=-1),
        F.softmax(t_logits / T, dim=-1),
        reduction="batchmean",
    )
    hard = F.cross_entropy(s_logits, y)
    return alpha * soft + (1 - alpha) * hard


def log_of_softmax_step(student, teacher, x, y, T=1.0, alpha=0.9):
    teacher.eval()
    with torch.no_grad():
        t_logits = teacher(x).half()  # fp16 logits, as from a half-precision model
    s_logits = student(x).half()
    log_q = torch.log(F.softmax(s_logits / T, dim=-1))
    p = F.softmax(t_logits / T, dim=-1)
    soft = F.kl_div(log_q, p, reduction="batchmean") * T * T
    hard = F.cross_entropy(s_logits.float(), y)
    return alpha * soft + (1 - alpha) * hard


def teacher_train_mode_step(student, teacher, x, y, T=4.0, alpha=0.9):
    for model in (student, teacher):
        model.train()
    with torch.no_grad():
        t_logits = teacher(x)
    s_logits = student(x)
    soft = F.kl_div(
        F.log_softmax(s_logits / T, dim=-1),
        F.softmax(t_logits / T, dim=-1),
        reduction="batchmean",
    ) * T * T
    hard = F.cross_entropy(s_logits, y)
    return alpha * soft + (1 - alpha) * hard


def student_only_t_step(student, teacher, x, y, T=4.0, alpha=0.9):
    teacher.eval()
    with torch.no_grad():
        t_logits = teacher(x)
    s_logits = student(x)
    soft = F.kl_div(
        F.log_softmax(s_logits / T, dim=-1),
        F.softmax(t_logits, dim=-1),
        reduction="batchmean",
    ) * T * T
    hard = F.cross_entropy(s_logits, y)
    return alpha * soft + (1 - alpha) * hard


def swapped_kl_step(student, teacher, x, y, T=4.0, alpha=0.9):
    teacher.eval()
    with torch.no_grad():
        t_logits = teacher(x)
    s_logits = student(x)
    soft = F.kl_div(
        F.log_softmax(t_logits / T, dim=-1),
        F.softmax(s_logits / T, dim=-1),
        reduction="batchmean",
    ) * T * T
    hard = F.cross_entropy(s_logits, y)
    return alpha * soft + (1 - alpha) * hard


def alpha_swapped_step(student, teacher, x, y, T=4.0, alpha=0.9):
    # Recipe from the paper we reproduce: T = 4, alpha = 0.9 on the distillation term.
    teacher.eval()
    with torch.no_grad():
        t_logits = teacher(x)
    s_logits = student(x)
    soft = F.kl_div(
        F.log_softmax(s_logits / T, dim=-1),
        F.softmax(t_logits / T, dim=-1),
        reduction="batchmean",
    ) * T * T
    hard = F.cross_entropy(s_logits, y)
    return alpha * hard + (1 - alpha) * soft


def padded_batchmean_step(student, teacher, tokens, labels, T=2.0, alpha=0.5):
    # tokens: [B, S, ...] padded to the longest sequence; labels: [B, S], -100 on padding
    teacher.eval()
    with torch.no_grad():
        t_logits = teacher(tokens)  # [B, S, V]
    s_logits = student(tokens)  # [B, S, V]
    soft = F.kl_div(
        F.log_softmax(s_logits / T, dim=-1),
        F.softmax(t_logits / T, dim=-1),
        reduction="batchmean",
    ) * T * T
    hard = F.cross_entropy(s_logits.flatten(0, 1), labels.flatten(), ignore_index=-100)
    return alpha * soft + (1 - alpha) * hard


# ----------------------------------------------------------------------------- fixes
def fixed_step(student, teacher, x, y, T=4.0, alpha=0.9):
    teacher.eval()
    with torch.no_grad():
        t_logits = teacher(x)
    s_logits = student(x)
    return alpha * kd_loss(s_logits, t_logits, T) + (1 - alpha) * ce_loss(s_logits, y)


def fixed_half_step(student, teacher, x, y, T=1.0, alpha=0.9):
    teacher.eval()
    with torch.no_grad():
        t_logits = teacher(x).half()  # fp16 logits, as from a half-precision model
    s_logits = student(x).half()
    soft = kd_loss(s_logits, t_logits, T)  # log_softmax inside: finite in fp16 too
    return alpha * soft.float() + (1 - alpha) * ce_loss(s_logits.float(), y)


def fixed_token_step(student, teacher, tokens, labels, T=2.0, alpha=0.5):
    # tokens: [B, S, ...] padded to the longest sequence; labels: [B, S], -100 on padding
    teacher.eval()
    with torch.no_grad():
        t_logits = teacher(tokens)  # [B, S, V]
    s_logits = student(tokens)  # [B, S, V]
    mask = labels != HIDDEN_LABEL  # [B, S]: the real tokens
    soft = kd_loss(s_logits, t_logits, T, mask=mask)  # mean over real tokens only
    return alpha * soft + (1 - alpha) * ce_loss(s_logits, labels)
