"""Tests for the verdict of mosaic_compare (mosaic.results.verdict, compare.compare_dataset) on synthetic
groups, no database: its error rates by simulation with fixed seeds (a false "beats" at most 5% of the time
when every group is drawn from one distribution, the power of the headline comparison), replicates that do
not vary, every architecture placed, the log scale and its ratios, the "solved" rule, failures, and no
library warning on degenerate input."""

import itertools
import warnings

import numpy as np
import pytest

from mosaic.results import compare as cmp
from mosaic.results.stats import holm, welch

N_EXPERIMENTS = 400
REPLICATES = 4


def layout(rng, keys, widths, shift=0.0, n=REPLICATES):
    """Groups of `keys` model keys × `widths` variants, n replicates each from N(10, 1); the last key's
    groups shifted by `shift` standard deviations (0: every group from one distribution)."""
    groups = []
    for k in range(keys):
        for w in range(widths):
            mean = 10.0 + (shift if k == keys - 1 and keys > 1 else 0.0)
            variant = f"width={w + 2}" if widths > 1 else ""
            groups.append(cmp.Group("data", f"key{k}", variant, values=list(rng.normal(mean, 1.0, n))))
    return groups


@pytest.mark.parametrize("keys, widths", [(2, 1), (2, 3), (6, 1)])
def test_under_the_null_a_false_beats_is_rare(keys, widths):
    """All groups from one normal distribution, n = 4: the verdict says 'beats' in at most 5% of the
    experiments, the best chosen from the data included (Holm over every pair of model keys)."""
    rng = np.random.default_rng(20240607 + 10 * keys + widths)
    verdicts = [cmp.compare_dataset(layout(rng, keys, widths), "test_loss").verdict for _ in range(N_EXPERIMENTS)]
    false = sum(" beats " in verdict for verdict in verdicts)
    assert false / N_EXPERIMENTS <= 0.05
    assert all("no significant difference between" in v for v in verdicts if " beats " not in v)


def test_holm_over_the_pairs_with_the_best_alone_is_not_enough_from_five_keys():
    """Why compare.py corrects over every pair of model keys: with 6 keys, the best chosen from the data
    and Holm over its 5 comparisons only, the null rate of a false 'beats' is above 5% (about 6.3%)."""
    rng = np.random.default_rng(7)
    keys, experiments = 6, 20_000
    values = rng.normal(0.0, 1.0, (experiments, keys, REPLICATES))
    best = values.mean(axis=2).argmin(axis=1)
    p = {pair: welch(values[:, pair[0]], values[:, pair[1]])[3] for pair in itertools.combinations(range(keys), 2)}
    plain = every = 0
    for e in range(experiments):
        with_best = [p[pair][e] for pair in p if best[e] in pair]
        plain += min(holm(with_best)) < 0.05
        adjusted = holm([p[pair][e] for pair in p])
        every += min(a for a, pair in zip(adjusted, p) if best[e] in pair) < 0.05
    assert plain / experiments > 0.055
    assert every / experiments < 0.035


def test_the_headline_keeps_the_power_of_one_pair():
    """2 model keys × 3 widths, n = 4, the second key 2.5 standard deviations worse: the verdict finds it
    about as often as a test of one pair does (the other widths do not join its Holm family)."""
    rng = np.random.default_rng(11)
    found = sum(
        " beats " in cmp.compare_dataset(layout(rng, 2, 3, shift=2.5), "test_loss", scale="linear").verdict
        for _ in range(N_EXPERIMENTS)
    )
    rng = np.random.default_rng(12)
    single = sum(
        " beats " in cmp.compare_dataset(layout(rng, 2, 1, shift=2.5), "test_loss", scale="linear").verdict
        for _ in range(N_EXPERIMENTS)
    )
    assert found / N_EXPERIMENTS >= 0.75
    assert abs(found - single) / N_EXPERIMENTS <= 0.1


def test_replicates_that_do_not_vary_are_not_tested():
    groups = [cmp.Group("d", "a", values=[1.0] * 4), cmp.Group("d", "b", values=[1.0 + 1e-9] * 4)]
    result = cmp.compare_dataset(groups, "test_loss")
    assert " beats " not in result.verdict
    assert "the 4 replicates of a all give the same value: was one seed used for all?" in result.verdict
    assert "nothing can be tested" in result.verdict
    (row,) = result.comparisons
    assert row["welch_p"] is None and row["mwu_p"] is None and row["welch_p_holm"] is None
    # one group that does not vary against one that does: tested, and said
    groups[1].values = [1.5, 1.6, 1.4, 1.55]
    verdict = cmp.compare_dataset(groups, "test_loss").verdict
    assert verdict.startswith("a beats b") and "the 4 replicates of a all give the same value" in verdict


