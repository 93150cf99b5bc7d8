"""Snakemake adapter: the comparison plots of one dataset key, one per compared value."""

import sys

from mosaic.errors import MosaicError
from mosaic.results.plots import metaplot, render_message

with open(snakemake.log[0], "w") as sys.stderr:  # noqa: F821 (snakemake is injected)
    database, dataset = snakemake.input[0], snakemake.params.dataset  # noqa: F821
    for value, output in zip(snakemake.params.compared, snakemake.output):  # noqa: F821
        try:
            metaplot(database, output, dataset, value)
        except MosaicError as error:  # no run done yet: say so in the file
            print(error, file=sys.stderr)
            render_message(output, f"no {value} comparison for {dataset}: {error}")
