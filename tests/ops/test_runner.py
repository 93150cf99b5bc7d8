"""The runner (mosaic/ops/runner.py): the snakemake command, core counts, the config file (any path survives
it), the outcome's exit status; outputs that would overwrite an input, or that Snakemake would misread, refused."""

import json
import os

import pytest
import yaml

from mosaic.errors import PausedError, RunError, exit_code
from mosaic.experiment import load_experiment
from mosaic.ops import runner
from mosaic.ops.paths import workflow_root
from tests.fakes import Experiment, small_settings


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


def test_outputs_that_are_inputs_are_refused(tmp_path):
    exp = Experiment(tmp_path, small_settings())
    ini_text = exp.ini.read_text()
    for command in (("mosaic_savedb", "--ini", "config.ini", "config.ini"),
                    ("mosaic_generate", "config.ini", "config.ini"),
                    ("mosaic_run", "config.ini", "config.ini"),
                    ("mosaic_run", "config.ini", "database.db", "--plots", "config.ini"),
                    ("mosaic_rekey", "config.ini", "./config.ini")):
        refused = exp.command(*command, check=2)
        assert "config.ini is also an input" in refused.stderr and "Traceback" not in refused.stderr, command
        assert exp.ini.read_text() == ini_text, command


def test_braces_in_an_output_path_are_named(tmp_path):
    exp = Experiment(tmp_path, small_settings())
    refused = exp.command("mosaic_run", "config.ini", "db{x}.db", check=2)
    assert "Snakemake reads '{' in a file path as a wildcard" in refused.stderr


@pytest.mark.slow
def test_paths_that_yaml_would_misread_work(tmp_path):
    """`--config ini=PATH` would read these as YAML (a mapping, a comment); a config file does not."""
    folder = tmp_path / "data" / "x: y" / "a #b"
    exp = Experiment(folder, small_settings(widths="2"))
    done = exp.command("mosaic_run", "config.ini", "my #db: 1.db", "-n", check=0)
    assert done.stdout.startswith("mosaic: 2 runs = 2 pipelines × 1 replicate; 2 to train, 0 kept (done)"), done.stdout
    state = json.loads((folder / ".mosaic" / "experiment.json").read_text())
    assert state["ini"] == str(folder / "config.ini") and state["database"] == str(folder / "my #db: 1.db")
