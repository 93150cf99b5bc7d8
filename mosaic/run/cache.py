"""Download cache for user dataset classes: ``mosaic.download_file(url, path)``.

A dataset class calls ``download_file(url, path)`` to get a local copy of ``url`` at ``path``. The cache
remembers what it downloaded in a small SQLite database and keeps the total size of those files under a
limit, removing the least recently used ones first (true LRU: every cache hit refreshes ``last_use``).

Settings
    ``MOSAIC_CACHE_DB``    the SQLite file (default ``./cache.db``, relative to the current directory);
    ``MOSAIC_CACHE_SIZE``  the limit: a number of bytes (``1048576``) or a decimal size such as ``500K``,
                           ``1M``, ``1.5G``, ``2T`` (K = 1e3, M = 1e6, G = 1e9, T = 1e12; default ``1G``).
    The training job (``mosaic/run/job.py``) sets both from the ini's [MONITOR] ``cache_database_path`` and
    ``cache_size`` before user code runs.

Behaviour (the original's cache returned stale files and evicted users' own files)
    * A hit (this url recorded at this path, file present with the recorded size and mtime) returns at
      once and refreshes ``last_use``. The same url cached at another path is copied locally, not fetched.
    * Otherwise the url is fetched (``urllib.request``, 60 s timeout) into a temporary file next to
      ``path``, renamed into place, recorded, then least-recently-used entries are evicted until the total
      fits. Only files the cache itself wrote are ever deleted: a file whose size, mtime or inode no longer
      matches its row (replaced by someone else) only loses its row, and files the cache never downloaded
      are never touched. The file just downloaded is never evicted by its own call.
    * A file larger than the whole cache is kept (with a warning on stderr) and every other entry is
      evicted; it is an ordinary entry afterwards, so a later download evicts it when it is the oldest.
    * A failed download raises ``CacheDownloadError`` naming the url, leaves no partial file and no row,
      and does not affect later attempts.
    * One row per file: ``path`` is the primary key, so repeated calls never duplicate rows and the size
      in use is always ``SUM(size)`` over the rows (no separate counter to drift).

Concurrency (several processes, possibly on several hosts sharing the filesystem)
    * ``<db>.lock``: an ``fcntl.flock`` held around every database check-and-record step (short).
    * ``<db>.locks/<sha256 of url>.lock``: a per-url ``flock`` held around the whole lookup-and-download,
      so a second caller for the same url waits for the first download and then reuses it.
    Locks are always taken in that order (url, then database) and released by context managers on any
    exception, or by the kernel if the process dies: no deadlock. SQLite uses its default rollback journal
    (not WAL, which does not work across hosts) with a timeout. The per-url lock files are small and are
    kept (deleting a lock file others may be waiting on would break the mutual exclusion).
"""

import contextlib
import fcntl
import hashlib
import os
import shutil
import sqlite3
import sys
import tempfile
import time
import urllib.request

from mosaic.errors import MosaicError
from mosaic.experiment.values import parse_size

DEFAULT_DB = "./cache.db"
DEFAULT_SIZE = 10**9
DOWNLOAD_TIMEOUT = 60
SQLITE_TIMEOUT = 60


class CacheDownloadError(MosaicError, OSError):
    """A url could not be downloaded (or copied into place); the message names the url."""


def db_path():
    """The absolute path of the cache database in use."""
    return os.path.abspath(os.environ.get("MOSAIC_CACHE_DB") or DEFAULT_DB)


def max_size():
    """The size limit in bytes in use."""
    value = os.environ.get("MOSAIC_CACHE_SIZE")
    if not value:
        return DEFAULT_SIZE
    try:
        return parse_size(value)
    except ValueError as error:
        raise MosaicError(f"MOSAIC_CACHE_SIZE: {error}") from None


# ---------------------------------------------------------------------------------------------------------
# Locks and database


@contextlib.contextmanager
def _flock(path):
    """An exclusive flock on `path` (created if missing), released on exit whatever happens."""
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o666)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)  # closing the descriptor releases the lock


def _url_lock(db, url):
    folder = db + ".locks"
    os.makedirs(folder, exist_ok=True)
    return _flock(os.path.join(folder, hashlib.sha256(url.encode()).hexdigest()[:40] + ".lock"))


