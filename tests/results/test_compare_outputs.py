"""Tests for what mosaic_compare writes and draws (mosaic.results.compare_outputs, compare_plots.py): the
tables stored in the database, the files, the numbers beside each drawing; on the db_path fixture."""

import csv
import os
import sqlite3

import numpy as np
import pytest
from scipy import stats

from mosaic.results import compare_outputs as outputs
from mosaic.results.compare import COMPARISON_COLUMNS, GROUP_COLUMNS, Ranks, compare


def test_run_compare_stores_tables_and_files(db_path, tmp_path):
    before = os.stat(db_path).st_mtime_ns
    out = tmp_path / "plots"
    text = outputs.run_compare(db_path, str(out), detail=True)
    assert os.stat(db_path).st_mtime_ns == before  # Snakemake must not take the database for new
    assert "verdict: no significant difference between net_brick width=4 and net_funnel width=4 on test_loss" in text
    with sqlite3.connect(db_path) as db:
        groups = db.execute("SELECT label, n, n_failed, n_diverged, n_unfinished, rank, failure_rate FROM groups "
                            "WHERE dataset_key = 'data_dataset_OR' ORDER BY rank").fetchall()
        pairs = db.execute("SELECT family, label, versus, welch_p, welch_p_holm FROM comparisons "
                           "WHERE dataset_key = 'data_dataset_OR'").fetchall()
        verdicts = db.execute("SELECT dataset_key, verdict FROM verdicts").fetchall()
    assert groups[0][0] == "net_brick width=4" and groups[-1] == ("net_funnel width=2", 1, 1, 1, 1, 6, 2 / 3)
    assert [(family, label, versus) for family, label, versus, *_ in pairs] == [
        ("architectures", "net_funnel width=4", "net_brick width=4"),
        ("variants of net_brick", "net_brick width=3", "net_brick width=4"),
        ("variants of net_brick", "net_brick width=2", "net_brick width=4"),
        ("variants of net_funnel", "net_funnel width=3", "net_funnel width=4"),
        ("variants of net_funnel", "net_funnel width=2", "net_funnel width=4"),
    ]
    assert all(holm >= p for *_, p, holm in pairs if p is not None)
    assert len(verdicts) == 2
    with open(out / "groups.csv") as handle:
        rows = list(csv.DictReader(handle))
    assert len(rows) == 12 and list(rows[0]) == GROUP_COLUMNS and rows[0]["scale"] == "log"
    with open(out / "comparison.csv") as handle:
        rows = list(csv.DictReader(handle))
    assert len(rows) == 10 and list(rows[0]) == COMPARISON_COLUMNS
    markdown = (out / "comparison.md").read_text()
    assert "**Verdict:**" in markdown and "| rank | group |" in markdown
    assert "| family | group | vs | ratio | ci_low | ci_high |" in markdown and "| pairs won |" in markdown
    assert "P(beats best)" not in markdown and "bootstrap" not in markdown
    # 2 dataset keys and 6 groups: no difference of ranks could be detected, so no diagram, and the reason
    assert not (out / "critical_difference.png").exists()
    assert "no critical-difference diagram: with 2 dataset keys and 6 groups the critical difference" in text
    outputs.run_compare(db_path, str(out))  # again: the rows are replaced, not added
    with sqlite3.connect(db_path) as db:
        assert db.execute("SELECT COUNT(*) FROM groups").fetchone() == (12,)


