"""What the Snakemake workflow needs from the experiment: paths, targets, signatures.

Used by workflow/rules/common.smk; kept here so that it is plain, testable Python.
"""

import hashlib
import json
import os
import re
import sys

from mosaic import runfiles
from mosaic.errors import MosaicError
from mosaic.experiment import load_experiment
from mosaic.ops.paths import PACKAGE


def load_or_exit(ini):
    """The experiment, or a one-line error and exit status 1 (no traceback) on bad input."""
    try:
        return load_experiment(ini)
    except MosaicError as error:
        print(f"mosaic: {error}", file=sys.stderr)
        sys.exit(1)


def export_environment():
    """Make `python -m mosaic.run.job` in a job's shell reach this interpreter and this package.

    Local jobs and SLURM jobs (sbatch exports the environment) inherit these variables.
    """
    os.environ["MOSAIC_SNAKEMAKE_PID"] = str(os.getpid())  # jobs stop if this process dies
    bindir = os.path.dirname(sys.executable)
    os.environ["PATH"] = bindir + os.pathsep + os.environ.get("PATH", "")
    package_parent = os.path.dirname(PACKAGE)
    paths = [p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p]
    if package_parent not in paths:
        os.environ["PYTHONPATH"] = os.pathsep.join([package_parent, *paths])


def relative(path):
    """`path` relative to the working directory when it lies below it, else absolute."""
    path = os.path.abspath(path)
    rel = os.path.relpath(path)
    return path if rel.startswith("..") else rel


def result_files(experiment, runs_dir, partial=False, also=()):
    """The result files of every run. With partial=True, only those already written plus those
    of the runs in `also` (hashes): the database is then built without training anything else."""
    files = []
    for run in experiment.runs:
        pair = [
            os.path.join(runs_dir, run.run_hash, runfiles.RESULT),
            os.path.join(runs_dir, run.run_hash, runfiles.LOSSES),
        ]
        if not partial or run.run_hash in also or all(os.path.exists(p) for p in pair):
            files += pair
    return files


def read_run_list(path):
    """The run hashes listed in `path`, one a line (written by mosaic_rerun)."""
    if not path:
        return frozenset()
    with open(path) as handle:
        return frozenset(line.strip() for line in handle if line.strip())


def safe_name(key):
    """A file-name-safe form of a dataset key."""
    return re.sub(r"[^A-Za-z0-9.+-]+", "_", key).strip("_") or "dataset"


def dataset_names(experiment):
    """{file-name-safe name: dataset key} for the dataset keys of the experiment, in run order."""
    names = {}
    for run in experiment.runs:
        name = safe_name(run.dataset_key)
        while name in names and names[name] != run.dataset_key:
            name += "_"
        names.setdefault(name, run.dataset_key)
    return names


def aggregation_signature(experiment):
    """A digest of what the database shows beyond the run files (ids, pipelines, keys, PROCESS):
    when it changes (a new key template, say), the database is rebuilt without any training."""
    rows = [
        (run.run_id, run.run_hash, run.pipeline, [m.key for m in run.modules])
        for run in experiment.runs
    ]
    process = experiment.process
    payload = json.dumps([rows, repr(process)], sort_keys=True, default=str)
    return hashlib.sha256(payload.encode()).hexdigest()[:16]


def local_gpu_count(experiment):
    """The GPU slots local runs may use (Snakemake's `gpu` resource): the GPUs of gpu_available, else
    those nvidia-smi lists, times [MONITOR] runs_per_gpu."""
    if experiment.monitor.gpu_available:
        return len(experiment.monitor.gpu_available) * experiment.monitor.runs_per_gpu
    from mosaic.run.devices import visible_gpus

    return len(visible_gpus()) * experiment.monitor.runs_per_gpu
