"""Where the workflow files are (the repository checkout, or the copy shipped in the package), where the
commands write by default, and the check that an output is not one of the inputs."""

import os

import mosaic
from mosaic.errors import UsageError

PACKAGE = os.path.dirname(os.path.abspath(mosaic.__file__))


def workflow_root():
    """The folder holding Snakefile, workflow/, config/ and profiles/."""
    checkout = os.path.dirname(PACKAGE)
    if os.path.isfile(os.path.join(checkout, "Snakefile")) and os.path.isdir(
        os.path.join(checkout, "workflow", "rules")
    ):
        return checkout
    return os.path.join(PACKAGE, "_workflow")


def snakefile():
    return os.path.join(workflow_root(), "Snakefile")


def config_default(key):
    """The default of a workflow config key: the config schema holds each one once (Snakemake fills it in)."""
    import yaml

    with open(os.path.join(workflow_root(), "workflow", "schemas", "config.schema.yaml")) as handle:
        return yaml.safe_load(handle)["properties"][key]["default"]


def relative(path):
    """`path` relative to the working directory when it lies below it, else absolute."""
    path = os.path.abspath(path)
    rel = os.path.relpath(path)
    return path if rel.startswith("..") else rel


def beside(database, suffix):
    """What a command writes next to a database, named after its stem: <stem>_plots, <stem>_report.html."""
    stem, _ = os.path.splitext(os.path.abspath(database))
    return f"{stem}{suffix}"


def default_plots(database):
    return beside(database, "_plots")


def default_report(database):
    return beside(database, "_report.html")


def same_file(a, b):
    if os.path.abspath(a) == os.path.abspath(b):
        return True
    return os.path.exists(a) and os.path.exists(b) and os.path.samefile(a, b)


def refuse_overwriting(output, inputs):
    """A UsageError when the output path is one of the inputs (the ini given twice, say)."""
    for path in inputs:
        if path is not None and same_file(output, path):
            raise UsageError(f"{output} is also an input ({path}); give another output path")
