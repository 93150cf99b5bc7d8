"""The statistics of mosaic_compare, pure functions on arrays of values (no database, no files): a group's
description (mean, geometric mean, median, interquartile mean, std, a Student t interval of the center) and
the tests of one group against another (the difference or ratio with its Welch t interval, Welch's t-test,
the exact Mann-Whitney test, Hedges' g, the probability of superiority with Newcombe's interval, a range of
the replicates a t-test would need, the Behrens-Fisher ROPE posterior), Fisher's exact test of failure
counts and Holm's correction. compare.py says what each is for; docs/statistics.md
explains each column.

Every interval is one a statistician can check by simulation (tests/results/test_calibration.py): the t
interval covers 95% of normal samples at any n >= 2, where the bootstrap it replaced covered 74% at n = 3.

A scale says on which values a group is described and compared: "linear" (the values, differences of
means) or "log" (their logarithms: geometric means, ratios; for positive values that span orders of
magnitude, such as losses).

scipy and numpy are imported inside the functions that need them: importing this module stays cheap.
Degenerate input (one replicate, replicates that do not vary) gives None, never a library warning.
"""

import contextlib
import math
import warnings

CONFIDENCE = 0.95
ALPHA = 0.05
POWER = 0.8
SEED = 20240607  # the ROPE posterior's Monte Carlo seed: the same database always gives the same numbers
MAX_REPLICATES = 100_000
SCALES = ("linear", "log")
RELATIVE_SPREAD = 1e-12  # replicates closer than this (relative to their size) do not vary
EXACT_MWU_LIMIT = 200_000  # the exact Mann-Whitney distribution up to this many splits of the two groups
ROPE_DRAWS = 200_000

# what compare_pair finds for one pair of groups (the Holm columns are filled over all the pairs)
PAIR_COLUMNS = (
    "scale", "effect", "effect_ci_low", "effect_ci_high", "welch_p", "welch_p_holm", "mwu_p", "mwu_p_holm",
    "hedges_g", "superiority", "superiority_ci_low", "superiority_ci_high", "replicates_needed_low",
    "replicates_needed_high", "rope", "p_rope_better", "p_rope_equal", "p_rope_worse", "constant_a",
    "constant_b",
)
DESCRIBE_KEYS = ("n", "mean", "center", "ci_low", "ci_high", "median", "iqm", "std", "constant")


@contextlib.contextmanager
def quiet():
    """No numpy floating-point warning nor library warning inside: degenerate cases are handled by the
    caller (a None, a sentence), not printed above the tables."""
    import numpy as np

    with np.errstate(all="ignore"), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        yield


def default_scale(values, higher=False):
    """The scale on which to describe and compare values: "log" for positive values where lower is better
    (losses, errors, durations: they span orders of magnitude and compare as ratios), "linear" otherwise
    (accuracies, indicators that may be 0 or negative). The one rule of the tables, bands and curves."""
    return "log" if not higher and len(values) > 0 and all(0 < v < math.inf for v in values) else "linear"


def transform(values, scale="linear"):
    """The values a scale works on: as they are ("linear") or their natural logarithms ("log", values > 0)."""
    import numpy as np

    array = np.asarray(values, dtype=float)
    if scale == "linear":
        return array
    if scale != "log":
        raise ValueError(f"unknown scale '{scale}' (use one of {', '.join(SCALES)})")
    if array.size and not (array > 0).all():
        raise ValueError("the log scale needs values > 0")
    return np.log(array)


def _back(value, scale):
    """A center or interval end on the scale's values, back to the values' units."""
    if value is None or scale != "log":
        return value if value is None else float(value)
    return math.exp(value) if value < 709 else None  # beyond, exp overflows: an end too far to say


def is_constant(values):
    """True for two or more replicates that do not vary: all equal, or spread below RELATIVE_SPREAD of
    their size (one seed used for every run, say: pseudo-replication)."""
    import numpy as np

    array = np.asarray(values, dtype=float)
    if array.size < 2 or not np.isfinite(array).all():
        return False
    return bool(np.ptp(array) <= RELATIVE_SPREAD * np.abs(array).max())


def _magnitude(*arrays):
    """The largest |value| along the last axis of the arrays (keepdims; 1 where 0 or not finite): values
    divided by it have no square that overflows or underflows (1e-300 and 1e300 are not rounded to 0, inf)."""
    import numpy as np

    size = np.max([np.abs(x).max(axis=-1, keepdims=True) for x in arrays], axis=0)
    return np.where((size > 0) & np.isfinite(size), size, 1.0)


