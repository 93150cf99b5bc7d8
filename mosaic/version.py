"""Mosaic's version, read from the package metadata on first use (importlib.metadata costs tens of
milliseconds, which every training job would pay at start-up). Standard library only: any layer imports it."""

import functools


@functools.cache
def version():
    from importlib import metadata

    try:
        return metadata.version("mosaic-snakemake")
    except metadata.PackageNotFoundError:  # a plain checkout on PYTHONPATH, not installed
        return "0+unknown"
