"""Snakemake adapter: the comparison plots of one dataset key, one per compared value."""

import sys

from mosaic.errors import MosaicError
from mosaic.results.figures import render_message, write_rows_csv
from mosaic.results.plots import METAPLOT_CSV_COLUMNS, metaplot

with open(snakemake.log[0], "w") as sys.stderr:  # noqa: F821 (snakemake is injected)
    database, dataset = snakemake.input[0], snakemake.params.dataset  # noqa: F821
    outputs = zip(snakemake.params.compared, snakemake.output.plots, snakemake.output.tables)  # noqa: F821
    for value, plot, table in outputs:
        try:
            metaplot(database, plot, dataset, value)  # its table is written beside it, same name
        except MosaicError as error:  # no run done yet: say so in the files
            print(error, file=sys.stderr)
            render_message(plot, f"no {value} comparison for {dataset}: {error}")
            write_rows_csv(table, [], METAPLOT_CSV_COLUMNS)
