"""Snakemake adapter: mosaic_compare on the database, its files beside the plots; the plain-words comparison
ends the log (and mosaic_run prints it)."""

import os
import sys

from mosaic.errors import MosaicError
from mosaic.results.compare_outputs import run_compare, write_placeholders
from mosaic.results.database import set_meta

with open(snakemake.log[0], "w") as sys.stderr:  # noqa: F821 (snakemake is injected)
    database, folder = snakemake.input[0], os.path.dirname(snakemake.output.markdown)  # noqa: F821
    params = snakemake.params  # noqa: F821
    value, rope, solved_below = params.value, params.rope, params.solved_below
    set_meta(database, "plots", os.path.abspath(folder))  # mosaic_compare's default folder: one plot folder
    try:
        text = run_compare(database, folder, value, rope=None if rope is None else float(rope), scale=params.scale,
                           solved_below=None if solved_below is None else float(solved_below), detail=True)
        print(text, file=sys.stderr)
    except MosaicError as error:  # nothing to compare yet: say so in the files
        print(error, file=sys.stderr)
        write_placeholders(folder, value, f"no comparison on {value}: {error}")
