"""The helpers of the original ml-mosaic for class files that start with `from mosaic.lib import *`.

`download_file(url, path)`, `get_path_file(path)` and `save_path_file(path)` work as they did, on top of
Mosaic's own download cache (mosaic/run/cache.py): one row per file, least-recently-used eviction, and a
file the user registered with save_path_file is never deleted. Like the original, `import *` gives these
names only; class files import torch and numpy themselves.
"""

from mosaic.run.cache import download_file, get_path_file, save_path_file

__all__ = ["download_file", "get_path_file", "save_path_file"]
