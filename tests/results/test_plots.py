"""Tests for metaplot (mosaic.results.plots), plotloss (lossplot.py) and what they share (figures.py), on the
database of the db_path fixture (conftest.py, fake_database.py)."""

import csv
import os
import statistics
from pathlib import Path

import pytest

from mosaic.errors import MosaicError
from mosaic.results.figures import render_message
from mosaic.results.figures import short_float as _short_float
from mosaic.results.figures import use_log_scale as _use_log_scale
from mosaic.results.lossplot import loss_panels, plotloss, render_plotloss, render_plotloss_message
from mosaic.results.plots import (
    METAPLOT_CSV_COLUMNS,
    draw_metaplot,
    metaplot,
    metaplot_data,
    render_metaplot,
)
from mosaic.results.stats import mean_interval
from tests.fakes import pdf_pages, png_size
from tests.results.fake_database import EPOCHS, REPLICATES, WIDTHS, final_test_loss, loss_curve, nb_params

# ---------------------------------------------------------------- loss_panels


def test_loss_panels_values(db_path):
    panels = loss_panels(db_path, [1, 2, 3, 4, 5])
    assert [panel["run_id"] for panel in panels] == [3, 4, 5]  # 1 failed, 2 pending: no losses
    panel = panels[1]
    assert panel["title"] == "4:dataset_OR(200) | funnel(2):21"
    assert panel["epochs"] == list(range(1, EPOCHS + 1))
    final = final_test_loss("dataset_OR", "funnel", 2, 3)
    assert panel["test"] == pytest.approx(loss_curve(final))
    assert panel["train"] == pytest.approx([v - final / 2 for v in panel["test"]])
    spread = max(panel["test"]) - min(panel["train"])
    assert panel["overfit"] == pytest.approx((final / 2) / spread)
    assert panel["trainability"] == pytest.approx(statistics.fmean(panel["test"]))
    assert panel["slope"] == pytest.approx((panel["train"][-1] - panel["train"][-3]) / 2)


def test_loss_panels_keep_null_losses(db_path):
    (panel,) = loss_panels(db_path, {3})
    assert panel["train"][-1] is None and panel["test"][-1] is None
    assert panel["train"][-2] is not None
    assert (panel["overfit"], panel["trainability"], panel["slope"]) == (None, None, None)


# ---------------------------------------------------------------- render_plotloss


@pytest.mark.parametrize(("plot_size", "pages"), [(1, 10), (2, 3), (3, 2), (4, 1)])
def test_plotloss_pages(db_path, tmp_path, plot_size, pages):
    out = tmp_path / "plotloss.pdf"
    panels = loss_panels(db_path, range(1, 13))  # 10 runs with losses
    render_plotloss(panels, str(out), plot_size=plot_size)
    assert pdf_pages(out) == pages


def test_plotloss_pages_as_pngs_for_the_report(db_path, tmp_path):
    pages = tmp_path / "pages"
    pages.mkdir()
    (pages / "page_99.png").write_bytes(b"a page of an earlier, longer drawing")
    panels = loss_panels(db_path, range(1, 13))  # 10 runs with losses
    render_plotloss(panels, str(tmp_path / "plotloss.pdf"), plot_size=1, pages=str(pages))
    names = [f"page_{number:02d}.png" for number in range(1, 11)]  # zero-padded: they sort as the PDF's pages
    assert sorted(os.listdir(pages)) == names
    assert {png_size(pages / name) for name in names} == {(400, 350)}  # 4 x 3.5 inches at 100 dpi
    assert pdf_pages(tmp_path / "plotloss.pdf") == 10
    render_plotloss_message(str(tmp_path / "plotloss.pdf"), str(pages), "no loss curves: no runs selected")
    assert os.listdir(pages) == ["page_1.png"]  # the workflow's outputs exist even when no run is done
    assert pdf_pages(tmp_path / "plotloss.pdf") == 1


def test_plotloss_selection(db_path, tmp_path):
    out = tmp_path / "plotloss.pdf"
    plotloss(db_path, str(out), ids={1, 2, 3, 4, 5, 6}, plot_size=2)  # runs 3-6 have losses
    assert pdf_pages(out) == 1
    plotloss(db_path, str(out), param=("learner.width", "4"), plot_size=2)  # 16 runs
    assert pdf_pages(out) == 4
    plotloss(db_path, str(out), status="done", param=("class", "dataset_AND"), plot_size=3)  # 24 runs
    assert pdf_pages(out) == 3
    assert sorted(os.listdir(tmp_path)) == [".runs", "mosaic.db", "plotloss.pdf"]  # no temporary file left