@contextlib.contextmanager
def _database(db):
    """The database under its flock, as one transaction (committed on success, rolled back on error)."""
    folder = os.path.dirname(db)
    if folder:
        os.makedirs(folder, exist_ok=True)
    with _flock(db + ".lock"):
        connection = sqlite3.connect(db, timeout=SQLITE_TIMEOUT)
        try:
            connection.row_factory = sqlite3.Row
            connection.execute(
                "CREATE TABLE IF NOT EXISTS cache (path TEXT PRIMARY KEY, url TEXT NOT NULL, "
                "size INTEGER NOT NULL, last_use REAL NOT NULL, mtime_ns INTEGER NOT NULL, "
                "inode INTEGER NOT NULL)")
            connection.execute("CREATE INDEX IF NOT EXISTS cache_url ON cache (url)")
            # Files a user registered with save_path_file: known to the cache, never counted, never deleted.
            connection.execute(
                "CREATE TABLE IF NOT EXISTS user_files (path TEXT PRIMARY KEY, size INTEGER NOT NULL, "
                "registered REAL NOT NULL)")
            with connection:
                yield connection
        finally:
            connection.close()


def _stat(path):
    try:
        stat = os.stat(path)
    except OSError:
        return None
    return stat if os.path.isfile(path) else None


def _matches(row, stat):
    """True when `stat` is still the file the cache wrote for `row`."""
    return (stat is not None and stat.st_size == row["size"] and stat.st_mtime_ns == row["mtime_ns"]
            and stat.st_ino == row["inode"])


def _now(connection):
    """A timestamp later than every recorded last_use, so the LRU order is strict even within a tick."""
    latest = connection.execute("SELECT MAX(last_use) FROM cache").fetchone()[0]
    now = time.time()
    return now if latest is None or now > latest else latest + 1e-6


# ---------------------------------------------------------------------------------------------------------
# Download


def download_file(url, path):
    """The absolute path of a local copy of `url` at `path` (relative to the current directory).

    Reuses the cached copy when present, else downloads it; see the module docstring. Raises
    CacheDownloadError naming the url when it cannot be fetched.
    """
    url = str(url)
    path = os.path.abspath(os.fspath(path))
    db = db_path()
    limit = max_size()
    with _url_lock(db, url):
        with _database(db) as connection:
            row = connection.execute("SELECT * FROM cache WHERE path = ?", (path,)).fetchone()
            if row is not None and row["url"] == url and _matches(row, _stat(path)):
                connection.execute("UPDATE cache SET last_use = ? WHERE path = ?", (_now(connection), path))
                return path
            if row is not None:
                # Another url's file, or our file changed or gone: the row no longer describes this path.
                connection.execute("DELETE FROM cache WHERE path = ?", (path,))
            sources = [r["path"] for r in connection.execute(
                "SELECT * FROM cache WHERE url = ? AND path != ? ORDER BY last_use DESC", (url, path))
                if _matches(r, _stat(r["path"]))]

        folder = os.path.dirname(path)
        try:
            os.makedirs(folder, exist_ok=True)
        except OSError as error:
            raise CacheDownloadError(f"cannot download {url}: cannot create {folder}: {error}") from error
        temporary = _fetch(url, path, sources)
        try:
            with _database(db) as connection:
                try:
                    os.replace(temporary, path)
                except OSError as error:
                    message = f"cannot download {url}: cannot write {path}: {error}"
                    raise CacheDownloadError(message) from error
                stat = os.stat(path)
                connection.execute(
                    "INSERT OR REPLACE INTO cache (path, url, size, last_use, mtime_ns, inode) "
                    "VALUES (?, ?, ?, ?, ?, ?)",
                    (path, url, stat.st_size, _now(connection), stat.st_mtime_ns, stat.st_ino))
                _evict(connection, limit, keep=path)
        finally:
            with contextlib.suppress(FileNotFoundError):
                os.remove(temporary)
    return path


