"""Scenario results: the omitted digit's bias correction against reference computations."""
import pytest
import torch

from kdviz.experiments import results as res


# ----------------------------------------------------------------------------- bias correction
def test_bias_accuracy_matches_a_reference_loop():
    g = torch.Generator().manual_seed(0)
    logits, labels = torch.randn(200, 10, generator=g), torch.randint(0, 10, (200,), generator=g)
    for bias in (0.0, 0.7, 2.5):
        overall, digit = res.bias_accuracy(logits.tolist(), labels.tolist(), 3, bias)
        preds = [max(range(10), key=lambda c: float(row[c]) + (bias if c == 3 else 0.0)) for row in logits]
        ref_all = sum(p == int(y) for p, y in zip(preds, labels)) / 200
        threes = [p for p, y in zip(preds, labels) if int(y) == 3]
        assert overall == pytest.approx(ref_all)
        assert digit == pytest.approx(sum(p == 3 for p in threes) / len(threes))


def test_bias_correction_recovers_a_digit_whose_logit_is_too_low():
    labels = torch.tensor([3, 3, 3, 1, 1])
    logits = torch.zeros(5, 10)
    logits[:3, 3], logits[:3, 1] = 1.0, 2.0  # threes: right class 1 below the wrong one
    logits[3:, 1] = 5.0
    curve = res.bias_curve(logits, labels, 3, biases=(0.0, 0.5, 1.5, 6.0))
    assert curve["digit"] == [0.0, 0.0, 1.0, 1.0]
    assert curve["overall"] == pytest.approx([0.4, 0.4, 1.0, 0.6])  # at 6 the ones become threes too
    assert res.best_bias(curve) == 1.5
    with pytest.raises(ValueError, match="logits"):
        res.bias_accuracy(logits[0], labels, 3, 0.0)
