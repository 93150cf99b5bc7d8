"""How the workflow's jobs run: the shell prefix of their commands, in this environment or in conda's, and
the GPU slots local runs share (Snakemake's `gpu` resource). Used by workflow/rules/common.smk and the runner."""

import os
import shlex
import sys

from mosaic.ops.paths import PACKAGE


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


def uses_conda(workflow):
    """Whether Snakemake runs the jobs in conda environments (--sdm conda)."""
    methods = getattr(getattr(workflow, "deployment_settings", None), "deployment_method", None) or ()
    return any(str(getattr(method, "name", method)).lower() == "conda" for method in methods)


def local_gpu_count(experiment):
    """The GPU slots local runs may use (Snakemake's `gpu` resource): the GPUs of gpu_available, else
    those nvidia-smi lists, times [MONITOR] runs_per_gpu."""
    if experiment.monitor.gpu_available:
        return len(experiment.monitor.gpu_available) * experiment.monitor.runs_per_gpu
    from mosaic.run.devices import visible_gpus

    return len(visible_gpus()) * experiment.monitor.runs_per_gpu
