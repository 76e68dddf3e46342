"""Spot-the-bug steps (kdviz/interview/steps.py, bugs.py): each bug's measured effect against a hand computation."""
from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from kdviz.interview.bugs import BUG_IDS, BUGS, check_line, get_bug, statement_lines
from kdviz.losses import kd_loss

B, C = 6, 10


class Const(nn.Module):
    """A teacher whose logits are fixed (the input is ignored), optionally through dropout."""

    def __init__(self, logits: torch.Tensor, dropout: float = 0.0) -> None:
        super().__init__()
        self.logits, self.drop = logits, nn.Dropout(dropout)

    def forward(self, x):
        return self.drop(self.logits)


def hand_kl(p_logits: torch.Tensor, q_logits: torch.Tensor) -> torch.Tensor:
    """KL(softmax(p) ‖ softmax(q)) per row, from the definition Σ p (log p − log q), via exp/sum (no log_softmax)."""
    p = torch.exp(p_logits) / torch.exp(p_logits).sum(-1, keepdim=True)
    q = torch.exp(q_logits) / torch.exp(q_logits).sum(-1, keepdim=True)
    return (p * (torch.log(p) - torch.log(q))).sum(-1)


@pytest.fixture
def logits():
    g = torch.Generator().manual_seed(0)
    return torch.randn(B, C, generator=g, dtype=torch.float64) * 2, torch.randn(B, C, generator=g, dtype=torch.float64) * 2


def run(bug_id, which, s, t, y=None, **kw):
    """The step with the student = identity on its input (so the input *is* the student logits)."""
    bug = get_bug(bug_id)
    y = torch.zeros(s.shape[:-1], dtype=torch.long) if y is None else y
    fn = bug.buggy_loss if which == "buggy" else bug.fixed_loss
    kw = {"T": bug.T, "alpha": 1.0, **kw}
    return fn(nn.Identity(), Const(t), s, y, **kw)


def test_mean_reduction_is_exactly_one_over_c(logits):
    s, t = logits
    T = 4.0
    reference = hand_kl(t / T, s / T).mean() * T * T
    with pytest.warns(UserWarning):  # PyTorch itself warns that 'mean' is not the KL
        buggy = run("mean_reduction", "buggy", s, t)
    assert torch.allclose(run("mean_reduction", "fixed", s, t), reference)
    assert torch.allclose(buggy, reference / C)


def test_missing_t2_shrinks_loss_and_gradient_by_t_squared(logits):
    s, t = logits
    T = 4.0
    grads = {}
    for which in ("buggy", "fixed"):
        x = s.clone().requires_grad_(True)
        loss = run("missing_t2", which, x, t)
        (grads[which],) = torch.autograd.grad(loss, x)
        grads[which + "_loss"] = loss
    assert torch.allclose(grads["fixed_loss"], hand_kl(t / T, s / T).mean() * T * T)
    assert torch.allclose(grads["buggy_loss"] * T * T, grads["fixed_loss"])
    assert torch.allclose(grads["buggy"] * T * T, grads["fixed"])


def test_log_of_softmax_overflows_where_log_softmax_stays_finite():
    s = torch.tensor([[20.0, 0.0, -5.0], [1.0, 2.0, 3.0]])  # a gap of 25 underflows in float16 (min ≈ 6e-8 = e^-16.6)
    t = torch.tensor([[1.0, 0.5, 0.0], [0.0, 1.0, 2.0]])
    buggy = run("log_of_softmax", "buggy", s, t)
    fixed = run("log_of_softmax", "fixed", s, t)
    assert not torch.isfinite(buggy)
    assert torch.isfinite(fixed)
    assert math.isclose(float(fixed), float(hand_kl(t.double(), s.double()).mean()), rel_tol=2e-3)  # fp16 precision
    x = s.clone().requires_grad_(True)
    (grad,) = torch.autograd.grad(run("log_of_softmax", "buggy", x, t), x)
    assert not torch.isfinite(grad).all()  # the NaN reaches the weights


def test_log_of_softmax_is_harmless_while_logits_are_small(logits):
    s, t = (z.float() / 4 for z in logits)
    assert math.isclose(float(run("log_of_softmax", "buggy", s, t)), float(run("log_of_softmax", "fixed", s, t)), rel_tol=5e-3)


def test_train_mode_teacher_gives_random_targets(logits):
    s, t = logits
    bug = get_bug("teacher_train_mode")
    y = torch.zeros(B, dtype=torch.long)
    teacher = Const(t, dropout=0.5)
    torch.manual_seed(0)
    buggy = [float(bug.buggy_loss(nn.Identity(), teacher, s, y, T=4.0, alpha=1.0)) for _ in range(3)]
    assert teacher.training and len(set(buggy)) == 3  # a different target every call
    fixed = [float(bug.fixed_loss(nn.Identity(), teacher, s, y, T=4.0, alpha=1.0)) for _ in range(3)]
    assert not teacher.training and len(set(fixed)) == 1
    assert math.isclose(fixed[0], float(hand_kl(t / 4, s / 4).mean() * 16), rel_tol=1e-9)


