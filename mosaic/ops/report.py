"""`mosaic_run --report`: Snakemake's own report of the experiment, one offline HTML file."""

import os
import subprocess

from mosaic.errors import RunError
from mosaic.ops import runner, session


def default_report(database):
    """<database stem>_report.html, next to the database (as <stem>_plots)."""
    stem, _ = os.path.splitext(os.path.abspath(database))
    return f"{stem}_report.html"


def write_report(ini, database, plots, path):
    """`snakemake --report path` for the runs done (a failed run leaves no hole: partial=True)."""
    path = os.path.abspath(path)
    state = {"ini": os.path.abspath(ini), "database": os.path.abspath(database), "plots": os.path.abspath(plots)}
    os.makedirs(session.STATE_DIR, exist_ok=True)
    config_file = runner.write_config_file(runner.run_config(state, partial=True),
                                           os.path.join(session.STATE_DIR, "report-config.yaml"))
    command = runner.snakemake_command(os.getcwd(), config_file, 1, extra=["--report", path], logger=False)
    done = subprocess.run(command, capture_output=True, text=True, check=False)
    if done.returncode != 0 or not os.path.exists(path):
        lines = [line.strip() for line in (done.stdout + done.stderr).splitlines() if line.strip()]
        raise RunError(f"no report written to {path}: {lines[-1] if lines else 'snakemake said nothing'}")
    return path
