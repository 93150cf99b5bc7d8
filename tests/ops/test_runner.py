"""The orchestration layer's pure parts: the snakemake command, core counts, the run config, the
outcome's exit status, the progress display's state, status rendering, the session's config.yaml."""

import io
import os

import pytest
import yaml

from mosaic.errors import PausedError, RunError, exit_code
from mosaic.experiment import load_experiment
from mosaic.ops import progress, runner, session
from mosaic.ops.paths import workflow_root
from mosaic.results import status
from mosaic.runfiles import RunState
from tests.fakes import Experiment


@pytest.fixture(scope="module")
def experiment(tmp_path_factory):
    return load_experiment(Experiment(tmp_path_factory.mktemp("runner")).ini)


def test_snakemake_command_names_the_workflow_profile_and_the_config_file():
    command = runner.snakemake_command("/work", "/work/.mosaic/config.yaml", 4, profile="/p/slurm", gpus=2,
                                       forcerun=["a/result.json"], extra=["--notemp"])
    assert command[1:3] == ["-m", "snakemake"]
    assert command[command.index("--directory") + 1] == "/work"
    assert command[command.index("--workflow-profile") + 1] == os.path.join(workflow_root(), "profiles", "default")
    assert command[command.index("--cores") + 1] == "4"
    assert command[command.index("--profile") + 1] == "/p/slurm"
    assert command[command.index("--resources") + 1] == "gpu=2"
    assert command[command.index("--forcerun") + 1] == "a/result.json"
    assert command[command.index("--logger") + 1] == "mosaic"
    assert command[-2:] == ["--configfile", "/work/.mosaic/config.yaml"]
    assert "--notemp" in command
    # The default flags have one home, the workflow profile: not repeated on the command line.
    assert "--keep-going" not in command and "--rerun-incomplete" not in command
    profile = yaml.safe_load(open(os.path.join(workflow_root(), "profiles", "default", "config.yaml")))
    assert profile["keep-going"] is True and profile["rerun-incomplete"] is True


def test_snakemake_command_without_options():
    command = runner.snakemake_command("/w", "/w/c.yaml", 1, logger=False)
    for option in ("--profile", "--resources", "--forcerun", "--logger", "--config"):
        assert option not in command


@pytest.mark.parametrize("path", ["data/x: y/exp.ini", "runs/a #b/exp.ini", "{run}/exp.ini", "a'b\"c/exp.ini",
                                  "- x/exp.ini", "x: [1, 2]/é.ini", "True", "1e3"])
def test_any_path_survives_the_config_file(tmp_path, path):
    state = {"ini": path, "database": f"{path}.db", "plots": "p", "workdir": str(tmp_path)}
    written = runner.write_config_file(runner.run_config(state, partial=True, also="/x/also.txt"),
                                       tmp_path / "config.yaml")
    assert yaml.safe_load(open(written)) == {"ini": path, "database": f"{path}.db", "plots": "p",
                                             "partial": True, "also": "/x/also.txt"}


def test_default_cores(experiment, monkeypatch):
    monkeypatch.setattr(os, "cpu_count", lambda: 2)
    assert experiment.monitor.nb_processus == 8 and runner.default_cores(experiment) == 2
    monkeypatch.setattr(os, "cpu_count", lambda: 64)
    assert runner.default_cores(experiment) == 8


