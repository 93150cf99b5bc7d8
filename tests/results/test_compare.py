"""Tests for mosaic.results.compare (mosaic_compare): reading the groups, the verdict and its error rates on
synthetic groups, the ranks across dataset keys, the command; the statistics are in test_stats.py, the files
in test_compare_outputs.py."""

import re

import numpy as np
import pytest
from scipy import stats

from mosaic.errors import MosaicError
from mosaic.ops.cli import mosaic_compare
from mosaic.results import compare as cmp
from tests.fakes import Experiment


def synthetic_groups(seed, shift, n=8):
    rng = np.random.default_rng(seed)
    return [
        cmp.Group("data", "a", values=list(rng.normal(1.0, 0.2, n))),
        cmp.Group("data", "b", values=list(rng.normal(1.0 + shift, 0.2, n))),
    ]


def test_a_real_difference_is_found():
    result = cmp.compare_dataset(synthetic_groups(1, shift=0.4, n=10), "test_loss")
    assert result.verdict.startswith("a beats b on test_loss (P(better) = ")
    row = result.comparisons[0]
    assert row["welch_p_holm"] < 0.01 and row["diff_ci_low"] > 0 and row["p_better"] < 0.2
    # higher is better: the same numbers make b the winner
    flipped = cmp.compare_dataset(synthetic_groups(1, shift=0.4, n=10), "accuracy", higher=True)
    assert flipped.verdict.startswith("b beats a on accuracy")


def test_no_difference_false_positive_rate_near_alpha():
    seeds = range(300)
    verdicts = [cmp.compare_dataset(synthetic_groups(s, 0.0), "test_loss", n_resamples=99).verdict for s in seeds]
    wins = sum(" beats " in verdict for verdict in verdicts)
    assert 0.015 <= wins / len(verdicts) <= 0.09
    quiet = next(v for v in verdicts if " beats " not in v)
    assert "no significant difference between" in quiet and "at n = 8" in quiet
    assert "replicates per group would be needed" in quiet or "too small for any practical number" in quiet


def test_verdict_when_both_solve_the_task():
    groups = [
        cmp.Group("or", "brick", values=[1e-11, 2e-11, 1.5e-11, 1.2e-11], first_epoch=[0.19, 0.2, 0.18, 0.19]),
        cmp.Group("or", "funnel", values=[4e-11, 5e-11, 4.5e-11, 6e-11], first_epoch=[0.19, 0.2, 0.2, 0.19]),
    ]
    verdict = cmp.compare_dataset(groups, "test_loss").verdict
    assert verdict.startswith("brick beats funnel on test_loss")
    assert "both solve the task" in verdict and "tiny in absolute terms" in verdict
    with_rope = cmp.compare_dataset(groups, "test_loss", rope=1e-6).verdict
    assert "P(practically equal) = 1.00" in with_rope and "solve" not in with_rope


def test_load_groups_counts_failed_diverged_and_pending(db_path):
    groups = cmp.load_groups(db_path)
    assert list(groups) == ["data_dataset_AND", "data_dataset_OR"]
    first = {g.label: g for g in groups["data_dataset_OR"]}["net_funnel width=2"]
    # runs 1-4: run 1 failed, run 2 never ran, run 3 diverged, run 4 done
    assert (first.n_failed, first.n_unfinished, first.n_diverged, len(first.values)) == (1, 1, 1, 1)
    assert first.nb_params == {21}
    assert len(first.first_epoch) == 1
    assert sorted(g.label for g in groups["data_dataset_AND"]) == sorted(
        f"net_{m} width={w}" for m in ("brick", "funnel") for w in (2, 3, 4)
    )
    with pytest.raises(MosaicError, match="unknown value 'loss'"):
        cmp.load_groups(db_path, "loss")


@pytest.mark.parametrize("value", ["nb_params", "duration(s)"])
def test_the_model_size_and_the_metaplot_spelling_are_not_compared(db_path, value):
    """metaplot draws them (mosaic.results.values); mosaic_compare ranks outcomes under their own names."""
    expected = "expected one of test_loss, train_loss, duration, duration_s, overfit, trainability, slope$"
    with pytest.raises(MosaicError, match=f"unknown value '{re.escape(value)}': {expected}"):
        cmp.load_groups(db_path, value)
    durations = cmp.load_groups(db_path, "duration")["data_dataset_OR"]
    assert sum(len(group.values) for group in durations) == 21  # 24 runs: 1 failed, 1 pending, 1 diverged


