"""Tests for mosaic.run.checkpoint: a run continues from its checkpoint as if never stopped, never from another
run's, and checkpoints load as weights only (a planted one runs no code)."""

import os
import pickle
import shutil

import pytest
import torch

from mosaic import runfiles
from mosaic.experiment.spec import description as spec_description
from mosaic.run import training
from mosaic.run.training import train_run
from tests.fakes import (
    DROP_DATA,
    final_models,
    losses,
    quiet,
    run_folder,
    toy,
    user_class,
)

# ---------------------------------------------------------------------------------------------------------
# Continuation


CHECKPOINTED = dict(model="DropNet", data_params=DROP_DATA, epochs=6, process="checkpoint_every = 2\n")


def clean_rows(folder, **kwargs):
    experiment = toy(folder, **{**CHECKPOINTED, **kwargs})
    train_run(experiment, experiment.runs[0], log=quiet)
    return losses(experiment, experiment.runs[0]), final_models(experiment, experiment.runs[0])


def test_continuing_from_the_final_model_equals_a_clean_run(tmp_path):
    clean, clean_state = clean_rows(tmp_path / "clean")
    assert len(clean) == 6

    experiment = toy(tmp_path / "resumed", **CHECKPOINTED)
    run = experiment.runs[0]
    folder = run_folder(experiment, run)
    first = train_run(experiment, run, target_epochs=4, log=quiet)
    assert first["epochs"] == 4
    assert losses(experiment, run) == clean[:4]
    shutil.copy(folder / runfiles.MODEL, folder / runfiles.CHECKPOINT)  # what mosaic_rerun -epochs does
    lines = []
    result = train_run(experiment, run, target_epochs=6, log=lines.append)
    assert "continuing from the checkpoint at epoch 4" in lines
    assert [line.split()[1] for line in lines if line.startswith("epoch ")] == ["5/6", "6/6"]
    assert losses(experiment, run) == clean  # RNG, optimizer and weights all restored
    assert result["epochs"] == 6 and result["train_loss"] == clean[-1][1]
    assert result["duration_s"] >= first["duration_s"]
    for a, b in zip(clean_state[0].values(), final_models(experiment, run)[0].values()):
        assert torch.equal(a, b)


@pytest.mark.parametrize("model", ["DropNet", "Bare"])
def test_interrupted_run_resumes_from_its_checkpoint(tmp_path, model):
    clean, _ = clean_rows(tmp_path / "clean", model=model)

    experiment = toy(tmp_path / "crash", **{**CHECKPOINTED, "model": model})
    run = experiment.runs[0]
    folder = run_folder(experiment, run)
    cls = user_class(run, 1, model)
    cls.limit = 4 * 4  # 4 epochs of 4 training batches, then the process "dies"
    with pytest.raises(RuntimeError, match="interrupted"):
        train_run(experiment, run, log=quiet)
    assert not (folder / runfiles.RESULT).exists()
    checkpoint = torch.load(folder / runfiles.CHECKPOINT, weights_only=False)
    assert checkpoint["epoch"] == 4 and checkpoint["run_hash"] == run.run_hash
    assert [row[:3] for row in checkpoint["losses"]] == clean[:4]

    cls.limit = None
    lines = []
    train_run(experiment, run, log=lines.append)
    assert "continuing from the checkpoint at epoch 4" in lines
    assert losses(experiment, run) == clean


def test_user_saved_models_stay_paired_with_their_checkpoint(tmp_path, monkeypatch):
    """A process killed after a non-nn.Module model saved itself but before the checkpoint of that
    epoch was written must continue from the previous checkpoint with that checkpoint's models."""
    clean, _ = clean_rows(tmp_path / "clean", model="Bare")
    experiment = toy(tmp_path / "crash", **{**CHECKPOINTED, "model": "Bare"})
    run = experiment.runs[0]
    real_save = training.save_checkpoint
    calls = []

    def dies_at_the_second_checkpoint(*args, **kwargs):
        calls.append(args[0])
        if len(calls) == 2:
            raise RuntimeError("killed while writing the checkpoint")
        return real_save(*args, **kwargs)

    monkeypatch.setattr(training, "save_checkpoint", dies_at_the_second_checkpoint)
    with pytest.raises(RuntimeError, match="killed"):
        train_run(experiment, run, log=quiet)
    monkeypatch.setattr(training, "save_checkpoint", real_save)
    lines = []
    train_run(experiment, run, log=lines.append)
    assert "continuing from the checkpoint at epoch 2" in lines
    assert losses(experiment, run) == clean
    names = sorted(p.name for p in run_folder(experiment, run).iterdir())
    assert "model_0_Bare.pt" in names and not any(name.startswith("checkpoint_models") for name in names)


