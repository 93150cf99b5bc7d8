"""A paused, interrupted or crashed mosaic_run: mosaic_pause and Ctrl-C let the running runs finish,
mosaic_resume finishes the rest, and a training job outlives no Snakemake. Real Snakemake runs in temporary
folders; kill -9 at random moments with resumes: tests/e2e/test_faults.py."""

import os
import re
import signal
import subprocess

import pytest

from tests.fakes import Experiment, small_settings, start_run, status_of, status_section, wait_until

pytestmark = pytest.mark.slow


def test_pause_then_resume_and_ctrl_c(tmp_path):
    exp = Experiment(tmp_path / "exp", small_settings(epochs=40, processes=1))
    process = start_run(exp)
    wait_until(lambda: status_section(status_of(exp), "Running"))
    exp.command("mosaic_pause", check=0)
    output, _ = process.communicate(timeout=300)
    # Paused with runs left: a distinct exit status, and how many remain.
    assert process.returncode == 4 and "paused; 3 runs remain" in output, output
    # Snakemake stopped scheduling: no job was started only to exit at once.
    logs = [path.read_text() for path in exp.runs_dir().glob("*/train.log")]
    assert len(logs) == 1 and not any("not started" in text for text in logs), logs
    states = [s for (s,) in exp.query("SELECT status FROM runs", None)] if exp.db.exists() else []
    done_after_pause = len(status_section(status_of(exp), "Done"))
    assert done_after_pause == 1, (output, states)

    # Ctrl-C behaves like pause: the running run finishes, no new one starts.
    process = start_run(exp)
    wait_until(lambda: status_section(status_of(exp), "Running"))
    process.send_signal(signal.SIGINT)
    output, _ = process.communicate(timeout=300)
    assert "paused" in output, output
    assert len(status_section(status_of(exp), "Done")) == 2

    out = exp.command("mosaic_resume", check=0).stdout
    assert len(re.findall(r"launch (\d+)", out)) == 2
    assert exp.query("SELECT COUNT(*) FROM runs WHERE status = 'done'") == [(4,)]


def test_crash_of_snakemake_alone_leaves_no_orphan_training(tmp_path):
    exp = Experiment(tmp_path / "exp", small_settings(epochs=200, processes=1))
    process = start_run(exp)
    wait_until(lambda: status_section(status_of(exp), "Running"))
    snakemake = subprocess.run(["pgrep", "-f", f"snakemake.*{exp.folder}"], capture_output=True, text=True)
    for pid in snakemake.stdout.split():
        os.kill(int(pid), signal.SIGKILL)
    process.wait(timeout=60)
    # The job notices its Snakemake is gone and stops; the run is then not Running.
    wait_until(lambda: not status_section(status_of(exp), "Running"), timeout=30)
    exp.edit("PROCESS", "epochs", "3")
    exp.run()
    assert exp.query("SELECT COUNT(*) FROM runs WHERE status = 'done'") == [(4,)]
