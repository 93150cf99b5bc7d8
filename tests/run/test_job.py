"""Tests for mosaic.run.job, the Snakemake job's process: python -m mosaic.run.job INI HASH, its output
appended to the run's train.log as the train rule does."""

import fcntl
import os
import subprocess
import sys

from mosaic import runfiles
from tests.fakes import ROOT, losses, result_of, run_folder, toy


def job_env():
    """This checkout first on the path, whether or not the package is installed."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")]))
    return env


def run_job(experiment, run, cwd):
    """Run the job as the train rule does: output appended to the run's train.log."""
    folder = run_folder(experiment, run)
    folder.mkdir(parents=True, exist_ok=True)
    with open(folder / runfiles.LOG, "a") as log:
        done = subprocess.run(
            [sys.executable, "-m", "mosaic.run.job", experiment.ini_path, run.run_hash],
            cwd=cwd, env=job_env(), stdout=log, stderr=subprocess.STDOUT, timeout=120,
        )
    return done.returncode, (folder / runfiles.LOG).read_text()


def test_failing_job_leaves_its_traceback(tmp_path):
    experiment = toy(tmp_path, model="Fail", epochs=2)
    run = experiment.runs[0]
    code, log = run_job(experiment, run, tmp_path)
    folder = run_folder(experiment, run)
    assert code == 1
    error = (folder / runfiles.ERROR).read_text()
    assert error.startswith("Traceback (most recent call last):")
    assert "in forward" in error and "RuntimeError: boom in forward" in error
    for name in (runfiles.RESULT, runfiles.MODEL, runfiles.LOSSES):
        assert not (folder / name).exists(), name
    assert log.strip().splitlines()[-1] == "mosaic: run 1 failed: RuntimeError: boom in forward"
    state = runfiles.read_state(experiment.process.run_files_path, run.run_hash)
    assert state.status == "error" and "boom in forward" in state.error


def test_successful_job_cleans_up_and_continues_to_the_requested_epochs(tmp_path):
    experiment = toy(tmp_path, epochs=3, process="checkpoint_every = 1\n")
    run = experiment.runs[0]
    folder = run_folder(experiment, run)
    folder.mkdir(parents=True)
    (folder / runfiles.ERROR).write_text("Traceback: an earlier failure\n")
    runfiles.write_json(folder / runfiles.CONTINUE, {"target_epochs": 4})
    code, log = run_job(experiment, run, tmp_path)
    assert code == 0, log
    for name in (runfiles.ERROR, runfiles.CHECKPOINT, runfiles.CONTINUE):
        assert not (folder / name).exists(), name
    assert [row[0] for row in losses(experiment, run)] == [1, 2, 3, 4]
    assert "epoch 4/4" in log and "seed" in log
    assert not runfiles.is_locked(str(folder / runfiles.LOCK))
    state = runfiles.read_state(experiment.process.run_files_path, run.run_hash)
    assert state.status == "done" and state.result["epochs"] == 4


def test_second_job_on_a_locked_run_fails_clearly(tmp_path):
    experiment = toy(tmp_path, epochs=2)
    run = experiment.runs[0]
    folder = run_folder(experiment, run)
    folder.mkdir(parents=True)
    with open(folder / runfiles.LOCK, "a") as held:
        fcntl.flock(held, fcntl.LOCK_EX | fcntl.LOCK_NB)
        assert runfiles.read_state(experiment.process.run_files_path, run.run_hash).status == "running"
        code, log = run_job(experiment, run, tmp_path)
        assert code == 1
        assert "another process is training this run" in log
        for name in (runfiles.ERROR, runfiles.RESULT, runfiles.MODEL, runfiles.LOSSES):
            assert not (folder / name).exists(), name
    code, log = run_job(experiment, run, tmp_path)  # lock released: it trains
    assert code == 0, log
    assert result_of(experiment, run)["epochs"] == 2


def test_job_with_an_unknown_run_hash_fails(tmp_path):
    experiment = toy(tmp_path)
    done = subprocess.run(
        [sys.executable, "-m", "mosaic.run.job", experiment.ini_path, "0123456789abcdef"],
        cwd=tmp_path, env=job_env(), capture_output=True, text=True, timeout=60,
    )
    assert done.returncode == 1
    assert "0123456789abcdef" in done.stderr
