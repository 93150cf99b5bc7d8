"""How the workflow's jobs run (mosaic/ops/workflow_jobs.py): the shell prefix that reaches this interpreter and
package, and conda deployment detected from Snakemake's settings."""

import os
import subprocess
import sys
from pathlib import Path

from tests.fakes import ROOT


def test_job_prefix_reaches_this_interpreter_and_package_from_a_bare_shell():
    from mosaic.ops.workflow_jobs import job_shell_prefix

    prefix = job_shell_prefix().replace("{{", "{").replace("}}", "}")  # as Snakemake formats it
    probe = ("python -c 'import sys, os, mosaic; "
             "print(sys.executable, mosaic.__file__, os.environ[\"MOSAIC_SNAKEMAKE_PID\"])'")
    done = subprocess.run(["bash", "-c", prefix + probe], capture_output=True, text=True, check=True,
                          env={"PATH": "/usr/bin:/bin", "HOME": os.environ.get("HOME", "/")})
    executable, package, pid = done.stdout.split()
    assert Path(executable).parent == Path(sys.executable).parent
    assert Path(package).parent.parent == ROOT and int(pid) == os.getpid()
    conda_prefix = job_shell_prefix(own_environment=False)
    assert "MOSAIC_SNAKEMAKE_PID" in conda_prefix and "PYTHONPATH" not in conda_prefix and "PATH=" not in conda_prefix


def test_conda_deployment_is_detected_from_the_workflow_settings():
    from types import SimpleNamespace

    from snakemake.settings.types import DeploymentMethod, DeploymentSettings

    from mosaic.ops.workflow_jobs import uses_conda

    def workflow(*methods):
        return SimpleNamespace(deployment_settings=DeploymentSettings(deployment_method=set(methods)))

    assert uses_conda(workflow(DeploymentMethod.CONDA))
    assert not uses_conda(workflow()) and not uses_conda(workflow(DeploymentMethod.APPTAINER))
