"""The statistics of mosaic_compare, pure functions on arrays of values (no database, no files): a group's
description (mean, median, interquartile mean, std, a bootstrap interval of the mean) and the tests of one
group against another (difference of means, Welch's t-test, Mann-Whitney U, Hedges' g, the probability of
improvement, the replicates a t-test would need, Holm's correction, the ROPE posterior). compare.py says
what each is for; README.md ("Which architecture wins") explains each column.

scipy and numpy are imported inside the functions that need them: importing this module stays cheap.
"""

import math

CONFIDENCE = 0.95
ALPHA = 0.05
POWER = 0.8
SEED = 20240607  # the bootstrap's seed: the same database always gives the same intervals
RESAMPLES = 9999
MAX_REPLICATES = 100_000

# what compare_pair finds for one pair of groups (the Holm columns are filled over all the pairs)
PAIR_COLUMNS = (
    "diff diff_ci_low diff_ci_high welch_p welch_p_holm mwu_p mwu_p_holm hedges_g p_better p_better_ci_low"
    " p_better_ci_high replicates_needed rope p_rope_better p_rope_equal p_rope_worse"
).split()


def _bootstrap_ci(samples, statistic, seed=SEED, n_resamples=RESAMPLES, method="BCa"):
    """95% bootstrap CI of statistic(*samples) (each sample resampled on its own); BCa, or the percentile
    interval where BCa is undefined (all resampled statistics equal)."""
    import numpy as np
    from scipy import stats

    samples = tuple(np.asarray(sample, dtype=float) for sample in samples)
    if all(np.ptp(sample) == 0 for sample in samples):  # nothing varies: the interval is the point
        point = float(statistic(*samples, axis=-1))
        return point, point
    for how in (method, "percentile"):
        with np.errstate(all="ignore"):
            import warnings

            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                result = stats.bootstrap(
                    samples, statistic, n_resamples=n_resamples, confidence_level=CONFIDENCE, method=how,
                    vectorized=True, rng=np.random.default_rng(seed),
                )
        low, high = result.confidence_interval
        if math.isfinite(low) and math.isfinite(high):
            return float(low), float(high)
    return None, None


def _mean(sample, axis=-1):
    import numpy as np

    return np.mean(sample, axis=axis)


def _mean_difference(a, b, axis=-1):
    import numpy as np

    return np.mean(a, axis=axis) - np.mean(b, axis=axis)


def describe(values, seed=SEED, n_resamples=RESAMPLES):
    """{n, mean, median, iqm, std, ci_low, ci_high} of one group's values (None where undefined)."""
    import numpy as np
    from scipy import stats

    n = len(values)
    if n == 0:
        return dict.fromkeys(("n", "mean", "median", "iqm", "std", "ci_low", "ci_high"), None) | {"n": 0}
    array = np.asarray(values, dtype=float)
    found = {
        "n": n,
        "mean": float(array.mean()),
        "median": float(np.median(array)),
        "iqm": float(stats.trim_mean(array, 0.25)),  # the mean of the middle half
        "std": float(array.std(ddof=1)) if n > 1 else None,
        "ci_low": None,
        "ci_high": None,
    }
    if n > 1:
        found["ci_low"], found["ci_high"] = _bootstrap_ci((array,), _mean, seed, n_resamples)
    return found


def probability_of_improvement(a, b, higher=False, axis=-1):
    """Share of the pairs (a_i, b_j) where a_i is better than b_j, ties counted half (vectorized over
    leading axes, as scipy's bootstrap calls it)."""
    import numpy as np

    a = np.moveaxis(np.asarray(a, dtype=float), axis, -1)
    b = np.moveaxis(np.asarray(b, dtype=float), axis, -1)
    left, right = a[..., :, None], b[..., None, :]
    better = (left > right) if higher else (left < right)
    return (better + 0.5 * (left == right)).mean(axis=(-2, -1))


