"""The warm-start fork server: `python -m mosaic.run.server SOCKET` (started by the first job, see warm.py).

It imports torch, numpy, torch._dynamo and the training code once, then forks one child per job; the
child takes the job's stdin/stdout/stderr, working folder and environment, and runs the same
`mosaic.run.job.main` a job runs in-process. Fork safety: the server runs no torch operation (no
intra-op thread pool exists at fork time, CUDA is never initialised here); each child sets its own
thread count and seeds (train_run does both) and selects its GPU before CUDA starts.

The child reports its pid, then its exit status, straight to the job over the connection; the server
keeps no copy of it. So a killed server loses no run in progress (its children finish and report), a
killed job ends its run (the child sees the connection close), and a killed run is seen by the job
(the connection closes without a status). The server exits after MOSAIC_WARM_IDLE seconds without a job.
"""

import gc
import os
import signal
import socket
import sys
import threading
import time
import traceback

from mosaic.run import warm

CLIENT_GONE_EXIT = 4  # as when Snakemake is gone (job.watch_snakemake)


def preload():
    """Import what every run imports, without running any torch operation."""
    import numpy  # noqa: F401
    import torch  # noqa: F401
    import torch._dynamo  # noqa: F401  (the first optimizer step imports it: 1 s of a cold job)
    import torch.nn  # noqa: F401
    import torch.optim  # noqa: F401
    import torch.utils.data  # noqa: F401

    import mosaic.run.job  # noqa: F401
    import mosaic.run.training  # noqa: F401

    gc.freeze()  # what is loaded now stays shared with the forked runs (no collector writes to it)


def watch_client(sock, finished):
    """End this run when the job that handed it over is gone (kill -9 of the job)."""

    def watch():
        try:
            while sock.recv(1024):
                pass
        except OSError:
            pass
        if finished.is_set():  # the job closed after reading the exit status
            return
        print("mosaic: the job is gone; stopping this run", file=sys.stderr, flush=True)
        os._exit(CLIENT_GONE_EXIT)

    threading.Thread(target=watch, daemon=True).start()


def take_stdio(fds):
    for target, fd in enumerate(fds[:3]):
        os.dup2(fd, target)
        os.close(fd)
    sys.stdin = open(0, closefd=False)
    sys.stdout = open(1, "w", buffering=1, closefd=False)
    sys.stderr = open(2, "w", buffering=1, closefd=False)


def child(sock, request, fds):
    """In the forked process: become the job's run, report the pid, run job.main, report its status."""
    for signum in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP, signal.SIGCHLD):
        signal.signal(signum, signal.SIG_DFL)
    status = 1
    finished = threading.Event()
    try:
        take_stdio(fds)
        os.chdir(request["cwd"])
        os.environ.clear()
        os.environ.update(request["env"])
        sys.path[0] = os.getcwd()  # as `python -m` sets it: the working folder
        sys.argv = ["python -m mosaic.run.job", *request["argv"]]
        warm.send_message(sock, {"pid": os.getpid()})
        watch_client(sock, finished)
        from mosaic.run import job

        try:
            status = job.main(request["argv"])
        except SystemExit as exit_:
            status = exit_.code if isinstance(exit_.code, int) else (0 if exit_.code is None else 1)
        except KeyboardInterrupt:
            status = 128 + signal.SIGINT
        status = status or 0
    except BaseException:
        traceback.print_exc()
    finally:
        try:
            sys.stdout.flush()
            sys.stderr.flush()
            finished.set()
            warm.send_message(sock, {"exit": status})
        except BaseException:  # the job is gone: nothing to tell
            pass
        os._exit(status if isinstance(status, int) else 1)


def peer_is_us(sock):
    """The connecting process runs as this user (the folder is private too: a second lock)."""
    creds = sock.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, 12)
    uid = int.from_bytes(creds[4:8], sys.byteorder)
    return uid == os.getuid()


def serve(path, idle_s):
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    listener.bind(path)
    listener.listen(64)
    listener.settimeout(1.0)
    bound = os.stat(path).st_ino
    children = set()
    last_activity = time.monotonic()
    print(f"mosaic warm-start server {os.getpid()} listening on {path}", flush=True)
    try:
        while True:
            for pid in list(children):
                done, _ = os.waitpid(pid, os.WNOHANG)
                if done:
                    children.discard(pid)
                    last_activity = time.monotonic()
            if not children and time.monotonic() - last_activity > idle_s:
                return
            try:
                os.stat(path)
            except FileNotFoundError:  # replaced or removed: a newer server owns the name
                return
            try:
                sock, _ = listener.accept()
            except TimeoutError:
                continue
            last_activity = time.monotonic()
            sock.settimeout(None)
            try:
                if not peer_is_us(sock):
                    sock.close()
                    continue
                payload, fds, _, _ = socket.recv_fds(sock, 1 << 20, 3)
                request = parse_request(sock, payload)
            except (OSError, ValueError) as error:
                print(f"mosaic: bad request: {error}", file=sys.stderr, flush=True)
                sock.close()
                continue
            sys.stdout.flush()
            sys.stderr.flush()
            pid = os.fork()
            if pid == 0:
                listener.close()
                child(sock, request, fds)
            children.add(pid)
            print(f"run {pid}: {' '.join(request['argv'])} in {request['cwd']}", flush=True)
            sock.close()  # only the child and the job hold the connection now
            for fd in fds:
                os.close(fd)
    finally:
        listener.close()
        try:
            if os.stat(path).st_ino == bound:
                os.unlink(path)
        except FileNotFoundError:
            pass


def parse_request(sock, payload):
    """The request whose first bytes are `payload` (length-prefixed JSON; the rest read from `sock`)."""
    import json
    import struct

    if len(payload) < 4:
        raise ValueError("short request")
    size = struct.unpack("!I", payload[:4])[0]
    data = payload[4:]
    if len(data) < size:
        rest = warm.receive_exactly(sock, size - len(data))
        if rest is None:
            raise ValueError("truncated request")
        data += rest
    request = json.loads(data)
    if not isinstance(request.get("argv"), list) or "cwd" not in request or "env" not in request:
        raise ValueError("request without argv, cwd and env")
    return request


def main(argv=None):
    argv = sys.argv[1:] if argv is None else argv
    if len(argv) != 1:
        print("usage: python -m mosaic.run.server SOCKET", file=sys.stderr)
        return 2
    idle_s = float(os.environ.get(warm.IDLE_ENV) or warm.DEFAULT_IDLE_S)
    preload()
    serve(argv[0], idle_s)
    return 0


if __name__ == "__main__":
    sys.exit(main())
