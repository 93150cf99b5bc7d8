"""The tutorial's classes (share/dataset.py, share/mlp.py): their parameter counts, their own save_model and
load_model, a run of them."""

import shutil

import pytest
import torch

from mosaic.experiment import load_experiment
from mosaic.run.classes import load_class
from mosaic.run.training import Pipeline, seed_everything, train_run
from tests.fakes import ROOT, final_models, losses, quiet, run_folder


@pytest.fixture
def tutorial(tmp_path):
    for name in ("config.ini", "dataset.py", "mlp.py"):
        shutil.copy(ROOT / "share" / name, tmp_path / name)
    return load_experiment(str(tmp_path / "config.ini"))


def test_tutorial_parameter_counts(tutorial):
    counts = {}
    for run in tutorial.runs[::4]:
        seed_everything(run.seed)
        pipeline = Pipeline(run, tutorial, "cpu")
        counts[run.pipeline] = sum(p.numel() for p in pipeline.parameters)
    assert counts == {
        "dataset_OR(1,200,0.8) | mlp_funnel(4,2)": 29,
        "dataset_OR(1,200,0.8) | mlp_funnel(4,3)": 52,
        "dataset_OR(1,200,0.8) | mlp_funnel(4,4)": 74,
        "dataset_OR(1,200,0.8) | mlp_brick(4,2)": 27,
        "dataset_OR(1,200,0.8) | mlp_brick(4,3)": 49,
        "dataset_OR(1,200,0.8) | mlp_brick(4,4)": 77,
    }


def test_tutorial_save_and_load_model_round_trip(tmp_path):
    path = str(ROOT / "share" / "mlp.py")
    for name in ("mlp_funnel", "mlp_brick"):
        cls = load_class(path, name)
        torch.manual_seed(1)
        saved = cls(2, 1, 4, 3)
        torch.manual_seed(2)
        loaded = cls(2, 1, 4, 3)
        assert not torch.equal(saved.layers[0].weight, loaded.layers[0].weight)
        saved.save_model(str(tmp_path / name))
        assert (tmp_path / f"{name}.pt").exists()  # the class adds its own extension
        loaded.load_model(str(tmp_path / name))
        for a, b in zip(saved.state_dict().values(), loaded.state_dict().values()):
            assert torch.equal(a, b)
        x = torch.rand(5, 2)
        assert torch.equal(saved(x, {}, {}), loaded(x, {}, {}))


def test_tutorial_run_trains(tutorial):
    run = tutorial.runs[0]
    result = train_run(tutorial, run, target_epochs=2, log=quiet)
    rows = losses(tutorial, run)
    assert result["nb_params"] == 29 and result["epochs"] == 2
    assert rows[1][1] < rows[0][1]
    folder = run_folder(tutorial, run)
    user_file = torch.load(folder / "model_0_mlp_funnel.pt", weights_only=True)
    for name, tensor in final_models(tutorial, run)[0].items():
        assert torch.equal(user_file[name], tensor)
