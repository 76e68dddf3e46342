"""Spot the bug: classic distillation bugs, each a real training step (``kdviz.interview.steps``) and its fix.

::

    bug = get_bug("mean_reduction")
    bug.snippet          # the buggy step's source, numbered from 1 on the page
    bug.answer_lines     # the line numbers of the wrong statement (any of them counts)
    check_line(bug, 7)   # Verdict(correct, message)
    bug.buggy_loss(student, teacher, x, y, T=bug.T, alpha=bug.alpha)   # what the snippet computes
    bug.fixed_loss(...)                                                 # the same step done right

The wrong statement is found by a marker (a piece of code on its line), so the line numbers follow
the source when it is edited. Each bug's measured effect is asserted in ``tests/test_interview_bugs.py``.
"""
from __future__ import annotations

import ast
import inspect
import textwrap
from dataclasses import dataclass, field
from typing import Callable

from kdviz.interview import lookup, steps

Step = Callable[..., "object"]


@dataclass(frozen=True)
class Bug:
    id: str
    title: str
    buggy_loss: Step
    fixed_loss: Step
    marker: str  # code on the wrong line; the whole statement around it counts as the answer
    explanation: str  # markdown: what is wrong, what it does, the fix
    effect: str  # one line: what "Run both" shows
    T: float
    alpha: float
    tokens: bool = False  # inputs are token sequences [B, S, ...] (the language-model case)
    snippet: str = field(init=False)
    fixed_snippet: str = field(init=False)
    answer_lines: tuple[int, ...] = field(init=False)

    def __post_init__(self) -> None:
        snippet = source(self.buggy_loss)
        object.__setattr__(self, "snippet", snippet)
        object.__setattr__(self, "fixed_snippet", source(self.fixed_loss))
        object.__setattr__(self, "answer_lines", statement_lines(snippet, self.marker))


def source(fn: Step) -> str:
    return textwrap.dedent(inspect.getsource(fn)).rstrip() + "\n"


def statement_lines(code: str, marker: str) -> tuple[int, ...]:
    """1-based line numbers of the innermost statement of ``code`` whose lines contain ``marker``."""
    lines = code.splitlines()
    hits = [i for i, line in enumerate(lines, start=1) if marker in line]
    if len(hits) != 1:
        raise ValueError(f"marker {marker!r} must occur on exactly one line of the snippet, found {len(hits)}")
    best = None
    for node in ast.walk(ast.parse(code)):
        if isinstance(node, ast.stmt) and not isinstance(node, ast.FunctionDef) and node.lineno <= hits[0] <= node.end_lineno:
            if best is None or node.end_lineno - node.lineno < best.end_lineno - best.lineno:
                best = node
    return tuple(range(best.lineno, best.end_lineno + 1)) if best else (hits[0],)