def hedges_g(a, b):
    """Standardized difference of means (a - b) / pooled std, with Hedges' small-sample correction;
    None when the pooled std is 0 or a group has fewer than 2 values."""
    import numpy as np

    na, nb = len(a), len(b)
    if na < 2 or nb < 2:
        return None
    pooled = math.sqrt(((na - 1) * np.var(a, ddof=1) + (nb - 1) * np.var(b, ddof=1)) / (na + nb - 2))
    if pooled == 0:
        return None
    d = (np.mean(a) - np.mean(b)) / pooled
    return float(d * (1 - 3 / (4 * (na + nb) - 9)))


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


def welch_p(a, b):
    """Two-sided p-value of Welch's t-test; when neither group varies, 0 if their means differ, else 1."""
    import numpy as np
    from scipy import stats

    if np.ptp(a) == 0 and np.ptp(b) == 0:
        return 0.0 if np.mean(a) != np.mean(b) else 1.0
    return float(stats.ttest_ind(a, b, equal_var=False).pvalue)


def mann_whitney_p(a, b):
    from scipy import stats

    return float(stats.mannwhitneyu(a, b, alternative="two-sided").pvalue)


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


def rope_probabilities(a, b, rope, higher=False):
    """(P(a better by more than rope), P(|difference| <= rope), P(b better by more than rope)): the
    posterior of the difference of means under a non-informative prior, a Student t centred on the
    observed difference with Welch's standard error and degrees of freedom."""
    import numpy as np
    from scipy import stats

    na, nb = len(a), len(b)
    diff = float(np.mean(a) - np.mean(b))
    if higher:
        diff = -diff  # below 0 is then 'a better' in both directions
    va, vb = np.var(a, ddof=1) / na, np.var(b, ddof=1) / nb
    scale = math.sqrt(va + vb)
    if scale == 0:
        return (float(diff < -rope), float(-rope <= diff <= rope), float(diff > rope))
    df = (va + vb) ** 2 / (va**2 / (na - 1) + vb**2 / (nb - 1))
    posterior = stats.t(df, loc=diff, scale=scale)
    better = float(posterior.cdf(-rope))
    worse = float(posterior.sf(rope))
    return better, max(0.0, 1.0 - better - worse), worse


def compare_pair(a, b, higher=False, rope=None, seed=SEED, n_resamples=RESAMPLES, alpha=ALPHA):
    """The statistics of group values `a` against `b` (PAIR_COLUMNS, the Holm ones None);
    replicates_needed at significance level `alpha`."""
    found = dict.fromkeys(PAIR_COLUMNS)
    if not a or not b:
        return found
    found["diff"] = sum(a) / len(a) - sum(b) / len(b)
    found["rope"] = rope
    found["p_better"] = float(probability_of_improvement(a, b, higher))
    if len(a) < 2 or len(b) < 2:
        return found
    found["diff_ci_low"], found["diff_ci_high"] = _bootstrap_ci((a, b), _mean_difference, seed, n_resamples)
    found["welch_p"] = welch_p(a, b)
    found["mwu_p"] = mann_whitney_p(a, b)
    found["hedges_g"] = hedges_g(a, b)
    found["replicates_needed"] = replicates_needed(found["hedges_g"], alpha)

    def improvement(x, y, axis=-1):
        return probability_of_improvement(x, y, higher, axis)

    found["p_better_ci_low"], found["p_better_ci_high"] = _bootstrap_ci(
        (a, b), improvement, seed, n_resamples, method="percentile"
    )
    if rope is not None:
        found["p_rope_better"], found["p_rope_equal"], found["p_rope_worse"] = rope_probabilities(a, b, rope, higher)
    return found


def mean_t_interval(values):
    """(mean, low, high): the mean of `values` with its Student t interval (low, high None for one value)."""
    import numpy as np
    from scipy import stats

    ys = np.asarray(values)
    mean, low, high = float(ys.mean()), None, None
    if len(ys) > 1:
        half = stats.t.ppf(0.5 + CONFIDENCE / 2, len(ys) - 1) * ys.std(ddof=1) / math.sqrt(len(ys))
        low, high = mean - float(half), mean + float(half)
    return mean, low, high
