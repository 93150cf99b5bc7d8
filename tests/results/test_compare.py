"""Tests for mosaic.results.compare (mosaic_compare): statistics against scipy and hand computations,
error rates on synthetic groups, the tables stored in the database and the files written."""

import csv
import os
import sqlite3

import numpy as np
import pytest
from scipy import stats
from test_plots import db_path  # noqa: F401 (the fixture: 2 datasets × 2 models × 3 widths × 4 replicates)

from mosaic.errors import MosaicError
from mosaic.ops.cli import mosaic_compare
from mosaic.results import compare as cmp
from tests.fakes import Experiment

A = [0.31, 0.42, 0.28, 0.39, 0.35, 0.44]
B = [0.52, 0.47, 0.61, 0.40, 0.55]


def test_describe_matches_numpy_and_scipy():
    found = cmp.describe(A)
    assert found["n"] == 6
    assert found["mean"] == pytest.approx(np.mean(A))
    assert found["median"] == pytest.approx(np.median(A))
    assert found["iqm"] == pytest.approx(np.mean(sorted(A)[1:5]))  # the middle half of 6 values
    assert found["std"] == pytest.approx(np.std(A, ddof=1))
    expected = stats.bootstrap(
        (np.array(A),), np.mean, n_resamples=cmp.RESAMPLES, rng=np.random.default_rng(cmp.SEED), method="BCa"
    ).confidence_interval
    assert (found["ci_low"], found["ci_high"]) == pytest.approx((expected.low, expected.high))
    assert found["ci_low"] < found["mean"] < found["ci_high"]
    assert cmp.describe(A) == found  # fixed seed: reproducible


def test_describe_small_and_constant_groups():
    assert cmp.describe([])["n"] == 0 and cmp.describe([])["mean"] is None
    one = cmp.describe([2.0])
    assert (one["mean"], one["std"], one["ci_low"]) == (2.0, None, None)
    same = cmp.describe([1.5, 1.5, 1.5])
    assert (same["ci_low"], same["ci_high"], same["std"]) == (1.5, 1.5, 0.0)


def test_tests_match_scipy():
    assert cmp.welch_p(A, B) == pytest.approx(stats.ttest_ind(A, B, equal_var=False).pvalue)
    assert cmp.mann_whitney_p(A, B) == pytest.approx(stats.mannwhitneyu(A, B).pvalue)
    assert cmp.welch_p([1, 1], [2, 2]) == 0.0 and cmp.welch_p([1, 1], [1, 1]) == 1.0


def test_probability_of_improvement_is_the_mann_whitney_share():
    a, b = [1, 2, 3, 3], [3, 4, 5]
    # by hand: pairs where a < b: 1,2 beat all 3 (6); each 3 ties one and beats two (2 × 2.5) -> 11 of 12
    assert cmp.probability_of_improvement(a, b) == pytest.approx(11 / 12)
    assert cmp.probability_of_improvement(a, b, higher=True) == pytest.approx(1 / 12)
    assert cmp.probability_of_improvement(A, B) == pytest.approx(
        stats.mannwhitneyu(B, A).statistic / (len(A) * len(B))
    )


def test_hedges_g_by_hand():
    a, b = [1.0, 2.0, 3.0], [3.0, 4.0, 5.0, 6.0]
    pooled = ((2 * 1.0) + (3 * np.var(b, ddof=1))) / 5
    d = (2.0 - 4.5) / pooled**0.5
    assert cmp.hedges_g(a, b) == pytest.approx(d * (1 - 3 / (4 * 7 - 9)))
    assert cmp.hedges_g([1.0, 1.0], [1.0, 1.0]) is None


def test_holm_by_hand():
    assert cmp.holm([0.01, 0.04, 0.03]) == pytest.approx([0.03, 0.06, 0.06])
    assert cmp.holm([0.5, None, 0.2]) == [pytest.approx(0.5), None, pytest.approx(0.4)]


