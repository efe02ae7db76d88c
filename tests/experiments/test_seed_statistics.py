"""Statistics for comparing models across seeds, against hand-computed values."""

import math

import numpy as np
import pytest

from keras_gradattn.experiments import seed_statistics

pytestmark = pytest.mark.backend_independent


def test_mean_std_uses_the_sample_std():
    mean, std, n = seed_statistics.mean_std([0.9, 0.8, 0.7])
    assert (mean, n) == (pytest.approx(0.8), 3)
    assert std == pytest.approx(0.1)


def test_mean_std_of_one_and_of_no_value():
    mean, std, n = seed_statistics.mean_std([5.0])
    assert (mean, n) == (5.0, 1) and math.isnan(std)
    mean, std, n = seed_statistics.mean_std([])
    assert n == 0 and math.isnan(mean) and math.isnan(std)


@pytest.mark.parametrize(
    "differences, expected",
    [
        # +-1 +-2 +-3: sums 6, 4, 2, 0, 0, -2, -4, -6; only 6 and -6 reach |6|.
        ((1.0, 2.0, 3.0), 2 / 8),
        # Observed sum 0: every pattern is at least as extreme.
        ((1.0, -1.0), 1.0),
        # 3 + 1 + 1 + 1 = 6; any flip gives at most |4|: only the pattern and its mirror.
        ((3.0, 1.0, 1.0, 1.0), 2 / 16),
        # |1 + 1 - 1| = 1; sums over signs: 3, 1, 1, -1, 1, -1, -1, -3: all reach 1.
        ((1.0, 1.0, -1.0), 1.0),
        # 2 + 2 + 1 = 5; |5| is reached by (+,+,+) and (-,-,-); (+,+,-) = 3 is not.
        ((2.0, 2.0, 1.0), 2 / 8),
        # One pair: its two signs tie.
        ((0.5,), 1.0),
        ((0.0, 0.0, 0.0), 1.0),
    ],
)
def test_sign_flip_p_value_by_hand(differences, expected):
    assert seed_statistics.sign_flip_p_value(differences) == pytest.approx(expected)


def test_sign_flip_p_value_counts_ties_despite_float_rounding():
    # 0.1 + 0.2 - 0.3 is not exactly 0 in floats; its mirror must still tie.
    assert seed_statistics.sign_flip_p_value([0.1, 0.2, 0.3]) == pytest.approx(2 / 8)
    # Same magnitudes in another order: the same p.
    assert seed_statistics.sign_flip_p_value([0.3, 0.1, 0.2]) == pytest.approx(2 / 8)


def test_sign_flip_agrees_with_brute_force_on_random_data():
    rng = np.random.default_rng(0)
    for n in (2, 3, 5, 7):
        values = rng.normal(0.3, 1.0, n)
        count = 0
        for pattern in range(2**n):
            signs = np.array([1 if pattern >> bit & 1 else -1 for bit in range(n)])
            count += abs(np.sum(signs * values)) >= abs(np.sum(values)) - 1e-12
        assert seed_statistics.sign_flip_p_value(values) == pytest.approx(count / 2**n)


def test_smallest_attainable_p_value():
    assert seed_statistics.smallest_attainable_p_value(3) == 0.25
    assert seed_statistics.smallest_attainable_p_value(5) == 0.0625
    assert seed_statistics.sign_flip_p_value([5.0, 6.0, 7.0, 8.0, 9.0]) == 0.0625


def test_confidence_interval_by_hand():
    # mean 2, std 1, n 3: half width 4.303 / sqrt(3).
    low, high = seed_statistics.confidence_interval_95([1.0, 2.0, 3.0])
    half = 4.303 / math.sqrt(3)
    assert (low, high) == (pytest.approx(2 - half), pytest.approx(2 + half))
    assert all(math.isnan(value) for value in seed_statistics.confidence_interval_95([1.0]))


def test_t_quantiles_agree_with_scipy():
    stats = pytest.importorskip("scipy.stats")
    # The table: each of the 30 entries is the quantile rounded to 3 decimals.
    for degrees_of_freedom in range(1, 31):
        exact = stats.t.ppf(0.975, degrees_of_freedom)
        assert seed_statistics.t_quantile_975(degrees_of_freedom) == pytest.approx(exact, abs=5e-4), degrees_of_freedom
    # Beyond the table, from 31 degrees of freedom (where the normal 1.96 is
    # still 4% short) to where it becomes exact.
    for degrees_of_freedom in (31, 32, 40, 60, 100, 1000, 10**6):
        exact = stats.t.ppf(0.975, degrees_of_freedom)
        assert seed_statistics.t_quantile_975(degrees_of_freedom) == pytest.approx(exact, abs=5e-4), degrees_of_freedom


def test_paired_comparison_by_hand():
    result = seed_statistics.paired_comparison([90.0, 85.0, 80.0, 88.0], [88.0, 86.0, 77.0, 88.0])
    assert result["differences"] == pytest.approx([2.0, -1.0, 3.0, 0.0])
    assert result["mean"] == pytest.approx(1.0)
    assert result["std"] == pytest.approx(math.sqrt(((1 + 4 + 4 + 1) / 3)))
    assert (result["wins"], result["losses"], result["ties"], result["n"]) == (2, 1, 1, 4)
    # Observed |2 - 1 + 3 + 0| = 4. Sums of +-2 +-1 +-3: 6, 0, 4, -2, 2, -4, 0, -6;
    # four of eight reach |4|, whatever the zero's sign.
    assert result["p_value"] == pytest.approx(0.5)
    assert result["smallest_p_value"] == pytest.approx(2 / 16)


@pytest.mark.parametrize(
    "call, message",
    [
        (lambda: seed_statistics.paired_comparison([1.0, 2.0], [1.0]), "received 2 and 1"),
        (lambda: seed_statistics.sign_flip_p_value([]), "received none"),
        (lambda: seed_statistics.sign_flip_p_value([1.0] * 21), "received n=21"),
        (lambda: seed_statistics.sign_flip_p_value([1.0, float("nan")]), "finite"),
        (lambda: seed_statistics.mean_std([[1.0, 2.0]]), "received shape (1, 2)"),
        (lambda: seed_statistics.t_quantile_975(0), "received 0"),
    ],
)
def test_bad_input_is_a_one_line_value_error(call, message):
    with pytest.raises(ValueError, match=message.replace("(", r"\(").replace(")", r"\)")) as error:
        call()
    assert "\n" not in str(error.value)
