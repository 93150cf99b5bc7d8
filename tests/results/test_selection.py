"""-id / -status / -param: mosaic_rerun (selecting from the ini) and mosaic_plotloss (from the database)
select the same runs."""

import pytest

from mosaic.errors import MosaicError, UsageError
from mosaic.experiment import load_experiment
from mosaic.results.database import build, select_run_ids
from mosaic.results.selection import parse_ids, select_runs, value_matches
from tests.fakes import Experiment

PARAMS = [
    ("width", "3"), ("width", "3.0"), ("mlp.width", "3"), ("dataset.width", "3"), ("class", "mlp_brick"),
    ("key", "mlp_funnel"), ("lr", "1e-2"), ("lr", "0.01"), ("PROCESS.lr", "0.01"), ("epochs", "400"),
    ("loss_function", "MSELoss"), ("train_prop", ".8"), ("batch_size", "1"), ("section", "mlp_funnel"),
    ("width", "x"), ("class", "brick' OR '1'='1"),
]


@pytest.fixture(scope="module")
def experiment_and_db(tmp_path_factory):
    exp = Experiment(tmp_path_factory.mktemp("selection"))
    experiment = load_experiment(exp.ini)
    build(experiment, exp.db)  # no run trained: every run pending, every parameter stored
    return experiment, exp.db


@pytest.mark.parametrize("param", PARAMS)
def test_ini_and_database_select_the_same_runs(experiment_and_db, param):
    experiment, db = experiment_and_db
    from_ini = [run.run_id for run in select_runs(experiment, param=param)]
    assert from_ini == select_run_ids(db, param=param)


def test_process_values_select_runs(experiment_and_db):
    experiment, _ = experiment_and_db
    everything = [run.run_id for run in experiment.runs]
    assert [run.run_id for run in select_runs(experiment, param=("lr", "0.01"))] == everything
    assert select_runs(experiment, param=("lr", "0.02")) == []
    width_3 = select_runs(experiment, param=("width", "3"))
    assert len(width_3) == 8 and all(dict(run.modules[1].params)["width"] == 3 for run in width_3)


def test_ids_and_status_combine(experiment_and_db):
    experiment, db = experiment_and_db
    states = {run.run_hash: type("S", (), {"status": "pending"}) for run in experiment.runs}
    chosen = select_runs(experiment, ids=parse_ids("2-4"), status="pending", states=states, param=("width", "2"))
    assert [run.run_id for run in chosen] == select_run_ids(db, ids={2, 3, 4}, status="pending", param=("width", "2"))
    assert select_runs(experiment, status="done", states=states) == []


def test_unknown_status_is_a_usage_error(experiment_and_db):
    experiment, db = experiment_and_db
    with pytest.raises(UsageError, match="unknown status 'finished'"):
        select_run_ids(db, status="finished")
    with pytest.raises(UsageError, match="unknown status"):
        select_runs(experiment, status="finished", states={})


@pytest.mark.parametrize("value, text, expected", [
    (3, "3", True), (3, "3.0", True), (3.0, "3", True), (0.01, "1e-2", True), ("3", "3", True),
    (True, "True", True), (True, "1", False), ("abc", "abc", True), (3, "x", False),
])
def test_value_matching(value, text, expected):
    assert value_matches(value, text) is expected


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("all", None),
        (" ALL ", None),
        ("5", {5}),
        ("1-3,7", {1, 2, 3, 7}),
        ("1-3, 7", {1, 2, 3, 7}),
        ("1 - 3 , 7", {1, 2, 3, 7}),
        ("2-2", {2}),
        ("1,2", {1, 2}),
        ("7,1-3,2", {1, 2, 3, 7}),
    ],
)
def test_parse_ids(text, expected):
    assert parse_ids(text) == expected


@pytest.mark.parametrize("text", ["3-1", "x", "", "1,,2", "1-", "-3", "1-3-5", "1.5", "1;2"])
def test_parse_ids_errors(text):
    with pytest.raises(MosaicError) as error:
        parse_ids(text)
    assert "\n" not in str(error.value) and "bad run ids" in str(error.value)
