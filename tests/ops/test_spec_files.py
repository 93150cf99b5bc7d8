"""The run specs on disk (mosaic/ops/spec_files.py): written only when their content changes, and a finished
run whose epochs are raised continues from a copy of its final model."""

import json
import os

from mosaic import runfiles
from mosaic.experiment import load_experiment
from mosaic.ops import rerun
from mosaic.ops.spec_files import write_run_specs
from tests.fakes import Experiment, small_settings


def test_specs_are_rewritten_only_when_their_content_changes(tmp_path):
    exp = Experiment(tmp_path / "exp", small_settings())
    assert write_run_specs(load_experiment(exp.ini)) == 4
    specs = sorted(exp.runs_dir().glob("*/spec.json"))
    mtimes = [p.stat().st_mtime_ns for p in specs]
    exp.edit("MONITOR", "nb_processus", "1")  # context only
    exp.edit("mlp_brick", "key", "{class}_w{width}")
    assert write_run_specs(load_experiment(exp.ini)) == 0
    (exp.runs_dir() / runfiles.SPEC_MANIFEST).unlink()
    assert write_run_specs(load_experiment(exp.ini)) == 0
    assert [p.stat().st_mtime_ns for p in specs] == mtimes
    contexts = [json.loads(p.with_name("context.json").read_text()) for p in specs]
    assert {c["monitor"]["nb_processus"] for c in contexts} == {1}
    exp.edit("PROCESS", "epochs", "3")
    assert write_run_specs(load_experiment(exp.ini)) == 4
    assert {json.loads(p.read_text())["epochs"] for p in specs} == {3}


def test_the_checkpoint_a_finished_run_continues_from_is_a_copy_of_its_model(tmp_path, monkeypatch):
    """Raising the epochs (write_run_specs) and mosaic_rerun -epochs (prepare_run) make the final model the
    checkpoint to continue from: a copy, never the model's own file, which the user may edit or replace."""
    exp = Experiment(tmp_path / "exp", small_settings(epochs=2, widths="2"))
    monkeypatch.chdir(exp.folder)
    write_run_specs(load_experiment(str(exp.ini)))
    run = load_experiment(str(exp.ini)).runs[0]
    folder = exp.runs_dir() / run.run_hash
    (folder / runfiles.RESULT).write_text(json.dumps({"epochs": 2}))
    (folder / runfiles.LOSSES).write_text(runfiles.format_losses([(1, 0.5, 0.5, 0.1), (2, 0.4, 0.4, 0.1)]))
    model, checkpoint = folder / runfiles.MODEL, folder / runfiles.CHECKPOINT
    model.write_bytes(b"the final model")

    exp.edit("PROCESS", "epochs", "4")
    write_run_specs(load_experiment(str(exp.ini)))
    assert checkpoint.read_bytes() == b"the final model" and not os.path.samefile(model, checkpoint)
    with open(model, "r+b") as handle:  # the user's tool writes the model in place
        handle.write(b"THE")
    assert checkpoint.read_bytes() == b"the final model"

    checkpoint.unlink()
    rerun.prepare_run(str(exp.runs_dir()), run, 2)
    assert checkpoint.read_bytes() == b"THE final model" and not os.path.samefile(model, checkpoint)
    assert json.loads((folder / runfiles.CONTINUE).read_text()) == {"target_epochs": 4}
    assert sorted(os.listdir(folder)) == sorted([runfiles.SPEC, runfiles.CONTEXT, runfiles.RESULT, runfiles.LOSSES,
                                                 runfiles.MODEL, runfiles.CHECKPOINT, runfiles.CONTINUE])
