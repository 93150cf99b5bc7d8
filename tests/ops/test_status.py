"""mosaic_status and mosaic_savedb: every run's state, while the experiment runs and after it."""

import re

import pytest

from mosaic.experiment import load_experiment
from mosaic.results import status
from mosaic.runfiles import RunState
from tests.fakes import Experiment, small_settings, start_run, status_of, status_section, wait_until


@pytest.fixture(scope="module")
def experiment(tmp_path_factory):
    return load_experiment(Experiment(tmp_path_factory.mktemp("status")).ini)


def test_status_rendering(experiment):
    runs = experiment.runs
    states = {run.run_hash: RunState("pending") for run in runs}
    states[runs[0].run_hash] = RunState("done", result={"train_loss": 0.5, "test_loss": None, "duration_s": 12.0})
    states[runs[1].run_hash] = RunState("error", error="Traceback\nValueError: boom\n")
    states[runs[2].run_hash] = RunState("running", progress=(3, 400))
    text = status.render(experiment, states).splitlines()
    assert text[:2] == ["Done", "\t[1] train_loss=5.000E-01\ttest_loss=nan\texecution_time=1.200E+01"]
    assert text[2:6] == ["Error", f"\t[2] {runs[1].pipeline}", "\t\tTraceback", "\t\tValueError: boom"]
    assert text[6:8] == ["Running", f"\t[3] {runs[2].pipeline}\tepoch 3/400"]
    assert text[-1] == f"Pending: {len(runs) - 3} runs"


@pytest.mark.slow
def test_status_while_running_and_after(tmp_path):
    exp = Experiment(tmp_path / "exp", small_settings(epochs=60, processes=1))
    process = start_run(exp)
    running = wait_until(lambda: status_section(status_of(exp), "Running"))
    assert re.fullmatch(r"\t\[\d+\] dataset_OR\(1,200,0\.8\) \| mlp_\w+\(4,\d\)\t(epoch \d+/60|starting)", running[0])
    # A snapshot while it runs: what is done, what runs, what waits; independent of the experiment.
    exp.command("mosaic_savedb", "copy.db", check=0)
    statuses = {s for (s,) in exp.query("SELECT status FROM runs", exp.folder / "copy.db")}
    assert "running" in statuses and statuses <= {"done", "running", "pending"}
    refused = exp.command("mosaic_savedb", "database.db", check=2)
    assert "own database" in refused.stderr
    process.wait(timeout=300)
    assert process.returncode == 0
    done = status_section(status_of(exp), "Done")
    assert len(done) == 4
    assert re.fullmatch(r"\t\[1\] train_loss=\d\.\d{3}E[-+]\d\d\ttest_loss=\d\.\d{3}E[-+]\d\d"
                        r"\texecution_time=\d\.\d{3}E[-+]\d\d", done[0])
    exp.query("DELETE FROM runs", exp.folder / "copy.db")  # the copy is ours to change
