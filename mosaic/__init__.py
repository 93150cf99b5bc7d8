"""Mosaic: compare machine-learning pipelines by training every combination on Snakemake.

Layers (see README.md, "Layout"): `experiment` (the ini, standard library only), `run` (one training
run, torch), `results` (database, statistics, plots; no torch), `ops` (commands and Snakemake).
"""



def __getattr__(name):
    """`mosaic.__version__`, read on first use (mosaic/version.py)."""
    if name != "__version__":
        raise AttributeError(f"module 'mosaic' has no attribute {name!r}")
    from mosaic.version import version

    globals()["__version__"] = version()
    return globals()["__version__"]


def download_file(url, path):
    """The absolute path of a local copy of `url` at `path`, through the LRU download cache (mosaic.run.cache)."""
    from mosaic.run.cache import download_file as _download_file

    return _download_file(url, path)


def load(db_path):
    """A results database as pandas DataFrames: `.runs` (one typed column a parameter), `.losses` (long form)
    and `.params`; see mosaic.results.frames and README.md ("Results in a notebook")."""
    from mosaic.results.frames import load as _load

    return _load(db_path)