def test_the_reference_has_at_least_two_replicates():
    groups = [
        cmp.Group("d", "lucky", values=[0.01]),
        cmp.Group("d", "b", values=[1.0, 1.1, 0.9]),
        cmp.Group("d", "c", values=[3.0, 3.1, 2.9]),
    ]
    result = cmp.compare_dataset(groups, "test_loss")
    assert [group.label for group, _ in result.groups] == ["b", "c", "lucky"]
    assert result.verdict.startswith("b beats c on test_loss")
    assert "lucky has a single replicate: it cannot be tested against b" in result.verdict


def sequence_task():
    """Accuracy of a bag of embeddings, a GRU and a Transformer on an order-sensitive task, 3 replicates."""
    return [
        cmp.Group("seq", "bag", values=[0.52, 0.55, 0.50]),
        cmp.Group("seq", "gru", values=[0.97, 0.98, 0.96]),
        cmp.Group("seq", "transformer", values=[0.96, 0.98, 0.95]),
    ]


def test_every_architecture_is_placed_and_no_warning_is_printed(capfd):
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        result = cmp.compare_dataset(sequence_task(), "accuracy", higher=True)
    verdict = result.verdict
    assert result.scale == "linear"  # higher is better: accuracies are compared as differences
    tier = verdict.index("no significant difference between gru and transformer on accuracy at n = 3")
    behind = verdict.index("gru beats bag on accuracy: gru's accuracy is 0.45 higher than bag's (95% CI ")
    assert tier < behind
    assert "replicates per group" in verdict and "a rough guide" in verdict
    assert capfd.readouterr().err == ""


def test_losses_are_compared_as_ratios():
    groups = [
        cmp.Group("or", "funnel", values=[4.1e-11, 5.2e-11, 4.4e-11, 6.1e-11]),
        cmp.Group("or", "brick", values=[1.0e-11, 2.1e-11, 1.5e-11, 1.2e-11]),
    ]
    result = cmp.compare_dataset(groups, "test_loss")
    assert result.scale == "log"
    assert result.verdict.startswith("brick beats funnel on test_loss: brick's test_loss is 3.5× lower than "
                                     "funnel's (95% CI ")
    row = result.comparisons[0]
    assert row["effect"] == pytest.approx(np.exp(np.mean(np.log(groups[0].values)) - np.mean(np.log(groups[1].values))))
    assert cmp.compare_dataset(groups, "test_loss", scale="linear").scale == "linear"
    assert cmp.compare_dataset(groups, "accuracy", higher=True).scale == "linear"
    groups[0].values[0] = 0.0  # a value of 0: no logarithm
    assert cmp.compare_dataset(groups, "test_loss").scale == "linear"
    with pytest.raises(cmp.MosaicError, match="--scale log needs values > 0"):
        cmp.compare_dataset(groups, "test_loss", scale="log")


def test_a_skewed_group_ranks_by_its_geometric_mean():
    """Three runs at 1e-11 and one at 1e-2 win 75% of the pairs against a group at 1e-4: first on the log
    scale, behind it on the linear one (its mean is 2.5e-3)."""
    skewed = cmp.Group("d", "skewed", values=[1e-11, 1e-11, 1e-11, 1e-2])
    steady = cmp.Group("d", "steady", values=[1.0e-4, 1.1e-4, 0.9e-4, 1.05e-4])
    on_log = cmp.compare_dataset([steady, skewed], "test_loss")
    assert [g.label for g, _ in on_log.groups] == ["skewed", "steady"]
    assert on_log.comparisons[0]["superiority"] == pytest.approx(0.25)  # steady wins a quarter of the pairs
    on_linear = cmp.compare_dataset([steady, skewed], "test_loss", scale="linear")
    assert [g.label for g, _ in on_linear.groups] == ["steady", "skewed"]


def solving(first=0.19):
    return [
        cmp.Group("or", "brick", values=[1e-11, 2e-11, 1.5e-11, 1.2e-11], first_epoch=[first] * 4),
        cmp.Group("or", "funnel", values=[4e-11, 5e-11, 4.5e-11, 6e-11], first_epoch=[first] * 4),
    ]


