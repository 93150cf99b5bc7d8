"""mosaic.load (DataFrames) and mosaic_export (CSV, Parquet, TensorBoard), on a database built from run files."""

import os
import subprocess
import sys

import pytest

import mosaic
from mosaic.errors import MosaicError
from mosaic.experiment import load_experiment
from mosaic.results.database import build
from tests.fakes import BIN, Experiment, command_env, write_done

EPOCHS = 5


def finish(rfp, run, final):
    """The files of `run` done, its losses ending near `final`; returns its loss rows."""
    rows = [(e, 0.5 / e + final, 0.6 / e + final, 0.01 * e) for e in range(1, EPOCHS + 1)]
    result = {"run_hash": run.run_hash, "status": "done", "nb_params": 10 + run.run_id, "epochs": EPOCHS,
              "duration_s": 1.5, "device": "cpu", "diverged": False}
    write_done(rfp, run.run_hash, rows, result)
    return rows


@pytest.fixture
def database(tmp_path):
    """The tutorial's classes with typed parameters of every kind; run 3 left pending."""
    experiment_folder = Experiment(tmp_path / "exp", {
        ("PROCESS", "epochs"): EPOCHS,
        ("PROCESS", "comment"): '"first try"',
        ("MONITOR", "multiplicity"): 2,
        ("mlp_funnel", "width"): "2, 3",
        ("mlp_funnel", "dropout"): "0.5",
        ("mlp_funnel", "bias"): "True, False",
        ("mlp_brick", "width"): "4",
        ("mlp_brick", "activation"): "relu",
    })
    experiment = load_experiment(experiment_folder.ini)
    rfp = experiment.process.run_files_path
    losses = {}
    for run in experiment.runs:
        if run.run_id != 3:
            losses[run.run_id] = finish(rfp, run, 0.001 * run.run_id)
    path = tmp_path / "results" / "database.db"
    build(experiment, str(path))
    return path, experiment, losses


def test_load_runs_wide_and_typed(database):
    path, experiment, _ = database
    runs, losses, params = mosaic.load(path)
    assert list(runs["run_id"]) == [run.run_id for run in experiment.runs]
    assert len(experiment.runs) == 2 * (4 + 1)
    # one column a parameter, named by module type, typed
    assert str(runs["mlp.width"].dtype) == "Int64"
    assert str(runs["mlp.dropout"].dtype) == "float64"
    assert str(runs["mlp.bias"].dtype) == "boolean"
    assert str(runs["dataset.batch_size"].dtype) == "Int64"
    assert str(runs["PROCESS.lr"].dtype) == "float64"
    assert runs["PROCESS.comment"].tolist() == ["first try"] * len(runs)
    brick = runs[runs["mlp.class"] == "mlp_brick"]
    funnel = runs[runs["mlp.class"] == "mlp_funnel"]
    assert set(brick["mlp.width"]) == {4} and set(funnel["mlp.width"]) == {2, 3}
    assert brick["mlp.dropout"].isna().all() and brick["mlp.bias"].isna().all()  # not a brick parameter
    assert funnel["mlp.activation"].isna().all() and set(brick["mlp.activation"]) == {"relu"}
    assert runs.loc[runs["run_id"] == 3, "status"].item() == "pending"
    assert runs.loc[runs["run_id"] == 1, "nb_params"].item() == 11
    assert not any(column.endswith(".width") and column != "mlp.width" for column in runs.columns)
    assert set(params.columns) == {"run_id", "module_type", "name", "value"}
    assert str(losses["epoch"].dtype) == "int64"


def test_load_losses_long_form(database):
    path, _, expected = database
    results = mosaic.load(path)
    losses = results.losses
    assert list(losses.columns) == ["run_id", "epoch", "train_loss", "test_loss", "seconds", "val_loss"]
    assert losses["val_loss"].isna().all()  # no run here has a validation part
    assert sorted(set(losses["run_id"])) == sorted(expected)
    for run_id, rows in expected.items():
        got = losses[losses["run_id"] == run_id]
        assert got["epoch"].tolist() == [r[0] for r in rows]
        for column, index in (("train_loss", 1), ("test_loss", 2), ("seconds", 3)):
            assert got[column].tolist() == pytest.approx([r[index] for r in rows], rel=1e-9)


def test_load_of_a_non_database_is_one_line(tmp_path):
    (tmp_path / "x.db").write_text("not sqlite")
    with pytest.raises(MosaicError, match="not a Mosaic database"):
        mosaic.load(tmp_path / "x.db")


