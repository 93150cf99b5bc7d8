"""A real single-node SLURM (tests/slurm/cluster.sh): the experiment goes through sbatch."""

import os
import re
import shutil
import subprocess
import tempfile

import pytest
import yaml

from tests.fakes import BIN, ROOT, Experiment, command_env, pdf_pages, png_size, small_settings

pytestmark = [pytest.mark.slow, pytest.mark.slurm]
CLUSTER = ROOT / "tests" / "slurm" / "cluster.sh"


@pytest.fixture(scope="module")
def slurm_env():
    """The environment of a running test cluster (SLURM_CONF set for our subprocesses only)."""
    if os.geteuid() != 0:
        pytest.skip("the SLURM test starts the SLURM daemons, which needs root")
    install = subprocess.run(["bash", str(CLUSTER), "install"], capture_output=True, text=True, timeout=900)
    if install.returncode != 0:
        pytest.skip(f"SLURM packages cannot be installed here: {install.stderr.strip()[-500:]}")
    state = tempfile.mkdtemp(prefix="msl", dir="/tmp")  # short: unix socket paths are limited
    started = subprocess.run(["bash", str(CLUSTER), "start", state], capture_output=True, text=True, timeout=300)
    try:
        assert started.returncode == 0, f"the test cluster did not start:\n{started.stderr[-3000:]}"
        env = command_env()
        env.update(SLURM_CONF=f"{state}/etc/slurm.conf", MOSAIC_SLURM_ACCOUNT="root",
                   MOSAIC_SLURM_PARTITION="debug")
        yield env
    finally:
        subprocess.run(["bash", str(CLUSTER), "stop", state], capture_output=True, timeout=180)
        shutil.rmtree(state, ignore_errors=True)


def test_profile_entries_are_all_commented():
    lines = (ROOT / "profiles" / "slurm" / "config.yaml").read_text().splitlines()
    for i, line in enumerate(lines):
        if line and not line.startswith("#") and not line.startswith(" "):
            assert lines[i - 1].startswith("#"), f"profiles/slurm/config.yaml: '{line}' has no comment"


def sacct_jobs(env):
    out = subprocess.run(["sacct", "-n", "-X", "-P", "-o", "JobID,JobName,State"], capture_output=True,
                         text=True, env=env, check=True, timeout=60).stdout
    return [line.split("|") for line in out.splitlines() if line and "cluster-warmup" not in line]


def slurm_profile(folder, **changes):
    """profiles/slurm with the status checks a test cluster allows (it answers at once)."""
    profile = yaml.safe_load((ROOT / "profiles" / "slurm" / "config.yaml").read_text())
    profile["slurm-init-seconds-before-status-checks"] = 6
    profile["max-status-checks-per-second"] = 2
    profile.update(changes)
    profile = {key: value for key, value in profile.items() if value is not None}
    folder.mkdir()
    (folder / "config.yaml").write_text(yaml.safe_dump(profile))
    return folder


