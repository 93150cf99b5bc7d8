"""The run specs on disk: each run's spec and context written into its folder, for its training job, and the
manifest of what was written (the format itself: mosaic/experiment/spec.py).

A file is written only when its content changes, so that Snakemake (which reruns a job whose input
content changed) retrains exactly the runs whose spec changed. A finished run whose spec changed
only by its epochs continues from its final model: that model becomes its checkpoint.

A manifest in run_files_path (runfiles.SPEC_MANIFEST) holds a digest of what was last written for each
run, so that an unchanged experiment of 100,000 runs is checked without reading 200,000 files. It is
invalidated for the runs about to change before their files are written: a crash in between only costs
a re-read next time.
"""

import hashlib
import json
import os

from mosaic import runfiles
from mosaic.experiment.spec import (
    Fingerprints,
    experiment_settings,
    identity,
    run_context,
    run_spec,
    spec_text,
)


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


def _continue_from_final_model(folder, old_text, new_spec):
    """Epochs raised on a finished run of the same identity: its final model becomes the checkpoint
    its job continues from (Snakemake deletes model.pt before the job starts; the copy stays)."""
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
    # A copy (a reflink where the file system makes one), never a hard link: model.pt is the user's, and
    # writing it in place must not change what the run continues from. Not synced, as _replace.
    tmp = os.path.join(folder, f"{runfiles.CHECKPOINT}.tmp{os.getpid()}")
    runfiles.copy_file(model, tmp)
    os.replace(tmp, os.path.join(folder, runfiles.CHECKPOINT))


def _read_manifest(path):
    manifest = {}
    for line in (_read(path) or "").splitlines():
        run_hash, _, digest = line.partition(" ")
        manifest[run_hash] = digest
    return manifest


def _write_manifest(path, manifest):
    _replace(path, "".join(f"{run_hash} {digest}\n" for run_hash, digest in manifest.items()))


def write_run_specs(experiment):
    """Write spec.json and context.json of every run whose content changed; returns how many specs changed."""
    fingerprints = Fingerprints()
    settings = experiment_settings(experiment)
    rfp = experiment.process.run_files_path
    os.makedirs(rfp, exist_ok=True)
    manifest_path = os.path.join(rfp, runfiles.SPEC_MANIFEST)
    manifest = _read_manifest(manifest_path)
    pending = []
    for run in experiment.runs:
        spec = run_spec(experiment, run, fingerprints)
        texts = spec_text(spec), spec_text(run_context(experiment, run, settings))
        digest = hashlib.sha1("".join(texts).encode()).hexdigest()[:16]
        folder = runfiles.run_dir(rfp, run.run_hash)
        if manifest.get(run.run_hash) != digest or not os.path.exists(os.path.join(folder, runfiles.SPEC)):
            pending.append((run.run_hash, folder, spec, texts, digest))
    if not pending:
        return 0
    for run_hash, *_ in pending:
        manifest.pop(run_hash, None)
    _write_manifest(manifest_path, manifest)
    changed = 0
    for run_hash, folder, spec, (text, context), digest in pending:
        os.makedirs(folder, exist_ok=True)
        path = os.path.join(folder, runfiles.SPEC)
        old = _read(path)
        if old != text:
            _continue_from_final_model(folder, old, spec)
            _replace(path, text)
            changed += 1
        if _read(os.path.join(folder, runfiles.CONTEXT)) != context:
            _replace(os.path.join(folder, runfiles.CONTEXT), context)
        manifest[run_hash] = digest
    _write_manifest(manifest_path, manifest)
    return changed