def t_interval(xs):
    """(mean, low, high) of the values xs along their last axis (vectorized over leading axes):
    mean ± t_{n-1} s / sqrt(n), the 95% Student t interval; low, high NaN for n < 2."""
    import numpy as np
    from scipy import stats

    xs = np.asarray(xs, dtype=float)
    n = xs.shape[-1]
    with quiet():
        size = _magnitude(xs)
        mean = xs.mean(axis=-1)
        if n < 2:
            return mean, np.full_like(mean, np.nan), np.full_like(mean, np.nan)
        std = (xs / size).std(axis=-1, ddof=1) * size[..., 0]
        half = stats.t.ppf(0.5 + CONFIDENCE / 2, n - 1) * std / math.sqrt(n)
    return mean, mean - half, mean + half


def _none_for_nan(value):
    """None for what is undefined (None, NaN, infinite), else a float."""
    return None if value is None or not math.isfinite(value) else float(value)


def mean_interval(values, scale="linear"):
    """(center, low, high): the mean ("linear") or geometric mean ("log") of `values` with its 95% Student
    t interval (on the log scale, the t interval of the logarithms, exponentiated: never below 0); low,
    high None for fewer than 2 values. The interval describe and every plot band use."""
    center, low, high = (_none_for_nan(end) for end in t_interval(transform(values, scale)))
    return _back(center, scale), _back(low, scale), _back(high, scale)


def describe(values, scale="linear"):
    """{n, mean, center, ci_low, ci_high, median, iqm, std, constant} of one group's values: mean is the
    arithmetic mean, center the scale's (the mean, or the geometric mean on "log") with its 95% t interval
    (see mean_interval); None where undefined."""
    import numpy as np
    from scipy import stats

    n = len(values)
    if n == 0:
        return dict.fromkeys(DESCRIBE_KEYS) | {"n": 0, "constant": False}
    array = np.asarray(values, dtype=float)
    center, low, high = mean_interval(array, scale)
    size = float(_magnitude(array)[0])
    with quiet():
        return {
            "n": n,
            "mean": float(array.mean()),
            "center": center,
            "ci_low": low,
            "ci_high": high,
            "median": float(np.median(array)),
            "iqm": float(stats.trim_mean(array, 0.25)),  # the mean of the middle half
            "std": _none_for_nan((array / size).std(ddof=1) * size) if n > 1 else None,
            "constant": is_constant(array),
        }


# ---------------------------------------------------------------- one group against another


def welch(xa, xb):
    """(difference of means, low, high, p) of the values xa against xb along their last axis (vectorized
    over leading axes): the difference with its 95% Welch t interval and the two-sided p-value of Welch's
    t-test; low, high and p NaN where neither group varies or one has fewer than 2 values."""
    import numpy as np
    from scipy import stats

    xa, xb = np.asarray(xa, dtype=float), np.asarray(xb, dtype=float)
    na, nb = xa.shape[-1], xb.shape[-1]
    with quiet():
        diff = xa.mean(axis=-1) - xb.mean(axis=-1)
        if na < 2 or nb < 2:
            nan = np.full_like(diff, np.nan)
            return diff, nan, nan, nan
        size = _magnitude(xa, xb)  # the variances of values divided by it, then se back in their units
        va, vb = (xa / size).var(axis=-1, ddof=1) / na, (xb / size).var(axis=-1, ddof=1) / nb
        df = (va + vb) ** 2 / (va**2 / (na - 1) + vb**2 / (nb - 1))  # NaN where se is 0
        se = np.sqrt(va + vb) * size[..., 0]
        half = stats.t.ppf(0.5 + CONFIDENCE / 2, df) * se
        p = 2 * stats.t.sf(np.abs(diff) / se, df)
    return diff, diff - half, diff + half, p


def superiority(a, b, higher=False):
    """Probability of superiority: the share of the pairs (a_i, b_j) where a_i is better than b_j (lower,
    or higher with `higher`), ties counted half."""
    import numpy as np

    left = np.asarray(a, dtype=float)[:, None]
    right = np.asarray(b, dtype=float)[None, :]
    better = (left > right) if higher else (left < right)
    return float((better + 0.5 * (left == right)).mean())


def superiority_interval(theta, n_a, n_b):
    """Newcombe's (2006) method 5 interval of a probability of superiority `theta` observed on n_a × n_b
    pairs: the score interval of the Hanley-McNeil variance, n_a - 1 and n_b - 1 in it both replaced by
    (n_a + n_b) / 2 - 1. It stays inside (0, 1) on the side away from an observed 0 or 1."""
    from scipy import optimize, stats

    z = stats.norm.ppf(0.5 + CONFIDENCE / 2)
    others = (n_a + n_b) / 2 - 1

    def variance(t):
        return t * (1 - t) * (1 + others * ((1 - t) / (2 - t) + t / (1 + t))) / (n_a * n_b)

    def lower(observed):
        if observed <= 0:
            return 0.0
        # the lower root of (observed - t)^2 = z^2 variance(t) below `observed`, away from a root at 1
        top = min(observed, 1 - 1e-12)

        def score(t):
            return (observed - t) - z * math.sqrt(variance(t))

        if score(top) >= 0:
            return top
        return float(optimize.brentq(score, 0.0, top, xtol=1e-12))

    with quiet():
        return lower(theta), 1 - lower(1 - theta)  # the variance is symmetric in t and 1 - t