@pytest.mark.parametrize("effect, replicates", [(0.5, 64), (0.8, 26), (1.0, 17), (2.0, 6)])
def test_replicates_needed_known_answers(effect, replicates):
    # the classic tables (Cohen 1988) for a two-sided two-sample t-test, alpha 0.05, power 0.8
    assert cmp.replicates_needed(effect) == replicates
    assert cmp.replicates_needed(-effect) == replicates
    assert cmp.replicates_needed(0.0) is None and cmp.replicates_needed(1e-6) is None
    assert cmp.replicates_needed(29.0) == 2  # far out in the tail of the noncentral t


def test_rope_probabilities():
    better, equal, worse = cmp.rope_probabilities([1.0, 1.1, 0.9], [5.0, 5.1, 4.9], rope=0.5)
    assert better > 0.99 and worse < 0.01
    better, equal, worse = cmp.rope_probabilities([1.0, 1.1, 0.9, 1.0], [1.01, 1.09, 0.92, 0.98], rope=1.0)
    assert equal > 0.99
    assert better + equal + worse == pytest.approx(1.0)
    # higher is better: the larger values win
    better, _, worse = cmp.rope_probabilities([5.0, 5.1, 4.9], [1.0, 1.1, 0.9], rope=0.5, higher=True)
    assert better > 0.99


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


def test_load_groups_counts_failed_diverged_and_pending(db_path):  # noqa: F811
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


def test_run_compare_stores_tables_and_files(db_path, tmp_path):  # noqa: F811
    before = os.stat(db_path).st_mtime_ns
    out = tmp_path / "plots"
    text = cmp.run_compare(db_path, str(out))
    assert os.stat(db_path).st_mtime_ns == before  # Snakemake must not take the database for new
    assert "verdict: no significant difference between net_brick width=4 and net_funnel width=4" in text
    with sqlite3.connect(db_path) as db:
        groups = db.execute("SELECT label, n, n_failed, n_diverged, n_unfinished, rank FROM groups "
                            "WHERE dataset_key = 'data_dataset_OR' ORDER BY rank").fetchall()
        pairs = db.execute("SELECT label, versus, welch_p, welch_p_holm FROM comparisons").fetchall()
        verdicts = db.execute("SELECT dataset_key, verdict FROM verdicts").fetchall()
    assert groups[0][0] == "net_brick width=4" and groups[-1] == ("net_funnel width=2", 1, 1, 1, 1, 6)
    assert len(pairs) == 10 and all(versus == "net_brick width=4" for _, versus, *_ in pairs)
    assert all(holm >= p for *_, p, holm in pairs if p is not None)
    assert len(verdicts) == 2
    with open(out / "groups.csv") as handle:
        rows = list(csv.DictReader(handle))
    assert len(rows) == 12 and list(rows[0]) == cmp.GROUP_COLUMNS
    with open(out / "comparison.csv") as handle:
        assert len(list(csv.DictReader(handle))) == 10
    markdown = (out / "comparison.md").read_text()
    assert "**Verdict:**" in markdown and "| rank | group |" in markdown
    assert (out / "critical_difference.png").read_bytes()[:4] == b"\x89PNG"
    cmp.run_compare(db_path, str(out))  # again: the rows are replaced, not added
    with sqlite3.connect(db_path) as db:
        assert db.execute("SELECT COUNT(*) FROM groups").fetchone() == (12,)


def test_rank_across_dataset_keys(db_path):  # noqa: F811
    comparisons, ranks = cmp.compare(db_path, n_resamples=99)
    assert ranks.labels[0] == "net_brick width=4" and ranks.average[0] == 1.0
    assert ranks.labels[-1] == "net_funnel width=2" and ranks.average[-1] == 6.0
    # Nemenyi: q(0.95, k=6, inf) / sqrt 2 = 2.850 (Demšar 2006, table 5a)
    assert ranks.critical_difference == pytest.approx(2.850 * (6 * 7 / (6 * 2)) ** 0.5, rel=1e-3)
    table = np.array([[g_d[1]["mean"] for g_d in sorted(c.groups, key=lambda x: x[0].label)] for c in comparisons])
    assert ranks.friedman_p == pytest.approx(stats.friedmanchisquare(*table.T).pvalue)
    assert cmp.rank_across(comparisons[:1]) is None


