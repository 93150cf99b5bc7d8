"""Warm starts: a job hands its run to a local fork server that has torch already imported.

Standard library only: this is the job's client side, and it must stay cheap (no torch import).

`python -m mosaic.run.job ARGS` connects to the server of this environment (starting it when absent),
sends its arguments, working folder and environment, and passes its own stdin/stdout/stderr over the
socket: the forked run writes straight into the job's log. The job then relays signals to the run and
exits with the run's exit status. Where no server can be used it trains in-process, as before.

Nobody else in: the socket folder is opened without following a link and checked through that descriptor
(this user's, 0700), every file in it is reached through the descriptor, and the client sends nothing to a
server whose user id (SO_PEERCRED) is not its own. Nothing of the server's leaks into a run: the request
carries the job's umask, CPU affinity, nice level, resource limits and sys.path, which the forked run takes
(server.apply_process); what a forked run cannot take (PYTHONHASHSEED and the other PYTHON* settings read at
start) is part of the server's key.

Switches (environment): MOSAIC_WARM_START=0 trains in-process; MOSAIC_WARM_DIR is the folder of the
sockets (default: a per-user 0700 folder under XDG_RUNTIME_DIR or the temporary folder);
MOSAIC_WARM_IDLE the seconds an idle server waits before it exits (default 300). On SLURM the job
trains in-process (a server would not outlive the allocation).
"""

import errno
import fcntl
import hashlib
import json
import os
import resource
import signal
import socket
import stat
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


class SocketFolder:
    """The socket folder, held open: every file in it is reached through this descriptor (`path`), so that
    nobody can swap the folder's name for another folder between the check and the use."""

    def __init__(self, fd, name):
        self.fd, self.name = fd, name

    def path(self, file_name):
        return f"/proc/self/fd/{self.fd}/{file_name}"

    def close(self):
        os.close(self.fd)


def socket_folder():
    """The folder of the sockets, open: one only this user can enter (created 0700; an existing one must be
    ours, 0700, and not a symbolic link)."""
    folder = os.environ.get(DIR_ENV)
    if not folder:
        base = os.environ.get("XDG_RUNTIME_DIR") or tempfile.gettempdir()
        folder = os.path.join(base, f"mosaic-warm-{os.getuid()}")
    refused = Unavailable(f"{folder} is not a private folder of this user (owner and mode 0700 needed, not a link)")
    try:
        try:
            os.mkdir(folder, 0o700)
        except FileNotFoundError:
            os.makedirs(os.path.dirname(folder), exist_ok=True)
            os.mkdir(folder, 0o700)
        except FileExistsError:
            pass
        fd = os.open(folder, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC)
    except OSError as error:
        if error.errno in (errno.ELOOP, errno.ENOTDIR):
            raise refused from None
        raise Unavailable(f"{folder}: {error.strerror}") from None
    try:
        info = os.fstat(fd)
        if not stat.S_ISDIR(info.st_mode) or info.st_uid != os.getuid() or info.st_mode & 0o077:
            raise refused
        seen = os.stat(f"/proc/self/fd/{fd}")  # the way in that `path` uses
        if (seen.st_dev, seen.st_ino) != (info.st_dev, info.st_ino):
            raise Unavailable("/proc/self/fd does not reach the socket folder")
    except BaseException:
        os.close(fd)
        raise
    return SocketFolder(fd, folder)


def code_stamp():
    """The newest modification time of this package's modules: an edited or upgraded Mosaic gets a new server."""
    package = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    newest = 0.0
    for root, _, files in os.walk(package):
        for name in files:
            if name.endswith(".py"):
                newest = max(newest, os.stat(os.path.join(root, name)).st_mtime)
    return newest


def interpreter_settings():
    """The PYTHON* variables other than PYTHONPATH (PYTHONHASHSEED, PYTHONOPTIMIZE, ...): the interpreter reads
    them once, at start, so a run gets a server started with the same ones (a forked run cannot change them)."""
    settings = {name: value for name, value in os.environ.items() if name.startswith("PYTHON") and name != "PYTHONPATH"}
    if settings.get("PYTHONHASHSEED") == "random":
        del settings["PYTHONHASHSEED"]  # the same as unset
    return sorted(settings.items())


def import_path():
    """PYTHONPATH as the interpreter takes it (absolute: a relative entry is relative to the working folder),
    less the entries that only point at Mosaic itself (the workflow adds the package's parent, mosaic_run its
    Snakemake plugins folder)."""
    package = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    package_parent = os.path.dirname(package)

    def own(path):
        return path == package_parent or path == package or path.startswith(package + os.sep)

    paths = [os.path.abspath(p) for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p]
    return [p for p in paths if not own(p)]


def server_key():
    """One server per environment: interpreter, Mosaic's code (its files' times, which change with an upgrade
    or an edit), the import path and the interpreter's start-up settings (see interpreter_settings)."""
    settings = [f"{name}={value}" for name, value in interpreter_settings()]
    # sys.prefix, not the resolved interpreter: every venv of one Python resolves to the same binary.
    text = "\0".join([sys.prefix, sys.executable, repr(code_stamp()), *import_path(), "\1", *settings])
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def current_umask():
    try:
        with open("/proc/self/status") as status:
            for line in status:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError, IndexError):
        pass
    mask = os.umask(0o022)  # the job has no other thread yet
    os.umask(mask)
    return mask