def test_plotloss_empty_selection(db_path, tmp_path):
    with pytest.raises(MosaicError, match="no runs selected"):
        plotloss(db_path, str(tmp_path / "out.pdf"), status="error")  # the failed run has no losses
    assert not (tmp_path / "out.pdf").exists()
    with pytest.raises(MosaicError, match="no runs selected"):
        render_plotloss([], str(tmp_path / "out.pdf"))


def test_indicator_text_and_scale():
    assert _short_float(0.0012) == "1.2e-3"
    assert _short_float(-2.7e-13) == "-2.7e-13"
    assert _short_float(150.0) == "1.5e2"
    assert _short_float(None) == "n/a"
    assert _use_log_scale([0.001, 0.5, None])
    assert not _use_log_scale([0.01, 0.5])
    assert not _use_log_scale([0.0, 0.5, 100.0])
    assert not _use_log_scale([None])


# ---------------------------------------------------------------- metaplot


def expected_point(dataset, model, width, replicates=range(REPLICATES)):
    values = [final_test_loss(dataset, model, width, r) for r in replicates]
    std = statistics.stdev(values) if len(values) > 1 else 0.0
    return (nb_params(model, width), statistics.fmean(values), std, len(values))


def assert_points(found, expected):
    assert [(p.nb_params, p.n) for p in found] == [(x, n) for x, _, _, n in expected]
    for point, (_, want_mean, want_std, n) in zip(found, expected):
        assert point.mean == pytest.approx(want_mean) and point.std == pytest.approx(want_std)
        assert len(point.values) == n and statistics.fmean(point.values) == pytest.approx(want_mean)
        # a loss: the geometric mean and the t interval of the logarithms, as in mosaic_compare's tables
        assert point.scale == "log"
        assert (point.center, point.ci_low, point.ci_high) == mean_interval(point.values, "log")
        if n > 1:
            assert 0 < point.ci_low < point.center < point.ci_high
        else:
            assert point.ci_low is None and point.ci_high is None


def test_metaplot_data_by_class_or_key(db_path):
    data = metaplot_data(db_path, "dataset_OR", "test_loss")
    assert data == metaplot_data(db_path, "data_dataset_OR", "test_loss")
    assert list(data) == ["data_dataset_OR"]
    assert list(data["data_dataset_OR"]) == ["net_brick", "net_funnel"]
    brick = [expected_point("dataset_OR", "brick", w) for w in WIDTHS]
    assert_points(data["data_dataset_OR"]["net_brick"], brick)
    # run 1 failed, 2 is pending and 3 has a NULL test loss: funnel width 2 keeps one replicate
    funnel = [expected_point("dataset_OR", "funnel", width) for width in WIDTHS]
    funnel[0] = expected_point("dataset_OR", "funnel", 2, replicates=[3])
    assert_points(data["data_dataset_OR"]["net_funnel"], funnel)
    assert data["data_dataset_OR"]["net_funnel"][0].std == 0.0


def test_metaplot_data_values(db_path):
    duration = metaplot_data(db_path, "dataset_AND", "duration")
    assert duration == metaplot_data(db_path, "dataset_AND", "duration(s)")
    for point, size in zip(duration["data_dataset_AND"]["net_brick"], (20, 30, 40)):  # every run took `size` s
        assert (point.nb_params, point.n, point.scale, point.mean, point.std) == (size, 4, "log", size, 0.0)
        assert (point.center, point.ci_low, point.ci_high) == pytest.approx((size, size, size))
    sizes = metaplot_data(db_path, "dataset_AND", "nb_params")
    assert [p.mean for p in sizes["data_dataset_AND"]["net_funnel"]] == [21.0, 31.0, 41.0]
    for value in ("train_loss", "overfit", "trainability", "slope"):
        points = metaplot_data(db_path, "dataset_AND", value)["data_dataset_AND"]["net_funnel"]
        assert [p.n for p in points] == [4, 4, 4]
        for point in points:
            assert (point.center, point.ci_low, point.ci_high) == mean_interval(point.values, point.scale)
    slope = metaplot_data(db_path, "dataset_AND", "slope")["data_dataset_AND"]
    assert {p.scale for points in slope.values() for p in points} == {"linear"}  # one panel, one scale


