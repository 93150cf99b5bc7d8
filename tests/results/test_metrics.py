"""Metrics beyond the loss: built-ins by name ([PROCESS] metrics) and a metrics() hook on the last model
class, recorded per epoch on the test set, stored in the database, compared by mosaic_compare."""

import sqlite3

import pytest
import torch

from mosaic import runfiles
from mosaic.errors import MosaicError
from mosaic.results.compare import compare, load_groups
from mosaic.results.database import build
from mosaic.results.plots import metaplot_data
from mosaic.run.metrics import accuracy, mae, rmse
from mosaic.run.training import train_run
from tests.fakes import TOY_DATA, make_experiment, quiet, run_folder

HOOKED = """
import torch


class Hooked(torch.nn.Module):
    def __init__(self, input_size, output_size):
        super().__init__()
        self.lin = torch.nn.Linear(input_size, output_size)

    def forward(self, x):
        return self.lin(x)

    def metrics(self, prediction, target):
        return {"max_error": (prediction.squeeze() - target).abs().max()}
"""


def hooked(folder, process="metrics = rmse, mae, accuracy\\n", **kwargs):
    model = "\n[model]\ntype = model\nclass = Hooked\npath_to_class = hooked.py\n"
    data = TOY_DATA + "batch_size = 5\n"
    return make_experiment(folder, data + model, process=process.replace("\\n", "\n"),
                           files={"hooked.py": HOOKED}, **kwargs)


def test_builtin_metrics_by_hand():
    assert float(accuracy(torch.tensor([[0.2], [0.7], [0.6]]), torch.tensor([0.0, 1.0, 0.0]))) == pytest.approx(2 / 3)
    scores = torch.tensor([[2.0, 1.0, 0.0], [0.0, 0.5, 3.0]])
    assert float(accuracy(scores, torch.tensor([0, 1]))) == 0.5
    assert float(accuracy(scores, torch.tensor([[1.0, 0, 0], [0, 0, 1.0]]))) == 1.0  # one-hot targets
    assert float(mae(torch.tensor([[1.0], [2.0]]), torch.tensor([2.0, 4.0]))) == pytest.approx(1.5)
    assert float(rmse(torch.tensor([1.0, 2.0]), torch.tensor([2.0, 4.0]))) == pytest.approx((2.5) ** 0.5)


def test_metrics_are_recorded_per_epoch_and_stored(tmp_path):
    # 16 test rows in batches of 5: 5, 5, 5, 1 (the per-sample test loss is then rmse squared exactly)
    experiment = hooked(tmp_path, epochs=3, multiplicity=2)
    for run in experiment.runs:
        train_run(experiment, run, log=quiet)
    run = experiment.runs[0]
    rows = runfiles.read_metrics(run_folder(experiment, run) / runfiles.METRICS)
    assert [(e, name) for e, name, _ in rows] == [
        (e, name) for e in (1, 2, 3) for name in ("rmse", "mae", "accuracy", "max_error")
    ]
    values = {(e, name): v for e, name, v in rows}
    test_losses = {e: test for e, _, test, _ in runfiles.read_losses(run_folder(experiment, run) / runfiles.LOSSES)}
    for epoch in (1, 2, 3):
        assert values[epoch, "rmse"] ** 2 == pytest.approx(test_losses[epoch], rel=1e-5)
        assert values[epoch, "mae"] <= values[epoch, "rmse"] <= values[epoch, "max_error"]
    db = tmp_path / "mosaic.db"
    build(experiment, str(db))
    with sqlite3.connect(db) as connection:
        assert connection.execute("SELECT COUNT(*) FROM metrics").fetchone() == (2 * 3 * 4,)
        final = dict(connection.execute("SELECT name, value FROM final_metrics WHERE run_id = 1"))
    assert final["rmse"] == pytest.approx(values[3, "rmse"])
    groups = load_groups(str(db), "max_error")
    (group,) = next(iter(groups.values()))
    assert len(group.values) == 2
    comparisons, _ = compare(str(db), "accuracy")
    assert comparisons[0].higher
    comparisons, _ = compare(str(db), "rmse")
    assert not comparisons[0].higher
    (points,) = next(iter(metaplot_data(str(db), "Toy", "rmse").values())).values()
    assert points[0].n == 2
    with pytest.raises(MosaicError, match="unknown value 'f1': expected one of test_loss.*accuracy, mae"):
        load_groups(str(db), "f1")


def test_metrics_survive_a_continued_run(tmp_path):
    experiment = hooked(tmp_path, epochs=3, process="metrics = mae\\ncheckpoint_every = 1\\n")
    run = experiment.runs[0]
    train_run(experiment, run, target_epochs=2, log=quiet)
    train_run(experiment, run, log=quiet)
    rows = runfiles.read_metrics(run_folder(experiment, run) / runfiles.METRICS)
    assert [(e, name) for e, name, _ in rows] == [(e, name) for e in (1, 2, 3) for name in ("mae", "max_error")]


def test_unknown_metric_and_bad_hook_are_clear_errors(tmp_path):
    experiment = hooked(tmp_path / "a", process="metrics = accuracy, f1\\n")
    with pytest.raises(MosaicError, match=r"\[PROCESS\] metrics: unknown metric 'f1'"):
        train_run(experiment, experiment.runs[0], log=quiet)
    bad = HOOKED.replace('{"max_error": (prediction.squeeze() - target).abs().max()}', '"nope"')
    model = "\n[model]\ntype = model\nclass = Hooked\npath_to_class = hooked.py\n"
    experiment = make_experiment(tmp_path / "b", TOY_DATA + model, files={"hooked.py": bad})
    with pytest.raises(MosaicError, match="Hooked.metrics must return a dict"):
        train_run(experiment, experiment.runs[0], log=quiet)


def test_runs_without_metrics_write_no_metrics_file(tmp_path):
    model = "\n[model]\ntype = model\nclass = Affine\npath_to_class = toy.py\n"
    experiment = make_experiment(tmp_path, TOY_DATA + model, epochs=1)
    train_run(experiment, experiment.runs[0], log=quiet)
    assert not (run_folder(experiment, experiment.runs[0]) / runfiles.METRICS).exists()
