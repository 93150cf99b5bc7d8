"""Tests for mosaic.results.stats, the statistics of mosaic_compare: against scipy, hand computations and
published tables."""

import numpy as np
import pytest
from scipy import stats

from mosaic.results import stats as st

A = [0.31, 0.42, 0.28, 0.39, 0.35, 0.44]
B = [0.52, 0.47, 0.61, 0.40, 0.55]


def test_describe_matches_numpy_and_scipy():
    found = st.describe(A)
    assert found["n"] == 6
    assert found["mean"] == pytest.approx(np.mean(A))
    assert found["median"] == pytest.approx(np.median(A))
    assert found["iqm"] == pytest.approx(np.mean(sorted(A)[1:5]))  # the middle half of 6 values
    assert found["std"] == pytest.approx(np.std(A, ddof=1))
    expected = stats.bootstrap(
        (np.array(A),), np.mean, n_resamples=st.RESAMPLES, rng=np.random.default_rng(st.SEED), method="BCa"
    ).confidence_interval
    assert (found["ci_low"], found["ci_high"]) == pytest.approx((expected.low, expected.high))
    assert found["ci_low"] < found["mean"] < found["ci_high"]
    assert st.describe(A) == found  # fixed seed: reproducible


def test_describe_small_and_constant_groups():
    assert st.describe([])["n"] == 0 and st.describe([])["mean"] is None
    one = st.describe([2.0])
    assert (one["mean"], one["std"], one["ci_low"]) == (2.0, None, None)
    same = st.describe([1.5, 1.5, 1.5])
    assert (same["ci_low"], same["ci_high"], same["std"]) == (1.5, 1.5, 0.0)


def test_tests_match_scipy():
    assert st.welch_p(A, B) == pytest.approx(stats.ttest_ind(A, B, equal_var=False).pvalue)
    assert st.mann_whitney_p(A, B) == pytest.approx(stats.mannwhitneyu(A, B).pvalue)
    assert st.welch_p([1, 1], [2, 2]) == 0.0 and st.welch_p([1, 1], [1, 1]) == 1.0


def test_probability_of_improvement_is_the_mann_whitney_share():
    a, b = [1, 2, 3, 3], [3, 4, 5]
    # by hand: pairs where a < b: 1,2 beat all 3 (6); each 3 ties one and beats two (2 × 2.5) -> 11 of 12
    assert st.probability_of_improvement(a, b) == pytest.approx(11 / 12)
    assert st.probability_of_improvement(a, b, higher=True) == pytest.approx(1 / 12)
    assert st.probability_of_improvement(A, B) == pytest.approx(
        stats.mannwhitneyu(B, A).statistic / (len(A) * len(B))
    )


def test_hedges_g_by_hand():
    a, b = [1.0, 2.0, 3.0], [3.0, 4.0, 5.0, 6.0]
    pooled = ((2 * 1.0) + (3 * np.var(b, ddof=1))) / 5
    d = (2.0 - 4.5) / pooled**0.5
    assert st.hedges_g(a, b) == pytest.approx(d * (1 - 3 / (4 * 7 - 9)))
    assert st.hedges_g([1.0, 1.0], [1.0, 1.0]) is None


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


def test_rope_probabilities():
    better, equal, worse = st.rope_probabilities([1.0, 1.1, 0.9], [5.0, 5.1, 4.9], rope=0.5)
    assert better > 0.99 and worse < 0.01
    better, equal, worse = st.rope_probabilities([1.0, 1.1, 0.9, 1.0], [1.01, 1.09, 0.92, 0.98], rope=1.0)
    assert equal > 0.99
    assert better + equal + worse == pytest.approx(1.0)
    # higher is better: the larger values win
    better, _, worse = st.rope_probabilities([5.0, 5.1, 4.9], [1.0, 1.1, 0.9], rope=0.5, higher=True)
    assert better > 0.99


def test_mean_t_interval_by_hand():
    values = [1.0, 2.0, 4.0]
    half = stats.t.ppf(0.975, 2) * np.std(values, ddof=1) / 3**0.5
    assert st.mean_t_interval(values) == pytest.approx((7 / 3, 7 / 3 - half, 7 / 3 + half))
    assert st.mean_t_interval([0.5]) == (0.5, None, None)


def test_compare_pair_fills_every_pair_column():
    found = st.compare_pair(A, B, rope=0.05)
    assert list(found) == st.PAIR_COLUMNS
    assert (found["welch_p_holm"], found["mwu_p_holm"]) == (None, None)  # filled over all the pairs
    assert found["diff"] == pytest.approx(np.mean(A) - np.mean(B)) and found["welch_p"] == st.welch_p(A, B)
    assert st.compare_pair([], B) == dict.fromkeys(st.PAIR_COLUMNS)
