"""Snakemake adapter: mosaic_compare --tune on the database, its files beside the plots; without a validation
value (or nothing to compare yet) the files say why."""

import os
import sys

from mosaic.errors import MosaicError
from mosaic.results.tuning_plots import run_tune, write_tuning_placeholders

with open(snakemake.log[0], "w") as sys.stderr:  # noqa: F821 (snakemake is injected)
    database, folder = snakemake.input[0], os.path.dirname(snakemake.output.markdown)  # noqa: F821
    params = snakemake.params  # noqa: F821
    rope, solved_below = params.rope, params.solved_below
    try:
        print(run_tune(database, folder, params.value, params.names, rope=None if rope is None else float(rope),
                       scale=params.scale, solved_below=None if solved_below is None else float(solved_below)),
              file=sys.stderr)
    except MosaicError as error:
        print(error, file=sys.stderr)
        write_tuning_placeholders(folder, params.value, f"no tuned comparison on {params.value}: {error}")
