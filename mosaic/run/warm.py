"""Warm starts: a job hands its run to a local fork server that has torch already imported.

Standard library only: this is the job's client side, and it must stay cheap (no torch import).

`python -m mosaic.run.job ARGS` connects to the server of this environment (starting it when absent),
sends its arguments, working folder and environment, and passes its own stdin/stdout/stderr over the
socket: the forked run writes straight into the job's log. The job then relays signals to the run and
exits with the run's exit status. Where no server can be used it trains in-process, as before.

Switches (environment): MOSAIC_WARM_START=0 trains in-process; MOSAIC_WARM_DIR is the folder of the
sockets (default: a per-user 0700 folder under XDG_RUNTIME_DIR or the temporary folder);
MOSAIC_WARM_IDLE the seconds an idle server waits before it exits (default 300). On SLURM the job
trains in-process (a server would not outlive the allocation).
"""

import fcntl
import hashlib
import json
import os
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import time

ENABLE_ENV = "MOSAIC_WARM_START"
DIR_ENV = "MOSAIC_WARM_DIR"
IDLE_ENV = "MOSAIC_WARM_IDLE"
DEFAULT_IDLE_S = 300.0
START_TIMEOUT_S = 120.0  # importing torch on a loaded 2-core machine takes up to ~10 s
RELAYED_SIGNALS = (signal.SIGTERM, signal.SIGINT, signal.SIGHUP, signal.SIGQUIT, signal.SIGUSR1, signal.SIGUSR2)


class Unavailable(Exception):
    """No server can be used: the job trains in-process."""


# ---------------------------------------------------------------------------------------------------------
# Where the server of this environment listens


def enabled():
    if os.environ.get(ENABLE_ENV, "1").strip().lower() in ("0", "false", "no", "off"):
        return False
    return not os.environ.get("SLURM_JOB_ID")


def socket_dir():
    """A folder only this user can enter (created 0700; an existing one must be ours and 0700)."""
    folder = os.environ.get(DIR_ENV)
    if not folder:
        base = os.environ.get("XDG_RUNTIME_DIR") or tempfile.gettempdir()
        folder = os.path.join(base, f"mosaic-warm-{os.getuid()}")
    try:
        os.makedirs(folder, mode=0o700, exist_ok=True)
        info = os.stat(folder)
    except OSError as error:
        raise Unavailable(f"{folder}: {error}") from None
    if info.st_uid != os.getuid() or info.st_mode & 0o077:
        raise Unavailable(f"{folder} is not a private folder of this user (owner and mode 0700 needed)")
    return folder


def code_stamp():
    """The newest modification time of this package's modules: an edited or upgraded Mosaic gets a new server."""
    package = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    newest = 0.0
    for root, _, files in os.walk(package):
        for name in files:
            if name.endswith(".py"):
                newest = max(newest, os.stat(os.path.join(root, name)).st_mtime)
    return newest


def server_key():
    """One server per environment: interpreter, Mosaic's code (its files' times, which change with an
    upgrade or an edit) and the import path it was started with, less the entries that only point at
    Mosaic itself (the workflow adds the package's parent, mosaic_run its Snakemake plugins folder)."""
    package = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    package_parent = os.path.dirname(package)

    def own(path):
        return path == package_parent or path == package or path.startswith(package + os.sep)

    paths = [p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p and not own(p)]
    # sys.prefix, not the resolved interpreter: every venv of one Python resolves to the same binary.
    text = "\0".join([sys.prefix, sys.executable, repr(code_stamp()), *paths])
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def socket_path():
    path = os.path.join(socket_dir(), server_key() + ".sock")
    if len(path.encode()) >= 100:  # sun_path holds 108 bytes
        raise Unavailable(f"{path}: too long for a Unix socket")
    return path


# ---------------------------------------------------------------------------------------------------------
# Messages: a 4-byte length, then JSON


def send_message(sock, message, fds=()):
    data = json.dumps(message).encode()
    payload = struct.pack("!I", len(data)) + data
    if fds:
        socket.send_fds(sock, [payload], list(fds))
    else:
        sock.sendall(payload)


