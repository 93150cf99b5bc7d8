"""No SQL from user strings: run selectors (-param NAME VALUE, -status) and the ini's keys and values reach the
results database as data, never as SQL (mosaic/results/database.py select_run_ids, the commands that select)."""

import sqlite3

import pytest

from mosaic.errors import UsageError

INJECTIONS = [
    "3' OR '1'='1",
    "3; DROP TABLE runs; --",
    "x') OR 1=1 --",
    '" OR ""="',
]


@pytest.fixture
def database(tmp_path):
    from mosaic.experiment import load_experiment
    from mosaic.results.database import build
    from tests.fakes import Experiment

    experiment = Experiment(tmp_path / "exp", {("mlp_funnel", "width"): "2", ("mlp_brick", "width"): "2",
                                               ("MONITOR", "multiplicity"): 1})
    # a parameter whose name and value are SQL: stored as data, like any other
    experiment.ini.write_text(experiment.ini.read_text().replace(
        "[mlp_brick]\n", "[mlp_brick]\nx');DROP_TABLE_params;-- = \"'); DROP TABLE runs; --\"\n"))
    build(load_experiment(experiment.ini), str(experiment.db))
    return experiment


def tables(db):
    with sqlite3.connect(db) as connection:
        return sorted(row[0] for row in connection.execute("SELECT name FROM sqlite_master WHERE type='table'"))


@pytest.mark.parametrize("text", INJECTIONS)
def test_selectors_are_never_sql(database, text):
    from mosaic.results.database import select_run_ids

    before = tables(database.db)
    assert select_run_ids(str(database.db), param=("width", text)) == []
    assert select_run_ids(str(database.db), param=(text, "2")) == []
    with pytest.raises(UsageError, match="unknown status"):  # checked against the known statuses, never queried
        select_run_ids(str(database.db), status=text)
    assert select_run_ids(str(database.db), param=("width", "2")) == [1, 2]
    assert tables(database.db) == before


def test_sql_in_ini_keys_and_values_is_stored_as_text(database):
    import mosaic
    from mosaic.results.database import select_run_ids

    runs = mosaic.load(database.db).runs
    column = "mlp.x');DROP_TABLE_params;--"
    assert runs.loc[runs["mlp.class"] == "mlp_brick", column].tolist() == ["'); DROP TABLE runs; --"]
    assert select_run_ids(str(database.db), param=("x');DROP_TABLE_params;--", "'); DROP TABLE runs; --")) == [2]
    assert {"losses", "meta", "params", "runs"} <= set(tables(database.db))


def test_commands_pass_selectors_as_data(database):
    for text in INJECTIONS:
        result = database.command("mosaic_plotloss", "database.db", "out.pdf", "-param", text, text)
        assert result.returncode != 0 and "no runs selected" in result.stderr
        result = database.command("mosaic_metaplot", "database.db", "out.png", text, "test_loss")
        assert result.returncode != 0 and "no finished run with dataset" in result.stderr
    assert {"losses", "meta", "params", "runs"} <= set(tables(database.db))