def test_metaplot_data_errors(db_path):
    with pytest.raises(MosaicError, match="unknown value 'accuracy'.*test_loss.*nb_params"):
        metaplot_data(db_path, "dataset_OR", "accuracy")
    with pytest.raises(MosaicError, match="'dataset_XOR'.*data_dataset_AND, data_dataset_OR"):
        metaplot_data(db_path, "dataset_XOR", "test_loss")
    with pytest.raises(MosaicError, match="'brick'"):  # a model class is not a dataset
        metaplot_data(db_path, "brick", "test_loss")


def test_render_metaplot_png_one_axes_per_dataset(db_path, tmp_path):
    one, two = tmp_path / "one.png", tmp_path / "two.png"
    render_metaplot(metaplot_data(db_path, "dataset_OR", "test_loss"), str(one), "test_loss")
    both = {**metaplot_data(db_path, "dataset_OR", "slope"), **metaplot_data(db_path, "dataset_AND", "slope")}
    render_metaplot(both, str(two), "slope")
    (width_one, height_one), (width_two, height_two) = png_size(one), png_size(two)
    assert height_one == height_two and width_two == pytest.approx(2 * width_one, abs=2)


def test_metaplot_formats_and_a_bad_one(db_path, tmp_path):
    metaplot(db_path, str(tmp_path / "meta.pdf"), "dataset_AND", "overfit")
    assert pdf_pages(tmp_path / "meta.pdf") == 1
    metaplot(db_path, str(tmp_path / "meta.svg"), "dataset_AND", "overfit")
    assert b"<svg" in (tmp_path / "meta.svg").read_bytes()[:1000]
    with pytest.raises(MosaicError, match=r"meta.txt: unknown plot format '.txt' \(use .pdf, .png or .svg\)"):
        metaplot(db_path, str(tmp_path / "meta.txt"), "dataset_AND", "overfit")
    with pytest.raises(MosaicError, match="unknown plot format '.txt'"):  # refused before the database is read
        metaplot(str(tmp_path / "missing.db"), str(tmp_path / "meta.txt"), "dataset_AND", "overfit")
    assert sorted(os.listdir(tmp_path)) == [".runs", "meta.csv", "meta.pdf", "meta.svg", "mosaic.db"]


def test_metaplot_bands_of_losses_that_reach_zero_stop_at_zero(db_path):
    import sqlite3

    # three replicates of net_brick width=4 on OR (runs 21-24) end at a loss of 0: no log scale, and the t
    # interval of [0, 0, 0, x] reaches below 0, where no mean of losses can be
    with sqlite3.connect(db_path) as db:
        db.execute("UPDATE runs SET test_loss = 0 WHERE run_id IN (21, 22, 23)")
    points = metaplot_data(db_path, "dataset_OR", "test_loss")["data_dataset_OR"]
    brick = points["net_brick"][-1]
    assert brick.values == (0.0, 0.0, 0.0, final_test_loss("dataset_OR", "brick", 4, 3))
    center, low, high = mean_interval(brick.values, "linear")
    assert brick.scale == "linear" and low < 0
    assert (brick.center, brick.ci_low, brick.ci_high) == (center, 0.0, high)
    assert all(p.ci_low >= 0 for ps in points.values() for p in ps if p.ci_low is not None)