def test_both_solve_the_task_by_a_stated_rule():
    verdict = cmp.compare_dataset(solving(), "test_loss").verdict
    assert ("by the rule 'test_loss below 1/1000 of its first-epoch value, about 0.19 (--solved-below sets "
            "another)', brick and funnel both solve the task") in verdict
    assert "tiny" not in verdict and "within 2×" not in verdict  # 3.4× apart: not called small
    chosen = cmp.compare_dataset(solving(), "test_loss", solved_below=1e-9).verdict
    assert "by the rule 'test_loss below 1e-09 (--solved-below)', brick and funnel both solve" in chosen
    assert "solve" not in cmp.compare_dataset(solving(), "test_loss", solved_below=3e-11).verdict
    assert "solve" not in cmp.compare_dataset(solving(first=1e-9), "test_loss").verdict
    close = solving()
    close[1].values = [1.5e-11, 2.2e-11, 1.6e-11, 1.9e-11]
    assert "within 2× of each other" in cmp.compare_dataset(close, "test_loss").verdict


def test_the_practical_equivalence_probabilities_are_never_printed_as_certain():
    far = cmp.compare_dataset(solving(), "test_loss", rope=0.05).verdict
    assert "P(brick better) > 0.99, P(practically equal) < 0.01, P(funnel better) < 0.01" in far
    assert "1.00" not in far and "0.00" not in far and "solve" not in far
    near = cmp.compare_dataset(solving(), "test_loss", rope=10).verdict  # a ratio within 11×: equal
    assert "P(practically equal) > 0.99" in near


def test_the_failures_of_the_best_group_are_part_of_the_verdict():
    rng = np.random.default_rng(3)
    best = cmp.Group("d", "a", values=list(rng.normal(1.0, 0.05, 4)), n_diverged=2)
    other = cmp.Group("d", "b", values=list(rng.normal(2.0, 0.05, 4)))
    verdict = cmp.compare_dataset([best, other], "test_loss").verdict
    assert verdict.startswith("a beats b on test_loss") and "; but 2 of 6 a runs diverged" in verdict
    assert "significantly" not in verdict  # 2 of 6 against 0 of 4: Fisher p = 0.47
    best.n_diverged, best.n_failed = 4, 2
    other.values = list(rng.normal(2.0, 0.05, 10))
    result = cmp.compare_dataset([best, other], "test_loss")
    assert result.comparisons[0]["fisher_p"] < 0.05
    assert ("; but 4 of 10 a runs diverged and 2 of 10 a runs failed, significantly more often than b (0 of 10, "
            "Fisher p = ") in result.verdict
    assert "a is the best only among the runs that ended" in result.verdict


def test_a_group_failing_more_often_is_said_so():
    best = cmp.Group("d", "a", values=[1.0, 1.1, 0.9, 1.05, 0.95, 1.02])
    broken = cmp.Group("d", "b", values=[1.0, 1.2], n_diverged=6)
    verdict = cmp.compare_dataset([best, broken], "test_loss").verdict
    assert "b failed or diverged significantly more often (6 of 8 runs against 0 of 6, Fisher p = " in verdict
    gone = cmp.Group("d", "c", n_failed=4)
    verdict = cmp.compare_dataset([best, cmp.Group("d", "b", values=[2.0, 2.1]), gone], "test_loss").verdict
    assert "c has no finished test_loss (4 failed)" in verdict


@pytest.mark.parametrize(
    "values",
    [
        [[1.0, 1.0], [1.0, 1.0]],
        [[1.0], [2.0]],
        [[0.0, 0.0, 0.0], [0.0, 1e-300, 0.0]],
        [[1e-300, 2e-300, 3e-300], [1e300, 2e300, 1e300]],
        [[5.0, 5.0, 5.0], [5.0, 6.0, 7.0]],
    ],
)
def test_degenerate_groups_give_sentences_not_warnings(values, capfd):
    groups = [cmp.Group("d", f"m{i}", values=v) for i, v in enumerate(values)]
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        verdict = cmp.compare_dataset(groups, "test_loss").verdict
        cmp.compare_dataset(groups, "accuracy", higher=True, rope=0.1)
    assert verdict and "nan" not in verdict.lower()
    assert capfd.readouterr().err == ""
