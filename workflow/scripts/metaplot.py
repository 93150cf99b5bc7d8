"""Snakemake adapter: one comparison plot (a dataset key, a compared value)."""

import sys

from mosaic.errors import MosaicError
from mosaic.results.plots import metaplot, render_message

with open(snakemake.log[0], "w") as sys.stderr:  # noqa: F821 (snakemake is injected)
    database, output = snakemake.input[0], snakemake.output[0]  # noqa: F821
    dataset, value = snakemake.params.dataset, snakemake.wildcards.value  # noqa: F821
    try:
        metaplot(database, output, dataset, value)
    except MosaicError as error:  # no run done yet: say so in the file
        print(error, file=sys.stderr)
        render_message(output, f"no {value} comparison for {dataset}: {error}")