def mosaic_run_with_profile(exp, profile, env, limit=480):
    """`mosaic_run config.ini database.db --profile <profile>` in the experiment's folder; it must succeed."""
    done = subprocess.run(
        ["timeout", "-k", "10", str(limit), str(BIN / "mosaic_run"), "config.ini", "database.db",
         "--profile", str(profile)],
        cwd=exp.folder, capture_output=True, text=True, env=env,
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    return done


def test_experiment_through_slurm_with_batching(tmp_path, slurm_env):
    exp = Experiment(tmp_path / "exp", small_settings())
    slurm_profile(tmp_path / "profile", **{"group-components": "runs=2"})  # 4 runs in 2 SLURM jobs
    before = len(sacct_jobs(slurm_env))
    mosaic_run_with_profile(exp, tmp_path / "profile", slurm_env)
    jobs = sacct_jobs(slurm_env)[before:]
    assert len(jobs) == 2 and all(state == "COMPLETED" for _, _, state in jobs), jobs
    assert exp.query("SELECT COUNT(*) FROM runs WHERE status = 'done'") == [(4,)]
    assert exp.query("SELECT COUNT(*) FROM losses") == [(8,)]
    assert pdf_pages(exp.folder / "database_plots" / "plotloss.pdf") == 1
    png_size(exp.folder / "database_plots" / "metaplot_dataset_OR_test_loss.png")


def test_plain_snakemake_with_the_slurm_profile_one_job_per_run(tmp_path, slurm_env):
    exp = Experiment(tmp_path / "exp", small_settings())
    profile = slurm_profile(tmp_path / "profile", groups=None, **{"group-components": None})
    before = len(sacct_jobs(slurm_env))
    done = subprocess.run(
        ["timeout", "-k", "10", "480", str(BIN / "snakemake"), "-s", str(ROOT / "Snakefile"), "--profile",
         str(profile), "--config", f"ini={exp.ini}", f"database={exp.db}", f"plots={exp.folder / 'plots'}"],
        cwd=exp.folder, capture_output=True, text=True, env=slurm_env,
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    jobs = sacct_jobs(slurm_env)[before:]
    assert len(jobs) == 4 and all(state == "COMPLETED" for _, _, state in jobs), jobs
    assert exp.query("SELECT COUNT(*) FROM runs WHERE status = 'done'") == [(4,)]
    assert pdf_pages(exp.folder / "plots" / "plotloss.pdf") == 1


def test_auto_replicates_submit_only_each_rounds_new_runs(tmp_path, slurm_env):
    """multiplicity = auto through the SLURM profile: round 1 submits the 6 runs of min_multiplicity 3, the
    rounds rule (local) asks for a fourth replicate of each undecided group, round 2 submits those 2 runs only."""
    exp = Experiment(tmp_path / "exp", small_settings(multiplicity="auto", widths="2"))
    exp.edit("MONITOR", "min_multiplicity", 3)
    exp.edit("MONITOR", "max_multiplicity", 4)
    slurm_profile(tmp_path / "profile", groups=None, **{"group-components": None})
    before = len(sacct_jobs(slurm_env))
    done = mosaic_run_with_profile(exp, tmp_path / "profile", slurm_env)
    assert "mosaic: round 2 (auto replicates): 2 more runs" in done.stdout, done.stdout[-3000:]
    jobs = sacct_jobs(slurm_env)[before:]
    assert len(jobs) == 8 and all(state == "COMPLETED" for _, _, state in jobs), jobs  # 6, then 2: none again
    assert exp.query("SELECT COUNT(*) FROM runs WHERE status = 'done'") == [(8,)]
    last = done.stdout.rstrip().splitlines()[-1]
    assert re.match(r"mosaic: (budget spent|decided) after 2 rounds and 8 runs: ", last), last


def recording_sbatch(folder):
    """A folder holding an `sbatch` that logs its arguments, then runs the real one."""
    real = shutil.which("sbatch")
    assert real, "sbatch not found"
    folder.mkdir()
    script = folder / "sbatch"
    script.write_text(f'#!/bin/bash\nprintf "%s\\n" "$*" >> {folder}/calls.log\nexec {real} "$@"\n')
    script.chmod(0o755)
    return folder / "calls.log"


def test_grouped_gpu_runs_ask_slurm_for_one_gpu_per_run(tmp_path, slurm_env):
    """Snakemake sums the gpu resource of a group: a SLURM job of 2 runs asks for 2 GPUs (and the
    runs spread over them, see tests/run/test_devices.py). The test cluster has no GPU: the submissions
    are refused, what matters here is what they ask for."""
    exp = Experiment(tmp_path / "exp", {**small_settings(), ("MONITOR", "need_gpu"): "True"})
    slurm_profile(tmp_path / "profile", **{"group-components": "runs=2"})
    calls = recording_sbatch(tmp_path / "bin")
    env = dict(slurm_env, PATH=f"{tmp_path / 'bin'}{os.pathsep}{slurm_env['PATH']}")
    done = subprocess.run(
        ["timeout", "-k", "10", "300", str(BIN / "mosaic_run"), "config.ini", "database.db",
         "--profile", str(tmp_path / "profile")],
        cwd=exp.folder, capture_output=True, text=True, env=env,
    )
    assert done.returncode != 0  # no GPU on the test cluster
    submissions = [line for line in calls.read_text().splitlines() if "--job-name" in line]
    assert len(submissions) == 2, submissions
    for line in submissions:
        asked = re.findall(r"--gpus[= ](\d+)|--gres[= ]gpu:(\d+)", line)
        assert [int(a or b) for a, b in asked] == [2], line
