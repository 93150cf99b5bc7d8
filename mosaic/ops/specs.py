"""Writing each run's spec and context into its folder, for its training job (see mosaic/experiment/spec.py).

A file is written only when its content changes, so that Snakemake (which reruns a job whose input
content changed) retrains exactly the runs whose spec changed. A finished run whose spec changed
only by its epochs continues from its final model: that model becomes its checkpoint.
"""

import json
import os
import shutil

from mosaic import runfiles
from mosaic.experiment.spec import Fingerprints, identity, run_context, run_spec, spec_text


def _read(path):
    try:
        with open(path) as handle:
            return handle.read()
    except FileNotFoundError:
        return None


def _replace(path, text):
    """Atomic, without fsync: 100,000 fsyncs would cost minutes, and a file lost in a power cut
    is written again at the next start (its content differs then)."""
    tmp = f"{path}.tmp{os.getpid()}"
    with open(tmp, "w") as handle:
        handle.write(text)
    os.replace(tmp, path)


def _write_if_changed(path, text):
    if _read(path) != text:
        _replace(path, text)


def _continue_from_final_model(folder, old_text, new_spec):
    """Epochs raised on a finished run of the same identity: its final model becomes the checkpoint
    its job continues from (Snakemake deletes model.pt before the job starts; the link stays)."""
    if old_text is None:
        return
    try:
        old_spec = json.loads(old_text)
        result = runfiles.read_json(os.path.join(folder, runfiles.RESULT))
    except (OSError, ValueError):
        return
    if identity(old_spec) != identity(new_spec) or int(result.get("epochs", 0)) >= new_spec["epochs"]:
        return
    model = os.path.join(folder, runfiles.MODEL)
    if not os.path.exists(model):
        return
    link = os.path.join(folder, f"{runfiles.CHECKPOINT}.link{os.getpid()}")
    try:
        os.link(model, link)
    except OSError:  # a file system without hard links
        shutil.copyfile(model, link)
    os.replace(link, os.path.join(folder, runfiles.CHECKPOINT))


def write_run_specs(experiment):
    """Write spec.json and context.json of every run whose content changed; returns how many specs changed."""
    fingerprints = Fingerprints()
    rfp = experiment.process.run_files_path
    changed = 0
    for run in experiment.runs:
        folder = runfiles.run_dir(rfp, run.run_hash)
        os.makedirs(folder, exist_ok=True)
        spec = run_spec(experiment, run, fingerprints)
        text = spec_text(spec)
        path = os.path.join(folder, runfiles.SPEC)
        old = _read(path)
        if old != text:
            _continue_from_final_model(folder, old, spec)
            _replace(path, text)
            changed += 1
        _write_if_changed(os.path.join(folder, runfiles.CONTEXT), spec_text(run_context(experiment, run)))
    return changed
