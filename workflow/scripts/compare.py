"""Snakemake adapter: mosaic_compare on the database, its files beside the plots."""

import os
import sys

import matplotlib

matplotlib.use("Agg")  # a batch job: no display

from mosaic.errors import MosaicError  # noqa: E402
from mosaic.results.compare import run_compare, write_placeholders  # noqa: E402

with open(snakemake.log[0], "w") as sys.stderr:  # noqa: F821 (snakemake is injected)
    database, folder = snakemake.input[0], os.path.dirname(snakemake.output.markdown)  # noqa: F821
    value, rope = snakemake.params.value, snakemake.params.rope  # noqa: F821
    try:
        print(run_compare(database, folder, value, rope=None if rope is None else float(rope)), file=sys.stderr)
    except MosaicError as error:  # no run done yet: say so in the files
        print(error, file=sys.stderr)
        write_placeholders(folder, value, f"no comparison on {value}: {error}")
