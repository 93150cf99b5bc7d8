"""Tests for what mosaic_compare writes and draws (mosaic.results.compare_outputs, compare_plots.py): the
tables stored in the database, the files, the numbers beside each drawing; on the db_path fixture."""

import csv
import os
import sqlite3

import numpy as np
import pytest
from scipy import stats

from mosaic.results import compare_outputs as outputs
from mosaic.results.compare import GROUP_COLUMNS, Ranks, compare


def test_run_compare_stores_tables_and_files(db_path, tmp_path):
    before = os.stat(db_path).st_mtime_ns
    out = tmp_path / "plots"
    text = outputs.run_compare(db_path, str(out))
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
    assert len(rows) == 12 and list(rows[0]) == GROUP_COLUMNS
    with open(out / "comparison.csv") as handle:
        assert len(list(csv.DictReader(handle))) == 10
    markdown = (out / "comparison.md").read_text()
    assert "**Verdict:**" in markdown and "| rank | group |" in markdown
    assert (out / "critical_difference.png").read_bytes()[:4] == b"\x89PNG"
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
    render_critical_difference(None, str(tmp_path / "cd.png"), "test_loss")
    assert matplotlib.get_backend() == backend
    assert _cliques([1.0, 1.5, 2.2, 4.0], 1.3) == [(0, 2)]


def test_values_and_curves_plots_draw_their_csv(db_path, tmp_path):
    from mosaic.results.compare_plots import draw_curves, draw_values

    out = tmp_path / "o"
    outputs.run_compare(db_path, str(out))
    comparisons, _ = compare(db_path, n_resamples=99)
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
            assert [float(r["mean"]) for r in rows] == pytest.approx(list(line.get_ydata()), rel=1e-12)
    # by hand: the mean curve of a group is the mean of its replicates' curves, the band a t interval
    brick = [r for r in curves if r["dataset_key"] == "data_dataset_OR" and r["label"] == "net_brick width=4"]
    finals = [0.1 / 4 + 0.01 * r for r in range(4)]
    assert float(brick[-1]["mean"]) == pytest.approx(np.mean(finals))
    half = stats.t.ppf(0.975, 3) * np.std(finals, ddof=1) / 2
    assert float(brick[-1]["ci_high"]) == pytest.approx(np.mean(finals) + half)


def test_nothing_finished_yet_still_writes_every_file(db_path, tmp_path):
    with sqlite3.connect(db_path) as db:
        db.execute("UPDATE runs SET status = 'pending', test_loss = NULL")
        db.execute("DELETE FROM losses")
    out = tmp_path / "o"
    text = outputs.run_compare(db_path, str(out))
    assert "verdict: no finished replicate has a test_loss: nothing to compare" in text
    for name in outputs.output_names("test_loss").values():
        assert (out / name).stat().st_size > 0