def test_rank_across_dataset_keys(db_path):
    comparisons, ranks = cmp.compare(db_path, n_resamples=99)
    assert ranks.labels[0] == "net_brick width=4" and ranks.average[0] == 1.0
    assert ranks.labels[-1] == "net_funnel width=2" and ranks.average[-1] == 6.0
    # Nemenyi: q(0.95, k=6, inf) / sqrt 2 = 2.850 (Demšar 2006, table 5a)
    assert ranks.critical_difference == pytest.approx(2.850 * (6 * 7 / (6 * 2)) ** 0.5, rel=1e-3)
    table = np.array([[g_d[1]["mean"] for g_d in sorted(c.groups, key=lambda x: x[0].label)] for c in comparisons])
    assert ranks.friedman_p == pytest.approx(stats.friedmanchisquare(*table.T).pvalue)
    assert cmp.rank_across(comparisons[:1]) is None


def test_compare_command(db_path, tmp_path, capsys):
    assert mosaic_compare([db_path, "--out", str(tmp_path / "o"), "--rope", "0.05"]) == 0
    printed = capsys.readouterr().out
    assert "P(practically equal)" in printed and "P(rope equal)" in printed
    assert mosaic_compare([db_path, "--value", "loss"]) == 2
    assert "unknown value 'loss'" in capsys.readouterr().err
    assert mosaic_compare([str(tmp_path / "none.db")]) == 2


def test_verdict_names_the_runs_left_out():
    groups = synthetic_groups(1, shift=0.4, n=10)
    groups[1].n_diverged, groups[1].n_failed = 2, 1
    verdict = cmp.compare_dataset(groups, "test_loss", n_resamples=99).verdict
    assert verdict.endswith("(runs left out: b: 1 failed, 2 diverged)")


def test_single_group_and_single_replicate_verdicts():
    only = cmp.compare_dataset([cmp.Group("d", "a", values=[1.0, 2.0])], "test_loss")
    assert only.verdict == "only a has finished replicates: nothing to compare"
    few = cmp.compare_dataset([cmp.Group("d", "a", values=[1.0]), cmp.Group("d", "b", values=[2.0, 3.0])], "test_loss")
    assert "nothing can be tested" in few.verdict
    none = cmp.compare_dataset([cmp.Group("d", "a", n_failed=2), cmp.Group("d", "b", n_diverged=1)], "test_loss")
    assert none.verdict.startswith("no finished replicate")


BOTTLENECK_INI = """
[PROCESS]
lr = 1e-2
epochs = 8
data_scheme = dataset
pipeline_scheme = mlp

[MONITOR]
nb_processus = 2
multiplicity = 4

[dataset_OR]
type = dataset
class = dataset_OR
path_to_class = dataset.py
key = OR
batch_size = 4
data_size = 200
train_prop = 0.8

[narrow]
type = mlp
class = mlp_brick
path_to_class = mlp.py
key = bottleneck_1
length = 3
width = 1

[wide]
type = mlp
class = mlp_brick
path_to_class = mlp.py
key = wide_8
length = 3
width = 8
"""


@pytest.mark.slow
def test_mosaic_run_names_the_clearly_better_architecture(tmp_path):
    """A bottleneck of width 1 cannot learn OR in 8 epochs; a width of 8 can: the workflow's compare
    step, run without being asked, says so."""
    exp = Experiment(tmp_path / "exp")
    exp.ini.write_text(BOTTLENECK_INI)
    exp.run()
    markdown = (exp.folder / "database_plots" / "comparison.md").read_text()
    assert "**Verdict:** wide_8 beats bottleneck_1 on test_loss" in markdown
    assert exp.query("SELECT verdict FROM verdicts")[0][0].startswith("wide_8 beats bottleneck_1")
    assert exp.query("SELECT label, n FROM groups ORDER BY rank") == [("wide_8", 4), ("bottleneck_1", 4)]
    printed = exp.command("mosaic_compare", "database.db", "--out", "by_hand", check=0).stdout
    assert "verdict: wide_8 beats bottleneck_1 on test_loss" in printed
    assert (exp.folder / "by_hand" / "groups.csv").exists()
