"""Where the workflow files are: the repository checkout, or the copy shipped in the package."""

import os

import mosaic

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