BUGS = (
    Bug("mean_reduction", "KL with reduction=\"mean\"", steps.mean_reduction_step, steps.fixed_step, 'reduction="mean"',
        "`F.kl_div(..., reduction=\"mean\")` averages over **every element**, B·C of them, not over the B examples. "
        "The KL term comes out exactly C times too small (10× for MNIST, 32,000× for a language model's vocabulary), "
        "so the soft targets barely pull and the run is nearly a plain cross-entropy run. PyTorch warns about it: "
        "`'mean'` does not return the true KL. Fix: `reduction=\"batchmean\"`, or `kd_loss(s, t, T)`.",
        "the soft term is exactly 1/10 of the true KD, and the gradient norm drops with it", 4.0, 0.9),
    Bug("missing_t2", "The T² factor missing", steps.missing_t2_step, steps.fixed_step, 'reduction="batchmean",',
        "The soft-target loss must be multiplied by **T²**. The KL's gradient with respect to the student logits "
        "scales as 1/T², so at T = 4 the soft term pulls 16× more weakly than intended and alpha silently changes "
        "meaning whenever T changes (Hinton et al. 2015, §2). Fix: `... * T * T`, or `kd_loss(s, t, T)`.",
        "the soft term and its gradient are T² = 16 times smaller", 4.0, 0.9),
    Bug("log_of_softmax", "log(softmax(z)) instead of log_softmax", steps.log_of_softmax_step, steps.fixed_half_step,
        "torch.log(F.softmax(",
        "`torch.log(F.softmax(z))` underflows: once a logit gap exceeds what the dtype can represent after exp "
        "(≈ 17 in float16, ≈ 100 in float32) the probability is exactly 0 and its log is −inf. KL then multiplies "
        "0 · (−inf) = NaN (or p · ∞ = ∞) and the NaN reaches every weight. `F.log_softmax` computes z − logsumexp(z) "
        "and stays finite. Fix: `F.log_softmax(s_logits / T, dim=-1)`, or `kd_loss(s, t, T)`.",
        "the buggy run's loss becomes inf/NaN as soon as the student is confident; the fixed one trains on", 1.0, 0.9),
    Bug("teacher_train_mode", "The teacher left in training mode", steps.teacher_train_mode_step, steps.fixed_step,
        "for model in (student, teacher):",
        "`model.train()` on **both** networks leaves the teacher's dropout on: its soft targets change randomly "
        "from step to step (and BatchNorm would even update its running statistics from the student's batches). "
        "The student chases noisy targets. The teacher must be in `eval()` mode and run under `torch.no_grad()` "
        "(or be detached), so it stays frozen and deterministic. Fix: `student.train(); teacher.eval()`.",
        "the same image gets different soft targets each step; the student learns from noise", 4.0, 0.9),
    Bug("student_only_t", "Temperature on the student only", steps.student_only_t_step, steps.fixed_step,
        "F.softmax(t_logits, dim=-1),",
        "The teacher's probabilities are taken at **T = 1** while the student's are at T: the targets stay sharp "
        "(no dark knowledge), and the loss is zero only when s/T = t, so the student is pushed to logits T times "
        "larger than the teacher's. Both sides need the same T. Fix: `F.softmax(t_logits / T, dim=-1)`.",
        "the loss never reaches the same floor, and the student's logits grow to T× the teacher's", 4.0, 0.9),
    Bug("swapped_kl", "KL's arguments swapped (reverse KL by accident)", steps.swapped_kl_step, steps.fixed_step,
        "F.log_softmax(t_logits / T, dim=-1),",
        "`F.kl_div(input, target)` computes KL(target ‖ exp(input)), with **input the log-probabilities of the "
        "model being trained**. Passing the teacher's log-probabilities as input computes KL(student ‖ teacher): "
        "reverse KL, which is mode-seeking and ignores the classes the student already gives no mass, i.e. the dark "
        "knowledge. Reverse KL is sometimes chosen on purpose (MiniLLM); here it is an accident. Fix: student's "
        "`log_softmax` first, teacher's `softmax` second, or `kd_loss(s, t, T)`.",
        "a different objective: the loss equals the reverse KL and the curves drift apart", 4.0, 0.9),
    Bug("alpha_swapped", "alpha on the wrong term after a port", steps.alpha_swapped_step, steps.fixed_step,
        "return alpha * hard + (1 - alpha) * soft",
        "The recipe says alpha = 0.9 weights the **distillation** term (as in kdviz: total = α·KD + (1 − α)·CE), but "
        "the last line puts alpha on the hard-label loss, the convention of some other codebases (e.g. the Keras "
        "example). The run silently becomes 90 % plain training. Fix: `alpha * soft + (1 - alpha) * hard`; when "
        "porting, read the formula, not the variable name.",
        "the buggy run equals the fixed one with alpha = 0.1: mostly cross-entropy", 4.0, 0.9),
    Bug("padded_batchmean", "batchmean over [B, S, V] tokens, padding included", steps.padded_batchmean_step,
        steps.fixed_token_step, 'reduction="batchmean",',
        "For token logits [B, S, V], `reduction=\"batchmean\"` divides the sum over **all** positions by B only: the "
        "loss grows with the sequence length, and the padded positions, whose logits mean nothing, are distilled "
        "too. Longer padding means a larger loss and larger gradients for the same real tokens. Fix: mask the "
        "padding and average over the real tokens, `kd_loss(s, t, T, mask=labels != -100)`.",
        "the soft term is about S× too large and keeps a share from padding; gradients are larger", 2.0, 0.5,
        tokens=True),
)
BUG_IDS = tuple(b.id for b in BUGS)
_BY_ID = {b.id: b for b in BUGS}


def get_bug(bug_id: str) -> Bug:
    return lookup(_BY_ID, bug_id, "bug")


@dataclass(frozen=True)
class Verdict:
    correct: bool
    message: str


def check_line(bug: Bug, line) -> Verdict:
    """Is ``line`` (1-based) part of the wrong statement? A clear message for anything that is not a line."""
    n = len(bug.snippet.splitlines())
    if isinstance(line, bool) or not isinstance(line, int) or not 1 <= line <= n:
        raise ValueError(f"line must be a whole number from 1 to {n}, got {line!r}")
    span = f"line {bug.answer_lines[0]}" if len(bug.answer_lines) == 1 else f"lines {bug.answer_lines[0]}–{bug.answer_lines[-1]}"
    if line in bug.answer_lines:
        return Verdict(True, f"Right: the bug is on {span}. {bug.explanation}")
    text = bug.snippet.splitlines()[line - 1].strip()
    return Verdict(False, f"Not line {line} (`{text}`) — that line is fine. Look again, or reveal the answer.")
