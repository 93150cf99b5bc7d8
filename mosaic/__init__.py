"""Mosaic: compare machine-learning pipelines by training every combination on Snakemake."""

__version__ = "0.1.0"
