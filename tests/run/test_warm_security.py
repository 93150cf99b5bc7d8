"""Nobody else in the warm-start server (mosaic/run/warm.py, server.py). A second local user (`nobody`, in a
forked child of these root-run tests: it keeps the interpreter already loaded) who swaps the socket folder
for a link, or listens on a socket in it, gets nothing of a job's hand-over; an error on the way costs one
warning line and the job trains in its own process. One idle client holds up no other job."""

import ctypes
import os
import pwd
import select
import shutil
import signal
import socket
import struct
import subprocess
import sys
import tempfile

import pytest

from mosaic.run import warm
from tests.fakes import Warm

NOBODY = pwd.getpwnam("nobody")
KEY = "0123456789abcdef"  # the server key, fixed: other sessions edit Mosaic's files, which changes the real one
SECRET = "s3cret-token-of-the-job"
two_users = pytest.mark.skipif(os.getuid() != 0, reason="becoming a second user needs root")


def become_nobody():
    os.setgroups([])
    os.setgid(NOBODY.pw_gid)
    os.setuid(NOBODY.pw_uid)
    ctypes.CDLL(None).prctl(4, 1, 0, 0, 0)  # PR_SET_DUMPABLE: its own /proc/self/fd, as a login of nobody has


@pytest.fixture
def shared_tmp(monkeypatch):
    """A folder like /tmp (mode 1777) that both users reach, as the job's temporary folder; the job's
    environment as a user's, with a secret in it."""
    folder = tempfile.mkdtemp(prefix="mosaic-two-users-", dir="/tmp")
    os.chmod(folder, 0o1777)
    monkeypatch.setenv("TMPDIR", folder)
    monkeypatch.setattr(tempfile, "tempdir", None)  # gettempdir() reads TMPDIR again
    for name in ("XDG_RUNTIME_DIR", warm.DIR_ENV, warm.ENABLE_ENV, "SLURM_JOB_ID"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("MOSAIC_TEST_SECRET", SECRET)
    monkeypatch.setattr(warm, "server_key", lambda: KEY)
    handlers = {signum: signal.getsignal(signum) for signum in warm.RELAYED_SIGNALS}
    yield folder
    for signum, handler in handlers.items():  # a hand-over (before the fix) relays this process's signals
        signal.signal(signum, handler)
    shutil.rmtree(folder, ignore_errors=True)


def folder_of_nobody(path, mode=0o755):
    os.mkdir(path, mode)
    os.chown(path, NOBODY.pw_uid, NOBODY.pw_gid)
    os.chmod(path, mode)
    return path


class Impostor:
    """A process of user nobody listening on `socket_path`: it records what a client sends and answers as
    the server would ("run started", "exit 0") without running anything. With `link`, it first makes
    `link` a symbolic link to `decoy`, and points it at `socket_path`'s folder when told to (`swap`)."""

    def __init__(self, socket_path, link=None, decoy=None):
        commands, self._commands = os.pipe()
        self._events, events = os.pipe()
        self.received = b""
        self.pid = os.fork()
        if self.pid == 0:
            try:
                os.close(self._commands)
                os.close(self._events)
                self._serve(socket_path, link, decoy, commands, events)
            finally:
                os._exit(0)
        os.close(commands)
        os.close(events)
        assert self._read_event() == b"ready"

    @staticmethod
    def _serve(socket_path, link, decoy, commands, events):
        become_nobody()
        if link:
            os.symlink(decoy, link)
        listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        listener.bind(socket_path)
        listener.listen(8)
        os.write(events, b"ready")
        if link and os.read(commands, 4) == b"swap":
            os.symlink(os.path.dirname(socket_path), link + ".new")
            os.rename(link + ".new", link)
            os.write(events, b"swapped")
        listener.settimeout(60)
        connection, _ = listener.accept()
        connection.settimeout(10)
        received = b""
        try:
            payload, fds, _, _ = socket.recv_fds(connection, 1 << 20, 3)
            received = payload
            size = struct.unpack("!I", payload[:4])[0] if len(payload) >= 4 else 0
            while len(received) < size + 4:
                chunk = connection.recv(1 << 20)
                if not chunk:
                    break
                received += chunk
        except OSError:
            pass
        os.write(events, b"data" + received)
        try:
            warm.send_message(connection, {"pid": os.getpid()})
            warm.send_message(connection, {"exit": 0})
        except OSError:
            pass

    def _read_event(self, timeout=60):
        ready, _, _ = select.select([self._events], [], [], timeout)
        return os.read(self._events, 1 << 22) if ready else b""

    def swap(self):
        os.write(self._commands, b"swap")
        assert self._read_event() == b"swapped"

    def finish(self):
        """What the impostor received; ends it."""
        events = b""
        while select.select([self._events], [], [], 1.0)[0]:
            chunk = os.read(self._events, 1 << 20)
            if not chunk:
                break
            events += chunk
        self.received = events[4:] if events.startswith(b"data") else b""
        os.kill(self.pid, signal.SIGKILL)
        os.waitpid(self.pid, 0)
        os.close(self._commands)
        os.close(self._events)
        return self.received


def hand_over_or_train(capfd):
    """The job's entry point, in this process: returns (how it trained, the job's stderr lines)."""
    trained = []
    status = warm.run_job(["config.ini", "0123456789abcdef"], lambda argv: trained.append(argv) or 0)
    err = capfd.readouterr().err
    return ("in-process" if trained else f"handed over (exit {status})"), err.splitlines()


@two_users
def test_a_link_swapped_in_for_the_socket_folder_between_the_check_and_the_connect_gets_nothing(
    shared_tmp, monkeypatch, capfd
):
    """nobody makes /tmp/mosaic-warm-0 a link to a private folder of root's (it passes a check that follows
    links), then, once the job has checked it, to a folder of its own where it listens."""
    evil = folder_of_nobody(os.path.join(shared_tmp, "evil"))
    decoy = os.path.join(shared_tmp, "decoy")
    os.mkdir(decoy, 0o700)
    link = os.path.join(shared_tmp, f"mosaic-warm-{os.getuid()}")
    impostor = Impostor(os.path.join(evil, KEY + ".sock"), link=link, decoy=decoy)
    connect = socket.socket.connect
    swapped = []

    def connect_after_the_swap(sock, address):  # the attacker wins the race, every time
        if isinstance(address, str) and not swapped:
            impostor.swap()
            swapped.append(address)
        return connect(sock, address)

    monkeypatch.setattr(socket.socket, "connect", connect_after_the_swap)
    try:
        how, err = hand_over_or_train(capfd)
    finally:
        received = impostor.finish()
    assert_nothing_sent_and_trained_in_process(received, how, err, "not a link")
    assert not os.listdir(decoy)


def assert_nothing_sent_and_trained_in_process(received, how, err, reason):
    """The impostor got nothing, the job trained in its own process, with one warning line giving `reason`."""
    assert SECRET.encode() not in received and received == b""
    assert how == "in-process"
    assert len(err) == 1 and err[0].startswith("mosaic: no warm start (") and reason in err[0], err


@two_users
def test_a_socket_of_another_user_in_the_private_folder_gets_nothing(shared_tmp, monkeypatch, capfd):
    """The client asks the kernel who listens (SO_PEERCRED) before it sends anything."""
    private = os.path.join(shared_tmp, "private")
    os.mkdir(private, 0o700)
    monkeypatch.setenv(warm.DIR_ENV, private)
    evil = folder_of_nobody(os.path.join(shared_tmp, "evil"))
    impostor = Impostor(os.path.join(evil, "listening.sock"))
    os.rename(os.path.join(evil, "listening.sock"), os.path.join(private, KEY + ".sock"))
    try:
        how, err = hand_over_or_train(capfd)
    finally:
        received = impostor.finish()
    assert_nothing_sent_and_trained_in_process(received, how, err, f"user {NOBODY.pw_uid}")


@two_users
def test_a_lock_file_the_user_cannot_open_costs_one_warning_line_and_the_job_trains_in_process(shared_tmp):
    """nobody's socket folder holds a .sock.lock of root's (a `sudo` run once, say): PermissionError."""
    folder = folder_of_nobody(os.path.join(shared_tmp, f"mosaic-warm-{NOBODY.pw_uid}"), 0o700)
    with open(os.path.join(folder, KEY + ".sock.lock"), "w"):
        pass
    os.chmod(os.path.join(folder, KEY + ".sock.lock"), 0o600)
    err_read, err_write = os.pipe()
    pid = os.fork()
    if pid == 0:
        status = 99
        try:
            os.close(err_read)
            become_nobody()
            sys.stderr = os.fdopen(err_write, "w")
            status = warm.run_job(["config.ini", "0123456789abcdef"], lambda argv: 42)
        except BaseException as error:
            print(f"{type(error).__name__}: {error}", file=sys.stderr, flush=True)
        finally:
            sys.stderr.flush()
            os._exit(status if isinstance(status, int) else 98)
    os.close(err_write)
    with os.fdopen(err_read) as stream:
        err = stream.read().splitlines()
    _, wait_status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(wait_status) == 42, err  # 42: trained in its own process
    assert len(err) == 1 and err[0].startswith("mosaic: no warm start (") and "Permission denied" in err[0], err


def test_an_idle_client_holds_up_no_job(tmp_path):
    """A client that connects and sends nothing: the next job is served all the same."""
    setup = Warm(tmp_path)
    try:
        rc, _, err = setup.job(0)
        assert rc == 0, err
        (path,) = setup.dir.glob("*.sock")
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as idle:
            idle.connect(str(path))
            job = setup.start_job(1)
            try:
                rc, _, err = setup.finish(job, timeout=90)
            except subprocess.TimeoutExpired:
                job.kill()
                job.wait()
                pytest.fail("the job waited behind an idle client for 90 s")
            assert rc == 0, err
            assert "no warm start" not in err
            assert setup.run_pid(1)
    finally:
        setup.stop_servers()
