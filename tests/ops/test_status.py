"""mosaic_status and mosaic_savedb: every run's state, while the experiment runs and after it."""

import os
import re
import sysconfig

import pytest

import mosaic
from mosaic.experiment import load_experiment
from mosaic.ops import cli
from mosaic.results import status, status_text
from mosaic.results.status_text import render
from mosaic.runfiles import RunState
from tests.fakes import (
    Experiment,
    small_settings,
    start_run,
    status_of,
    status_section,
    wait_until,
    write_done,
    write_error,
)


@pytest.fixture(scope="module")
def experiment(tmp_path_factory):
    return load_experiment(Experiment(tmp_path_factory.mktemp("status")).ini)


TRACEBACK = """Traceback (most recent call last):
  File "{mosaic}/run/training.py", line 134, in forward
    x = call(x)
  File "/home/me/exp/models.py", line 21, in forward
    return self.out(data)
  File "{torch}/nn/modules/linear.py", line 125, in forward
    return F.linear(input, self.weight, self.bias)
RuntimeError: mat1 and mat2 shapes cannot be multiplied (4x2 and 3x1)
""".format(mosaic=os.path.dirname(mosaic.__file__), torch=os.path.join(sysconfig.get_paths()["purelib"], "torch"))


def states_with(experiment, **by_index):
    """Every run pending but those given by index (0 is run 1)."""
    states = {run.run_hash: RunState("pending") for run in experiment.runs}
    for index, state in by_index.items():
        states[experiment.runs[int(index.lstrip("r"))].run_hash] = state
    return states


def test_status_starts_with_a_summary_and_names_the_parameters(experiment):
    runs = experiment.runs
    states = states_with(experiment, r0=RunState("done", result={"train_loss": 0.5, "test_loss": None,
                                                                 "duration_s": 12.34}),
                         r1=RunState("error", error="Traceback\nValueError: boom\n"),
                         r2=RunState("running", progress=(3, 400)))
    text = render(status.listed(experiment), states).splitlines()
    # 12.34 s a run, 21 pending runs and 397/400 of a running one left, one run at a time: about 271 s
    assert text[0] == f"{len(runs)} runs: 1 done, 1 running, 1 failed, {len(runs) - 3} pending; about 5 min left"
    assert text[1:3] == ["Done", "\t[1] train_loss=5.000E-01\ttest_loss=nan\tduration=12.3 s"]
    assert text[3:7] == ["Error", "\t[2] dataset_OR(batch_size=1, data_size=200, train_prop=0.8) | "
                         "mlp_funnel(length=4, width=2)", "\t\tTraceback", "\t\tValueError: boom"]
    assert text[7:] == ["Running", "\t[3] dataset_OR(batch_size=1, data_size=200, train_prop=0.8) | "
                        "mlp_funnel(length=4, width=2)\tepoch 3/400"]


def test_a_section_without_runs_is_left_out(experiment):
    done = RunState("done", result={"train_loss": 0.5, "test_loss": 0.25, "duration_s": 75.0, "diverged": True})
    text = render(status.listed(experiment), {run.run_hash: done for run in experiment.runs}).splitlines()
    assert text[:3] == [f"{len(experiment.runs)} runs: {len(experiment.runs)} done", "Done",
                        "\t[1] train_loss=5.000E-01\ttest_loss=2.500E-01\tduration=75.0 s\tdiverged"]
    assert len(text) == 2 + len(experiment.runs)  # no Error, no Running, no Pending header

    assert render(status.listed(experiment), states_with(experiment)) == f"{len(experiment.runs)} runs: " \
        f"{len(experiment.runs)} pending"


def test_the_time_left_needs_a_done_run_and_a_running_one(experiment):
    done = RunState("done", result={"train_loss": 0.5, "test_loss": 0.25, "duration_s": 30.0})
    running = RunState("running", progress=(1, 2))
    listing = status.listed(experiment)
    assert render(listing, states_with(experiment, r0=done)).splitlines()[0].endswith("pending")  # nothing runs
    assert render(listing, states_with(experiment, r0=running)).splitlines()[0].endswith("pending")  # no measure
    # 30 s a run; 1 pending run and half of each running one left, over 2 running runs
    last = {f"r{i}": done for i in range(len(experiment.runs) - 3)}
    states = states_with(experiment, **last, **{f"r{len(experiment.runs) - 2}": running,
                                                f"r{len(experiment.runs) - 1}": running})
    assert render(listing, states).splitlines()[0].endswith("1 pending; about 30 s left")
    assert status_text.time_left([*[done] * 3, *[RunState("pending")] * 400, running]) == "about 3.3 h left"


