"""Calibration of mosaic.results.stats by simulation (fixed seeds, numpy only): its 95% intervals cover 95%
at the replicate counts people use (3-5), its tests reject a true null no more than they say, and the
degenerate cases (one replicate, replicates that do not vary, ties) give None or exact answers, never a
library warning. The bootstrap intervals these replaced covered 74% at n = 3 (see issue 21, J)."""

import math
import warnings
from itertools import combinations

import numpy as np
import pytest
from scipy import integrate, stats

from mosaic.results import stats as st

DRAWS = 4000  # simulated experiments per case: a coverage of 0.95 is measured within ± 0.007 (two SE)
SIZES = (3, 4, 5, 10)


def covered(low, high, truth):
    return float(np.mean((low <= truth) & (truth <= high)))


@pytest.mark.parametrize("n", SIZES)
def test_the_interval_of_the_mean_covers_95_percent_of_normal_samples(n):
    samples = np.random.default_rng(n).normal(3.0, 2.0, (DRAWS, n))
    center, low, high = st.t_interval(samples)
    assert 0.93 <= covered(low, high, 3.0) <= 0.97
    for row in range(20):  # describe and mean_interval draw exactly these intervals
        found = st.describe(list(samples[row]))
        assert (found["center"], found["ci_low"], found["ci_high"]) == pytest.approx(
            (center[row], low[row], high[row]), rel=1e-12
        )


@pytest.mark.parametrize("n", SIZES)
def test_the_interval_of_a_difference_covers_95_percent_of_normal_samples(n):
    rng = np.random.default_rng(100 + n)
    a, b = rng.normal(0.0, 1.0, (DRAWS, n)), rng.normal(0.5, 3.0, (DRAWS, n))  # unequal spreads: Welch
    _, low, high, _ = st.welch(a, b)
    assert 0.93 <= covered(low, high, -0.5) <= 0.97
    for row in range(10):  # compare_pair reports exactly these intervals
        found = st.compare_pair(list(a[row]), list(b[row]))
        assert (found["effect_ci_low"], found["effect_ci_high"]) == pytest.approx((low[row], high[row]), rel=1e-12)


@pytest.mark.parametrize("n", SIZES)
def test_on_the_log_scale_the_ratio_interval_covers_95_percent_of_lognormal_samples(n):
    rng = np.random.default_rng(200 + n)
    # losses spanning orders of magnitude: geometric means 1e-11 and 3e-11, a spread of a factor e
    a, b = rng.lognormal(math.log(1e-11), 1.0, (DRAWS, n)), rng.lognormal(math.log(3e-11), 1.0, (DRAWS, n))
    _, low, high, _ = st.welch(np.log(a), np.log(b))
    assert 0.93 <= covered(np.exp(low), np.exp(high), 1 / 3) <= 0.97
    _, low_a, high_a = st.t_interval(np.log(a))
    assert 0.93 <= covered(np.exp(low_a), np.exp(high_a), 1e-11) <= 0.97  # the geometric mean's interval
    for row in range(10):
        found = st.compare_pair(list(a[row]), list(b[row]), scale="log")
        assert (found["effect_ci_low"], found["effect_ci_high"]) == pytest.approx(
            (math.exp(low[row]), math.exp(high[row])), rel=1e-9
        )
        assert st.mean_interval(a[row], "log")[1:] == pytest.approx((math.exp(low_a[row]), math.exp(high_a[row])))


@pytest.mark.parametrize("n", (3, 5))
def test_welch_rejects_a_true_null_at_most_5_percent(n):
    rng = np.random.default_rng(300 + n)
    _, _, _, p = st.welch(rng.normal(size=(DRAWS, n)), rng.normal(size=(DRAWS, n)))
    assert float(np.mean(p < 0.05)) <= 0.055


def test_replicates_that_do_not_vary_are_no_test():
    # one seed for every run (pseudo-replication): the bootstrap-era code said "p = 0"
    found = st.compare_pair([1.0] * 4, [1.0 + 1e-9] * 4, rope=0.01)
    assert found["constant_a"] and found["constant_b"]
    assert found["welch_p"] is None and found["hedges_g"] is None
    assert found["effect_ci_low"] is None and found["p_rope_equal"] is None
    assert found["replicates_needed_low"] is None and found["replicates_needed_high"] is None
    assert found["effect"] == pytest.approx(-1e-9)
    one_varies = st.compare_pair([1.0] * 4, [1.1, 1.2, 1.0, 1.3])
    assert one_varies["constant_a"] and not one_varies["constant_b"] and one_varies["welch_p"] is not None


