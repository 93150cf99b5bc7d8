"""GPU determinism: PyTorch's deterministic settings are set for GPU runs unless the ini opts out."""

import subprocess
import sys

import pytest

from mosaic.experiment import load_experiment
from tests.fakes import ROOT, TUTORIAL_INI, set_key

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
