"""mosaic_run over the life of an experiment: failed runs recorded and retried after the fix, edits of the ini
training only the new runs, two experiments at once. Real Snakemake runs in temporary folders."""

import re
import subprocess

import pytest

from tests.fakes import (
    BAD_MODEL,
    BIN,
    ROOT,
    Experiment,
    command_env,
    pdf_pages,
    png_size,
    small_settings,
    start_run,
    status_of,
    status_section,
)

pytestmark = pytest.mark.slow


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
    png_size(exp.folder / "database_plots" / "metaplot_dataset_OR_test_loss.png")
    error = status_section(status_of(exp), "Error")
    assert error[0] == "\t[4] dataset_OR(batch_size=1, data_size=200, train_prop=0.8) | mlp_bad(length=4, width=3)"
    assert any("ValueError" in x for x in error)

    before = exp.result_mtimes()
    (exp.folder / "bad.py").write_text(BAD_MODEL.replace("== 3", "== 99"))
    fixed = exp.run().stdout
    assert sorted(re.findall(r"launch (\d+)", fixed)) == ["3", "4"]  # exactly the runs using bad.py
    after = exp.result_mtimes()
    funnel = [h for h in before if h in after and before[h] == after[h]]
    assert len(funnel) == 2
    assert {s for (s,) in exp.query("SELECT status FROM runs")} == {"done"}


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


def test_two_experiments_at_once_in_different_folders(tmp_path):
    first = Experiment(tmp_path / "one", small_settings(epochs=5, processes=1))
    second = Experiment(tmp_path / "two", small_settings(epochs=5, processes=1))
    processes = [start_run(first), start_run(second)]
    outputs = [p.communicate(timeout=600)[0] for p in processes]
    assert [p.returncode for p in processes] == [0, 0], outputs
    for exp in (first, second):
        assert exp.query("SELECT COUNT(*) FROM runs WHERE status = 'done'") == [(4,)]


ALWAYS_RAISES = '''\
from mlp import mlp_brick


class mlp_raises(mlp_brick):
    def forward(self, data, run_info, module_info):
        raise RuntimeError("boom in forward")
'''


def test_a_class_failing_every_run_stops_mosaic_run_before_snakemake(tmp_path):
    """The pre-flight: one message naming the user's line, exit 2, nothing launched or written; --no-preflight
    launches the runs, which fail as they did before the check existed."""
    exp = Experiment(tmp_path / "exp", small_settings())
    (exp.folder / "bad.py").write_text(ALWAYS_RAISES)
    exp.edit("mlp_brick", "class", "mlp_raises")
    exp.edit("mlp_brick", "path_to_class", "bad.py")
    result = exp.run(check=2)
    assert result.stderr == ("mosaic_run: bad.py:6: RuntimeError: boom in forward (pre-flight of run 3,"
                             " dataset_OR(1,200,0.8) | mlp_raises(4,2): nothing was launched; --no-preflight skips"
                             " this check)\n")
    assert result.stdout == "mosaic: 4 runs, 4 to train, 2 at a time\n"
    assert not exp.runs_dir().exists() and not exp.db.exists() and not (exp.folder / ".snakemake").exists()

    result = exp.run("--no-preflight", check=1)
    assert "2 of 4 runs failed: 3, 4" in result.stdout
    assert [status for (status,) in exp.query("SELECT status FROM runs ORDER BY run_id")] == [
        "done", "done", "error", "error"]


def test_an_ini_without_monitor_warns_before_training_and_succeeds(tmp_path):
    exp = Experiment(tmp_path / "exp", small_settings(widths="2"))
    text = exp.ini.read_text()
    exp.ini.write_text(text[:text.index("[MONITOR]")] + text[text.index("[dataset_OR]"):])
    result = exp.run(check=0)
    assert result.stderr.splitlines()[0] == (
        "mosaic: warning: config.ini: no [MONITOR] section: each run is trained once (multiplicity = 1); add"
        " [MONITOR] multiplicity = 3 for replicates to compare")
    assert exp.query("SELECT COUNT(*) FROM runs WHERE status = 'done'") == [(2,)]