def process_state():
    """What a process has besides its environment and working folder; the forked run takes the job's
    (server.apply_process), so that it sees what it would see in the job's own process."""
    limits = {}
    for name in dir(resource):
        if name.startswith("RLIMIT_"):
            try:
                limits[name] = list(resource.getrlimit(getattr(resource, name)))
            except (ValueError, OSError):
                pass
    return {
        "umask": current_umask(),
        "affinity": sorted(os.sched_getaffinity(0)),
        "nice": os.getpriority(os.PRIO_PROCESS, 0),
        "rlimits": limits,
        "sys_path": list(sys.path),
    }


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


def peer_uid(sock):
    """The user id of the process at the other end of a Unix socket (the kernel's word, not the peer's)."""
    creds = sock.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, struct.calcsize("iII"))
    return struct.unpack("iII", creds)[1]


def connect(path):
    """A connection to the server listening at `path`, None when none listens; a server of another user is
    refused before anything is sent to it."""
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        sock.connect(path)
        uid = peer_uid(sock)
    except OSError:
        sock.close()
        return None
    if uid != os.getuid():
        sock.close()
        raise Unavailable(f"the warm-start socket is served by user {uid}, not by this user")
    return sock


def start_server(folder, name):
    """Start the server of this environment unless another job is starting it; wait until it listens."""
    path = folder.path(name)
    flags = os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC
    lock = os.open(name + ".lock", os.O_RDWR | flags, 0o600, dir_fd=folder.fd)
    try:
        fcntl.flock(lock, fcntl.LOCK_EX)  # one starter at a time; the others then find it listening
        sock = connect(path)
        if sock is not None:
            return sock
        try:
            os.unlink(name, dir_fd=folder.fd)  # a stale socket of a server that died
        except FileNotFoundError:
            pass
        # It runs in "/" (it must not hold an experiment's folder), so it finds this package by PYTHONPATH,
        # made absolute as this interpreter took it.
        package_parent = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
        paths = [os.path.abspath(p) for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p]
        env = dict(os.environ, PYTHONPATH=os.pathsep.join([package_parent, *paths]))
        log = os.open(name + ".log", os.O_WRONLY | os.O_APPEND | flags, 0o600, dir_fd=folder.fd)
        try:  # the server binds `path` through its copy of the folder's descriptor
            process = subprocess.Popen(
                [sys.executable, "-m", "mosaic.run.server", path], cwd="/", env=env, stdin=subprocess.DEVNULL,
                stdout=log, stderr=log, start_new_session=True, pass_fds=(folder.fd,),  # outlives this job
            )
        finally:
            os.close(log)
        deadline = time.monotonic() + START_TIMEOUT_S
        while time.monotonic() < deadline:
            sock = connect(path)
            if sock is not None:
                return sock
            if process.poll() is not None:
                log_path = os.path.join(folder.name, name + ".log")
                raise Unavailable(f"the warm-start server exited with status {process.returncode}; see {log_path}")
            time.sleep(0.02)
        raise Unavailable(f"the warm-start server did not listen within {START_TIMEOUT_S:.0f} s")
    finally:
        os.close(lock)


def hand_over(argv):
    """Connect and send the run; returns (socket, pid of the run's process)."""
    request = {"argv": list(argv), "cwd": os.getcwd(), "env": dict(os.environ), "process": process_state()}
    folder = socket_folder()
    try:
        name = server_key() + ".sock"
        sock = connect(folder.path(name)) or start_server(folder, name)
    finally:
        folder.close()
    try:
        send_message(sock, request, fds=(0, 1, 2))
        reply = receive_message(sock)
    except OSError as error:
        sock.close()
        raise Unavailable(f"warm-start server: {error}") from None
    if reply and "refused" in reply:
        sock.close()
        raise Unavailable(f"the warm-start server cannot run it as this process would: {reply['refused']}")
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
        folder = socket_folder()
    except Unavailable:
        return

    def start():
        try:
            name = server_key() + ".sock"
            sock = connect(folder.path(name)) or start_server(folder, name)
            sock.close()
        except (Unavailable, OSError):
            pass
        finally:
            folder.close()

    import threading

    threading.Thread(target=start, daemon=True).start()


def run_job(argv, train_in_process):
    """The job's entry point: the run through the warm server, else `train_in_process(argv)`. Whatever stops
    the hand-over (a folder or socket that is not this user's, a file it cannot open) costs one warning line."""
    if not enabled():
        return train_in_process(argv)
    try:
        sock, pid = hand_over(argv)
    except (Unavailable, OSError) as error:
        reason = " ".join(str(error).split())
        print(f"mosaic: no warm start ({reason}); training in this process", file=sys.stderr, flush=True)
        return train_in_process(argv)
    return relay(sock, pid)
