"""Validation losses in the results (issue 23.2): losses.tsv's val_loss column read into the database
(losses.val_loss per epoch, runs.val_loss at the last epoch, val_<metric> metrics), into mosaic.load's
frames, compared by mosaic_compare --value val_loss and drawn by plotloss; a database of schema version 2
(no val_loss columns) is still read, and its store is rebuilt."""

import sqlite3
from contextlib import closing
from types import SimpleNamespace

import pytest

import mosaic
from mosaic import runfiles
from mosaic.errors import MosaicError
from mosaic.results import lossplot
from mosaic.results.database import SCHEMA_VERSION, _store_path, build
from mosaic.results.values import value_source
from tests.fakes import fake_module, fake_process, fake_run, write_done

EPOCHS = 5
MODELS = ("funnel", "brick")
REPLICATES = 3


def validation_curve(run_id):
    return [1.0 / (epoch + run_id) for epoch in range(1, EPOCHS + 1)]


def experiment_of(tmp_path, with_validation=True):
    """2 models × 3 replicates, runs 1-6, each with validation losses (when `with_validation`) and the metric mae
    on test and validation; run 7 (a third model) without a validation part."""
    rfp = tmp_path / ".runs"
    data = fake_module("data", "data", "data", "data", [("n", 10)])
    runs = []
    for model in MODELS + ("plain",):
        net = fake_module(model, "net", model, f"net_{model}", [("width", 2)])
        for replicate in range(REPLICATES if model != "plain" else 1):
            run_id = len(runs) + 1
            run = fake_run(run_id, f"h{run_id}", (data, net), f"data(10) | {model}(2)", replicate, run_id)
            runs.append(run)
            validated = with_validation and model != "plain"
            rows = [(epoch, 0.5 / epoch, 0.6 / epoch, 0.1, *([val] if validated else []))
                    for epoch, val in zip(range(1, EPOCHS + 1), validation_curve(run_id))]
            metrics = [(epoch, name, value) for epoch, *_ in rows
                       for name, value in [("mae", 0.3 / epoch)] + ([("val_mae", 0.2 / epoch)] if validated else [])]
            write_done(rfp, run.run_hash, rows, {"nb_params": 5, "epochs": EPOCHS, "duration_s": 1.0}, metrics)
    process = fake_process(rfp, ("data",), ("net",), EPOCHS)
    return SimpleNamespace(ini_path=str(tmp_path / "config.ini"), process=process, runs=tuple(runs))


@pytest.fixture
def database(tmp_path):
    experiment = experiment_of(tmp_path)
    path = str(tmp_path / "mosaic.db")
    build(experiment, path)
    return experiment, path


def query(path, sql, args=()):
    with closing(sqlite3.connect(path)) as db:
        return db.execute(sql, args).fetchall()


def test_the_loss_file_has_a_val_loss_column_only_when_the_run_has_one(tmp_path):
    path = tmp_path / runfiles.LOSSES
    path.write_text(runfiles.format_losses([(1, 0.5, 0.6, 0.1, 0.7), (2, 0.25, 0.3, 0.1, float("nan"))]))
    assert path.read_text().splitlines()[0] == "epoch\ttrain_loss\ttest_loss\tseconds\tval_loss"
    epochs, train, test, seconds, validation = runfiles.read_loss_columns(path)
    assert (epochs, train, validation[0]) == ([1, 2], [0.5, 0.25], 0.7) and validation[1] != validation[1]
    path.write_text(runfiles.format_losses([(1, 0.5, 0.6, 0.1)]))
    assert path.read_text().splitlines()[0] == runfiles.LOSS_HEADER
    assert runfiles.read_losses(path) == [(1, 0.5, 0.6, 0.1)]
    path.write_text(runfiles.VAL_LOSS_HEADER + "\n1\t0.5\t0.6\t0.1\n")  # a line missing its val_loss
    with pytest.raises(ValueError, match="not a loss line \\(epoch, train_loss, test_loss, seconds, val_loss\\)"):
        runfiles.read_loss_columns(path)


