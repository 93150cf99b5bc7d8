"""Tests for mosaic.results.stats, the statistics of mosaic_compare: against scipy, hand computations and
published tables. Their calibration (coverage, error rates) by simulation is in test_calibration.py."""

import math
from itertools import combinations

import numpy as np
import pytest
from scipy import stats

from mosaic.results import stats as st

A = [0.31, 0.42, 0.28, 0.39, 0.35, 0.44]
B = [0.52, 0.47, 0.61, 0.40, 0.55]


def t_interval(xs):
    mean = np.mean(xs)
    half = stats.t.ppf(0.975, len(xs) - 1) * np.std(xs, ddof=1) / math.sqrt(len(xs))
    return mean, mean - half, mean + half


def test_describe_matches_numpy_and_scipy():
    found = st.describe(A)
    assert list(found) == list(st.DESCRIBE_KEYS)
    assert found["n"] == 6 and found["constant"] is False
    assert found["mean"] == found["center"] == pytest.approx(np.mean(A))
    assert found["median"] == pytest.approx(np.median(A))
    assert found["iqm"] == pytest.approx(np.mean(sorted(A)[1:5]))  # the middle half of 6 values
    assert found["std"] == pytest.approx(np.std(A, ddof=1))
    assert (found["center"], found["ci_low"], found["ci_high"]) == pytest.approx(t_interval(A))
    assert (found["center"], found["ci_low"], found["ci_high"]) == st.mean_interval(A)


def test_describe_on_the_log_scale_is_the_geometric_mean_and_its_ratio_interval():
    values = [9.4e-12, 4.4e-11, 2.0e-11, 1.3e-11]
    found = st.describe(values, "log")
    center, low, high = t_interval(np.log(values))
    assert found["mean"] == pytest.approx(np.mean(values))  # the arithmetic mean stays
    assert (found["center"], found["ci_low"], found["ci_high"]) == pytest.approx(
        (math.exp(center), math.exp(low), math.exp(high)), rel=1e-12
    )
    assert found["center"] == pytest.approx(stats.gmean(values))
    assert 0 < found["ci_low"] < found["center"] < found["ci_high"]
    assert st.mean_interval(values, "log") == (found["center"], found["ci_low"], found["ci_high"])


def test_transform_and_its_refusals():
    assert list(st.transform([1.0, math.e], "log")) == pytest.approx([0.0, 1.0])
    assert list(st.transform([-1.0, 2.0], "linear")) == [-1.0, 2.0]
    with pytest.raises(ValueError, match="> 0"):
        st.transform([0.0, 1.0], "log")
    with pytest.raises(ValueError, match="unknown scale"):
        st.transform([1.0], "sqrt")


def test_default_scale_logs_positive_values_where_lower_is_better():
    assert st.default_scale([9.4e-12, 4.4e-11]) == "log"  # losses
    assert st.default_scale([0.91, 0.95], higher=True) == "linear"  # accuracies
    assert st.default_scale([0.0, 0.5]) == st.default_scale([-1.0, 2.0]) == st.default_scale([]) == "linear"
    assert st.default_scale([1.0, float("inf")]) == "linear"


def test_describe_small_and_constant_groups():
    empty = st.describe([])
    assert empty["n"] == 0 and empty["mean"] is None and empty["constant"] is False
    one = st.describe([2.0])
    assert (one["mean"], one["std"], one["ci_low"], one["constant"]) == (2.0, None, None, False)
    assert st.mean_interval([0.5]) == (0.5, None, None)
    same = st.describe([1.5, 1.5, 1.5])
    assert (same["ci_low"], same["ci_high"], same["std"], same["constant"]) == (1.5, 1.5, 0.0, True)
    assert st.describe([1.0, 1.0 + 1e-14, 1.0])["constant"]  # below the relative spread: rounding noise
    assert not st.describe([9.4e-12, 4.4e-11])["constant"]  # tiny values, but they vary


def test_welch_matches_scipy():
    found = st.compare_pair(A, B)
    assert found["welch_p"] == pytest.approx(stats.ttest_ind(A, B, equal_var=False).pvalue)
    ci = stats.ttest_ind(A, B, equal_var=False).confidence_interval(0.95)
    assert (found["effect_ci_low"], found["effect_ci_high"]) == pytest.approx((ci.low, ci.high))
    assert found["effect"] == pytest.approx(np.mean(A) - np.mean(B))