def test_student_only_temperature_targets_the_sharp_teacher(logits):
    s, t = logits
    T = 4.0
    assert torch.allclose(run("student_only_t", "buggy", s, t), hand_kl(t, s / T).mean() * T * T)
    # its minimum is at s = T·t (logits T times the teacher's), where the true KD is not zero
    assert float(run("student_only_t", "buggy", T * t, t)) == pytest.approx(0.0, abs=1e-12)
    assert float(run("student_only_t", "fixed", T * t, t)) > 0.1
    assert float(run("student_only_t", "fixed", t, t)) == pytest.approx(0.0, abs=1e-12)


def test_swapped_kl_is_reverse_kl(logits):
    s, t = logits
    T = 4.0
    buggy = run("swapped_kl", "buggy", s, t)
    assert torch.allclose(buggy, hand_kl(s / T, t / T).mean() * T * T)  # KL(student ‖ teacher)
    assert not torch.allclose(buggy, hand_kl(t / T, s / T).mean() * T * T)


@pytest.mark.parametrize("alpha", [0.9, 0.3])
def test_alpha_on_the_wrong_term_equals_one_minus_alpha(logits, alpha):
    s, t = logits
    y = torch.arange(B) % C
    buggy = run("alpha_swapped", "buggy", s, t, y, alpha=alpha)
    fixed_flipped = run("alpha_swapped", "fixed", s, t, y, alpha=1 - alpha)
    assert torch.allclose(buggy, fixed_flipped)
    assert not torch.allclose(buggy, run("alpha_swapped", "fixed", s, t, y, alpha=alpha))


def padded(real: torch.Tensor, pad: int, seed: int = 1) -> torch.Tensor:
    """``real`` [B, S, C] followed by ``pad`` positions of random logits (what a model outputs on padding)."""
    junk = torch.randn(real.shape[0], pad, real.shape[2], generator=torch.Generator().manual_seed(seed), dtype=real.dtype)
    return torch.cat([real, junk * 3], dim=1)


def test_padded_batchmean_sums_positions_and_grows_with_padding():
    g = torch.Generator().manual_seed(0)
    s, t = torch.randn(2, 5, C, generator=g, dtype=torch.float64), torch.randn(2, 5, C, generator=g, dtype=torch.float64)
    T, real = 2.0, hand_kl(t / 2, s / 2).mean() * 4  # the KD per real token
    no_pad = run("padded_batchmean", "buggy", s, t)
    assert torch.allclose(no_pad, real * 5)  # batchmean divides the sum over B·S positions by B only
    losses = {}
    for pad in (0, 3, 10):
        s_p, t_p = padded(s, pad, seed=1), padded(t, pad, seed=2)
        y = torch.zeros(2, 5 + pad, dtype=torch.long)
        y[:, 5:] = -100
        losses[pad] = (float(run("padded_batchmean", "buggy", s_p, t_p, y, T=T)), run("padded_batchmean", "fixed", s_p, t_p, y, T=T))
        assert torch.allclose(losses[pad][1], real)  # the masked mean ignores padding
    assert losses[0][0] < losses[3][0] < losses[10][0]


def test_fixes_call_the_library_loss():
    for bug in BUGS:
        assert "kd_loss(" in bug.fixed_snippet and "F.kl_div" not in bug.fixed_snippet, bug.id


def test_answer_lines_hold_the_marker_and_check_line():
    for bug in BUGS:
        lines = bug.snippet.splitlines()
        assert 10 <= len(lines) <= 20, (bug.id, len(lines))
        assert any(bug.marker in lines[i - 1] for i in bug.answer_lines)
        assert check_line(bug, bug.answer_lines[0]).correct
        wrong = next(i for i in range(1, len(lines) + 1) if i not in bug.answer_lines)
        verdict = check_line(bug, wrong)
        assert not verdict.correct and f"Not line {wrong}" in verdict.message
    assert len(set(BUG_IDS)) == len(BUGS) == 8


@pytest.mark.parametrize("bad", [0, 99, "3", 2.5, None, True])
def test_check_line_refuses_what_is_not_a_line(bad):
    with pytest.raises(ValueError, match="line must be a whole number from 1 to"):
        check_line(get_bug("missing_t2"), bad)


def test_unknown_bug_and_bad_marker_are_refused():
    with pytest.raises(ValueError, match="unknown bug id 'nope'"):
        get_bug("nope")
    with pytest.raises(ValueError, match="exactly one line"):
        statement_lines("a = 1\na = 1\n", "a = 1")


def test_kd_loss_reference_agrees_with_hand_kl(logits):
    s, t = logits  # guards the reference itself: kd_loss and the hand formula are independent
    assert torch.allclose(kd_loss(s, t, 3.0), hand_kl(t / 3, s / 3).mean() * 9)