def receive_exactly(sock, size):
    data = b""
    while len(data) < size:
        chunk = sock.recv(size - len(data))
        if not chunk:
            return None
        data += chunk
    return data


def receive_message(sock):
    """The next message, or None when the other side closed the connection."""
    header = receive_exactly(sock, 4)
    if header is None:
        return None
    data = receive_exactly(sock, struct.unpack("!I", header)[0])
    return None if data is None else json.loads(data)


# ---------------------------------------------------------------------------------------------------------
# The client: connect (start the server when needed), hand over the run, relay signals and the exit status


def connect(path):
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        sock.connect(path)
    except OSError:
        sock.close()
        return None
    return sock


def start_server(path):
    """Start the server of this environment unless another job is starting it; wait until it listens."""
    with open(path + ".lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # one starter at a time; the others then find it listening
        sock = connect(path)
        if sock is not None:
            return sock
        try:
            os.unlink(path)  # a stale socket of a server that died
        except FileNotFoundError:
            pass
        # It runs in "/" (it must not hold an experiment's folder), so it finds this package by PYTHONPATH.
        package_parent = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
        env = dict(os.environ)
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [package_parent, env.get("PYTHONPATH")]))
        with open(path + ".log", "ab") as log:
            process = subprocess.Popen(
                [sys.executable, "-m", "mosaic.run.server", path], cwd="/", env=env, stdin=subprocess.DEVNULL,
                stdout=log, stderr=log, start_new_session=True, close_fds=True,  # outlives this job and its group
            )
        deadline = time.monotonic() + START_TIMEOUT_S
        while time.monotonic() < deadline:
            sock = connect(path)
            if sock is not None:
                return sock
            if process.poll() is not None:
                raise Unavailable(f"the warm-start server exited with status {process.returncode}; see {path}.log")
            time.sleep(0.02)
        raise Unavailable(f"the warm-start server did not listen within {START_TIMEOUT_S:.0f} s")


def hand_over(argv):
    """Connect and send the run; returns (socket, pid of the run's process)."""
    path = socket_path()
    sock = connect(path) or start_server(path)
    try:
        send_message(sock, {"argv": list(argv), "cwd": os.getcwd(), "env": dict(os.environ)}, fds=(0, 1, 2))
        reply = receive_message(sock)
    except OSError as error:
        sock.close()
        raise Unavailable(f"warm-start server: {error}") from None
    if not reply or "pid" not in reply:
        sock.close()
        raise Unavailable("the warm-start server did not start the run")
    return sock, int(reply["pid"])


def relay(sock, pid):
    """Forward signals to the run until it reports its exit status; returns that status."""
    received = []

    def forward(signum, frame):
        received.append(signum)
        try:
            os.kill(pid, signum)
        except ProcessLookupError:
            pass

    for signum in RELAYED_SIGNALS:
        signal.signal(signum, forward)
    while True:
        try:
            reply = receive_message(sock)
            break
        except InterruptedError:  # a relayed signal; keep waiting for the run's answer
            continue
    sock.close()
    if reply is not None and "exit" in reply:
        return int(reply["exit"])
    if received:  # the run died of the signal we relayed: die of it too, as an in-process run would
        signal.signal(received[-1], signal.SIG_DFL)
        os.kill(os.getpid(), received[-1])
    print(f"mosaic: the run's process {pid} ended without an exit status (killed?)", file=sys.stderr, flush=True)
    return 1


def prestart():
    """Start this environment's server in the background (mosaic_run does, so that its imports overlap
    Snakemake's start-up); never fails."""
    if not enabled():
        return
    try:
        path = socket_path()
    except Unavailable:
        return
    sock = connect(path)
    if sock is not None:
        sock.close()
        return

    def start():
        try:
            start_server(path).close()
        except (Unavailable, OSError):
            pass

    import threading

    threading.Thread(target=start, daemon=True).start()


def run_job(argv, train_in_process):
    """The job's entry point: the run through the warm server, else `train_in_process(argv)`."""
    if not enabled():
        return train_in_process(argv)
    try:
        sock, pid = hand_over(argv)
    except Unavailable as error:
        print(f"mosaic: no warm start ({error}); training in this process", file=sys.stderr, flush=True)
        return train_in_process(argv)
    return relay(sock, pid)