def mann_whitney_p(a, b):
    """Two-sided p-value of the Mann-Whitney test from the exact permutation distribution of the rank sum
    (midranks for ties), counted over every split of the pooled values when there are at most
    EXACT_MWU_LIMIT of them; scipy's normal approximation with tie correction beyond."""
    import numpy as np
    from scipy import stats

    n_a, n_b = len(a), len(b)
    if math.comb(n_a + n_b, n_a) > EXACT_MWU_LIMIT:
        with quiet():
            return float(stats.mannwhitneyu(a, b, alternative="two-sided", method="asymptotic").pvalue)
    pooled = np.concatenate([np.asarray(a, dtype=float), np.asarray(b, dtype=float)])
    doubled = np.rint(2 * stats.rankdata(pooled)).astype(int)  # midranks are halves: twice them are integers
    small = min(n_a, n_b)
    # counts[k, s]: the subsets of k pooled values whose doubled ranks sum to s
    counts = np.zeros((small + 1, int(doubled.sum()) + 1))
    counts[0, 0] = 1.0
    for rank in doubled:
        counts[1:, rank:] += counts[:-1, : counts.shape[1] - rank].copy()
    sums = np.arange(counts.shape[1])
    observed = int(doubled[:n_a].sum() if n_a == small else doubled[n_a:].sum())
    expected = small * (n_a + n_b + 1)  # twice the mean rank sum of `small` values
    extreme = np.abs(sums - expected) >= abs(observed - expected)
    return float(min(1.0, counts[small, extreme].sum() / counts[small].sum()))


def hedges_g(a, b):
    """Standardized difference of means (a - b) / pooled std, with Hedges' small-sample correction;
    None when a group has fewer than 2 values or neither varies."""
    import numpy as np

    na, nb = len(a), len(b)
    if na < 2 or nb < 2 or (is_constant(a) and is_constant(b)):
        return None
    a, b = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    size = float(_magnitude(a, b)[0])  # g does not depend on the unit: computed in units of the values' size
    a, b = a / size, b / size
    with quiet():
        pooled = math.sqrt(((na - 1) * np.var(a, ddof=1) + (nb - 1) * np.var(b, ddof=1)) / (na + nb - 2))
        d = (np.mean(a) - np.mean(b)) / pooled if 0 < pooled < math.inf else math.nan
    return _none_for_nan(d * (1 - 3 / (4 * (na + nb) - 9)))


def replicates_needed(effect_size, alpha=ALPHA, power=POWER):
    """Replicates per group for a two-sided two-sample t-test to detect `effect_size` (standardized)
    with `power`; None when the effect is 0 or needs more than MAX_REPLICATES."""
    from scipy import stats

    d = abs(effect_size or 0.0)
    if d == 0 or not math.isfinite(d):
        return None

    def power_at(n):
        df = 2 * n - 2
        critical = stats.t.ppf(1 - alpha / 2, df)
        shift = d * math.sqrt(n / 2)
        with quiet():
            power = stats.nct.sf(critical, df, shift) + stats.nct.cdf(-critical, df, shift)
        if math.isnan(power):  # a shift far out in the tail, where nct gives up
            return 1.0 if shift > critical else 0.0
        return power

    low, high = 2, 4
    while power_at(high) < power:
        low, high = high, high * 2
        if high > MAX_REPLICATES:
            return None
    while low < high:  # smallest n with enough power
        middle = (low + high) // 2
        if power_at(middle) >= power:
            high = middle
        else:
            low = middle + 1
    return high


def replicates_needed_range(g, n_a, n_b, alpha=ALPHA, power=POWER):
    """(low, high): replicates per group a t-test would need, from the ends of the 95% interval of the
    standardized effect g (its usual approximate standard error): low from the end farther from 0
    (optimistic), high from the nearer one; high None when the interval reaches 0. A rough guide."""
    from scipy import stats

    if g is None:
        return None, None
    z = stats.norm.ppf(0.5 + CONFIDENCE / 2)
    se = math.sqrt((n_a + n_b) / (n_a * n_b) + g * g / (2 * (n_a + n_b)))
    ends = sorted((abs(g - z * se), abs(g + z * se)))
    reaches_zero = g - z * se <= 0 <= g + z * se
    low = replicates_needed(ends[1], alpha, power)
    high = None if reaches_zero else replicates_needed(ends[0], alpha, power)
    return low, high


