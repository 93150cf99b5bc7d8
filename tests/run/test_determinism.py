"""Runs are reproducible: the same run twice gives the same losses and weights bit for bit, in any folder, and
its replicates differ (their seeds); GPU runs get PyTorch's deterministic settings unless the ini opts out."""

import subprocess
import sys

import pytest
import torch

from mosaic.experiment import load_experiment
from mosaic.run.training import train_run
from tests.fakes import DROP_DATA, ROOT, TUTORIAL_INI, final_models, losses, quiet, set_key, toy

# ---------------------------------------------------------------------------------------------------------
# Seeds


def test_same_run_twice_is_bit_identical_and_replicates_differ(tmp_path):
    experiment = toy(tmp_path, model="DropNet", data_params=DROP_DATA, epochs=3, multiplicity=2)
    first, second = experiment.runs
    assert first.seed != second.seed
    train_run(experiment, first, log=quiet)
    once = losses(experiment, first)
    once_state = final_models(experiment, first)
    train_run(experiment, first, log=quiet)
    assert losses(experiment, first) == once
    for a, b in zip(once_state[0].values(), final_models(experiment, first)[0].values()):
        assert torch.equal(a, b)
    train_run(experiment, second, log=quiet)
    other = losses(experiment, second)
    assert [row[1] for row in other] != [row[1] for row in once]
    assert all(a[1] != b[1] for a, b in zip(once, other))


def test_same_ini_in_another_folder_gives_the_same_losses(tmp_path):
    a = toy(tmp_path / "a", model="DropNet", data_params=DROP_DATA, epochs=2)
    b = toy(tmp_path / "b", model="DropNet", data_params=DROP_DATA, epochs=2)
    assert a.runs[0].run_hash == b.runs[0].run_hash
    train_run(a, a.runs[0], log=quiet)
    train_run(b, b.runs[0], log=quiet)
    assert losses(a, a.runs[0]) == losses(b, b.runs[0])


# ---------------------------------------------------------------------------------------------------------
# GPU settings: PyTorch's deterministic algorithms

CHECK = """
import os, sys, torch
from mosaic.run.training import make_deterministic
make_deterministic(sys.argv[1], sys.argv[2] == "True")
print(torch.are_deterministic_algorithms_enabled(), torch.backends.cudnn.deterministic,
      torch.backends.cudnn.benchmark, os.environ.get("CUBLAS_WORKSPACE_CONFIG"), torch.cuda.is_initialized())
"""


def settings_after(device, enabled):
    done = subprocess.run([sys.executable, "-c", CHECK, device, str(enabled)], capture_output=True, text=True,
                          check=True, env={"PATH": "/usr/bin:/bin"})
    return done.stdout.split()


def test_a_gpu_run_gets_the_deterministic_settings_without_touching_cuda():
    assert settings_after("cuda:0", True) == ["True", "True", "False", ":4096:8", "False"]


@pytest.mark.parametrize("device, enabled", [("cpu", True), ("cuda:0", False)])
def test_cpu_runs_and_the_opt_out_keep_the_defaults(device, enabled):
    assert settings_after(device, enabled) == ["False", "False", "False", "None", "False"]


def test_the_ini_opts_out_with_process_deterministic(tmp_path):
    for name in ("dataset.py", "mlp.py"):
        (tmp_path / name).write_text((ROOT / "share" / name).read_text())
    ini = tmp_path / "config.ini"
    ini.write_text(TUTORIAL_INI)
    assert load_experiment(ini).process.deterministic is True
    ini.write_text(set_key(TUTORIAL_INI, "PROCESS", "deterministic", "False"))
    experiment = load_experiment(ini)
    assert experiment.process.deterministic is False
    # speed, not content: the runs keep their identity
    ini.write_text(TUTORIAL_INI)
    assert [r.run_hash for r in load_experiment(ini).runs] == [r.run_hash for r in experiment.runs]