def test_compare_command(db_path, tmp_path, capsys):  # noqa: F811
    assert mosaic_compare([db_path, "--out", str(tmp_path / "o"), "--rope", "0.05"]) == 0
    printed = capsys.readouterr().out
    assert "P(practically equal)" in printed and "P(rope equal)" in printed
    assert mosaic_compare([db_path, "--value", "loss"]) == 2
    assert "unknown value 'loss'" in capsys.readouterr().err
    assert mosaic_compare([str(tmp_path / "none.db")]) == 2


def test_critical_difference_plot_leaves_the_backend_alone(tmp_path):
    import matplotlib

    from mosaic.results.compare_plots import _cliques, draw_critical_difference, render_critical_difference

    backend = matplotlib.get_backend()
    ranks = cmp.Ranks(["a", "b", "c"], [1.2, 2.0, 2.8], 5, 0.04, 1.48)
    fig = draw_critical_difference(ranks, "test_loss")
    assert fig.axes and matplotlib.get_backend() == backend
    render_critical_difference(None, str(tmp_path / "cd.png"), "test_loss")
    assert matplotlib.get_backend() == backend
    assert _cliques([1.0, 1.5, 2.2, 4.0], 1.3) == [(0, 2)]


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


def test_values_and_curves_plots_draw_their_csv(db_path, tmp_path):  # noqa: F811
    from mosaic.results.compare_plots import draw_curves, draw_values

    out = tmp_path / "o"
    cmp.run_compare(db_path, str(out))
    comparisons, _ = cmp.compare(db_path, n_resamples=99)
    with open(out / "values.csv") as handle:
        values = list(csv.DictReader(handle))
    fig = draw_values(comparisons, "test_loss")
    dots = [c for ax in fig.axes for c in ax.collections]
    drawn = sorted(round(float(y), 12) for c in dots for _, y in c.get_offsets())
    assert drawn == sorted(round(float(r["value"]), 12) for r in values)
    assert len(values) == 45  # 48 runs: 1 failed, 1 pending, 1 diverged
    with open(out / "curves.csv") as handle:
        curves = list(csv.DictReader(handle))
    fig = draw_curves(cmp.loss_curves(db_path, comparisons), "test_loss")
    for ax, dataset_key in zip(fig.axes, ["data_dataset_AND", "data_dataset_OR"]):
        for line in ax.get_lines():
            label = line.get_label().rsplit(" (n = ", 1)[0]
            rows = [r for r in curves if r["dataset_key"] == dataset_key and r["label"] == label]
            assert [int(r["epoch"]) for r in rows] == list(line.get_xdata())
            assert [float(r["mean"]) for r in rows] == pytest.approx(list(line.get_ydata()), rel=1e-12)
    # by hand: the mean curve of a group is the mean of its replicates' curves, the band a t interval
    brick = [r for r in curves if r["dataset_key"] == "data_dataset_OR" and r["label"] == "net_brick width=4"]
    finals = [0.1 / 4 + 0.01 * r for r in range(4)]
    assert float(brick[-1]["mean"]) == pytest.approx(np.mean(finals))
    half = stats.t.ppf(0.975, 3) * np.std(finals, ddof=1) / 2
    assert float(brick[-1]["ci_high"]) == pytest.approx(np.mean(finals) + half)


def test_nothing_finished_yet_still_writes_every_file(db_path, tmp_path):  # noqa: F811
    with sqlite3.connect(db_path) as db:
        db.execute("UPDATE runs SET status = 'pending', test_loss = NULL")
        db.execute("DELETE FROM losses")
    out = tmp_path / "o"
    text = cmp.run_compare(db_path, str(out))
    assert "verdict: no finished replicate has a test_loss: nothing to compare" in text
    for name in cmp.output_names("test_loss").values():
        assert (out / name).stat().st_size > 0
