import json
import math
import os
import re
import statistics
import struct
from types import SimpleNamespace

import pytest
from conftest import fake_module

from mosaic.errors import MosaicError
from mosaic.results.database import build
from mosaic.results.plots import (
    _short_float,
    _use_log_scale,
    loss_panels,
    metaplot,
    metaplot_data,
    plotloss,
    render_metaplot,
    render_plotloss,
)
from mosaic.runfiles import ERROR, LOSSES, RESULT, format_losses, run_dir, run_file

EPOCHS = 20
REPLICATES = 4
WIDTHS = (2, 3, 4)
DATASETS = ("dataset_OR", "dataset_AND")
MODELS = ("funnel", "brick")


def final_test_loss(dataset, model, width, replicate):
    base = {"dataset_OR": 0.1, "dataset_AND": 0.2}[dataset] + {"funnel": 0.05, "brick": 0.0}[model]
    return base / width + 0.01 * replicate


def loss_curve(final):
    """Decreasing test losses ending exactly at `final`."""
    return [final + 2.0 * (0.7**e - 0.7 ** (EPOCHS - 1)) for e in range(EPOCHS)]


def nb_params(model, width):
    return 10 * width + (1 if model == "funnel" else 0)


def write_done(rfp, run_hash, result, train, test):
    os.makedirs(run_dir(rfp, run_hash))
    rows = [(e + 1, t, v, 0.1) for e, (t, v) in enumerate(zip(train, test))]
    with open(run_file(rfp, run_hash, LOSSES), "w") as handle:
        handle.write(format_losses(rows))
    with open(run_file(rfp, run_hash, RESULT), "w") as handle:
        json.dump(result, handle)


@pytest.fixture
def db_path(tmp_path):
    """2 datasets × 2 models × 3 widths × 4 replicates = 48 runs; types named 'source' and 'learner'.

    Run 1 failed, run 2 never ran (no files), run 3 diverged (nan losses); all others are done.
    Keys: data_<class> and net_<class>.
    """
    rfp = str(tmp_path / ".runs")
    runs = []
    for dataset in DATASETS:
        data = fake_module(dataset, "source", dataset, f"data_{dataset}", [("data_size", 200)])
        for model in MODELS:
            for width in WIDTHS:
                net = fake_module(model, "learner", model, f"net_{model}", [("width", width)])
                for replicate in range(REPLICATES):
                    run_id = len(runs) + 1
                    run = SimpleNamespace(
                        run_id=run_id,
                        run_hash=f"h{run_id}",
                        replicate=replicate,
                        seed=run_id,
                        modules=(data, net),
                        n_data=1,
                        pipeline=f"{dataset}(200) | {model}({width})",
                        dataset_key=data.key,
                        model_key=net.key,
                    )
                    runs.append(run)
                    final = final_test_loss(dataset, model, width, replicate)
                    test = loss_curve(final)
                    train = [v - final / 2 for v in test]
                    if run_id == 3:
                        train[-1] = test[-1] = math.nan
                    result = {
                        "nb_params": nb_params(model, width),
                        "epochs": EPOCHS,
                        "duration_s": 10.0 * width,
                        "device": "cpu",
                        "diverged": run_id == 3,
                    }
                    if run_id == 1:
                        os.makedirs(run_dir(rfp, run.run_hash))
                        with open(run_file(rfp, run.run_hash, ERROR), "w") as handle:
                            handle.write("Traceback\nRuntimeError: x\n")
                    elif run_id != 2:
                        write_done(rfp, run.run_hash, result, train, test)
    process = SimpleNamespace(
        lr=0.01,
        epochs=EPOCHS,
        data_scheme=("source",),
        pipeline_scheme=("learner",),
        run_files_path=rfp,
        loss_function="MSELoss",
        optimizer="Adam",
        seed=0,
        extra=(),
    )
    path = str(tmp_path / "mosaic.db")
    build(SimpleNamespace(ini_path=str(tmp_path / "config.ini"), process=process, runs=tuple(runs)), path)
    return path


def pdf_pages(path):
    with open(path, "rb") as handle:
        content = handle.read()
    assert content.startswith(b"%PDF")
    return len(re.findall(rb"/Type\s*/Page\b(?!s)", content))


def png_size(path):
    with open(path, "rb") as handle:
        header = handle.read(24)
    assert header[:8] == b"\x89PNG\r\n\x1a\n"
    return struct.unpack(">II", header[16:24])


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
    assert [(x, n) for x, _, _, n in found] == [(x, n) for x, _, _, n in expected]
    for (_, mean, std, _), (_, want_mean, want_std, _) in zip(found, expected):
        assert mean == pytest.approx(want_mean) and std == pytest.approx(want_std)


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
    assert data["data_dataset_OR"]["net_funnel"][0][2] == 0.0


def test_metaplot_data_values(db_path):
    duration = metaplot_data(db_path, "dataset_AND", "duration")
    assert duration == metaplot_data(db_path, "dataset_AND", "duration(s)")
    expected = [(20, 20.0, 0.0, 4), (30, 30.0, 0.0, 4), (40, 40.0, 0.0, 4)]
    assert duration["data_dataset_AND"]["net_brick"] == expected
    sizes = metaplot_data(db_path, "dataset_AND", "nb_params")
    assert [p[1] for p in sizes["data_dataset_AND"]["net_funnel"]] == [21.0, 31.0, 41.0]
    for value in ("train_loss", "overfit", "trainability", "slope"):
        points = metaplot_data(db_path, "dataset_AND", value)["data_dataset_AND"]["net_funnel"]
        assert [p[3] for p in points] == [4, 4, 4]


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


def test_metaplot_pdf_and_bad_format(db_path, tmp_path):
    metaplot(db_path, str(tmp_path / "meta.pdf"), "dataset_AND", "overfit")
    assert pdf_pages(tmp_path / "meta.pdf") == 1
    with pytest.raises(MosaicError, match="unsupported plot format 'txt'"):
        metaplot(db_path, str(tmp_path / "meta.txt"), "dataset_AND", "overfit")
    assert sorted(os.listdir(tmp_path)) == [".runs", "meta.pdf", "mosaic.db"]