def test_metaplot_csv_holds_exactly_what_is_drawn(db_path, tmp_path):
    out = tmp_path / "meta.png"
    metaplot(db_path, str(out), "dataset_OR", "test_loss")
    with open(tmp_path / "meta.csv") as handle:
        rows = list(csv.DictReader(handle))
    assert list(rows[0]) == list(METAPLOT_CSV_COLUMNS)
    data = metaplot_data(db_path, "dataset_OR", "test_loss")
    fig = draw_metaplot(data, "test_loss")
    (ax,) = fig.axes
    for line in ax.get_lines():
        drawn = [r for r in rows if r["model_key"] == line.get_label()]
        assert [float(r["nb_params"]) for r in drawn] == list(line.get_xdata())
        assert [float(r["center"]) for r in drawn] == pytest.approx(list(line.get_ydata()), rel=1e-12)
        for row, point in zip(drawn, data["data_dataset_OR"][line.get_label()]):  # mosaic_compare's intervals
            in_csv = tuple(float(row[k]) if row[k] else None for k in ("center", "ci_low", "ci_high"))
            assert in_csv == mean_interval(point.values, row["scale"])
    # the bands: their outlines hold exactly the intervals of the CSV (rows with n > 1)
    bands = [c for c in ax.collections if c.get_paths() and c.__class__.__name__ != "PathCollection"]
    outline = {round(y, 12) for band in bands for path in band.get_paths() for _, y in path.vertices}
    intervals = {round(float(r[k]), 12) for r in rows if r["ci_low"] for k in ("ci_low", "ci_high")}
    assert intervals <= outline
    # the faint points: every replicate
    dots = [c for c in ax.collections if c.__class__.__name__ == "PathCollection"]
    assert sum(len(c.get_offsets()) for c in dots) == sum(int(r["n"]) for r in rows)
    legend = ax.get_legend().get_title().get_text()
    assert "line: geometric mean; band: its 95% CI" in legend  # a loss


def test_metaplot_log_x(db_path):
    data = metaplot_data(db_path, "dataset_OR", "test_loss")
    assert draw_metaplot(data, "test_loss").axes[0].get_xscale() == "linear"  # 20 to 41 params
    assert draw_metaplot(data, "test_loss", log_x=True).axes[0].get_xscale() == "log"


def test_plot_functions_leave_the_backend_alone(db_path, tmp_path):
    import matplotlib

    before = matplotlib.get_backend()
    matplotlib.use("svg")  # as a notebook or another program might have chosen
    try:
        fig = draw_metaplot(metaplot_data(db_path, "dataset_OR", "test_loss"), "test_loss")
        metaplot(db_path, str(tmp_path / "m.png"), "dataset_OR", "test_loss")
        plotloss(db_path, str(tmp_path / "p.pdf"), ids={4, 5})
        render_message(str(tmp_path / "x.png"), "nothing")
        assert matplotlib.get_backend() == "svg"
        assert fig.axes  # a Figure, ready to show or save
    finally:
        matplotlib.use(before)


def test_draw_metaplot_on_given_axes(db_path):
    from matplotlib.figure import Figure

    fig = Figure()
    ax = fig.add_subplot()
    assert draw_metaplot(metaplot_data(db_path, "dataset_OR", "test_loss"), "test_loss", axes=[ax]) is fig
    assert len(ax.get_lines()) == 2


def test_plotloss_max_runs(db_path, tmp_path):
    out = tmp_path / "plotloss.pdf"
    assert plotloss(db_path, str(out), plot_size=2, max_runs=5) == (5, 48)
    assert pdf_pages(out) == 2  # 5 panels, 4 a page
    assert [p["run_id"] for p in loss_panels(db_path, range(1, 49), limit=3)] == [3, 4, 5]
    with pytest.raises(MosaicError, match="max_runs must be at least 1"):
        plotloss(db_path, str(out), max_runs=0)


def test_plotloss_command_max_runs(db_path, tmp_path, capsys):
    from mosaic.ops.cli import mosaic_plotloss

    assert mosaic_plotloss([db_path, str(tmp_path / "p.pdf"), "--max-runs", "4"]) == 0
    out = capsys.readouterr().out
    assert "4 runs drawn" in out and "the first 4 of 48 selected: --all" in out and pdf_pages(tmp_path / "p.pdf") == 1


def test_plotloss_command_draws_a_readable_number_of_runs_unless_told_all(db_path, tmp_path, capsys, monkeypatch):
    from mosaic.ops import cli

    monkeypatch.setattr(cli, "plotloss_max_runs", lambda: 10)  # the database has 48 runs (the default is 200)
    assert cli.mosaic_plotloss([db_path, str(tmp_path / "p.pdf")]) == 0
    assert "10 runs drawn" in capsys.readouterr().out
    assert cli.mosaic_plotloss([db_path, str(tmp_path / "all.pdf"), "--all"]) == 0
    assert "46 runs drawn" in capsys.readouterr().out and pdf_pages(tmp_path / "all.pdf") == 6  # 2 have no losses


