"""The commands (mosaic/ops/cli.py): mosaic_generate's output and errors, and choices that come from the tables
that define them."""

import json

import pytest

from mosaic.experiment import load_experiment
from tests.fakes import Experiment, small_settings


def test_generate_into_a_missing_folder_is_one_line(tmp_path):
    exp = Experiment(tmp_path, small_settings())
    failed = exp.command("mosaic_generate", "config.ini", "/nonexistent/x.json", check=2)
    assert failed.stderr.strip().count("\n") == 0 and "Traceback" not in failed.stderr
    assert "/nonexistent/x.json: cannot write" in failed.stderr
    exp.command("mosaic_generate", "config.ini", "runs.json", check=0)
    assert len(json.loads((exp.folder / "runs.json").read_text())) == 4


def test_generate_writes_every_run_as_json_one_run_a_line(tmp_path):
    experiment = Experiment(tmp_path / "exp", small_settings(multiplicity=2))
    experiment.command("mosaic_generate", "config.ini", "runs.json", check=0)
    text = (experiment.folder / "runs.json").read_text()
    runs = json.loads(text)
    expected = load_experiment(str(experiment.ini)).runs
    assert [(r["run_id"], r["run_hash"], r["seed"]) for r in runs] == [(r.run_id, r.run_hash, r.seed) for r in expected]
    assert runs[0]["modules"][1]["params"]["width"] == 2
    assert len(text.splitlines()) == len(expected) + 2  # "[", a line a run, "]"


def test_generate_shows_each_runs_training_settings(tmp_path):
    experiment = Experiment(tmp_path / "exp", small_settings(widths="2"))
    experiment.edit("PROCESS", "lr", "0.1, 0.01")
    experiment.edit("mlp_brick", "weight_decay", "0.5")
    experiment.command("mosaic_generate", "config.ini", "runs.json", check=0)
    runs = json.loads((experiment.folder / "runs.json").read_text())
    assert [run["training"] for run in runs] == [
        {"lr": 0.1, "optimizer": "Adam"}, {"lr": 0.01, "optimizer": "Adam"},
        {"lr": 0.1, "optimizer": "Adam", "weight_decay": 0.5}, {"lr": 0.01, "optimizer": "Adam", "weight_decay": 0.5},
    ]
    assert runs[3]["pipeline"].endswith("| lr=0.01, weight_decay=0.5")


def help_of(command, capsys):
    """The --help text of a command."""
    with pytest.raises(SystemExit):
        command(["--help"])
    return capsys.readouterr().out


def test_choices_and_defaults_come_from_the_tables_that_define_them(capsys):
    from mosaic.ops import cli
    from mosaic.ops.paths import config_default
    from mosaic.results.export import FORMATS
    from mosaic.results.selection import STATUSES

    statuses = "{" + ",".join(STATUSES) + "}"
    assert statuses in help_of(cli.mosaic_rerun, capsys) and statuses in help_of(cli.mosaic_plotloss, capsys)
    assert "{" + ",".join(FORMATS) + "}" in help_of(cli.mosaic_export, capsys)
    # the cap of mosaic_plotloss is the workflow's: one default, in the config schema
    cap = config_default("plotloss_max_runs")
    assert cli.plotloss_max_runs() == cap
    assert f"(default {cap}:" in " ".join(help_of(cli.mosaic_plotloss, capsys).split())


def test_commands_refuse_an_output_named_for_another_format_before_reading_anything(tmp_path, monkeypatch, capsys):
    from mosaic.ops import cli

    monkeypatch.chdir(tmp_path)  # no ini and no database here: the output's name is checked first
    assert cli.mosaic_generate(["config.ini", "runs.txt"]) == 2
    assert capsys.readouterr().err == "mosaic_generate: runs.txt: unknown runs file format '.txt' (use .json)\n"
    assert cli.mosaic_export(["missing.db", "runs.csv"]) == 2
    assert capsys.readouterr().err == ("mosaic_export: runs.csv: the export is a folder (runs, losses and params "
                                       "files in it), not a .csv file: name a folder\n")
    assert sorted(tmp_path.iterdir()) == []
