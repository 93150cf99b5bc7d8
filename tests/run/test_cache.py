"""The download cache (mosaic.run.cache): hits, true LRU eviction, safety of user files, failures, concurrency."""

import http.server
import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

import mosaic
from mosaic.errors import MosaicError
from mosaic.run import cache
from tests.fakes import cache_bytes, cache_rows

ROOT = Path(__file__).resolve().parents[2]


class Server:
    """A local HTTP server on 127.0.0.1 serving `files` (url path -> bytes), counting hits per path."""

    def __init__(self):
        self.files = {}
        self.hits = {}
        self.delay = 0.0
        self.lock = threading.Lock()
        owner = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self):
                with owner.lock:
                    owner.hits[self.path] = owner.hits.get(self.path, 0) + 1
                    body = owner.files.get(self.path)
                if owner.delay:
                    time.sleep(owner.delay)
                if body is None:
                    self.send_error(404)
                    return
                self.send_response(200)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args):
                pass

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.thread = threading.Thread(target=self.httpd.serve_forever, kwargs={"poll_interval": 0.05},
                                       daemon=True)
        self.thread.start()

    def url(self, name):
        return f"http://127.0.0.1:{self.httpd.server_address[1]}/{name}"

    def add(self, name, body):
        self.files[f"/{name}"] = body
        return self.url(name)

    def hit_count(self, name):
        return self.hits.get(f"/{name}", 0)

    def stop(self):
        self.httpd.shutdown()
        self.httpd.server_close()
        self.thread.join(5)


@pytest.fixture
def server():
    instance = Server()
    yield instance
    instance.stop()


def paths():
    return [entry["path"] for entry in cache_rows()]


def test_file_url_download_hit_and_relative_path(tmp_path, use_cache, monkeypatch):
    source = tmp_path / "source.bin"
    source.write_bytes(b"x" * 100)
    monkeypatch.chdir(tmp_path)
    result = mosaic.download_file(source.as_uri(), "data/copy.bin")
    assert result == str(tmp_path / "data" / "copy.bin")
    assert Path(result).read_bytes() == b"x" * 100
    first = cache_rows()
    assert [(e["url"], e["path"], e["size"]) for e in first] == [(source.as_uri(), result, 100)]

    source.write_bytes(b"y" * 100)  # a second call must not fetch again
    mtime = os.stat(result).st_mtime_ns
    assert cache.download_file(source.as_uri(), str(tmp_path / "data" / "copy.bin")) == result
    assert Path(result).read_bytes() == b"x" * 100 and os.stat(result).st_mtime_ns == mtime
    second = cache_rows()
    assert len(second) == 1 and second[0]["last_use"] > first[0]["last_use"]
    assert not [p for p in (tmp_path / "data").iterdir() if p.name.endswith(".part")]


def test_http_download_only_once(tmp_path, use_cache, server):
    url = server.add("a.bin", b"a" * 1000)
    target = tmp_path / "out" / "a.bin"
    for _ in range(3):
        assert cache.download_file(url, target) == str(target)
    assert server.hit_count("a.bin") == 1
    assert target.read_bytes() == b"a" * 1000
    assert len(cache_rows()) == 1 and cache_bytes() == 1000


def test_same_url_at_another_path_is_copied_not_fetched(tmp_path, use_cache, server):
    url = server.add("a.bin", b"a" * 300)
    cache.download_file(url, tmp_path / "one.bin")
    cache.download_file(url, tmp_path / "two.bin")
    assert server.hit_count("a.bin") == 1
    assert (tmp_path / "two.bin").read_bytes() == b"a" * 300
    assert sorted(paths()) == [str(tmp_path / "one.bin"), str(tmp_path / "two.bin")]
    assert cache_bytes() == 600


def test_eviction_is_lru_not_fifo(tmp_path, use_cache, server):
    use_cache(250)
    urls = {name: server.add(name, name.encode() * 100) for name in "abc"}
    cache.download_file(urls["a"], tmp_path / "a")
    cache.download_file(urls["b"], tmp_path / "b")
    cache.download_file(urls["a"], tmp_path / "a")  # a hit: a is now more recent than b
    cache.download_file(urls["c"], tmp_path / "c")
    assert not (tmp_path / "b").exists()  # FIFO would have removed a
    assert (tmp_path / "a").exists() and (tmp_path / "c").exists()
    assert paths() == [str(tmp_path / "a"), str(tmp_path / "c")]
    assert server.hit_count("a") == 1 and cache_bytes() == 200


