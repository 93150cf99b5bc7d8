"""Tests for mosaic.results.compare (mosaic_compare): reading the groups, the verdict on synthetic groups,
the families and their Holm correction, the ranks across dataset keys, the command; the verdict's error
rates and sentences are in test_verdict.py, the statistics in test_stats.py, the files in
test_compare_outputs.py."""

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
    assert result.verdict.startswith("a beats b on test_loss: a's test_loss is 1.3× lower than b's (95% CI 1.2-")
    row = result.comparisons[0]
    assert row["welch_p_holm"] < 0.01 and row["effect_ci_low"] > 1 and row["superiority"] < 0.2
    assert row["superiority_ci_high"] > row["superiority"]
    # higher is better: the same numbers make b the winner, compared as a difference
    flipped = cmp.compare_dataset(synthetic_groups(1, shift=0.4, n=10), "accuracy", higher=True)
    expected = "b beats a on accuracy: b's accuracy is 0.33 higher than a's (95% CI 0.22 to 0.43"
    assert flipped.verdict.startswith(expected)


def test_no_difference_false_positive_rate_near_alpha():
    seeds = range(300)
    verdicts = [cmp.compare_dataset(synthetic_groups(s, 0.0), "test_loss").verdict for s in seeds]
    wins = sum(" beats " in verdict for verdict in verdicts)
    assert 0.015 <= wins / len(verdicts) <= 0.09
    quiet = next(v for v in verdicts if " beats " not in v)
    assert "no significant difference between" in quiet and "at n = 8" in quiet
    assert "replicates per group would separate them" in quiet or "replicates per group might separate" in quiet


def test_verdict_when_both_solve_the_task():
    groups = [
        cmp.Group("or", "brick", values=[1e-11, 2e-11, 1.5e-11, 1.2e-11], first_epoch=[0.19, 0.2, 0.18, 0.19]),
        cmp.Group("or", "funnel", values=[4e-11, 5e-11, 4.5e-11, 6e-11], first_epoch=[0.19, 0.2, 0.2, 0.19]),
    ]
    verdict = cmp.compare_dataset(groups, "test_loss").verdict
    assert verdict.startswith("brick beats funnel on test_loss: brick's test_loss is 3.5× lower")
    assert "both solve the task" in verdict and "tiny" not in verdict  # 3.5× is no tiny gap
    with_rope = cmp.compare_dataset(groups, "test_loss", rope=10.0).verdict  # equal: a ratio within 11×
    assert "P(practically equal) > 0.99" in with_rope and "solve" not in with_rope


def test_the_families_and_their_holm_correction():
    """The best group of each model key against the best one; each width against its key's best; Holm over
    every pair of groups of a family (2 keys × 3 widths: 1 pair, then 3 pairs per key)."""
    rng = np.random.default_rng(5)
    groups = [
        cmp.Group("d", model, f"width={w}", values=list(rng.normal(1.0 + shift + 0.05 * w, 0.1, 4)))
        for model, shift in (("funnel", 0.5), ("brick", 0.0))
        for w in (2, 3, 4)
    ]
    result = cmp.compare_dataset(groups, "test_loss")
    families = [(row["family"], row["label"], row["versus"]) for row in result.comparisons]
    assert families == [
        ("architectures", "funnel width=2", "brick width=2"),
        ("variants of brick", "brick width=3", "brick width=2"),
        ("variants of brick", "brick width=4", "brick width=2"),
        ("variants of funnel", "funnel width=3", "funnel width=2"),
        ("variants of funnel", "funnel width=4", "funnel width=2"),
    ]
    (architectures, *_) = result.comparisons
    assert architectures["welch_p_holm"] == architectures["welch_p"]  # a family of one pair
    by_label = {group.label: group for group in groups}
    brick = [by_label[f"brick width={w}"].values for w in (2, 3, 4)]
    p = [stats.ttest_ind(np.log(a), np.log(b), equal_var=False).pvalue for a, b in
         ((brick[1], brick[0]), (brick[2], brick[0]), (brick[1], brick[2]))]
    holm = [min(1.0, 3 * min(p)), min(1.0, max(3 * min(p), 2 * sorted(p)[1]))]
    expected = [holm[0] if p[i] == min(p) else holm[1] if p[i] == sorted(p)[1] else None for i in (0, 1)]
    found = [row["welch_p_holm"] for row in result.comparisons[1:3]]
    for value, want in zip(found, expected):
        if want is not None:
            assert value == pytest.approx(want)
    assert all(row["welch_p_holm"] >= row["welch_p"] for row in result.comparisons)


