"""Expected calibration error and reliability bins vs. a hand-written computation."""
from __future__ import annotations

import math

import pytest
import torch

from kdviz.evaluation import expected_calibration_error, reliability


def ref_ece(logits: torch.Tensor, labels: torch.Tensor, n_bins: int = 15) -> float:
    """Plain python: top softmax prob, equal-width bins (lo, hi], ECE = Σ n_b/N |acc_b − conf_b|."""
    rows = []
    for z, y in zip(logits.tolist(), labels.tolist()):
        m = max(z)
        e = [math.exp(v - m) for v in z]
        p = [v / sum(e) for v in e]
        conf = max(p)
        rows.append((conf, float(p.index(conf) == y)))
    total = 0.0
    for b in range(n_bins):
        lo, hi = b / n_bins, (b + 1) / n_bins
        inside = [(c, r) for c, r in rows if (lo < c <= hi) or (b == 0 and c == 0)]
        if inside:
            acc = sum(r for _, r in inside) / len(inside)
            conf = sum(c for c, _ in inside) / len(inside)
            total += len(inside) / len(rows) * abs(acc - conf)
    return total


@pytest.mark.parametrize("scale", [0.3, 1.0, 4.0])
def test_ece_matches_direct(scale):
    g = torch.Generator().manual_seed(0)
    logits = torch.randn(500, 10, generator=g, dtype=torch.float64) * scale * 3
    labels = torch.randint(0, 10, (500,), generator=g)
    labels[:250] = logits[:250].argmax(1)  # half right, so bins hold both outcomes
    assert expected_calibration_error(logits, labels) == pytest.approx(ref_ece(logits, labels), abs=1e-12)
    assert expected_calibration_error(logits, labels, 5) == pytest.approx(ref_ece(logits, labels, 5), abs=1e-12)


def test_reliability_bins_by_hand():
    # two classes; confidences 0.5 (bin 7 of 15), ≈0.731 (bin 10) and ≈0.881 (bin 13)
    logits = torch.tensor([[0.0, 0.0], [1.0, 0.0], [2.0, 0.0], [2.0, 0.0]])
    labels = torch.tensor([0, 0, 0, 1])
    rel = reliability(logits, labels)
    p1, p2 = 1 / (1 + math.exp(-1)), 1 / (1 + math.exp(-2))
    assert rel["count"][7] == 1 and rel["count"][10] == 1 and rel["count"][13] == 2 and sum(rel["count"]) == 4
    assert rel["accuracy"][13] == pytest.approx(0.5) and rel["confidence"][13] == pytest.approx(p2)
    assert math.isnan(rel["accuracy"][0])
    expected = (abs(1 - 0.5) + abs(1 - p1) + 2 * abs(0.5 - p2)) / 4
    assert rel["ece"] == pytest.approx(expected, abs=1e-12)


def test_perfectly_confident_and_right_is_calibrated():
    logits = torch.eye(10) * 100
    assert expected_calibration_error(logits, torch.arange(10)) == pytest.approx(0.0, abs=1e-12)
    assert expected_calibration_error(logits, (torch.arange(10) + 1) % 10) == pytest.approx(1.0, abs=1e-12)


def test_bad_inputs_name_the_values():
    with pytest.raises(ValueError, match=r"\(4, 3\).*\(5,\)"):
        reliability(torch.zeros(4, 3), torch.zeros(5, dtype=torch.long))
    with pytest.raises(ValueError, match="n_bins"):
        reliability(torch.zeros(4, 3), torch.zeros(4, dtype=torch.long), 0)


def test_results_and_sweeps_carry_ece():
    from kdviz.data import synthetic_bundle
    from kdviz.engine import make_model
    from kdviz.evaluation import predict_logits
    from kdviz.experiments.results import comparisons, seed_result, summarise_runs
    from kdviz.experiments.sweeps import point_metrics
    from kdviz.models import ModelConfig

    test = synthetic_bundle(n_train=16, n_test=64).test
    model = make_model(ModelConfig(hidden=(8,)), 0)
    logits = predict_logits(model, test.x)
    assert point_metrics(model, test, None)["ece"] == pytest.approx(ref_ece(logits.double(), test.y), abs=1e-6)
    runs = {role: [seed_result(logits * (1 + s + 2 * (role == "distilled")), test.y, s, 0.0, None) for s in range(3)]
            for role in ("distilled", "scratch")}
    assert runs["scratch"][1]["ece"] == pytest.approx(ref_ece(2 * logits.double(), test.y), abs=1e-6)
    assert runs["scratch"][1]["reliability"]["count"] and len(runs["scratch"][1]["reliability"]["count"]) == 15
    summary = summarise_runs(runs, None)
    eces = [r["ece"] for r in runs["distilled"]]
    assert summary["distilled"]["ece"]["mean"] == pytest.approx(sum(eces) / 3)
    assert set(comparisons(runs, ("accuracy",))) == {"accuracy", "ece"}
