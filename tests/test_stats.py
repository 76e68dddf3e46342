"""kdviz.experiments.stats: mean ± std, the 2·SE within-noise rule and the formatter, against hand computations."""
import math
import statistics

import pytest

from kdviz.experiments.stats import MeanStd, compare, diff_stderr, format_mean_std, format_values, mean_std, within_noise


def test_mean_std_matches_statistics_module():
    vals = [0.97, 0.981, 0.975, 0.99, 0.968]
    s = mean_std(vals)
    assert s.n == 5
    assert s.mean == pytest.approx(statistics.fmean(vals))
    assert s.std == pytest.approx(statistics.stdev(vals))  # ddof = 1
    assert s.sem == pytest.approx(statistics.stdev(vals) / math.sqrt(5))


def test_single_value_has_zero_std():
    s = mean_std([3.0])
    assert (s.mean, s.std, s.n) == (3.0, 0.0, 1)


@pytest.mark.parametrize("bad", [[], [1.0, float("nan")], [float("inf")]])
def test_bad_input_is_a_clear_value_error(bad):
    with pytest.raises(ValueError, match="mean_std"):
        mean_std(bad)


def test_diff_stderr_formula():
    a, b = MeanStd(1.0, 0.3, 4), MeanStd(0.5, 0.4, 9)
    assert diff_stderr(a, b) == pytest.approx(math.sqrt(0.09 / 4 + 0.16 / 9))


def test_clear_difference_is_not_within_noise():
    a = [0.90, 0.91, 0.92]
    b = [0.80, 0.81, 0.82]
    c = compare(a, b)
    assert c.diff == pytest.approx(0.10)
    assert c.stderr == pytest.approx(math.sqrt(2 * 0.01**2 / 3))
    assert not c.within_noise


def test_overlapping_results_are_within_noise():
    a = [0.90, 0.95, 0.85]
    b = [0.91, 0.86, 0.94]
    assert within_noise(a, b)


def test_threshold_is_exactly_two_standard_errors():
    # se = sqrt(1/2 + 1/2) = 1, so a difference of 1.99 is noise and 2.01 is not.
    a = MeanStd(0.0, 1.0, 2)
    assert within_noise(MeanStd(1.99, 1.0, 2), a)
    assert not within_noise(MeanStd(2.01, 1.0, 2), a)


def test_single_seed_is_always_within_noise():
    assert within_noise([0.99], [0.10])
    assert "one seed: noise unknown" in compare([0.99], [0.10]).format(scale=100)


def test_identical_constant_results_are_within_noise():
    assert within_noise([0.0, 0.0, 0.0], [0.0, 0.0, 0.0])  # se = 0 and diff = 0: no finding
    assert not within_noise([1.0, 1.0, 1.0], [0.0, 0.0, 0.0])  # se = 0, diff = 1: a real difference


def test_formatter():
    assert format_mean_std(98.123, 0.21) == "98.1 ± 0.2"
    assert format_mean_std(0.5, 0.25, digits=2, unit="%") == "0.50% ± 0.25%"
    assert format_mean_std(float("nan"), 0.1) == "n/a"
    assert format_values([0.98, 0.982, 0.984], scale=100) == "98.2 ± 0.2"


def test_comparison_format_marks_noise():
    text = compare([0.90, 0.95, 0.85], [0.91, 0.86, 0.94]).format(scale=100)
    assert "within noise" in text
    assert "within noise" not in compare([0.9, 0.91, 0.92], [0.8, 0.81, 0.82]).format(scale=100)
