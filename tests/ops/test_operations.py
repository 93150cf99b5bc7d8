"""Operating an experiment (issue B): status, snapshots, failures, reruns, rekey, incremental edits,
pause, crash recovery and concurrent experiments; real Snakemake runs in temporary folders."""

import os
import re
import signal
import subprocess

import pytest

from tests.fakes import BIN, ROOT, Experiment, command_env, pdf_pages, png_size, small_settings, wait_until

pytestmark = pytest.mark.slow

BAD_MODEL = '''
from mlp import mlp_brick


class mlp_bad(mlp_brick):
    def forward(self, data, run_info, module_info):
        if module_info["width"] == 3:
            raise ValueError("width 3 is not supported")
        return super().forward(data, run_info, module_info)
'''


def start(exp, *args):
    return subprocess.Popen(
        [str(BIN / "mosaic_run"), "config.ini", "database.db", *args], cwd=exp.folder,
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=command_env(),
    )


def status(exp):
    return exp.command("mosaic_status").stdout  # empty until mosaic_run has saved its session


def section(text, name):
    """The lines of one part (Done, Error, Running) of mosaic_status's output."""
    parts = re.split(r"^(Done|Error|Running|Pending.*)$", text, flags=re.M)
    return parts[parts.index(name) + 1].strip("\n").splitlines() if name in parts else []


def losses(exp, run_id, db=None):
    return exp.query(f"SELECT epoch, train_loss, test_loss FROM losses WHERE run_id = {run_id} ORDER BY epoch", db)


def test_status_while_running_and_after(tmp_path):
    exp = Experiment(tmp_path / "exp", small_settings(epochs=60, processes=1))
    process = start(exp)
    running = wait_until(lambda: section(status(exp), "Running"))
    assert re.fullmatch(r"\t\[\d+\] dataset_OR\(1,200,0\.8\) \| mlp_\w+\(4,\d\)\t(epoch \d+/60|starting)", running[0])
    # A snapshot while it runs: what is done, what runs, what waits; independent of the experiment.
    exp.command("mosaic_savedb", "copy.db", check=0)
    statuses = {s for (s,) in exp.query("SELECT status FROM runs", exp.folder / "copy.db")}
    assert "running" in statuses and statuses <= {"done", "running", "pending"}
    refused = exp.command("mosaic_savedb", "database.db", check=2)
    assert "own database" in refused.stderr
    process.wait(timeout=300)
    assert process.returncode == 0
    done = section(status(exp), "Done")
    assert len(done) == 4
    assert re.fullmatch(r"\t\[1\] train_loss=\d\.\d{3}E[-+]\d\d\ttest_loss=\d\.\d{3}E[-+]\d\d"
                        r"\texecution_time=\d\.\d{3}E[-+]\d\d", done[0])
    exp.query("DELETE FROM runs", exp.folder / "copy.db")  # the copy is ours to change


def test_failed_runs_are_recorded_and_retried_after_the_fix(tmp_path):
    exp = Experiment(tmp_path / "exp", small_settings())
    (exp.folder / "bad.py").write_text(BAD_MODEL)
    exp.edit("mlp_brick", "class", "mlp_bad")
    exp.edit("mlp_brick", "path_to_class", "bad.py")
    result = exp.run(check=1)
    assert "1 of 4 runs failed: 4" in result.stdout
    assert re.search(r"^ \[run failed\] 4: ValueError: width 3 is not supported$", result.stdout, re.M)
    rows = exp.query("SELECT run_id, status, error FROM runs ORDER BY run_id")
    assert [r[1] for r in rows] == ["done", "done", "done", "error"]
    assert "ValueError: width 3 is not supported" in rows[3][2] and "Traceback" in rows[3][2]
    assert pdf_pages(exp.folder / "database_plots" / "plotloss.pdf") == 1
    png_size(exp.folder / "database_plots" / "metaplot_data_dataset_OR_test_loss.png")
    error = section(status(exp), "Error")
    assert error[0] == "\t[4] dataset_OR(1,200,0.8) | mlp_bad(4,3)" and any("ValueError" in x for x in error)

    before = exp.result_mtimes()
    (exp.folder / "bad.py").write_text(BAD_MODEL.replace("== 3", "== 99"))
    fixed = exp.run().stdout
    assert sorted(re.findall(r"launch (\d+)", fixed)) == ["3", "4"]  # exactly the runs using bad.py
    after = exp.result_mtimes()
    funnel = [h for h in before if h in after and before[h] == after[h]]
    assert len(funnel) == 2
    assert {s for (s,) in exp.query("SELECT status FROM runs")} == {"done"}