def test_mann_whitney_with_ties_is_exact():
    # 3 vs 3 all tied within groups: the most extreme of the 20 splits, on either side: 2 / 20
    assert st.mann_whitney_p([1, 1, 1], [2, 2, 2]) == pytest.approx(0.1)
    assert st.compare_pair([1.0] * 3, [2.0] * 3)["mwu_p"] == pytest.approx(0.1)
    # by enumeration of every split, with ties
    a, b = [1, 2, 2, 3], [2, 3, 3, 4, 4]
    ranks = stats.rankdata(a + b)
    expected = len(a) * (len(a) + len(b) + 1) / 2
    observed = abs(ranks[: len(a)].sum() - expected)
    sums = [abs(sum(ranks[list(split)]) - expected) for split in combinations(range(len(ranks)), len(a))]
    assert st.mann_whitney_p(a, b) == pytest.approx(np.mean([s >= observed - 1e-9 for s in sums]))


def test_mann_whitney_without_ties_agrees_with_scipys_exact_test():
    rng = np.random.default_rng(400)
    for _ in range(100):
        a, b = rng.normal(size=rng.integers(2, 8)), rng.normal(0.7, 1.0, size=rng.integers(2, 8))
        assert st.mann_whitney_p(a, b) == pytest.approx(stats.mannwhitneyu(a, b, method="exact").pvalue)


def test_mann_whitney_with_ties_rejects_a_true_null_at_most_5_percent():
    rng = np.random.default_rng(401)  # values on a coarse grid (accuracies of a small test set): many ties
    rejected = [st.mann_whitney_p(*rng.integers(0, 4, size=(2, 5))) < 0.05 for _ in range(2000)]
    assert np.mean(rejected) <= 0.05


@pytest.mark.parametrize("n", (2, 4))
def test_the_superiority_interval_does_not_collapse_when_groups_do_not_overlap(n):
    a, b = list(range(n)), list(range(10, 10 + n))
    found = st.compare_pair(a, b)  # every a below every b: a wins every pair (lower is better)
    assert found["superiority"] == 1.0
    assert 0 < found["superiority_ci_low"] < 1 and found["superiority_ci_high"] == 1.0
    higher = st.compare_pair(a, b, higher=True)  # now b wins every pair
    assert higher["superiority"] == 0.0
    assert higher["superiority_ci_low"] == 0.0 and 0 < higher["superiority_ci_high"] < 1


def test_superiority_is_the_share_of_pairs_won():
    a, b = [1.0, 2.0, 3.0, 5.0], [2.0, 4.0, 6.0]
    won = sum((x < y) + 0.5 * (x == y) for x in a for y in b) / (len(a) * len(b))
    found = st.compare_pair(a, b)
    assert found["superiority"] == pytest.approx(won)
    assert found["superiority_ci_low"] < won < found["superiority_ci_high"]


def behrens_fisher(a, b, rope):
    """(better, equal, worse) of the Behrens-Fisher posterior by numerical integration: P(mu_a - mu_b < c)
    = integral over t of f_{n_a - 1}(t) P(mean_b + se_b T_{n_b - 1} > mean_a + se_a t - c)."""
    se_a, se_b = np.std(a, ddof=1) / math.sqrt(len(a)), np.std(b, ddof=1) / math.sqrt(len(b))
    t_a, t_b = stats.t(len(a) - 1), stats.t(len(b) - 1)

    def below(c):
        def density(t):
            return t_a.pdf(t) * t_b.sf((np.mean(a) + se_a * t - c - np.mean(b)) / se_b)

        return integrate.quad(density, -np.inf, np.inf, epsabs=1e-12)[0]

    better, worse = below(-rope), 1 - below(rope)
    return better, 1 - better - worse, worse