@pytest.mark.parametrize("settings", [
    {"scheduler": "OneCycleLR", "clip_grad_norm": 0.5},
    {"optimizer": "SGD", "momentum": 0.9, "scheduler": "StepLR", "scheduler_step_size": 3, "scheduler_gamma": 0.5},
])
def test_an_interrupted_run_resumes_its_learning_rate_schedule(tmp_path, settings):
    """The checkpoint holds the scheduler's state (loadable as weights only): the interrupted run, continued,
    equals a clean one."""

    def trained(folder, log):
        experiment = toy(folder, **CHECKPOINTED)
        run = experiment.runs[0]
        description = spec_description(experiment, run)
        description["process"].update(settings)
        try:
            train_run(experiment, run, log=log, description=description)
        except KeyboardInterrupt:
            pass
        return experiment, run

    def stop_at_epoch_5(line):
        if line.startswith("epoch 5/"):
            raise KeyboardInterrupt

    experiment, run = trained(tmp_path / "clean", quiet)
    clean = losses(experiment, run)
    experiment, run = trained(tmp_path / "crash", stop_at_epoch_5)
    checkpoint = torch.load(run_folder(experiment, run) / runfiles.CHECKPOINT, weights_only=True)
    assert checkpoint["epoch"] == 4 and checkpoint["scheduler"]["last_epoch"] in (4, 4 * 4)
    lines = []
    trained(tmp_path / "crash", lines.append)
    assert "continuing from the checkpoint at epoch 4" in lines
    assert losses(experiment, run) == clean


def test_checkpoint_of_another_run_is_ignored(tmp_path):
    experiment = toy(tmp_path, model="DropNet", data_params=DROP_DATA, epochs=3, multiplicity=2)
    first, second = experiment.runs
    train_run(experiment, second, log=quiet)
    clean = losses(experiment, second)
    train_run(experiment, first, target_epochs=2, log=quiet)
    foreign = run_folder(experiment, first) / runfiles.MODEL
    shutil.copy(foreign, run_folder(experiment, second) / runfiles.CHECKPOINT)
    lines = []
    train_run(experiment, second, log=lines.append)
    assert not any(line.startswith("continuing") for line in lines)
    assert losses(experiment, second) == clean


# ---------------------------------------------------------------------------------------------------------
# Checkpoints are loaded as weights only


class Payload:
    """Unpickling this runs os.system: what a planted checkpoint would do under weights_only=False."""

    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def test_checkpoint_and_model_load_as_weights_only(tmp_path):
    experiment = toy(tmp_path, epochs=4, process="checkpoint_every = 2\n")
    run = experiment.runs[0]
    folder = run_folder(experiment, run)

    def stop_after_checkpoint(line):
        if line.startswith("epoch 3/"):
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        train_run(experiment, run, log=stop_after_checkpoint)
    checkpoint = torch.load(folder / "checkpoint.pt", weights_only=True)  # would raise on any other object
    assert checkpoint["epoch"] == 2 and checkpoint["optimizer"]["state"]
    lines = []
    train_run(experiment, run, log=lines.append)
    assert "continuing from the checkpoint at epoch 2" in lines
    model = torch.load(folder / "model.pt", weights_only=True)
    assert model["epoch"] == 4 and model["models"][0]


def test_a_planted_checkpoint_runs_no_code(tmp_path, capfd):
    experiment = toy(tmp_path, epochs=2)
    run = experiment.runs[0]
    folder = run_folder(experiment, run)
    folder.mkdir(parents=True)
    marker = tmp_path / "pwned"
    with open(folder / "checkpoint.pt", "wb") as handle:
        pickle.dump({"format": 2, "run_hash": run.run_hash, "payload": Payload(marker)}, handle, protocol=2)
    lines = []
    train_run(experiment, run, log=lines.append)
    assert not marker.exists()
    assert not any(line.startswith("continuing") for line in lines)  # trained from scratch
    assert "checkpoint.pt: not used" in capfd.readouterr().err


def test_the_user_load_model_stays_the_users(tmp_path):
    """A class's own load_model decides how it loads its own files (it may need weights_only=False)."""
    experiment = toy(tmp_path, model="Own", epochs=2)
    train_run(experiment, experiment.runs[0], log=quiet)
    saved = run_folder(experiment, experiment.runs[0]) / "model_0_Own.pt"
    with pytest.raises(pickle.UnpicklingError):
        torch.load(saved, weights_only=True)
    assert torch.load(saved, weights_only=False).lin.in_features == 3
