"""`mosaic_run --report`: Snakemake's own report of the experiment, one offline HTML file."""

import os
import subprocess

from mosaic.errors import MosaicError
from mosaic.ops import runner


def default_report(database):
    """<database stem>_report.html, next to the database (as <stem>_plots)."""
    stem, _ = os.path.splitext(os.path.abspath(database))
    return f"{stem}_report.html"


def write_report(ini, database, plots, path):
    """`snakemake --report path` for the runs done (a failed run leaves no hole: partial=True)."""
    path = os.path.abspath(path)
    state = {"ini": os.path.abspath(ini), "database": os.path.abspath(database), "plots": os.path.abspath(plots),
             "workdir": os.getcwd()}
    command = runner.snakemake_command(state, 1, partial=True, extra=["--report", path])
    done = subprocess.run(command, capture_output=True, text=True, check=False)
    if done.returncode != 0 or not os.path.exists(path):
        lines = [line.strip() for line in (done.stdout + done.stderr).splitlines() if line.strip()]
        raise MosaicError(f"no report written to {path}: {lines[-1] if lines else 'snakemake said nothing'}")
    return path