def test_rerun_continues_finished_runs_and_retrains_selected_ones(tmp_path):
    exp = Experiment(tmp_path / "exp", small_settings(epochs=3))
    exp.run()
    first = {i: losses(exp, i) for i in range(1, 5)}
    mtimes = exp.result_mtimes()

    out = exp.command("mosaic_rerun", "config.ini", "database.db", "-id", "1,3", "-epochs", "2", check=0).stdout
    assert sorted(re.findall(r"launch (\d+)", out)) == ["1", "3"]
    for run_id in (1, 3):
        extended = losses(exp, run_id)
        assert [row[0] for row in extended] == [1, 2, 3, 4, 5]
        assert extended[:3] == first[run_id]  # the curve is appended to
    assert exp.query("SELECT run_id, epochs FROM runs ORDER BY run_id") == [(1, 5), (2, 3), (3, 5), (4, 3)]
    assert losses(exp, 2) == first[2]
    changed = {h for h, t in exp.result_mtimes().items() if mtimes[h] != t}
    assert len(changed) == 2

    # -param without -epochs: from scratch, with the same seed, so the same curve as at first.
    out = exp.command("mosaic_rerun", "config.ini", "database.db", "-param", "width", "3", check=0).stdout
    assert sorted(re.findall(r"launch (\d+)", out)) == ["2", "4"]  # funnel and brick of width 3
    assert losses(exp, 2) == first[2] and losses(exp, 4) == first[4]
    # -epoch (the original's spelling) and -id all are accepted; a later plain run changes nothing.
    exp.command("mosaic_rerun", "config.ini", "database.db", "-id", "all", "-status", "error", "-epoch", "1",
                check=2)
    assert "launch" not in exp.run().stdout


def test_rerun_of_failed_runs_only(tmp_path):
    exp = Experiment(tmp_path / "exp", small_settings())
    (exp.folder / "bad.py").write_text(BAD_MODEL)
    exp.edit("mlp_brick", "class", "mlp_bad")
    exp.edit("mlp_brick", "path_to_class", "bad.py")
    exp.run(check=1)
    mtimes = exp.result_mtimes()
    out = exp.command("mosaic_rerun", "config.ini", "database.db", "-status", "error", "-epochs", "4",
                      check=1).stdout
    assert re.findall(r"launch (\d+)", out) == ["4"]
    assert exp.result_mtimes() == mtimes


def test_rekey_regroups_without_training(tmp_path):
    exp = Experiment(tmp_path / "exp", small_settings())
    exp.run()
    mtimes = exp.result_mtimes()
    exp.edit("mlp_funnel", "key", "{class}_w{width}")
    exp.edit("mlp_brick", "key", "{class}_w{width}")
    out = exp.command("mosaic_rekey", "config.ini", "database.db", check=0).stdout
    assert "launch" not in out
    assert exp.result_mtimes() == mtimes
    keys = [k for (k,) in exp.query("SELECT model_key FROM runs ORDER BY run_id")]
    assert keys == ["mlp_funnel_w2", "mlp_funnel_w3", "mlp_brick_w2", "mlp_brick_w3"]


