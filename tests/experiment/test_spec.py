"""A run's spec and context (mosaic/experiment/spec.py): what result.json says of a run is one description,
whether the run was trained from its spec (a job) or without one (train_run called directly)."""

import json

from mosaic import runfiles
from mosaic.experiment import load_experiment
from mosaic.experiment.spec import describe, description
from mosaic.ops.spec_files import write_run_specs
from tests.fakes import Experiment, small_settings


def described_from_files(experiment, run):
    """What a job says of its run: describe() of the spec and context the workflow wrote into its folder."""
    folder = runfiles.run_dir(experiment.process.run_files_path, run.run_hash)
    spec, context = (runfiles.read_json(f"{folder}/{name}") for name in (runfiles.SPEC, runfiles.CONTEXT))
    return describe(spec, context)


def test_a_run_without_a_spec_is_described_as_its_spec_would_describe_it(tmp_path):
    exp = Experiment(tmp_path / "exp", small_settings())
    experiment = load_experiment(str(exp.ini))
    write_run_specs(experiment)
    for run in experiment.runs:
        assert description(experiment, run) == described_from_files(experiment, run)
    described = description(experiment, experiment.runs[0])
    assert set(described) == {"modules", "process", "loss_code"}
    assert all(module["code"].startswith("ast:") for module in described["modules"])


def test_a_run_trained_without_a_spec_has_the_description_fields_of_one_trained_from_its_spec(tmp_path):
    from mosaic.run.training import train_run

    exp = Experiment(tmp_path / "exp", small_settings(epochs=1, widths="2"))
    experiment = load_experiment(str(exp.ini))
    run = experiment.runs[0]
    write_run_specs(experiment)
    expected = described_from_files(experiment, run)
    train_run(experiment, run, log=lambda line: None)  # no description given: no spec
    folder = runfiles.run_dir(experiment.process.run_files_path, run.run_hash)
    result = json.loads(open(f"{folder}/{runfiles.RESULT}").read())
    assert {key: result[key] for key in expected} == expected  # code and loss_code included
