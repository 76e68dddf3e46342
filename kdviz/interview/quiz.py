"""A self-graded quiz (no Streamlit): numeric and multiple-choice questions whose answers are computed.

::

    q = get_question("p1_T4")
    verdict = grade(q, "0.33")      # Verdict(correct, message); raises nothing for any text
    tally = Tally(); tally.record(q, verdict.correct)
    tally.score(), tally.missed(), tally.topics_to_revisit()
    drill_order(tally)              # the ids to ask again: only what was missed

Numeric answers come from ``kdviz.losses`` (or from the spot-the-bug steps) at run time and are
accepted within ``tol``; choice answers that can be computed are computed too.
"""
from __future__ import annotations

import math
import warnings
from dataclasses import dataclass, field
from typing import Callable

import torch

from kdviz import losses
from kdviz.interview import lookup
from kdviz.interview.bugs import Verdict, get_bug

DT = torch.float64


def _p(logits: list[float], T: float) -> torch.Tensor:
    return losses.soft_targets(torch.tensor(logits, dtype=DT), T)


def _example(T: float = 2.0, alpha: float = 0.5) -> dict[str, torch.Tensor]:
    """The Temperature lab's default worked example: teacher [2, 1, 0], student [1.5, 0.5, 0], label 0."""
    z_t, z_s = torch.tensor([[2.0, 1.0, 0.0]], dtype=DT), torch.tensor([[1.5, 0.5, 0.0]], dtype=DT)
    return losses.distillation_loss(z_s, z_t, torch.tensor([0]), T, alpha)


def _bug_ratio(bug_id: str, T: float) -> float:
    """fixed / buggy soft loss of a spot-the-bug step on random logits (alpha = 1: the soft term only)."""
    from torch import nn

    g = torch.Generator().manual_seed(0)
    s, t = torch.randn(4, 10, generator=g, dtype=DT), torch.randn(4, 10, generator=g, dtype=DT)
    teacher = nn.Module()
    teacher.forward = lambda x: t  # a constant teacher: its logits are t
    y, bug = torch.zeros(4, dtype=torch.long), get_bug(bug_id)
    args = (nn.Identity(), teacher, s, y)
    with warnings.catch_warnings():  # PyTorch warns about reduction="mean": that is the point here
        warnings.simplefilter("ignore", UserWarning)
        return float(bug.fixed_loss(*args, T=T, alpha=1.0) / bug.buggy_loss(*args, T=T, alpha=1.0))


def _more_entropy_at_4() -> int:
    h1, h4 = (float(losses.entropy(_p([5.0, 1.0, 0.0], T))) for T in (1.0, 4.0))
    return 0 if h4 > h1 else 1 if h4 < h1 else 2


@dataclass(frozen=True)
class Question:
    id: str
    topic: str
    prompt: str  # markdown
    answer: Callable[[], float | int]  # a number, or the index of the right choice
    why: str  # markdown shown after answering
    choices: tuple[str, ...] = ()  # empty: a numeric question
    tol: float = 0.0  # absolute tolerance of a numeric answer
    see: str = ""  # page file that shows it live

    @property
    def numeric(self) -> bool:
        return not self.choices