def test_the_log_scale_compares_ratios_of_geometric_means():
    found = st.compare_pair(A, B, scale="log")
    welch = stats.ttest_ind(np.log(A), np.log(B), equal_var=False)
    ci = welch.confidence_interval(0.95)
    assert found["scale"] == "log"
    assert found["effect"] == pytest.approx(stats.gmean(A) / stats.gmean(B))
    assert (found["effect_ci_low"], found["effect_ci_high"]) == pytest.approx((math.exp(ci.low), math.exp(ci.high)))
    assert found["welch_p"] == pytest.approx(welch.pvalue)
    assert found["hedges_g"] == pytest.approx(st.hedges_g(np.log(A), np.log(B)))


def test_mann_whitney_is_exact_with_ties_and_matches_scipy_without():
    assert st.mann_whitney_p([1, 1, 1], [2, 2, 2]) == pytest.approx(0.1)  # 2 of the 20 splits are as extreme
    assert st.mann_whitney_p(A, B) == pytest.approx(stats.mannwhitneyu(A, B, method="exact").pvalue)
    assert st.mann_whitney_p([1, 2, 3], [1, 2, 3]) == 1.0
    # by hand: [1, 2, 2] vs [2, 3]: midranks 1, 3, 3 | 3, 5, a's rank sum 7 where 9 is expected; the p-value
    # is the share of the 10 splits of the midranks into 3 + 2 whose sum is as far from 9
    pooled = [1, 3, 3, 3, 5]
    sums = [sum(c) for c in combinations(pooled, 3)]
    assert st.mann_whitney_p([1, 2, 2], [2, 3]) == pytest.approx(np.mean([abs(s - 9) >= 2 for s in sums]))
    big_a, big_b = np.arange(30.0), np.arange(30.0) + 5  # C(60, 30) splits: the normal approximation
    assert st.mann_whitney_p(big_a, big_b) == pytest.approx(
        stats.mannwhitneyu(big_a, big_b, method="asymptotic").pvalue
    )


def test_superiority_is_the_mann_whitney_share():
    a, b = [1, 2, 3, 3], [3, 4, 5]
    # by hand: pairs where a < b: 1,2 beat all 3 (6); each 3 ties one and beats two (2 × 2.5) -> 11 of 12
    assert st.superiority(a, b) == pytest.approx(11 / 12)
    assert st.superiority(a, b, higher=True) == pytest.approx(1 / 12)
    assert st.superiority(A, B) == pytest.approx(stats.mannwhitneyu(B, A).statistic / (len(A) * len(B)))


def test_superiority_interval_is_newcombes_method_5():
    # the definition (Newcombe 2006, Part 2): each end solves (theta - t)^2 = z^2 V(t), V the Hanley-McNeil
    # variance with n1 - 1 and n2 - 1 both replaced by (n1 + n2) / 2 - 1
    theta, n1, n2 = 0.7, 4, 6
    low, high = st.superiority_interval(theta, n1, n2)
    others, z = (n1 + n2) / 2 - 1, stats.norm.ppf(0.975)

    def variance(t):
        return t * (1 - t) * (1 + others * ((1 - t) / (2 - t) + t / (1 + t))) / (n1 * n2)

    for end in (low, high):
        assert (theta - end) ** 2 == pytest.approx(z * z * variance(end), rel=1e-6)
    assert low < theta < high
    assert st.superiority_interval(1.0, 4, 4)[1] == 1.0 and st.superiority_interval(0.0, 4, 4)[0] == 0.0
    assert st.superiority_interval(0.0, 4, 4)[1] == pytest.approx(1 - st.superiority_interval(1.0, 4, 4)[0])


def test_hedges_g_by_hand():
    a, b = [1.0, 2.0, 3.0], [3.0, 4.0, 5.0, 6.0]
    pooled = ((2 * 1.0) + (3 * np.var(b, ddof=1))) / 5
    d = (2.0 - 4.5) / pooled**0.5
    assert st.hedges_g(a, b) == pytest.approx(d * (1 - 3 / (4 * 7 - 9)))
    assert st.hedges_g([1.0, 1.0], [1.0, 1.0]) is None
    assert st.hedges_g([1.0], [1.0, 2.0]) is None