def test_load_groups_counts_failed_diverged_and_pending(db_path):
    groups = cmp.load_groups(db_path)
    assert list(groups) == ["data_dataset_AND", "data_dataset_OR"]
    first = {g.label: g for g in groups["data_dataset_OR"]}["net_funnel width=2"]
    # runs 1-4: run 1 failed, run 2 never ran, run 3 diverged, run 4 done
    assert (first.n_failed, first.n_unfinished, first.n_diverged, len(first.values)) == (1, 1, 1, 1)
    assert (first.n_missing, first.n_ended, first.n_bad, first.failure_rate) == (0, 3, 2, 2 / 3)
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
    expected = "expected one of test_loss, train_loss, val_loss, duration, duration_s, overfit, trainability, slope$"
    with pytest.raises(MosaicError, match=f"unknown value '{re.escape(value)}': {expected}"):
        cmp.load_groups(db_path, value)
    durations = cmp.load_groups(db_path, "duration")["data_dataset_OR"]
    assert sum(len(group.values) for group in durations) == 21  # 24 runs: 1 failed, 1 pending, 1 diverged


def test_a_missing_value_is_counted_apart_from_a_diverged_run(db_path):
    import sqlite3

    with sqlite3.connect(db_path) as db:
        db.execute("UPDATE runs SET test_loss = NULL WHERE run_id = 4")
    first = {g.label: g for g in cmp.load_groups(db_path)["data_dataset_OR"]}["net_funnel width=2"]
    assert (first.n_failed, first.n_diverged, first.n_missing, first.n_unfinished, len(first.values)) == (1, 1, 1, 1, 0)
    assert first.failure_rate == 2 / 3  # a missing value is no failure of the architecture


def test_rank_across_dataset_keys(db_path):
    comparisons, ranks = cmp.compare(db_path)
    assert ranks.labels[0] == "net_brick width=4" and ranks.average[0] == 1.0
    assert ranks.labels[-1] == "net_funnel width=2" and ranks.average[-1] == 6.0
    # Nemenyi: q(0.95, k=6, inf) / sqrt 2 = 2.850 (Demšar 2006, table 5a)
    assert ranks.critical_difference == pytest.approx(2.850 * (6 * 7 / (6 * 2)) ** 0.5, rel=1e-3)
    table = np.array([[g_d[1]["center"] for g_d in sorted(c.groups, key=lambda x: x[0].label)] for c in comparisons])
    assert ranks.friedman_p == pytest.approx(stats.friedmanchisquare(*table.T).pvalue)
    assert cmp.rank_across(comparisons[:1]) is None
    # 2 dataset keys, 6 groups: the critical difference (5.33) exceeds the largest rank gap (5)
    assert not ranks.drawable
    assert ranks.why_no_diagram.startswith("with 2 dataset keys and 6 groups the critical difference (5.33) is larger")


def ranked(n_datasets, k, spread):
    """Comparisons of k groups over n dataset keys: group i's values near i × spread (+ noise)."""
    rng = np.random.default_rng(n_datasets)
    comparisons = []
    for d in range(n_datasets):
        groups = [cmp.Group(f"d{d}", f"m{i}", values=list(1 + i * spread + rng.normal(0, 0.3, 3))) for i in range(k)]
        comparisons.append(cmp.compare_dataset(groups, "test_loss", scale="linear"))
    return cmp.rank_across(comparisons)


def test_the_critical_difference_diagram_needs_a_detectable_difference():
    assert ranked(12, 4, spread=1.0).drawable  # Friedman significant, CD 1.35 < 3
    flat = ranked(12, 4, spread=0.0)
    assert flat.friedman_p >= 0.05 and flat.why_no_diagram.startswith("Friedman's test finds no difference")
    assert ranked(2, 2, spread=1.0).why_no_diagram.startswith("with 2 dataset keys and 2 groups the critical")


