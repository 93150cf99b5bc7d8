"""`mosaic_run --report`: Snakemake's own report of the experiment, one offline HTML file."""

import importlib
import os
import re
import sys

from mosaic.errors import RunError
from mosaic.ops import runner

# What `snakemake --report` imports only once it writes the report (Snakemake itself starts without them):
# checked before, so that a missing one is named with the command that installs it.
REPORT_MODULES = ("pygments", "jinja2", "docutils")
# How Snakemake says that a module is missing, in case it needs one more than REPORT_MODULES.
MISSING_MODULE = re.compile(r"Python package (\w+) must be installed|No module named '(\w+)")


def missing_modules(names=REPORT_MODULES):
    """The modules of `names` that this interpreter (the one that runs Snakemake) cannot import."""
    missing = []
    for name in names:
        try:
            importlib.import_module(name)
        except ImportError:
            missing.append(name)
    return missing


def install_hint(names):
    """'the Python package X, which ..., is not installed: install it with ...' (into this environment)."""
    one = len(names) == 1
    return (f"the Python {'package' if one else 'packages'} {', '.join(names)}, which snakemake --report needs, "
            f"{'is' if one else 'are'} not installed: install {'it' if one else 'them'} with "
            f"`{sys.executable} -m pip install {' '.join(names)}`")


def write_report(ini, database, plots, path):
    """`snakemake --report path` for the runs done, through the runner (runner.snakemake_report).

    Raises RunError (exit status 1) when no report is written, BusyError (3) while another command holds
    the folder; the database and plots stay as they are."""
    path = os.path.abspath(path)
    missing = missing_modules()
    if missing:
        raise RunError(f"no report written to {path}: {install_hint(missing)}")
    done = runner.snakemake_report(ini, database, plots, path)
    if done.returncode != 0 or not os.path.exists(path):
        output = done.stdout + done.stderr
        named = MISSING_MODULE.search(output)
        if named:
            raise RunError(f"no report written to {path}: {install_hint([named.group(1) or named.group(2)])}")
        lines = [line.strip() for line in output.splitlines() if line.strip()]
        raise RunError(f"no report written to {path}: {lines[-1] if lines else 'snakemake said nothing'}")
    return path