QUESTIONS = (
    Question("p1_T4", "temperature", "T = 4, teacher logits [2, 1, 0]: what is p₁, the soft-target probability of "
             "class 1 (counting from 0)? Two decimals are enough.", lambda: float(_p([2, 1, 0], 4.0)[1]),
             "p = softmax(z / T) = softmax([0.5, 0.25, 0]).", tol=0.005, see="temperature.py"),
    Question("p0_T1", "temperature", "T = 1, teacher logits [2, 1, 0]: what is p₀?",
             lambda: float(_p([2, 1, 0], 1.0)[0]), "softmax([2, 1, 0]) = e² / (e² + e + 1).", tol=0.005, see="temperature.py"),
    Question("kd_example", "temperature", "Teacher logits [2, 1, 0], student logits [1.5, 0.5, 0], T = 2: what is "
             "KD = T²·KL(p ‖ q)? Three decimals.", lambda: float(_example()["kd"]),
             "The Temperature lab's worked example computes each step.", tol=0.0005, see="temperature.py"),
    Question("total_example", "temperature", "Same example, label 0, alpha = 0.5 (alpha weights KD): what is the "
             "total loss α·KD + (1 − α)·CE? Three decimals.", lambda: float(_example()["total"]),
             "CE = −log softmax([1.5, 0.5, 0])₀; a widely copied tutorial wrote 0.2399 here.", tol=0.0005,
             see="temperature.py"),
    Question("max_entropy", "temperature", "The largest possible entropy of a 10-class distribution, in nats?",
             lambda: float(losses.entropy(torch.full((10,), 0.1, dtype=DT))),
             "The uniform distribution: log 10. A very high T pushes soft targets toward it.", tol=0.005,
             see="temperature.py"),
    Question("entropy_T", "temperature", "Teacher logits [5, 1, 0]. Raising T from 1 to 4 makes the soft targets' entropy…",
             _more_entropy_at_4, "Dividing by T > 1 flattens the distribution: more entropy, more visible dark knowledge.",
             choices=("grow", "shrink", "stay the same"), see="temperature.py"),
    Question("mean_factor", "bugs", "`F.kl_div(log_softmax(s/T), softmax(t/T), reduction=\"mean\")` on MNIST logits "
             "[B, 10]: how many times smaller than the true KL is it?", lambda: round(_bug_ratio("mean_reduction", 4.0), 6),
             "'mean' divides by B·C, not B: C = 10 times too small. Use 'batchmean'.", tol=0.01, see="interview.py"),
    Question("t2_factor", "bugs", "At T = 4, forgetting the T² factor makes the soft term how many times smaller?",
             lambda: round(_bug_ratio("missing_t2", 4.0), 6), "T² = 16; its gradient shrinks by the same factor.",
             tol=0.01, see="temperature.py"),
    Question("alpha_zero", "methods", "In kdviz, total = α·KD + (1 − α)·CE. What does α = 0 train?", lambda: 0,
             "α weights the distillation term, so α = 0 leaves only the cross-entropy with the labels.",
             choices=("plain training on the labels", "pure imitation of the teacher", "nothing: the loss is 0"),
             see="distill.py"),
    Question("swapped", "bugs", "`F.kl_div(F.log_softmax(t / T), F.softmax(s / T))` with t the teacher's and s the "
             "student's logits computes…", lambda: 1,
             "F.kl_div(input, target) = KL(target ‖ exp(input)): here KL(student ‖ teacher), the reverse KL.",
             choices=("KL(teacher ‖ student), the usual KD", "KL(student ‖ teacher), the reverse KL",
                      "the cross-entropy with the teacher's labels"), see="interview.py"),
    Question("cache_jitter", "practice", "Training with random shifts (jitter) of the images: can you compute the "
             "teacher's logits once and reuse them every epoch?", lambda: 1,
             "No: the teacher must see the same shifted image as the student, so it runs every batch.",
             choices=("yes, the teacher is frozen", "no, the inputs change every step"), see="distill.py"),
)
QUESTION_IDS = tuple(q.id for q in QUESTIONS)
_BY_ID = {q.id: q for q in QUESTIONS}


def get_question(qid: str) -> Question:
    return lookup(_BY_ID, qid, "question")


def parse_number(text) -> float:
    """A typed answer as a number ("0.33", " 1e-2 ", "16"); ValueError naming the text otherwise."""
    raw = str(text).strip().replace("−", "-")
    try:
        value = float(raw)
    except ValueError:
        raise ValueError(f"{str(text)[:40]!r} is not a number: type a number such as 0.25 or 16") from None
    if not math.isfinite(value):
        raise ValueError(f"{raw!r} is not a finite number")
    return value


def grade(q: Question, given) -> Verdict:
    """Check an answer: numeric text within ``q.tol`` of the computed value, or the index of a choice.
    Raises ValueError (with a message to show) for an answer that cannot be graded."""
    right = q.answer()
    if q.numeric:
        value = parse_number(given)
        ok = abs(value - right) <= q.tol
        shown = f"{right:.4f}".rstrip("0").rstrip(".")
        return Verdict(ok, ("Correct" if ok else f"Not quite: you said {value:g}") + f" — the answer is {shown}. {q.why}")
    if isinstance(given, bool) or not isinstance(given, int) or not 0 <= given < len(q.choices):
        raise ValueError(f"pick one of the {len(q.choices)} choices")
    ok = given == right
    return Verdict(ok, ("Correct" if ok else f"Not quite: you picked “{q.choices[given]}”") +
                   f" — the answer is “{q.choices[right]}”. {q.why}")


@dataclass
class Tally:
    """Answers in this session: the latest verdict per question counts for the score."""

    results: dict[str, bool] = field(default_factory=dict)
    attempts: int = 0

    def record(self, q: Question, correct: bool) -> None:
        self.results[q.id] = bool(correct)
        self.attempts += 1

    def score(self) -> tuple[int, int]:
        """(right, answered)."""
        return sum(self.results.values()), len(self.results)

    def missed(self) -> list[str]:
        return [qid for qid in QUESTION_IDS if self.results.get(qid) is False]

    def topics_to_revisit(self) -> list[str]:
        return sorted({get_question(qid).topic for qid in self.missed()})


def drill_order(tally: Tally) -> list[str]:
    """The questions a "drill me" round asks: the missed ones, in quiz order."""
    return tally.missed()