def test_compare_command(db_path, tmp_path, capsys):
    assert mosaic_compare([db_path, "--out", str(tmp_path / "o"), "--rope", "0.05", "--detail"]) == 0
    printed = capsys.readouterr()
    assert "P(practically equal)" in printed.out and "P(equal)" in printed.out
    assert printed.err == ""  # no library warning above the tables
    assert "compared on the log scale: geometric means, ratios" in printed.out
    assert mosaic_compare([db_path, "--out", str(tmp_path / "o"), "--scale", "linear", "--solved-below", "1",
                           "--detail"]) == 0
    printed = capsys.readouterr().out
    assert "compared on the linear scale: means, differences" in printed and "| ratio |" not in printed
    assert "by the rule 'test_loss below 1 (--solved-below)', net_brick width=4 and net_funnel width=4 both" in printed
    assert mosaic_compare([db_path, "--value", "loss"]) == 2
    assert "unknown value 'loss'" in capsys.readouterr().err
    assert mosaic_compare([str(tmp_path / "none.db")]) == 2


def test_verdict_names_the_runs_left_out():
    groups = synthetic_groups(1, shift=0.4, n=10)
    groups[1].n_diverged, groups[1].n_failed = 2, 1
    verdict = cmp.compare_dataset(groups, "test_loss").verdict
    assert verdict.endswith("(runs left out: b: 1 failed, 2 diverged)")


def test_single_group_and_single_replicate_verdicts():
    only = cmp.compare_dataset([cmp.Group("d", "a", values=[1.0, 2.0])], "test_loss")
    assert only.verdict == "only a has finished replicates: nothing to compare"
    few = cmp.compare_dataset([cmp.Group("d", "a", values=[1.0]), cmp.Group("d", "b", values=[2.0, 3.0])], "test_loss")
    assert few.verdict == "a has a single replicate: it cannot be tested against b"
    ones = cmp.compare_dataset([cmp.Group("d", "a", values=[1.0]), cmp.Group("d", "b", values=[2.0])], "test_loss")
    assert "nothing can be tested" in ones.verdict
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
    step, run without being asked, says so, and mosaic_run ends with it in plain words; mosaic_compare
    then writes beside the workflow's plots, not into a second folder."""
    exp = Experiment(tmp_path / "exp")
    exp.ini.write_text(BOTTLENECK_INI)
    out = exp.run("--plots", "results/plots").stdout
    plain = re.compile(r"^  wide_8 beats bottleneck_1: test_loss \S+ vs \S+ \(\d+× lower; won all 16 replicate pairs; "
                       r"p = \S+\)\.$", re.M)
    assert plain.search(out)
    assert re.search(r"^  rank  group +test_loss \(geometric mean\)  95% interval +n\n  1     wide_8 ", out, re.M)
    assert out.endswith("\n\nthe statistical tables: mosaic_compare database.db --detail\n")
    markdown = (exp.folder / "results" / "plots" / "comparison.md").read_text()
    assert "**Verdict:** wide_8 beats bottleneck_1 on test_loss" in markdown and plain.search(markdown)
    assert exp.query("SELECT verdict FROM verdicts")[0][0].startswith("wide_8 beats bottleneck_1")
    assert exp.query("SELECT label, n FROM groups ORDER BY rank") == [("wide_8", 4), ("bottleneck_1", 4)]
    printed = exp.command("mosaic_compare", "database.db", check=0).stdout
    assert plain.search(printed) and "welch_p*" not in printed
    assert printed.endswith("\nfiles written in results/plots; the statistical tables: --detail\n")
    assert not (exp.folder / "database_plots").exists()
    printed = exp.command("mosaic_compare", "database.db", "--out", "by_hand", "--detail", check=0).stdout
    assert plain.search(printed) and "verdict: wide_8 beats bottleneck_1 on test_loss" in printed
    assert printed.index("beats bottleneck_1:") < printed.index("== the statistical tables") < printed.index("welch_p*")
    assert (exp.folder / "by_hand" / "groups.csv").exists()