def test_eviction_never_deletes_files_the_cache_did_not_create(tmp_path, use_cache, server):
    use_cache(250)
    user_file = tmp_path / "mine.txt"
    user_file.write_bytes(b"u" * 1000)
    urls = {name: server.add(name, name.encode() * 100) for name in "abcd"}
    cache.download_file(urls["a"], tmp_path / "a")
    cache.download_file(urls["b"], tmp_path / "b")
    (tmp_path / "a").write_bytes(b"user data now")  # the user replaced the cached file: no longer ours
    cache.download_file(urls["c"], tmp_path / "c")
    cache.download_file(urls["d"], tmp_path / "d")
    assert user_file.read_bytes() == b"u" * 1000
    assert (tmp_path / "a").read_bytes() == b"user data now"
    assert not (tmp_path / "b").exists()
    assert paths() == [str(tmp_path / "c"), str(tmp_path / "d")]


def test_changed_file_is_downloaded_again(tmp_path, use_cache, server):
    url = server.add("a.bin", b"a" * 100)
    target = tmp_path / "a.bin"
    cache.download_file(url, target)
    target.write_bytes(b"broken")
    cache.download_file(url, target)
    assert target.read_bytes() == b"a" * 100 and server.hit_count("a.bin") == 2
    target.unlink()
    cache.download_file(url, target)
    assert target.read_bytes() == b"a" * 100 and server.hit_count("a.bin") == 3
    assert len(cache_rows()) == 1


def test_file_larger_than_the_cache_is_kept_and_others_evicted(tmp_path, use_cache, server, capsys):
    use_cache(150)
    small = {name: server.add(name, name.encode() * 50) for name in "ab"}
    big = server.add("big", b"B" * 400)
    cache.download_file(small["a"], tmp_path / "a")
    cache.download_file(small["b"], tmp_path / "b")
    assert cache.download_file(big, tmp_path / "big") == str(tmp_path / "big")
    assert "larger than the cache" in capsys.readouterr().err
    assert (tmp_path / "big").stat().st_size == 400
    assert not (tmp_path / "a").exists() and not (tmp_path / "b").exists()
    assert paths() == [str(tmp_path / "big")]
    # A later call hits it; a later download evicts it once it is the least recently used.
    cache.download_file(big, tmp_path / "big")
    assert server.hit_count("big") == 1
    cache.download_file(small["a"], tmp_path / "a")
    assert not (tmp_path / "big").exists() and paths() == [str(tmp_path / "a")]


def test_failed_download_raises_leaves_nothing_and_does_not_block(tmp_path, use_cache, server):
    target = tmp_path / "out" / "data.bin"
    missing = server.url("nothing")
    with pytest.raises(cache.CacheDownloadError, match="nothing.*404"):
        cache.download_file(missing, target)
    gone = (tmp_path / "no-such-file").as_uri()
    with pytest.raises(cache.CacheDownloadError, match="no-such-file"):
        cache.download_file(gone, target)
    assert not target.exists() and list(target.parent.iterdir()) == []
    assert cache_rows() == []

    server.add("nothing", b"n" * 10)  # the same url works once it exists: nothing is left blocking it
    assert cache.download_file(missing, target) == str(target)
    assert target.read_bytes() == b"n" * 10 and paths() == [str(target)]


def test_truncated_download_is_an_error(tmp_path, use_cache, server):
    server.files["/short"] = b"s" * 10
    original = server.httpd.RequestHandlerClass.do_GET

    def lying(handler):
        handler.send_response(200)
        handler.send_header("Content-Length", "100")
        handler.end_headers()
        handler.wfile.write(b"s" * 10)
        handler.close_connection = True

    server.httpd.RequestHandlerClass.do_GET = lying
    try:
        with pytest.raises(cache.CacheDownloadError, match="short"):
            cache.download_file(server.url("short"), tmp_path / "short")
    finally:
        server.httpd.RequestHandlerClass.do_GET = original
    assert list(tmp_path.glob("*short*")) == [] and cache_rows() == []


CHILD = """
import os, sys, time
from pathlib import Path
import mosaic
ready, go = Path(sys.argv[1]), Path(sys.argv[2])
ready.touch()
while not go.exists():
    time.sleep(0.005)
print(mosaic.download_file(sys.argv[3], sys.argv[4]))
"""