def test_the_rope_posterior_is_behrens_fisher_where_welch_understated_the_tails():
    a, b, rope = [1.00, 1.10, 0.95, 1.05], [1.20, 1.32, 1.12, 1.26], 0.1
    reference = behrens_fisher(a, b, rope)
    # the Welch approximation it replaced: one Student t with Welch's degrees of freedom
    va, vb = np.var(a, ddof=1) / 4, np.var(b, ddof=1) / 4
    welch = stats.t((va + vb) ** 2 / (va**2 / 3 + vb**2 / 3), np.mean(a) - np.mean(b), math.sqrt(va + vb))
    assert welch.sf(rope) < reference[2] / 4  # the tail of 'b better' understated more than 4-fold
    found = st.compare_pair(a, b, rope=rope)
    drawn = (found["p_rope_better"], found["p_rope_equal"], found["p_rope_worse"])
    for p, want in zip(drawn, reference):
        assert abs(p - want) <= 4 * math.sqrt(want * (1 - want) / st.ROPE_DRAWS) + 1e-6  # Monte Carlo error
    assert st.compare_pair(a, b, rope=rope) == found  # seeded


def test_replicates_needed_is_a_range_from_the_effects_interval():
    rng = np.random.default_rng(500)
    for _ in range(50):
        n = int(rng.integers(3, 8))
        found = st.compare_pair(list(rng.normal(0, 1, n)), list(rng.normal(rng.uniform(0, 4), 1, n)))
        low, high = found["replicates_needed_low"], found["replicates_needed_high"]
        assert low is not None and (high is None or low <= high)
    overlapping = st.compare_pair([1.0, 2.0, 3.0], [1.5, 2.5, 3.5])  # the effect's interval includes 0
    assert overlapping["replicates_needed_high"] is None and overlapping["replicates_needed_low"] >= 2
    apart = st.compare_pair([1.0, 1.1, 0.9, 1.05], [2.0, 2.1, 1.9, 2.05])
    assert 2 <= apart["replicates_needed_low"] <= apart["replicates_needed_high"]


DEGENERATE = [
    ([1.0], [2.0]),  # one replicate each
    ([1.0], [2.0, 3.0]),
    ([1.0, 1.0, 1.0], [1.0, 1.0, 1.0]),  # identical constant groups
    ([1.0] * 4, [1.0 + 1e-9] * 4),
    ([0.5, 0.6, 0.7], [0.5, 0.6, 0.7]),  # identical groups
    ([9.4e-12, 4.4e-11, 2.0e-11], [1.1e-11, 3.0e-11, 2.2e-11]),  # tiny magnitudes (the tutorial's losses)
    ([1e-300, 2e-300], [3e-300, 1e-299]),
    ([1e300, 1.2e300, 1.1e300], [1e300, 1e300, 1e300]),  # huge ones
    ([1e300, 1e-300], [1e-300, 3e-300, 1e300]),  # ratios beyond what a float holds
    ([1e-11, 1e-11, 1e-11, 1e-2], [1e-4, 1e-4, 1e-4, 1e-4]),
    # nearly constant: scipy's t-test printed "catastrophic cancellation" above the tables
    ([1.0, 1.0, 1.0 + 2e-16], [1.0, 1.0 + 2e-16, 1.0]),
    ([0.97, 0.97, 0.97], [0.95, 0.95, 0.96]),
]


@pytest.mark.parametrize("a, b", DEGENERATE)
def test_degenerate_groups_give_no_warning(a, b):
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        for scale in st.SCALES:
            st.describe(a, scale), st.describe(b, scale)
            st.mean_interval(a, scale)
            found = st.compare_pair(a, b, rope=0.1, scale=scale)
            st.compare_pair(a, b, higher=True, scale=scale)
        st.fisher_p(0, len(a), 0, len(b))
    assert found["effect"] is not None and found["superiority"] is not None


def test_magnitudes_do_not_matter():
    # the same replicates in any unit give the same p-values and g (no variance rounded to 0 or inf)
    a, b = np.array([1.0, 2.0, 1.5]), np.array([3.0, 4.0, 3.2, 3.9])
    reference = st.compare_pair(a, b)
    for unit in (1e-300, 1e-11, 1e300):
        found = st.compare_pair(a * unit, b * unit)
        assert found["welch_p"] == pytest.approx(reference["welch_p"])
        assert found["hedges_g"] == pytest.approx(reference["hedges_g"])
        assert found["effect_ci_low"] == pytest.approx(reference["effect_ci_low"] * unit)
        assert st.describe(a * unit)["std"] == pytest.approx(st.describe(a)["std"] * unit)
        assert st.compare_pair(a * unit, b * unit, scale="log")["effect"] == pytest.approx(
            st.compare_pair(a, b, scale="log")["effect"]
        )
