"""Snakemake plugins shipped with Mosaic. Snakemake finds a plugin by its top-level module name, so
mosaic_run puts this folder on the PYTHONPATH of the Snakemake it starts (see mosaic/ops/runner.py)."""

import os

FOLDER = os.path.dirname(os.path.abspath(__file__))