def test_holm_by_hand():
    assert st.holm([0.01, 0.04, 0.03]) == pytest.approx([0.03, 0.06, 0.06])
    assert st.holm([0.5, None, 0.2]) == [pytest.approx(0.5), None, pytest.approx(0.4)]


@pytest.mark.parametrize("effect, replicates", [(0.5, 64), (0.8, 26), (1.0, 17), (2.0, 6)])
def test_replicates_needed_known_answers(effect, replicates):
    # the classic tables (Cohen 1988) for a two-sided two-sample t-test, alpha 0.05, power 0.8
    assert st.replicates_needed(effect) == replicates
    assert st.replicates_needed(-effect) == replicates
    assert st.replicates_needed(0.0) is None and st.replicates_needed(1e-6) is None
    assert st.replicates_needed(29.0) == 2  # far out in the tail of the noncentral t


def test_replicates_needed_range_from_the_interval_of_g():
    g, n = 1.5, 5
    se = math.sqrt(2 / n + g * g / (4 * n))
    low, high = st.replicates_needed_range(g, n, n)
    assert low == st.replicates_needed(g + 1.959963984540054 * se)
    assert high == st.replicates_needed(g - 1.959963984540054 * se)
    assert low <= st.replicates_needed(g) <= high
    assert st.replicates_needed_range(-g, n, n) == (low, high)
    assert st.replicates_needed_range(0.5, n, n)[1] is None  # the interval reaches 0: no upper end
    assert st.replicates_needed_range(None, n, n) == (None, None)


def test_rope_probabilities():
    better, equal, worse = st.rope_probabilities([1.0, 1.1, 0.9], [5.0, 5.1, 4.9], rope=0.5)
    assert better > 0.99 and worse < 0.01
    better, equal, worse = st.rope_probabilities([1.0, 1.1, 0.9, 1.0], [1.01, 1.09, 0.92, 0.98], rope=1.0)
    assert equal > 0.99
    assert better + equal + worse == pytest.approx(1.0)
    # higher is better: the larger values win
    better, _, worse = st.rope_probabilities([5.0, 5.1, 4.9], [1.0, 1.1, 0.9], rope=0.5, higher=True)
    assert better > 0.99
    assert st.rope_probabilities([1.0, 1.0], [2.0, 2.0], rope=0.1) == (None, None, None)  # nothing varies


def test_rope_on_the_log_scale_is_a_relative_margin():
    a, b = [1.00, 1.02, 0.98, 1.01], [1.03, 1.05, 1.01, 1.04]  # b about 3% above a
    loose = st.compare_pair(a, b, rope=0.10, scale="log")  # within 10%: practically equal
    tight = st.compare_pair(a, b, rope=0.001, scale="log")  # within 0.1%: a is better
    assert loose["p_rope_equal"] > 0.95 and tight["p_rope_better"] > 0.9


def test_fisher_p_matches_scipy():
    assert st.fisher_p(2, 4, 0, 4) == pytest.approx(stats.fisher_exact([[2, 2], [0, 4]]).pvalue)
    assert st.fisher_p(0, 4, 0, 4) == 1.0
    assert st.fisher_p(1, 0, 0, 4) is None and st.fisher_p(0, 4, 0, 0) is None


def test_compare_pair_fills_every_pair_column():
    found = st.compare_pair(A, B, rope=0.05)
    assert tuple(found) == st.PAIR_COLUMNS
    assert (found["welch_p_holm"], found["mwu_p_holm"]) == (None, None)  # filled over all the pairs
    assert found["scale"] == "linear" and found["rope"] == 0.05
    assert (found["constant_a"], found["constant_b"]) == (False, False)
    assert [name for name, v in found.items() if v is None] == ["welch_p_holm", "mwu_p_holm"]
    empty = st.compare_pair([], B)
    assert empty["effect"] is None and empty["welch_p"] is None and empty["scale"] == "linear"


def test_compare_pair_with_one_replicate():
    found = st.compare_pair([0.3], B)
    assert found["effect"] == pytest.approx(0.3 - np.mean(B))
    assert found["superiority"] == 1.0 and 0 < found["superiority_ci_low"] < 1
    assert found["welch_p"] is None and found["effect_ci_low"] is None and found["hedges_g"] is None


def test_compare_pair_is_reproducible():
    assert st.compare_pair(A, B, rope=0.05) == st.compare_pair(A, B, rope=0.05)