def test_runs_failing_with_the_same_error_show_its_traceback_once(experiment):
    failed = {f"r{i}": RunState("error", error=TRACEBACK.replace("4x2", f"4x{i}") if i > 3 else TRACEBACK)
              for i in range(1, 7)}
    other = RunState("error", error=TRACEBACK.replace("models.py\", line 21", "models.py\", line 30"))
    text = render(status.listed(experiment), states_with(experiment, **failed, r7=other, r9=other))
    error = text.split("\nError\n")[1].splitlines()
    assert text.count("Traceback") == 2  # one a distinct error
    assert error[0] == "\t[2] dataset_OR(batch_size=1, data_size=200, train_prop=0.8) | mlp_funnel(length=4, width=2)"
    assert error[1:9] == ["\t\t" + line for line in TRACEBACK.splitlines()]
    assert error[9] == "\t6 runs (2-7): RuntimeError (4 messages) at models.py:21"  # messages holding values
    assert error[10].startswith("\t[8] ")
    assert error[19] == ("\t2 runs (8,10): RuntimeError: mat1 and mat2 shapes cannot be multiplied (4x2 and 3x1) "
                         "at models.py:30")
    assert len(error) == 20


def test_an_error_without_a_traceback_is_grouped_by_its_message(experiment):
    killed = RunState("error", error="killed by signal 9\n")
    text = render(status.listed(experiment), states_with(experiment, r0=killed, r1=killed,
                                                         r2=RunState("error", error="out of memory\n")))
    assert text.split("\nError\n")[1].splitlines() == [
        "\t[1] dataset_OR(batch_size=1, data_size=200, train_prop=0.8) | mlp_funnel(length=4, width=2)",
        "\t\tkilled by signal 9", "\t2 runs (1-2): killed by signal 9",
        "\t[3] dataset_OR(batch_size=1, data_size=200, train_prop=0.8) | mlp_funnel(length=4, width=2)",
        "\t\tout of memory"]


def test_savedb_counts_the_runs_by_status(tmp_path, monkeypatch, capsys):
    exp = Experiment(tmp_path, small_settings())  # 4 runs
    monkeypatch.chdir(tmp_path)
    experiment = load_experiment(str(exp.ini))
    rfp = experiment.process.run_files_path
    first, second, third = experiment.runs[:3]
    write_done(rfp, first.run_hash, [(1, 0.5, 0.25, 0.1)], {
        "run_hash": first.run_hash, "status": "done", "epochs": 1, "train_loss": 0.5, "test_loss": 0.25,
        "duration_s": 1.0, "diverged": False})
    write_error(rfp, second.run_hash)
    write_error(rfp, third.run_hash)
    assert cli.mosaic_savedb(["copy.db", "--ini", "config.ini"]) == 0
    assert capsys.readouterr().out == "copy.db written: 4 runs (1 done, 2 failed, 1 pending)\n"


@pytest.mark.slow
def test_status_while_running_and_after(tmp_path):
    exp = Experiment(tmp_path / "exp", small_settings(epochs=60, processes=1))
    process = start_run(exp)
    running = wait_until(lambda: status_section(status_of(exp), "Running"))
    assert re.fullmatch(r"\t\[\d+\] dataset_OR\(batch_size=1, data_size=200, train_prop=0\.8\) \| "
                        r"mlp_\w+\(length=4, width=\d\)\t(epoch \d+/60|starting)", running[0])
    # A snapshot while it runs: what is done, what runs, what waits; independent of the experiment.
    saved = exp.command("mosaic_savedb", "copy.db", check=0).stdout
    assert re.fullmatch(r"copy\.db written: 4 runs \((\d done, )?1 running(, \d pending)?\)\n", saved), saved
    statuses = {s for (s,) in exp.query("SELECT status FROM runs", exp.folder / "copy.db")}
    assert "running" in statuses and statuses <= {"done", "running", "pending"}
    refused = exp.command("mosaic_savedb", "database.db", check=2)
    assert "own database" in refused.stderr
    process.wait(timeout=300)
    assert process.returncode == 0
    done = status_section(status_of(exp), "Done")
    assert len(done) == 4
    assert re.fullmatch(r"\t\[1\] train_loss=\d\.\d{3}E[-+]\d\d\ttest_loss=\d\.\d{3}E[-+]\d\d"
                        r"\tduration=\d+\.\d s", done[0])
    assert status_of(exp).startswith("4 runs: 4 done\nDone\n")
    exp.query("DELETE FROM runs", exp.folder / "copy.db")  # the copy is ours to change