MAGIC = {"png": b"\x89PNG", "pdf": b"%PDF", "svg": b"<?xml"}  # how each format's file begins


@pytest.mark.parametrize("name", ["curves.png", "curves.pdf", "curves.svg"])
def test_plotloss_writes_the_format_its_extension_names(db_path, tmp_path, monkeypatch, capsys, name):
    from mosaic.ops.cli import mosaic_plotloss

    magic = MAGIC[name[-3:]]
    monkeypatch.chdir(tmp_path)
    assert mosaic_plotloss([db_path, name, "-id", "4-7", "-plot_size", "2"]) == 0  # 4 runs: one page
    assert (tmp_path / name).read_bytes()[: len(magic)] == magic
    assert capsys.readouterr().out == f"4 runs drawn in {name}\n"


def test_plotloss_as_images_one_a_page(db_path, tmp_path, monkeypatch, capsys):
    from mosaic.ops.cli import mosaic_plotloss

    monkeypatch.chdir(tmp_path)
    assert mosaic_plotloss([db_path, "two.png", "-id", "4-8", "-plot_size", "2"]) == 0  # 5 runs: two pages
    assert capsys.readouterr().out == "5 runs drawn in two.png and two_2.png\n"
    assert png_size("two.png") == png_size("two_2.png")
    assert mosaic_plotloss([db_path, "three.png", "-id", "4-15", "-plot_size", "2"]) == 0  # 12 runs: 3 pages
    assert capsys.readouterr().out == "12 runs drawn in three.png, three_2.png and three_3.png\n"
    assert mosaic_plotloss([db_path, "many.svg", "-id", "4-8", "-plot_size", "1"]) == 0  # 5 runs: 5 pages
    assert capsys.readouterr().out == "5 runs drawn in many.svg, many_2.svg ... many_5.svg (5 pages, one an image)\n"
    assert sorted(p.name for p in tmp_path.glob("many*")) == [f"many{k}.svg" for k in ("", "_2", "_3", "_4", "_5")]
    assert all(b"<svg" in p.read_bytes()[:1000] for p in tmp_path.glob("many*"))


def test_plot_commands_refuse_an_unknown_extension_before_reading_anything(tmp_path, monkeypatch, capsys):
    from mosaic.ops.cli import mosaic_metaplot, mosaic_plotloss

    monkeypatch.chdir(tmp_path)  # no database here: the output's name is checked first
    use = "(use .pdf, .png or .svg)"
    assert mosaic_plotloss(["missing.db", "curves.txt"]) == 2
    assert capsys.readouterr().err == f"mosaic_plotloss: curves.txt: unknown plot format '.txt' {use}\n"
    assert mosaic_metaplot(["missing.db", "meta.jpg", "dataset_OR", "test_loss"]) == 2
    assert capsys.readouterr().err == f"mosaic_metaplot: meta.jpg: unknown plot format '.jpg' {use}\n"
    assert sorted(os.listdir(tmp_path)) == []


@pytest.mark.parametrize("name", ["meta.png", "meta.pdf", "meta.svg"])
def test_metaplot_command_writes_the_format_its_extension_names(db_path, tmp_path, monkeypatch, name):
    from mosaic.ops.cli import mosaic_metaplot

    monkeypatch.chdir(tmp_path)
    assert mosaic_metaplot([db_path, name, "dataset_OR", "test_loss"]) == 0
    assert (tmp_path / name).read_bytes()[: len(MAGIC[name[-3:]])] == MAGIC[name[-3:]]


def test_metaplot_help_defines_the_indicators(capsys):
    from mosaic.ops.cli import mosaic_metaplot
    from mosaic.results.indicators import DEFINITIONS

    with pytest.raises(SystemExit):
        mosaic_metaplot(["--help"])
    shown = " ".join(capsys.readouterr().out.split())
    for name, sentence in DEFINITIONS.items():
        assert f"{name} {sentence}" in shown
    caption = " ".join((Path(__file__).parents[2] / "workflow" / "report" / "metaplot.rst").read_text().split())
    for name, sentence in DEFINITIONS.items():  # the report's caption of the comparison plots says the same
        assert f'"{name}": "{sentence}"' in caption
