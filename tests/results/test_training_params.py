"""Each run's training settings (issue 23.1) in the database's params rows, as mosaic.load's typed columns and
in mosaic_status's labels."""

from mosaic.results.database import build
from mosaic.results.frames import load
from mosaic.results.status import listed
from tests.fakes import FUNNEL, load_ini, mlp_ini


def grid_experiment(tmp_path):
    """lr 0.1 and 0.01 for every run; weight_decay 0.5 for the brick's runs only."""
    brick = FUNNEL.replace("mlp_funnel", "mlp_brick").replace("width = {2-4}", "width = 2\nweight_decay = 0.5")
    funnel = FUNNEL.replace("width = {2-4}", "width = 2")
    text = mlp_ini("width = 2", process_extra="optimizer = SGD\n").split("[mlp]")[0] + funnel + "\n" + brick
    return load_ini(tmp_path, text.replace("lr = 1e-2", "lr = 0.1, 0.01"))


def test_load_shows_each_runs_settings_as_typed_columns(tmp_path):
    experiment = grid_experiment(tmp_path)
    build(experiment, str(tmp_path / "database.db"))
    runs = load(str(tmp_path / "database.db")).runs
    assert runs["PROCESS.lr"].dtype == "float64" and runs["PROCESS.lr"].tolist() == [0.1, 0.01, 0.1, 0.01]
    assert runs["PROCESS.optimizer"].tolist() == ["SGD"] * 4
    assert runs["PROCESS.weight_decay"].isna().tolist() == [True, True, False, False]
    assert runs["PROCESS.weight_decay"].dtype == "float64"


def test_status_labels_end_with_the_settings_that_vary(tmp_path):
    labels = [run.label for run in listed(grid_experiment(tmp_path)).runs]
    assert labels[0] == ("dataset_OR(batch_size=1, data_size=200, train_prop=0.8) | mlp_funnel(length=4, width=2)"
                         " | lr=0.1")
    assert labels[3].endswith("| mlp_brick(length=4, width=2) | lr=0.01, weight_decay=0.5")
