"""The folder's locks: a command that changes run files takes the session lock first (mosaic/ops/runner.py), a run
being trained is left alone (mosaic/ops/rerun.py), and Snakemake's own lock is cleared only when it is stale."""

import os
import subprocess
import time

import pytest

from mosaic import runfiles
from mosaic.experiment import load_experiment
from tests.fakes import BIN, ROOT, Experiment, command_env, hold_folder_lock, small_settings


def test_rerun_touches_no_run_folder_while_another_command_holds_the_folder(tmp_path):
    exp = Experiment(tmp_path, small_settings())
    run = load_experiment(exp.ini).runs[0]
    folder = exp.folder / ".runs" / run.run_hash
    folder.mkdir(parents=True)
    (folder / runfiles.CHECKPOINT).write_bytes(b"an in-progress checkpoint")
    lock = hold_folder_lock(exp.folder)
    try:
        refused = exp.command("mosaic_rerun", "config.ini", "database.db", "-id", "1", "-epochs", "2", check=3)
    finally:
        lock.close()
    assert "another mosaic_run is running" in refused.stderr
    assert (folder / runfiles.CHECKPOINT).read_bytes() == b"an in-progress checkpoint"
    assert not (folder / runfiles.CONTINUE).exists()


def test_rerun_leaves_a_run_being_trained_alone(tmp_path):
    exp = Experiment(tmp_path, small_settings())
    runs = load_experiment(exp.ini).runs
    folders = [exp.folder / ".runs" / run.run_hash for run in runs[:2]]
    for folder in folders:
        folder.mkdir(parents=True)
        (folder / runfiles.CHECKPOINT).write_bytes(b"checkpoint")
    training = runfiles.try_lock(str(folders[1] / runfiles.LOCK))  # run 2 is being trained
    try:
        refused = exp.command("mosaic_rerun", "config.ini", "database.db", "-id", "1-2", "-epochs", "2", check=3)
    finally:
        training.close()
    assert "run 2 is being trained; nothing was changed" in refused.stderr
    assert all((folder / runfiles.CHECKPOINT).exists() for folder in folders)
    assert not any((folder / runfiles.CONTINUE).exists() for folder in folders)


@pytest.mark.slow
def test_unlock_leaves_a_live_plain_snakemake_alone(tmp_path):
    exp = Experiment(tmp_path, small_settings(epochs=30, processes=1))
    plain = subprocess.Popen(
        [str(BIN / "snakemake"), "--snakefile", str(ROOT / "Snakefile"), "--cores", "1",
         "--config", "ini=config.ini", "database=plain.db", "plots=plain_plots"],
        cwd=exp.folder, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=command_env(),
    )
    try:
        locks = exp.folder / ".snakemake" / "locks"
        deadline = time.monotonic() + 120
        while not (locks.is_dir() and os.listdir(locks)):
            assert time.monotonic() < deadline and plain.poll() is None, "the plain snakemake did not lock"
            time.sleep(0.2)
        refused = exp.run(check=3)
        assert f"a snakemake process (pid {plain.pid}) is working in this folder" in refused.stderr
        assert os.listdir(locks), "the live snakemake's lock was removed"
        assert plain.wait(timeout=600) == 0
    finally:
        if plain.poll() is None:
            plain.kill()


@pytest.mark.slow
def test_a_stale_snakemake_lock_is_cleared(tmp_path):
    """What a kill -9 of Snakemake leaves; no snakemake lives in the folder, so mosaic_run unlocks it."""
    exp = Experiment(tmp_path, small_settings(widths="2"))
    locks = exp.folder / ".snakemake" / "locks"
    locks.mkdir(parents=True)
    (locks / "0.output.lock").write_text(str(exp.folder / "database.db") + "\n")
    exp.run("-n", check=0)
    assert not os.listdir(locks)
