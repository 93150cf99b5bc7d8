"""What the Snakemake workflow needs from the experiment: paths, targets, signatures.

Used by workflow/rules/common.smk; kept here so that it is plain, testable Python.
"""

import hashlib
import json
import os
import re
import shlex
import sys

from mosaic import runfiles
from mosaic.errors import MosaicError, exit_code
from mosaic.experiment import load_experiment
from mosaic.ops.paths import PACKAGE
from mosaic.ops.specs import write_run_specs  # noqa: F401 (used by workflow/rules/common.smk)


def exit_with(message):
    """A one-line error, no traceback, and the command line's exit status for it."""
    print(f"mosaic: {message}", file=sys.stderr)
    sys.exit(exit_code(message) if isinstance(message, MosaicError) else 1)


def load_or_exit(ini):
    """The experiment, or a one-line error (no traceback) and the command line's exit status for it."""
    try:
        return load_experiment(ini)
    except MosaicError as error:
        exit_with(error)


def config_error_line(error):
    """The one-line message for a config value that the schema rejects (`error`: the WorkflowError
    raised by snakemake.utils.validate while handling jsonschema's ValidationError)."""
    cause = error
    while cause is not None:
        if hasattr(cause, "absolute_path") and hasattr(cause, "message"):
            key = ".".join(str(part) for part in cause.absolute_path)
            return f"config{' ' + key if key else ''}: {cause.message} (config/README.md lists the keys)"
        cause = cause.__cause__ or cause.__context__
    return str(error).strip().splitlines()[0]


def job_shell_prefix(own_environment=True):
    """The shell prefix of every job command (common.smk passes it to `shell.prefix`).

    It tells the job which Snakemake process to outlive no longer (MOSAIC_SNAKEMAKE_PID) and, with
    own_environment, makes `python -m mosaic.run.job` reach this interpreter and this package.
    Under `--sdm conda` (own_environment=False) the job's environment brings both itself.
    Written into each command rather than into this process's environment, so that parsing the
    workflow changes nothing; a job under a cluster executor gets it from the Snakemake that parses
    the workflow on its node.
    """
    exports = {"MOSAIC_SNAKEMAKE_PID": str(os.getpid())}  # jobs stop if this process dies
    if own_environment:
        paths = [p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p]
        package_parent = os.path.dirname(PACKAGE)
        if package_parent not in paths:
            paths.insert(0, package_parent)
        exports["PYTHONPATH"] = os.pathsep.join(paths)
        exports["PATH"] = os.pathsep.join([os.path.dirname(sys.executable), os.environ.get("PATH", "")])
    assignments = " ".join(f"{name}={shlex.quote(value)}" for name, value in exports.items())
    # Snakemake formats the prefix once: braces in a path must reach the shell as they are.
    return f"set -euo pipefail; export {assignments}; ".replace("{", "{{").replace("}", "}}")


def check_metaplot_values(values):
    """None, or the one-line error for a name of `metaplot_values` that metaplot does not know."""
    from mosaic.results.values import VALUE_COLUMNS

    unknown = [value for value in values if value not in VALUE_COLUMNS]
    if unknown:
        return (f"config metaplot_values: unknown value '{unknown[0]}': expected one of "
                + ", ".join(VALUE_COLUMNS))
    return None


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


def uses_conda(workflow):
    """Whether Snakemake runs the jobs in conda environments (--sdm conda)."""
    methods = getattr(getattr(workflow, "deployment_settings", None), "deployment_method", None) or ()
    return any(str(getattr(method, "name", method)).lower() == "conda" for method in methods)


def read_text(path):
    with open(path, encoding="utf-8") as handle:
        return handle.read()
