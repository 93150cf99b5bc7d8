"""The warm-start fork server: `python -m mosaic.run.server SOCKET` (started by the first job, see warm.py).

It imports torch, numpy, torch._dynamo and the training code once, then forks one child per connection,
before reading it (an idle client holds up no other job; the child drops it after REQUEST_TIMEOUT_S). The
child takes the job's stdin/stdout/stderr, working folder, environment, umask, CPU affinity, nice level,
resource limits and sys.path, and runs the same `mosaic.run.job.main` a job runs in-process; where it
cannot take one of them, it says so and the job trains in its own process. Fork safety: the server runs
no torch operation (no intra-op thread pool exists at fork time, CUDA is never initialised here); each
child sets its own thread count and seeds (train_run does both) and selects its GPU before CUDA starts.

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
REQUEST_TIMEOUT_S = 30.0  # a connection that sends no request within this is dropped


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


def apply_process(state):
    """Give this forked run the job's umask, CPU affinity, nice level and resource limits (all of them).
    Returns what cannot be given (the job then trains in its own process), else None."""
    import resource

    os.umask(int(state["umask"]))
    steps = [
        ("CPU affinity", lambda: os.sched_setaffinity(0, [int(cpu) for cpu in state["affinity"]])),
        ("nice level", lambda: os.setpriority(os.PRIO_PROCESS, 0, int(state["nice"]))),
    ]
    for name, (soft, hard) in state["rlimits"].items():
        if not name.startswith("RLIMIT_") or not hasattr(resource, name):
            return f"{name}: not a resource limit of this interpreter"
        limit, values = getattr(resource, name), (int(soft), int(hard))
        steps.append((name, lambda limit=limit, values=values: resource.setrlimit(limit, values)))
    for what, step in steps:
        try:
            step()
        except (OSError, ValueError) as error:
            return f"{what}: {error}"
    return None


def take_import_path(sys_path):
    """The job's sys.path, in its order. Returns the first module this server imported that the job's path
    finds elsewhere (a forked run cannot import it again: the job trains in its own process), else None."""
    import importlib

    sys.path[:] = [str(entry) for entry in sys_path]
    importlib.invalidate_caches()
    for name, module in list(sys.modules.items()):
        spec = getattr(module, "__spec__", None)
        if "." in name or spec is None or spec.name != name or not spec.has_location:
            continue
        found = None
        for finder in sys.meta_path:
            try:
                found = finder.find_spec(name, None)
            except Exception:  # a finder of some package that cannot answer: ask the next one
                found = None
            if found is not None:
                break
        if found is None or found.origin != spec.origin:
            where = found.origin if found is not None else "nowhere"
            return f"the job's sys.path finds module {name} at {where}, this server imported {spec.origin}"
    return None


def become_the_job(request):
    """The job's process settings, working folder and import path; returns what cannot be taken, or None."""
    refused = apply_process(request["process"])
    if refused:
        return refused
    try:
        os.chdir(request["cwd"])
    except OSError as error:
        return f"cannot enter {request['cwd']}: {error.strerror}"
    return take_import_path(request["process"]["sys_path"])


def child(sock):
    """In the process forked for one connection: read the job's request (a client that sends none within
    REQUEST_TIMEOUT_S is dropped; it holds up no other job), become the job's run, report the pid, run
    job.main, report its status."""
    for signum in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP, signal.SIGCHLD):
        signal.signal(signum, signal.SIG_DFL)
    try:
        sock.settimeout(REQUEST_TIMEOUT_S)
        payload, fds, _, _ = socket.recv_fds(sock, 1 << 20, 3)
        request = parse_request(sock, payload)
        sock.settimeout(None)
        refused = become_the_job(request)
    except (OSError, ValueError, KeyError, TypeError, AttributeError) as error:
        print(f"mosaic: bad request: {error}", file=sys.stderr, flush=True)
        os._exit(1)
    if refused:
        print(f"run {os.getpid()} refused: {refused}", flush=True)
        try:
            warm.send_message(sock, {"refused": refused})
        finally:
            os._exit(0)
    print(f"run {os.getpid()}: {' '.join(request['argv'])} in {request['cwd']}", flush=True)
    run(sock, request, fds)


def run(sock, request, fds):
    status = 1
    finished = threading.Event()
    try:
        take_stdio(fds)
        os.environ.clear()
        os.environ.update(request["env"])
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
    return warm.peer_uid(sock) == os.getuid()


def serve(path, idle_s):
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    listener.bind(path)
    listener.listen(64)
    listener.settimeout(1.0)
    bound = os.stat(path).st_ino
    children = set()
    last_activity = time.monotonic()
    print(f"mosaic warm-start server {os.getpid()} listening on {os.path.realpath(path)}", flush=True)
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
            try:
                ours = peer_is_us(sock)
            except OSError:
                ours = False
            if not ours:
                sock.close()
                continue
            sys.stdout.flush()
            sys.stderr.flush()
            pid = os.fork()  # before reading anything: one process a connection, none waits for another
            if pid == 0:
                listener.close()
                child(sock)
            children.add(pid)
            sock.close()  # only the child and the job hold the connection now
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
    if not isinstance(request.get("argv"), list) or not all(key in request for key in ("cwd", "env", "process")):
        raise ValueError("request without argv, cwd, env and process")
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