def rope_probabilities(xa, xb, rope, higher=False, seed=SEED):
    """(P(a better by more than rope), P(|difference| <= rope), P(b better by more than rope)) under the
    Behrens-Fisher posterior of the difference of the means of xa and xb (non-informative priors: each mean
    is its sample mean + s / sqrt(n) × a Student t with n - 1 degrees of freedom), by seeded Monte Carlo of
    ROPE_DRAWS draws; None when a group has fewer than 2 values or neither varies."""
    import numpy as np

    na, nb = len(xa), len(xb)
    if na < 2 or nb < 2 or (is_constant(xa) and is_constant(xb)):
        return None, None, None
    xa, xb = np.asarray(xa, dtype=float), np.asarray(xb, dtype=float)
    size = float(_magnitude(xa, xb)[0])  # drawn in units of the values' size: no overflow
    xa, xb, rope = xa / size, xb / size, rope / size
    rng = np.random.default_rng(seed)
    with quiet():
        mean_a = xa.mean() + xa.std(ddof=1) / math.sqrt(na) * rng.standard_t(na - 1, ROPE_DRAWS)
        mean_b = xb.mean() + xb.std(ddof=1) / math.sqrt(nb) * rng.standard_t(nb - 1, ROPE_DRAWS)
        diff = mean_a - mean_b
    if higher:
        diff = -diff  # below 0 is then 'a better' in both directions
    better = float(np.mean(diff < -rope))
    worse = float(np.mean(diff > rope))
    return better, max(0.0, 1.0 - better - worse), worse


def compare_pair(a, b, higher=False, rope=None, alpha=ALPHA, scale="linear", seed=SEED):
    """The statistics of group values `a` against `b` (PAIR_COLUMNS, the Holm ones None), on `scale`:
    "linear" compares means (effect: mean(a) - mean(b)), "log" geometric means (effect: the ratio
    gmean(a) / gmean(b); rope: a relative margin r, practically equal when the ratio is within 1 + r).
    replicates_needed at significance level `alpha`; `seed` for the ROPE posterior."""
    found = dict.fromkeys(PAIR_COLUMNS)
    found.update(scale=scale, rope=rope, constant_a=is_constant(a), constant_b=is_constant(b))
    if len(a) == 0 or len(b) == 0:
        return found
    xa, xb = transform(a, scale), transform(b, scale)
    diff, low, high, p = (_none_for_nan(value) for value in welch(xa, xb))
    if found["constant_a"] and found["constant_b"]:  # no test: the data say nothing about the noise
        low = high = p = None
    found["effect"] = _back(diff, scale)
    found["effect_ci_low"], found["effect_ci_high"], found["welch_p"] = _back(low, scale), _back(high, scale), p
    found["superiority"] = superiority(a, b, higher)
    found["superiority_ci_low"], found["superiority_ci_high"] = superiority_interval(
        found["superiority"], len(a), len(b)
    )
    if len(a) < 2 or len(b) < 2:
        return found
    found["mwu_p"] = mann_whitney_p(a, b)
    found["hedges_g"] = hedges_g(xa, xb)
    found["replicates_needed_low"], found["replicates_needed_high"] = replicates_needed_range(
        found["hedges_g"], len(a), len(b), alpha
    )
    if rope is not None:
        margin = math.log1p(rope) if scale == "log" else rope
        found["p_rope_better"], found["p_rope_equal"], found["p_rope_worse"] = rope_probabilities(
            xa, xb, margin, higher, seed
        )
    return found


# ---------------------------------------------------------------- families and failures


def fisher_p(bad_a, n_a, bad_b, n_b):
    """Two-sided p-value of Fisher's exact test: are bad_a failures in n_a runs and bad_b in n_b runs the
    same failure rate? None when a group has no run."""
    from scipy import stats

    if n_a == 0 or n_b == 0:
        return None
    with quiet():
        return float(stats.fisher_exact([[bad_a, n_a - bad_a], [bad_b, n_b - bad_b]]).pvalue)


def holm(p_values):
    """Holm-Bonferroni adjusted p-values, in the order given (None stays None)."""
    indexed = sorted((p, i) for i, p in enumerate(p_values) if p is not None)
    m = len(indexed)
    adjusted = [None] * len(p_values)
    running = 0.0
    for rank, (p, i) in enumerate(indexed):
        running = max(running, min(1.0, (m - rank) * p))
        adjusted[i] = running
    return adjusted
