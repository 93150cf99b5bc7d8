"""Snakemake adapter: one comparison plot (a dataset key, a compared value)."""

import sys

from mosaic.plots import metaplot

with open(snakemake.log[0], "w") as sys.stderr:  # noqa: F821 (snakemake is injected)
    metaplot(
        snakemake.input[0],  # noqa: F821
        snakemake.output[0],  # noqa: F821
        snakemake.params.dataset,  # noqa: F821
        snakemake.wildcards.value,  # noqa: F821
    )
