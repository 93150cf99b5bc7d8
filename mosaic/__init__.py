"""Mosaic: compare machine-learning pipelines by training every combination on Snakemake.

Layers (see README.md, "Layout"): `experiment` (the ini, standard library only), `run` (one training
run, torch), `results` (database, statistics, plots; no torch), `ops` (commands and Snakemake).
"""

from importlib import metadata

try:
    __version__ = metadata.version("mosaic-snakemake")
except metadata.PackageNotFoundError:  # a plain checkout on PYTHONPATH, not installed
    __version__ = "0+unknown"


def download_file(url, path):
    """The absolute path of a local copy of `url` at `path`, through the LRU download cache (mosaic.run.cache)."""
    from mosaic.run.cache import download_file as _download_file

    return _download_file(url, path)


def load(db_path):
    """A results database as pandas DataFrames: `.runs` (one typed column a parameter), `.losses` (long form)
    and `.params`; see mosaic.results.frames and README.md ("Results in a notebook")."""
    from mosaic.results.frames import load as _load

    return _load(db_path)