def test_validation_losses_and_metrics_are_in_the_database(database):
    _, path = database
    rows = query(path, "SELECT epoch, val_loss FROM losses WHERE run_id = 2 ORDER BY epoch")
    assert rows == list(zip(range(1, EPOCHS + 1), validation_curve(2)))
    assert query(path, "SELECT COUNT(*) FROM losses WHERE run_id = 7 AND val_loss IS NULL") == [(EPOCHS,)]
    finals = dict(query(path, "SELECT run_id, val_loss FROM runs"))
    assert finals == {**{run_id: validation_curve(run_id)[-1] for run_id in range(1, 7)}, 7: None}
    assert query(path, "SELECT value FROM final_metrics WHERE run_id = 1 AND name = 'val_mae'") == [(0.2 / EPOCHS,)]
    assert query(path, "SELECT value FROM meta WHERE name = 'schema_version'") == [(str(SCHEMA_VERSION),)]
    assert SCHEMA_VERSION == 3


def test_mosaic_load_has_val_loss_columns(database):
    _, path = database
    results = mosaic.load(path)
    assert results.runs["val_loss"].dtype == "float64"
    assert results.runs.set_index("run_id")["val_loss"][3] == validation_curve(3)[-1]
    assert results.runs.set_index("run_id")["val_loss"].isna()[7]
    run_2 = results.losses[results.losses["run_id"] == 2]
    assert run_2["val_loss"].tolist() == validation_curve(2)


def test_a_version_2_store_is_rebuilt_and_a_version_2_database_still_read(database, tmp_path):
    experiment, path = database
    store = _store_path(experiment, path)
    with closing(sqlite3.connect(store)) as db, db:  # the store as version 2 left it: no val_loss columns
        db.execute("UPDATE meta SET value = '2' WHERE name = 'schema_version'")
        db.execute("ALTER TABLE runs DROP COLUMN val_loss")
        db.execute("ALTER TABLE losses DROP COLUMN val_loss")
    old = tmp_path / "old.db"
    runfiles.copy_file(store, old)
    results = mosaic.load(str(old))  # a database of version 2 is read: no validation losses in it
    assert results.runs["val_loss"].isna().all() and results.losses["val_loss"].isna().all()
    panels = lossplot.loss_panels(str(old), [1])
    assert panels[0]["validation"] is None
    with closing(sqlite3.connect(old)) as db, pytest.raises(MosaicError, match="value 'val_loss': this"
                                                             " database has no val_loss column"):
        value_source(db, "val_loss")
    build(experiment, path)  # the store of version 2 is not updated: rebuilt
    assert query(store, "SELECT value FROM meta WHERE name = 'schema_version'") == [("3",)]
    assert query(path, "SELECT val_loss FROM runs WHERE run_id = 1") == [(validation_curve(1)[-1],)]


def test_mosaic_compare_compares_val_loss(database, tmp_path, capsys):
    from mosaic.ops.cli import mosaic_compare

    _, path = database
    assert mosaic_compare([path, "--value", "val_loss", "--out", str(tmp_path / "o")]) == 0
    printed = capsys.readouterr().out
    assert "val_loss" in printed and "net_funnel" in printed and "net_brick" in printed
    with closing(sqlite3.connect(path)) as db:
        assert value_source(db, "val_loss") == ("runs.val_loss", "", ())


def test_plotloss_draws_the_validation_curve_dashed(database, tmp_path, monkeypatch):
    _, path = database
    panels = lossplot.loss_panels(path, [1, 7])
    assert panels[0]["validation"] == validation_curve(1) and panels[1]["validation"] is None
    drawn = []
    original = lossplot._draw_panel
    monkeypatch.setattr(lossplot, "_draw_panel", lambda ax, panel, size: drawn.append(original(ax, panel, size))
                        or drawn[-1])
    lossplot.render_plotloss(panels, str(tmp_path / "curves.png"), plot_size=2)
    styles = [[(line.get_linestyle(), line.get_color()) for line in lines] for lines in drawn]
    assert styles == [[("-", "tab:blue"), ("--", "tab:red"), ("-.", "tab:green")],
                      [("-", "tab:blue"), ("--", "tab:red")]]
    assert (tmp_path / "curves.png").stat().st_size > 0