def test_incremental_edits_train_only_new_runs(tmp_path):
    exp = Experiment(tmp_path / "exp", small_settings())
    exp.run()
    mtimes = exp.result_mtimes()
    exp.edit("mlp_funnel", "width", "{2-4}")
    out = exp.run().stdout
    assert "5 runs, 1 to train" in out and re.findall(r"launch (\d+)", out) == ["3"]
    exp.edit("MONITOR", "multiplicity", "2")
    out = exp.run().stdout
    assert "10 runs, 5 to train" in out
    assert all(exp.result_mtimes()[h] == t for h, t in mtimes.items())
    exp.edit("mlp_brick", "width", "3")  # removing a value: its files stay, out of the database
    out = exp.run().stdout
    assert "launch" not in out
    assert exp.query("SELECT COUNT(*) FROM runs") == [(8,)]
    assert len(exp.result_mtimes()) == 10

    # A plot option: only the plots are redone (plain Snakemake in the experiment's folder).
    db_mtime = exp.db.stat().st_mtime_ns
    done = subprocess.run(
        [str(BIN / "snakemake"), "-s", str(ROOT / "Snakefile"), "--cores", "1", "--config", f"ini={exp.ini}",
         f"database={exp.db}", f"plots={exp.folder / 'database_plots'}", "plot_size=2"],
        cwd=exp.folder, capture_output=True, text=True, timeout=300, env=command_env(),
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert exp.db.stat().st_mtime_ns == db_mtime
    assert pdf_pages(exp.folder / "database_plots" / "plotloss.pdf") == 2  # 8 panels, 2 x 2 a page


def test_pause_then_resume_and_ctrl_c(tmp_path):
    exp = Experiment(tmp_path / "exp", small_settings(epochs=40, processes=1))
    process = start(exp)
    wait_until(lambda: section(status(exp), "Running"))
    exp.command("mosaic_pause", check=0)
    output, _ = process.communicate(timeout=300)
    # Paused with runs left: a distinct exit status, and how many remain.
    assert process.returncode == 4 and "paused; 3 runs remain" in output, output
    # Snakemake stopped scheduling: no job was started only to exit at once.
    logs = [path.read_text() for path in exp.runs_dir().glob("*/train.log")]
    assert len(logs) == 1 and not any("not started" in text for text in logs), logs
    states = [s for (s,) in exp.query("SELECT status FROM runs", None)] if exp.db.exists() else []
    done_after_pause = len(section(status(exp), "Done"))
    assert done_after_pause == 1, (output, states)

    # Ctrl-C behaves like pause: the running run finishes, no new one starts.
    process = start(exp)
    wait_until(lambda: section(status(exp), "Running"))
    process.send_signal(signal.SIGINT)
    output, _ = process.communicate(timeout=300)
    assert "paused" in output, output
    assert len(section(status(exp), "Done")) == 2

    out = exp.command("mosaic_resume", check=0).stdout
    assert len(re.findall(r"launch (\d+)", out)) == 2
    assert exp.query("SELECT COUNT(*) FROM runs WHERE status = 'done'") == [(4,)]


# kill -9 at random moments with resumes: tests/e2e/test_faults.py


def test_crash_of_snakemake_alone_leaves_no_orphan_training(tmp_path):
    exp = Experiment(tmp_path / "exp", small_settings(epochs=200, processes=1))
    process = start(exp)
    wait_until(lambda: section(status(exp), "Running"))
    snakemake = subprocess.run(["pgrep", "-f", f"snakemake.*{exp.folder}"], capture_output=True, text=True)
    for pid in snakemake.stdout.split():
        os.kill(int(pid), signal.SIGKILL)
    process.wait(timeout=60)
    # The job notices its Snakemake is gone and stops; the run is then not Running.
    wait_until(lambda: not section(status(exp), "Running"), timeout=30)
    exp.edit("PROCESS", "epochs", "3")
    exp.run()
    assert exp.query("SELECT COUNT(*) FROM runs WHERE status = 'done'") == [(4,)]


def test_two_experiments_at_once_in_different_folders(tmp_path):
    first = Experiment(tmp_path / "one", small_settings(epochs=5, processes=1))
    second = Experiment(tmp_path / "two", small_settings(epochs=5, processes=1))
    processes = [start(first), start(second)]
    outputs = [p.communicate(timeout=600)[0] for p in processes]
    assert [p.returncode for p in processes] == [0, 0], outputs
    for exp in (first, second):
        assert exp.query("SELECT COUNT(*) FROM runs WHERE status = 'done'") == [(4,)]
