"""Mosaic: compare machine-learning pipelines by training every combination on Snakemake."""

__version__ = "0.1.0"


def download_file(url, path):
    """The absolute path of a local copy of `url` at `path`, through the LRU download cache (mosaic.cache)."""
    from mosaic.cache import download_file as _download_file

    return _download_file(url, path)
