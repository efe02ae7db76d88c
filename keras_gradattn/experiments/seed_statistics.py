"""Small-sample statistics for comparing models across seeds (NumPy only).

With 3 to 5 seeds per model, asymptotic tests (a paired t-test's normality,
a Wilcoxon test's normal approximation) say more than the data can. The
exact paired sign-flip permutation test assumes only that, under "no
difference", each per-seed difference is as likely to be positive as
negative; it enumerates all 2**n sign patterns, so its p-value is exact. Its
price is honesty about resolution: with n seeds the smallest p it can give is
2 / 2**n (0.25 for 3 seeds, 0.0625 for 5), whatever the effect size.
"""

import itertools
import math

import numpy as np

# Two-sided 95% quantiles of Student's t for 1..30 degrees of freedom, to 3
# decimals; above that the Cornish-Fisher expansion around the normal quantile
# (below) is exact to 1e-7, where the normal 1.96 alone would be 4% short.
_T_975 = (
    12.706, 4.303, 3.182, 2.776, 2.571, 2.447, 2.365, 2.306, 2.262, 2.228,
    2.201, 2.179, 2.160, 2.145, 2.131, 2.120, 2.110, 2.101, 2.093, 2.086,
    2.080, 2.074, 2.069, 2.064, 2.060, 2.056, 2.052, 2.048, 2.045, 2.042,
)  # fmt: skip
_Z_975 = 1.959963984540054
MAX_EXACT_SEEDS = 20
# Differences this close to the observed statistic count as "as extreme":
# float sums of the same numbers in another order differ in the last bits.
_TIE_TOLERANCE = 1e-9


def _as_vector(values, name):
    array = np.asarray(values, dtype=np.float64)
    if array.ndim != 1:
        raise ValueError(f"{name} must be a flat sequence of numbers; received shape {array.shape}")
    if not np.all(np.isfinite(array)):
        raise ValueError(f"{name} must be finite numbers; received {array.tolist()}")
    return array


def mean_std(values):
    """`(mean, sample std with ddof=1, n)`; std is NaN for n < 2, both NaN for n = 0."""
    array = _as_vector(values, "values")
    if array.size == 0:
        return math.nan, math.nan, 0
    std = float(array.std(ddof=1)) if array.size > 1 else math.nan
    return float(array.mean()), std, int(array.size)


def t_quantile_975(degrees_of_freedom):
    """The 97.5% quantile of Student's t (a two-sided 95% interval)."""
    if degrees_of_freedom < 1:
        raise ValueError(f"degrees_of_freedom must be >= 1; received {degrees_of_freedom}")
    if degrees_of_freedom <= len(_T_975):
        return _T_975[degrees_of_freedom - 1]
    # Abramowitz & Stegun 26.7.5: t = z + g1/v + g2/v**2 + g3/v**3 + g4/v**4.
    z, v = _Z_975, degrees_of_freedom
    g1 = (z**3 + z) / 4
    g2 = (5 * z**5 + 16 * z**3 + 3 * z) / 96
    g3 = (3 * z**7 + 19 * z**5 + 17 * z**3 - 15 * z) / 384
    g4 = (79 * z**9 + 776 * z**7 + 1482 * z**5 - 1920 * z**3 - 945 * z) / 92160
    return z + g1 / v + g2 / v**2 + g3 / v**3 + g4 / v**4


def confidence_interval_95(values):
    """`(low, high)`: the t-interval of the mean; NaNs for fewer than 2 values."""
    mean, std, n = mean_std(values)
    if n < 2:
        return math.nan, math.nan
    half_width = t_quantile_975(n - 1) * std / math.sqrt(n)
    return mean - half_width, mean + half_width


def sign_flip_p_value(differences):
    """Exact two-sided p-value of the paired sign-flip permutation test.

    The statistic is |sum of differences| (equivalently |mean|); the p-value
    is the fraction of the 2**n sign patterns whose statistic is at least the
    observed one. The observed pattern is one of them, so p >= 2 / 2**n when
    any difference is non-zero (its mirror image ties it), and p = 1 when all
    differences are zero.

    Example: differences (1, 2, 3) give sums +-1 +-2 +-3; only (6, -6) reach
    |6|, so p = 2 / 8 = 0.25.
    """
    array = _as_vector(differences, "differences")
    n = array.size
    if n == 0:
        raise ValueError("sign_flip_p_value needs at least one paired difference; received none")
    if n > MAX_EXACT_SEEDS:
        raise ValueError(
            f"the exact test enumerates 2**n sign patterns; received n={n}, at most {MAX_EXACT_SEEDS} allowed"
        )
    signs = np.array(list(itertools.product((1.0, -1.0), repeat=n)))
    statistics = np.abs(signs @ array)
    observed = abs(float(array.sum()))
    tolerance = _TIE_TOLERANCE * max(1.0, float(np.abs(array).sum()))
    return float(np.mean(statistics >= observed - tolerance))


def smallest_attainable_p_value(n):
    """The smallest p-value the exact sign-flip test can give with n pairs."""
    if n < 1:
        raise ValueError(f"n must be >= 1; received {n}")
    return 2.0 / 2**n


def paired_comparison(candidate, baseline):
    """Compares two models on the same seeds: per-seed differences `candidate - baseline`.

    Args:
        candidate, baseline: equal-length sequences, entry i from seed i.

    Returns:
        A dict: `n`, `differences`, `mean`, `std` (ddof=1), `ci95_low`,
        `ci95_high` (t-interval of the mean difference), `wins` / `losses` /
        `ties` (seeds where the candidate is above / below / equal), and
        `p_value` (exact sign-flip test) with `smallest_p_value` (its floor at
        this n).
    """
    candidate = _as_vector(candidate, "candidate")
    baseline = _as_vector(baseline, "baseline")
    if candidate.shape != baseline.shape:
        raise ValueError(
            f"paired values need one candidate and one baseline value per seed; received "
            f"{candidate.size} and {baseline.size}"
        )
    differences = candidate - baseline
    mean, std, n = mean_std(differences)
    low, high = confidence_interval_95(differences)
    return {
        "n": n,
        "differences": differences.tolist(),
        "mean": mean,
        "std": std,
        "ci95_low": low,
        "ci95_high": high,
        "wins": int(np.sum(differences > 0)),
        "losses": int(np.sum(differences < 0)),
        "ties": int(np.sum(differences == 0)),
        "p_value": sign_flip_p_value(differences) if n else math.nan,
        "smallest_p_value": smallest_attainable_p_value(n) if n else math.nan,
    }