def test_critical_difference_plot_leaves_the_backend_alone(tmp_path):
    import matplotlib

    from mosaic.results.compare_plots import _cliques, draw_critical_difference, render_critical_difference

    backend = matplotlib.get_backend()
    ranks = Ranks(["a", "b", "c"], [1.2, 2.0, 2.8], 5, 0.04, 1.48)
    fig = draw_critical_difference(ranks, "test_loss")
    assert fig.axes and matplotlib.get_backend() == backend
    assert render_critical_difference(ranks, str(tmp_path / "cd.png"), "test_loss")
    assert (tmp_path / "cd.png").read_bytes()[:4] == b"\x89PNG" and matplotlib.get_backend() == backend
    assert not render_critical_difference(None, str(tmp_path / "cd.png"), "test_loss")
    assert not (tmp_path / "cd.png").exists()  # a diagram that no longer holds is removed, none drawn
    hopeless = Ranks(["a", "b", "c"], [1.2, 2.0, 2.8], 2, 0.3, 2.3, "Friedman's test finds no difference")
    assert not render_critical_difference(hopeless, str(tmp_path / "cd.png"), "test_loss")
    assert not (tmp_path / "cd.png").exists()
    assert _cliques([1.0, 1.5, 2.2, 4.0], 1.3) == [(0, 2)]


def test_values_and_curves_plots_draw_their_csv(db_path, tmp_path):
    from mosaic.results.compare_plots import draw_curves, draw_values

    out = tmp_path / "o"
    outputs.run_compare(db_path, str(out))
    comparisons, _ = compare(db_path)
    with open(out / "values.csv") as handle:
        values = list(csv.DictReader(handle))
    fig = draw_values(comparisons, "test_loss")
    dots = [c for ax in fig.axes for c in ax.collections]
    drawn = sorted(round(float(y), 12) for c in dots for _, y in c.get_offsets())
    assert drawn == sorted(round(float(r["value"]), 12) for r in values)
    assert len(values) == 45  # 48 runs: 1 failed, 1 pending, 1 diverged
    with open(out / "curves.csv") as handle:
        curves = list(csv.DictReader(handle))
    fig = draw_curves(outputs.loss_curves(db_path, comparisons), "test_loss")
    for ax, dataset_key in zip(fig.axes, ["data_dataset_AND", "data_dataset_OR"]):
        for line in ax.get_lines():
            label = line.get_label().rsplit(" (n = ", 1)[0]
            rows = [r for r in curves if r["dataset_key"] == dataset_key and r["label"] == label]
            assert [int(r["epoch"]) for r in rows] == list(line.get_xdata())
            assert [float(r["center"]) for r in rows] == pytest.approx(list(line.get_ydata()), rel=1e-12)
    # by hand: the curve of a group is the geometric mean of its replicates' losses (the comparison is on
    # the log scale), the band the t interval of their logarithms: the numbers of the groups table
    brick = [r for r in curves if r["dataset_key"] == "data_dataset_OR" and r["label"] == "net_brick width=4"]
    logs = np.log([0.1 / 4 + 0.01 * r for r in range(4)])
    assert brick[-1]["scale"] == "log" and float(brick[-1]["center"]) == pytest.approx(np.exp(logs.mean()))
    half = stats.t.ppf(0.975, 3) * np.std(logs, ddof=1) / 2
    assert float(brick[-1]["ci_high"]) == pytest.approx(np.exp(logs.mean() + half))
    with open(out / "groups.csv") as handle:
        table = {(r["dataset_key"], r["label"]): r for r in csv.DictReader(handle)}
    assert float(table["data_dataset_OR", "net_brick width=4"]["ci_high"]) == pytest.approx(float(brick[-1]["ci_high"]))
    on_linear, _ = compare(db_path, scale="linear")
    linear = outputs.loss_curves(db_path, on_linear)["data_dataset_OR"]["net_brick width=4"]
    assert linear[-1]["scale"] == "linear" and linear[-1]["center"] == pytest.approx(np.mean(np.exp(logs)))


