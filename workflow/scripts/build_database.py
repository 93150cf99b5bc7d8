"""Snakemake adapter: build the results database from the run files."""

import sys

from mosaic.experiment import load_experiment
from mosaic.results.database import build

with open(snakemake.log[0], "w") as sys.stderr:  # noqa: F821 (snakemake is injected)
    build(load_experiment(snakemake.config["ini"]), snakemake.output[0])  # noqa: F821
