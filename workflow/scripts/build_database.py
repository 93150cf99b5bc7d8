"""Snakemake adapter: build the results database from the run files."""

import sys

from mosaic.config import load_experiment
from mosaic.database import build

with open(snakemake.log[0], "w") as sys.stderr:  # noqa: F821 (snakemake is injected)
    build(load_experiment(snakemake.config["ini"]), snakemake.output[0])  # noqa: F821