def test_nothing_finished_yet_still_writes_every_file(db_path, tmp_path):
    with sqlite3.connect(db_path) as db:
        db.execute("UPDATE runs SET status = 'pending', test_loss = NULL")
        db.execute("DELETE FROM losses")
    out = tmp_path / "o"
    out.mkdir()
    (out / "critical_difference.png").write_bytes(b"a diagram of an earlier comparison")
    text = outputs.run_compare(db_path, str(out), detail=True)
    assert "verdict: no finished replicate has a test_loss: nothing to compare" in text
    for name in outputs.output_names("test_loss").values():
        assert (out / name).stat().st_size > 0
    assert not (out / "critical_difference.png").exists()  # no diagram holding only a message, no stale one
    # the workflow's compare rule declares output_names only: the diagram, drawn or not, never fails it
    assert not any(name.startswith("critical_difference") for name in outputs.output_names("test_loss").values())


def test_curve_bands_of_losses_that_reach_zero_stop_at_zero(db_path):
    # three replicates of net_brick width=4 on OR (runs 21-24) reach a loss of 0 at the last epoch: the OR
    # panel cannot be on the log scale, and the t interval of [0, 0, 0, x] reaches below 0, where no mean is
    with sqlite3.connect(db_path) as db:
        db.execute("UPDATE losses SET test_loss = 0 WHERE epoch = 20 AND run_id IN (21, 22, 23)")
        (last,) = db.execute("SELECT test_loss FROM losses WHERE epoch = 20 AND run_id = 24").fetchone()
    comparisons, _ = compare(db_path)  # on the log scale: the final losses of the runs table are positive
    curves = outputs.loss_curves(db_path, comparisons)
    brick = curves["data_dataset_OR"]["net_brick width=4"]
    assert {row["scale"] for rows in curves["data_dataset_OR"].values() for row in rows} == {"linear"}
    half = stats.t.ppf(0.975, 3) * np.std([0, 0, 0, last], ddof=1) / 2
    drawn = (brick[-1]["center"], brick[-1]["ci_low"], brick[-1]["ci_high"])
    assert drawn == pytest.approx((last / 4, 0.0, last / 4 + half))
    assert last / 4 - half < 0  # the t interval's end, cut at 0
    assert all(row["ci_low"] >= 0 for rows in curves["data_dataset_OR"].values() for row in rows if row["n"] > 1)
    assert {row["scale"] for rows in curves["data_dataset_AND"].values() for row in rows} == {"log"}


def test_curve_bands_on_a_log_axis_are_bands_of_the_logarithms(db_path):
    # the losses fall over four decades: the panel's axis is log, so its bands are the t intervals of the
    # logarithms, even when the comparison itself was put on the linear scale (a linear band would reach 0)
    with sqlite3.connect(db_path) as db:
        db.execute("UPDATE losses SET test_loss = test_loss / 1e4 WHERE epoch = 20")
        rows = db.execute("SELECT test_loss FROM losses WHERE epoch = 20 AND run_id BETWEEN 21 AND 24").fetchall()
    last = [y for (y,) in rows]
    on_linear, _ = compare(db_path, scale="linear")
    curves = outputs.loss_curves(db_path, on_linear)
    assert {row["scale"] for by_label in curves.values() for rows in by_label.values() for row in rows} == {"log"}
    brick = curves["data_dataset_OR"]["net_brick width=4"]
    assert brick[-1]["center"] == pytest.approx(np.exp(np.mean(np.log(last))))
    assert all(row["ci_low"] > 0 for by_label in curves.values() for rows in by_label.values() for row in rows
               if row["n"] > 1)


def test_curves_are_drawn_on_a_log_axis_only_under_bands_of_the_logarithms():
    from mosaic.results.compare_plots import draw_curves

    def curves(scale):
        rows = [{"epoch": e, "n": 3, "scale": scale, "center": c, "ci_low": c / 2, "ci_high": c * 2}
                for e, c in enumerate((1.0, 1e-2, 1e-4), 1)]
        return {"d": {"g": rows}}

    assert draw_curves(curves("log")).axes[0].get_yscale() == "log"
    assert draw_curves(curves("linear")).axes[0].get_yscale() == "linear"