def test_concurrent_processes_download_once(tmp_path, server):
    server.delay = 0.4  # the first download is slow, so the others arrive while it runs
    url = server.add("shared.bin", b"s" * 5000)
    target = tmp_path / "data" / "shared.bin"
    env = dict(os.environ, MOSAIC_CACHE_DB=str(tmp_path / "cache.db"), MOSAIC_CACHE_SIZE="1M",
               PYTHONPATH=str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    go = tmp_path / "go"
    children = []
    for i in range(4):
        ready = tmp_path / f"ready{i}"
        children.append((ready, subprocess.Popen(
            [sys.executable, "-c", CHILD, str(ready), str(go), url, str(target)], env=env, cwd=tmp_path,
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)))
    try:
        deadline = time.monotonic() + 8
        while not all(ready.exists() for ready, _ in children) and time.monotonic() < deadline:
            time.sleep(0.01)
        go.touch()
        outputs = [child.communicate(timeout=8) for _, child in children]
    finally:
        for _, child in children:
            if child.poll() is None:
                child.kill()
                child.wait()
    assert [child.returncode for _, child in children] == [0] * 4, outputs
    assert [out.strip() for out, _ in outputs] == [str(target)] * 4
    assert server.hit_count("shared.bin") == 1
    assert target.read_bytes() == b"s" * 5000
    assert [(e["url"], e["size"]) for e in cache_rows(tmp_path / "cache.db")] == [(url, 5000)]
    assert [p.name for p in target.parent.iterdir()] == ["shared.bin"]


def test_concurrent_threads_download_once(tmp_path, use_cache, server):
    server.delay = 0.2
    url = server.add("t.bin", b"t" * 700)
    results, errors = [], []

    def call():
        try:
            results.append(cache.download_file(url, tmp_path / "t.bin"))
        except Exception as error:  # reported below
            errors.append(error)

    threads = [threading.Thread(target=call) for _ in range(5)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(10)
    assert errors == [] and results == [str(tmp_path / "t.bin")] * 5
    assert server.hit_count("t.bin") == 1


def test_settings_from_environment(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("MOSAIC_CACHE_DB", raising=False)
    monkeypatch.delenv("MOSAIC_CACHE_SIZE", raising=False)
    assert cache.db_path() == str(tmp_path / "cache.db") and cache.max_size() == 10**9
    monkeypatch.setenv("MOSAIC_CACHE_DB", str(tmp_path / "sub" / "c.db"))
    monkeypatch.setenv("MOSAIC_CACHE_SIZE", "1.5G")
    assert cache.db_path() == str(tmp_path / "sub" / "c.db") and cache.max_size() == 1_500_000_000
    monkeypatch.setenv("MOSAIC_CACHE_SIZE", "12345")
    assert cache.max_size() == 12345
    monkeypatch.setenv("MOSAIC_CACHE_SIZE", "lots")
    with pytest.raises(MosaicError, match="MOSAIC_CACHE_SIZE"):
        cache.max_size()

    monkeypatch.setenv("MOSAIC_CACHE_SIZE", "150")
    source = tmp_path / "s"
    source.write_bytes(b"z" * 100)
    cache.download_file(source.as_uri(), "x")
    cache.download_file(source.as_uri(), "y")  # 200 > 150 bytes: x is evicted
    assert (tmp_path / "sub" / "c.db").exists() and not (tmp_path / "x").exists()
    assert [e["path"] for e in cache_rows()] == [str(tmp_path / "y")]


@pytest.mark.parametrize("text, size", [
    ("500K", 500_000), ("1M", 10**6), ("2G", 2 * 10**9), ("1.5G", 1_500_000_000), ("1T", 10**12),
    ("1024", 1024), (2048, 2048), ("10MB", 10**7), ("2k", 2000),
])
def test_parse_size(text, size):
    assert cache.parse_size(text) == size


@pytest.mark.parametrize("text", ["", "1.5", "G", "-1M", "0", "1X", "big"])
def test_parse_size_rejects(text):
    with pytest.raises(ValueError):
        cache.parse_size(text)


def test_import_mosaic_stays_cheap():
    code = ("import sys, mosaic; assert callable(mosaic.download_file); "
            "print(sorted(m for m in ('mosaic.run.cache', 'sqlite3', 'urllib.request') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                         cwd=ROOT, timeout=30).stdout
    assert out.strip() == "[]"
