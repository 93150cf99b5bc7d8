"""Outputs that are written differently for speed at 100,000 runs keep their meaning."""

import json

from mosaic.experiment import load_experiment
from tests.fakes import Experiment, small_settings


def test_generate_writes_every_run_as_json_one_run_a_line(tmp_path):
    experiment = Experiment(tmp_path / "exp", small_settings(multiplicity=2))
    experiment.command("mosaic_generate", "config.ini", "runs.json", check=0)
    text = (experiment.folder / "runs.json").read_text()
    runs = json.loads(text)
    expected = load_experiment(str(experiment.ini)).runs
    assert [(r["run_id"], r["run_hash"], r["seed"]) for r in runs] == [(r.run_id, r.run_hash, r.seed) for r in expected]
    assert runs[0]["modules"][1]["params"]["width"] == 2
    assert len(text.splitlines()) == len(expected) + 2  # "[", a line a run, "]"