def test_resolve_profile(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert runner.resolve_profile(None) is None
    assert runner.resolve_profile("profiles/slurm") == os.path.join(workflow_root(), "profiles", "slurm")
    (tmp_path / "mine").mkdir()
    assert runner.resolve_profile("mine") == str(tmp_path / "mine")
    assert runner.resolve_profile("nowhere") == "nowhere"


@pytest.mark.parametrize("outcome, kind, code", [
    (runner.Outcome(total=4, done=4), None, 0),
    (runner.Outcome(total=4, done=3, failed=[2], snakemake_status=1), RunError, 1),
    (runner.Outcome(total=4, done=4, snakemake_status=1), RunError, 1),
    (runner.Outcome(total=4, done=1, paused=True, snakemake_status=1), PausedError, 4),
    (runner.Outcome(total=4, done=4, paused=True, snakemake_status=1), None, 0),
    # a job killed without a word: Snakemake may still exit 0 (a run's files gone); runs remain untrained
    (runner.Outcome(total=4, done=3, trains_all=True), RunError, 1),
    (runner.Outcome(total=4, done=3), None, 0),  # a rerun of some runs, or a rebuild: others stay as they are
])
def test_outcome_exit_status(outcome, kind, code):
    error = outcome.error()
    assert (error is None) == (kind is None)
    if error is not None:
        assert isinstance(error, kind) and exit_code(error) == code
    if kind is PausedError:
        assert error.remaining == 3 and str(error) == "paused; 3 runs remain"


def test_is_snakemake():
    assert runner.is_snakemake(["/usr/bin/python3", "-m", "snakemake", "--cores", "1"])
    assert runner.is_snakemake(["/venv/bin/python", "/venv/bin/snakemake", "-n"])
    assert runner.is_snakemake(["snakemake", "--cores", "2"])
    assert not runner.is_snakemake(["python", ".snakemake/scripts/tmpab.database.py"])
    assert not runner.is_snakemake(["python", "-m", "mosaic.run.job", "x.ini", "abc"])


class Clock:
    def __init__(self):
        self.now = 0.0

    def __call__(self):
        return self.now


def events_for(experiment, runs):
    """Snakemake events, as the logger plugin writes them, for jobs 1.. training `runs`."""
    return {run.run_id: {"event": "job_info", "jobid": 10 + run.run_id, "rule_name": "train",
                         "wildcards": {"run": run.run_hash}} for run in runs}


def test_progress_lines_counts_and_eta(experiment):
    clock = Clock()
    runs = experiment.runs[:4]
    tracker = progress.Progress(experiment, runs, slots=2, clock=clock)
    info = events_for(experiment, runs)
    assert tracker.handle({"event": "run_info", "stats": {"train": 4, "database": 1, "total": 5}}) == []
    assert tracker.handle(info[1]) == [" ---> launch 1 1/4"]
    assert tracker.handle(info[2]) == [" ---> launch 2 2/4"]
    assert tracker.eta() is None and "ETA ?" in tracker.summary()
    clock.now = 10.0
    assert tracker.handle({"event": "job_finished", "job_id": 11}) == [" [run finished] 1"]
    assert tracker.handle({"event": "progress", "done": 1, "total": 5}) == [" 1 of 5 steps (20%) done"]
    # one run took 10 s; left: run 2 (10 s in, ~0 s), runs 3 and 4 (10 s each), on 2 slots: 10 s
    assert tracker.eta() == pytest.approx(10.0)
    assert tracker.summary() == "runs: 1 done, 1 running, 0 failed, 2 pending; ETA 10s"
    assert tracker.handle({"event": "job_error", "jobid": 12}) == [" [run failed] 2: unknown error"]
    assert tracker.summary().startswith("runs: 1 done, 0 running, 1 failed, 2 pending")
    assert tracker.handle({"event": "job_finished", "job_id": 99}) == []  # not a train job


def test_live_display_redraws_its_block_in_place(experiment):
    runs = experiment.runs[:2]
    tracker = progress.Progress(experiment, runs, slots=1, clock=Clock())
    stream = io.StringIO()
    display = progress.LiveDisplay(stream)
    info = events_for(experiment, runs)
    display.show(tracker.handle(info[1]), tracker)
    display.show(tracker.handle({"event": "job_finished", "job_id": 11}), tracker)
    text = stream.getvalue()
    assert "\x1b[" in text and "[run finished] 1" in text and "launch" not in text
    assert text.rstrip().endswith("runs: 1 done, 0 running, 0 failed, 1 pending; ETA 0s")


def test_plain_display_prints_the_lines(experiment):
    stream = io.StringIO()
    progress.PlainDisplay(stream).show([" ---> launch 1 1/4"], None)
    assert stream.getvalue() == " ---> launch 1 1/4\n"


def test_parse_events_keeps_the_incomplete_line():
    events, rest = progress.parse_events('{"event": "progress", "done": 1, "total": 2}\n{"event": "pro')
    assert events == [{"event": "progress", "done": 1, "total": 2}] and rest == '{"event": "pro'


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


def test_session_reads_config_yaml_with_yaml(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "config").mkdir()
    (tmp_path / "config" / "config.yaml").write_text("database: x.db\nini: 'exps/a b.ini'  # my experiment\n")
    assert session.default_ini() == str(tmp_path / "exps" / "a b.ini")
    assert session.load()["ini"] == str(tmp_path / "exps" / "a b.ini")
    (tmp_path / "config" / "config.yaml").write_text("ini: exp.ini # trailing comment\n")
    assert session.default_ini() == str(tmp_path / "exp.ini")


def test_saved_settings_belong_to_their_ini(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    session.save("exp.ini", "db.db", "plots", cores=3, profile="/p/slurm")
    assert session.saved("exp.ini", "profile") == "/p/slurm" and session.saved("exp.ini", "cores") == 3
    assert session.saved("other.ini", "profile") is None