def _fetch(url, path, sources):
    """A temporary file next to `path` holding the url's content (copied from a cached copy if any)."""
    fd, temporary = tempfile.mkstemp(prefix=f".{os.path.basename(path)}.", suffix=".part",
                                     dir=os.path.dirname(path))
    try:
        with os.fdopen(fd, "wb") as out:
            if not _copy_cached(sources, out):
                _download(url, out)
            out.flush()
            os.fsync(out.fileno())
        return temporary
    except BaseException as error:
        with contextlib.suppress(OSError):
            os.remove(temporary)
        if isinstance(error, Exception) and not isinstance(error, CacheDownloadError):
            raise CacheDownloadError(f"cannot download {url}: {_describe(error)}") from error
        raise


def _copy_cached(sources, out):
    for source in sources:
        try:
            with open(source, "rb") as data:
                out.seek(0)
                out.truncate()
                shutil.copyfileobj(data, out, 1 << 20)
            return True
        except OSError:
            continue  # evicted or replaced meanwhile: try the next one, else download
    out.seek(0)
    out.truncate()
    return False


def _download(url, out):
    with urllib.request.urlopen(url, timeout=DOWNLOAD_TIMEOUT) as response:
        expected = response.headers.get("Content-Length")
        received = 0
        while True:
            block = response.read(1 << 20)
            if not block:
                break
            out.write(block)
            received += len(block)
    if expected is not None and expected.strip().isdigit() and received != int(expected):
        raise OSError(f"incomplete download: {received} of {int(expected)} bytes")


def _describe(error):
    code = getattr(error, "code", None)
    reason = getattr(error, "reason", None)
    if code is not None and reason is not None:
        return f"HTTP {code} {reason}"
    if reason is not None:
        return str(reason)
    return str(error) or type(error).__name__


def _evict(connection, limit, keep):
    """Drop least-recently-used entries (and delete their files) until the total fits `limit`."""
    total = connection.execute("SELECT COALESCE(SUM(size), 0) FROM cache").fetchone()[0]
    if total <= limit:
        return
    rows = connection.execute("SELECT * FROM cache WHERE path != ? ORDER BY last_use", (keep,)).fetchall()
    users = {row[0] for row in connection.execute("SELECT path FROM user_files")}
    # Rows whose file is gone, was replaced by someone else, or that a user registered as their own take
    # no space of ours: drop the rows first (never the files).
    valid = []
    for row in rows:
        if row["path"] not in users and _matches(row, _stat(row["path"])):
            valid.append(row)
        else:
            connection.execute("DELETE FROM cache WHERE path = ?", (row["path"],))
            total -= row["size"]
    for row in valid:
        if total <= limit:
            break
        with contextlib.suppress(FileNotFoundError):
            os.remove(row["path"])
        connection.execute("DELETE FROM cache WHERE path = ?", (row["path"],))
        total -= row["size"]
    if total > limit:
        size = connection.execute("SELECT size FROM cache WHERE path = ?", (keep,)).fetchone()[0]
        print(f"mosaic cache: {keep} ({size} bytes) is larger than the cache ({limit} bytes); kept, "
              "and every other cached file was evicted", file=sys.stderr, flush=True)


# ---------------------------------------------------------------------------------------------------------
# The original's helpers for files the user manages (mosaic.lib)


def save_path_file(path):
    """Register an existing local file as known to the cache; True when registered.

    Registering again updates the one row (no duplicates). A registered file is the user's: it counts
    against no limit and eviction never deletes it, even when a download later wrote the same path.
    A missing file is not an error (the original's tutorial registers a file that may not exist): one
    warning line on stderr, and False.
    """
    path = os.path.abspath(os.fspath(path))
    stat = _stat(path)
    if stat is None:
        print(f"mosaic cache: save_path_file: {path} is not a file; not registered", file=sys.stderr, flush=True)
        return False
    with _database(db_path()) as connection:
        connection.execute("INSERT OR REPLACE INTO user_files (path, size, registered) VALUES (?, ?, ?)",
                           (path, stat.st_size, time.time()))
    return True


def get_path_file(path):
    """True when `path` is known to the cache (downloaded by it or registered) and still exists."""
    path = os.path.abspath(os.fspath(path))
    db = db_path()
    if _stat(path) is None or not os.path.exists(db):
        return False
    with _database(db) as connection:
        found = connection.execute(
            "SELECT 1 FROM user_files WHERE path = ? UNION ALL SELECT 1 FROM cache WHERE path = ?",
            (path, path)).fetchone()
    return found is not None