def test_importing_mosaic_and_results_does_not_import_pandas():
    code = ("import sys, mosaic, mosaic.results.frames, mosaic.results.export, mosaic.lib;"
            "print(sorted(m for m in ('pandas', 'torch', 'pyarrow', 'tensorboard') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


def export(path, out, fmt):
    return subprocess.run([str(BIN / "mosaic_export"), str(path), str(out), "--format", fmt],
                          capture_output=True, text=True, env=command_env(), timeout=300)


def plain(series):
    """The values of a column as Python values, missing ones as None, numbers as floats."""
    import pandas as pd

    values = []
    for value in series.tolist():
        if value is None or value is pd.NA or (isinstance(value, float) and value != value):
            values.append(None)
        elif isinstance(value, bool):
            values.append(value)
        elif isinstance(value, (int, float)):
            values.append(float(value))
        else:
            values.append(str(value))
    return values


@pytest.mark.parametrize("fmt", ["csv", "parquet"])
def test_export_tables_read_back_equal(database, tmp_path, fmt):
    import pandas as pd

    path, _, _ = database
    result = export(path, tmp_path / "out", fmt)
    assert result.returncode == 0, result.stderr
    results = mosaic.load(path)
    for name in ("runs", "losses", "params"):
        file = tmp_path / "out" / f"{name}.{fmt}"
        expected = getattr(results, name)
        if fmt == "csv":
            back = pd.read_csv(file)
            # CSV carries no types: the same columns with the same values (pandas infers the types again)
            assert list(back.columns) == list(expected.columns)
            for column in expected.columns:
                if expected[column].dtype == object:  # text, or the mixed values of params.value
                    assert plain(back[column].astype(str)) == plain(expected[column].astype(str)), column
                else:
                    assert plain(back[column]) == plain(expected[column]), column
        else:
            back = pd.read_parquet(file)
            if name == "params":
                expected = expected.assign(value=expected["value"].map(str))
            pd.testing.assert_frame_equal(back, expected)  # types kept: Int64, boolean, float64
    if fmt == "csv":
        assert str(pd.read_csv(tmp_path / "out" / "runs.csv")["mlp.width"].dtype) == "int64"


def test_export_tensorboard_scalars_and_hparams(database, tmp_path):
    pytest.importorskip("tensorboard")
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
    from tensorboard.plugins.hparams import plugin_data_pb2

    path, experiment, expected = database
    result = export(path, tmp_path / "tb", "tensorboard")
    assert result.returncode == 0, result.stderr
    folders = sorted(os.listdir(tmp_path / "tb"))
    assert folders == [f"run_{run.run_id:04d}_{run.run_hash}" for run in experiment.runs]
    for run in experiment.runs:
        accumulator = EventAccumulator(str(tmp_path / "tb" / f"run_{run.run_id:04d}_{run.run_hash}"))
        accumulator.Reload()
        scalars = accumulator.Tags()["scalars"]
        if run.run_id not in expected:
            assert "loss/train" not in scalars
            continue
        train = accumulator.Scalars("loss/train")
        assert [event.step for event in train] == list(range(1, EPOCHS + 1))
        assert [event.value for event in train] == pytest.approx([r[1] for r in expected[run.run_id]], rel=1e-6)
        test = accumulator.Scalars("loss/test")
        assert [event.value for event in test] == pytest.approx([r[2] for r in expected[run.run_id]], rel=1e-6)
        content = accumulator.PluginTagToContent("hparams")
        start = next(plugin_data_pb2.HParamsPluginData.FromString(data).session_start_info
                     for data in content.values()
                     if plugin_data_pb2.HParamsPluginData.FromString(data).HasField("session_start_info"))
        hparams = start.hparams
        width = dict(run.model_modules[0].params)["width"]
        assert hparams["mlp.width"].number_value == width
        assert hparams["mlp.class"].string_value == run.model_modules[0].class_name
        assert hparams["PROCESS.lr"].number_value == pytest.approx(0.01)


def test_export_errors_are_one_line(tmp_path, database):
    (tmp_path / "bad.db").write_text("garbage")
    result = export(tmp_path / "bad.db", tmp_path / "out", "csv")
    assert result.returncode != 0 and "not a Mosaic database" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
    path, _, _ = database
    (tmp_path / "file").write_text("")
    result = export(path, tmp_path / "file" / "sub", "csv")
    assert result.returncode != 0 and "cannot create the folder" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
