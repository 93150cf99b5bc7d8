"""Snakemake adapter: the PDF of every run's loss curves, and its pages as PNGs for the report."""

import sys

from mosaic.errors import MosaicError
from mosaic.results.lossplot import plotloss, render_plotloss_message

with open(snakemake.log[0], "w") as sys.stderr:  # noqa: F821 (snakemake is injected)
    try:
        drawn, selected = plotloss(  # noqa: F821
            snakemake.input[0], snakemake.output.pdf, plot_size=snakemake.params.plot_size,  # noqa: F821
            max_runs=snakemake.params.max_runs, pages=snakemake.output.pages,  # noqa: F821
        )
        if drawn < selected:
            print(f"the first {drawn} of {selected} runs drawn (config plotloss_max_runs)", file=sys.stderr)
    except MosaicError as error:  # no run done yet: say so in the files
        print(error, file=sys.stderr)
        render_plotloss_message(snakemake.output.pdf, snakemake.output.pages, f"no loss curves: {error}")  # noqa: F821
