"""Nothing of the warm-start server leaks into a run (mosaic/run/server.py, warm.py): a run forked by the
server sees what it sees in the job's own process (umask and the modes of the files it creates, CPU affinity,
nice level, resource limits, hash seed, sys.path and what it imports, environment, working folder), or the
job trains in its own process."""

import colorsys
import json
import os
import resource
import shutil
import subprocess
import sys

from mosaic import runfiles
from mosaic.run import warm
from tests.fakes import Warm

PROBE = '''

def _probe():
    """What this process has: written where MOSAIC_PROBE says, when the run loads this file."""
    import json
    import os
    import resource
    import sys

    out = os.environ.get("MOSAIC_PROBE")
    if not out:
        return
    with open("/proc/self/status") as status:
        umask = next(line.split()[1] for line in status if line.startswith("Umask:"))
    for made in (out + ".file", out + ".dir"):
        if os.path.isdir(made):
            os.rmdir(made)
        elif os.path.exists(made):
            os.remove(made)
    open(out + ".file", "w").close()
    os.mkdir(out + ".dir")
    import iniconfig  # in site-packages, and in the user's PYTHONPATH folder, first

    record = {
        "umask": umask,
        "file mode": oct(os.stat(out + ".file").st_mode),
        "folder mode": oct(os.stat(out + ".dir").st_mode),
        "affinity": sorted(os.sched_getaffinity(0)),
        "nice": os.getpriority(os.PRIO_PROCESS, 0),
        "rlimits": {n: resource.getrlimit(getattr(resource, n)) for n in dir(resource) if n.startswith("RLIMIT_")},
        "hash seed": hash("mosaic probe"),
        "sys.path": sys.path,
        "iniconfig": iniconfig.__file__,
        "env": {k: v for k, v in os.environ.items() if k != "MOSAIC_WARM_START"},
        "cwd": os.getcwd(),
    }
    with open(out, "w") as handle:
        json.dump(record, handle)


_probe()
'''


def as_a_user_would_start_it():
    """The job's own process: umask 002, `nice -n 3`, `taskset` to one CPU, `ulimit -n 900 -v 1T -c 0`."""
    os.umask(0o002)
    os.nice(3)
    cpus = sorted(os.sched_getaffinity(0))
    os.sched_setaffinity(0, cpus[:1])
    for limit, soft in ((resource.RLIMIT_NOFILE, 900), (resource.RLIMIT_AS, 1 << 40), (resource.RLIMIT_CORE, 0)):
        hard = resource.getrlimit(limit)[1]
        resource.setrlimit(limit, (soft if hard == resource.RLIM_INFINITY else min(soft, hard), hard))


def start_job(setup, index, preexec_fn=None, **env):
    setup.out, setup.err = setup.dir.parent / f"job{index}.out", setup.dir.parent / f"job{index}.err"
    with open(setup.out, "w") as out, open(setup.err, "w") as err:
        return subprocess.Popen(
            [sys.executable, "-m", "mosaic.run.job", "config.ini", setup.run_hash(index)],
            cwd=setup.experiment.folder, env={**setup.env, **env}, stdout=out, stderr=err, preexec_fn=preexec_fn,
        )


def modes(folder):
    return {path.name: oct(path.stat().st_mode) for path in [folder, *folder.iterdir()]}


def test_a_warm_run_sees_what_the_in_process_run_sees(tmp_path):
    setup = Warm(tmp_path)
    (setup.experiment.folder / "dataset.py").write_text((setup.experiment.folder / "dataset.py").read_text() + PROBE)
    mods = setup.experiment.folder / "mods"
    mods.mkdir()
    (mods / "iniconfig.py").write_text("# the user's own iniconfig\n")
    pythonpath = os.pathsep.join(filter(None, ["mods", setup.env.get("PYTHONPATH")]))  # relative, as typed
    env = {"PYTHONPATH": pythonpath, "PYTHONHASHSEED": "123"}
    probe = tmp_path / "probe.json"
    try:
        rc, _, err = setup.finish(start_job(setup, 0, **env))  # starts the server: umask 022, nice 0, ...
        assert rc == 0, err

        env["MOSAIC_PROBE"] = str(probe)
        rc, _, err = setup.finish(start_job(setup, 1, as_a_user_would_start_it, **env))
        assert rc == 0, err
        assert "no warm start" not in err and setup.run_pid(1)
        warm_run, warm_modes = json.loads(probe.read_text()), modes(setup.folder(1))

        shutil.rmtree(setup.folder(1))
        env[warm.ENABLE_ENV] = "0"
        rc, _, err = setup.finish(start_job(setup, 1, as_a_user_would_start_it, **env))
        assert rc == 0, err
        in_process, in_process_modes = json.loads(probe.read_text()), modes(setup.folder(1))
    finally:
        setup.stop_servers()
    assert in_process["umask"] == "0002" and in_process["nice"] >= 3  # the job's, as set
    assert in_process["iniconfig"] == str(mods / "iniconfig.py")
    differing = {key: {"warm": warm_run.get(key), "in-process": value} for key, value in in_process.items()
                 if warm_run.get(key) != value}
    assert not differing, "\n".join(f"{key}: {values}" for key, values in differing.items())
    assert warm_run == in_process
    assert warm_modes == in_process_modes
    assert json.loads((setup.folder(1) / runfiles.RESULT).read_text())["status"] == "done"


def test_a_module_the_server_imported_that_the_jobs_path_finds_elsewhere_makes_the_job_train_in_process(tmp_path):
    """The experiment's folder holds its own colorsys.py (first on the job's sys.path); the server imported
    the standard one with torch and cannot import it again."""
    setup = Warm(tmp_path)
    own = setup.experiment.folder / "colorsys.py"
    shutil.copy(colorsys.__file__, own)
    try:
        rc, out, err = setup.job(0)
    finally:
        setup.stop_servers()
    assert rc == 0, err
    assert "no warm start" in err and "colorsys" in err, err
    assert len([line for line in err.splitlines() if "no warm start" in line]) == 1
    assert json.loads((setup.folder(0) / runfiles.RESULT).read_text())["status"] == "done"


def test_a_job_with_another_hash_seed_gets_another_server(monkeypatch):
    """PYTHONHASHSEED is read when the interpreter starts: a forked run cannot take the job's."""
    monkeypatch.delenv("PYTHONHASHSEED", raising=False)
    monkeypatch.setattr(warm, "code_stamp", lambda: 0.0)  # other sessions edit Mosaic's files meanwhile
    key = warm.server_key()
    monkeypatch.setenv("PYTHONHASHSEED", "0")
    assert warm.server_key() != key
    monkeypatch.setenv("PYTHONHASHSEED", "random")  # the same as unset
    assert warm.server_key() == key
    monkeypatch.setenv("PYTHONHASHSEED", "123")
    seed_123 = warm.server_key()
    assert seed_123 != key
    monkeypatch.setenv("PYTHONOPTIMIZE", "1")
    assert warm.server_key() != seed_123
