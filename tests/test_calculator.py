"""The Temperature lab's calculator (kdviz.calculator) against the KD loss written out by hand."""
from __future__ import annotations

import math

import pytest

from kdviz.calculator import parse_logits, tutorial_rows, worked_example


def hand_kd(z_t: list[float], z_s: list[float], T: float) -> tuple[list[float], float]:
    """log p − log q per class and T²·KL(p ‖ q), with p, q the softmaxes at T, in plain Python."""
    def log_softmax(z):
        m = max(v / T for v in z)
        lse = m + math.log(sum(math.exp(v / T - m) for v in z))
        return [v / T - lse for v in z]
    lp, lq = log_softmax(z_t), log_softmax(z_s)
    ratios = [a - b for a, b in zip(lp, lq)]
    return ratios, T * T * sum(math.exp(a) * r for a, r in zip(lp, ratios))


def test_worked_example_and_exact_row_match_the_hand_formula():
    z_t, z_s, T, alpha = [2.0, 1.0, 0.0], [1.5, 0.5, 0.0], 2.0, 0.5
    r = worked_example(parse_logits("2, 1, 0", "t"), parse_logits("[1.5, 0.5, 0]", "s"), 0, T, alpha)
    ratios, kd = hand_kd(z_t, z_s, T)
    ce = -(z_s[0] - math.log(sum(math.exp(v) for v in z_s)))
    assert float(r["kd"]) == pytest.approx(kd, rel=1e-12)
    assert float(r["total"]) == pytest.approx(alpha * kd + (1 - alpha) * ce, rel=1e-12)
    exact, *_, tutorial, annotation = tutorial_rows(r, T, alpha)
    assert exact["log p − log q"] == ", ".join(f"{v:+.4f}" for v in ratios) == "+0.0516, +0.0516, -0.1984"
    assert exact["_kd"] == pytest.approx(kd, rel=1e-12)
    # the tutorial's own log-ratios with its 4-decimal p reproduce its KD 0.0153: the slip is in the ratios
    assert tutorial["KD = T²·KL"] == annotation["KD = T²·KL"] == "0.0153"


@pytest.mark.parametrize("text,needle", [("2, x, 0", "could not read 'x'"), ("3", "at least 2 classes")])
def test_bad_logits_are_refused_with_the_reason(text, needle):
    with pytest.raises(ValueError, match=needle):
        parse_logits(text, "teacher logits")
