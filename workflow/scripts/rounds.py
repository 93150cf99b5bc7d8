"""Snakemake adapter (multiplicity = auto): the sequential decision after a round, the next round's replicates
in .mosaic/replicates.json, the rounds so far beside the plots (mosaic/ops/rounds.py)."""

import sys

from mosaic.ops.rounds import workflow_round

with open(snakemake.log[0], "w") as sys.stderr:  # noqa: F821 (snakemake is injected)
    given, params, output = snakemake.input, snakemake.params, snakemake.output  # noqa: F821
    kept = workflow_round(given.ini, given.database, params.value, params.rope, output.csv, output.plot,
                          output.text, advance=params.advance, tune=params.tune)
    print(kept["decision"], file=sys.stderr)
