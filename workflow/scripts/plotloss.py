"""Snakemake adapter: the PDF of every run's loss curves."""

import sys

from mosaic.plots import plotloss

with open(snakemake.log[0], "w") as sys.stderr:  # noqa: F821 (snakemake is injected)
    plotloss(snakemake.input[0], snakemake.output[0], plot_size=snakemake.params.plot_size)  # noqa: F821
