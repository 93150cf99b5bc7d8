"""A run is retrained for its content only: not for the ini's name, a comment in a class file or
more epochs (which continue the finished runs); its folder describes it without the ini."""

import json
import re
import subprocess

import pytest

from tests.fakes import BIN, ROOT, Experiment, command_env, set_key, small_settings


def snakemake(exp, ini="config.ini", database="database.db"):
    """Plain Snakemake in the experiment's folder; returns its output."""
    done = subprocess.run(
        [str(BIN / "snakemake"), "-s", str(ROOT / "Snakefile"), "--cores", "2", "--config", f"ini={ini}",
         f"database={database}", f"plots={database}_plots"],
        cwd=exp.folder, capture_output=True, text=True, timeout=600, env=command_env(),
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return done.stdout + done.stderr


def trained(output):
    """How many training jobs Snakemake ran."""
    return len(re.findall(r"^(local)?rule train:", output, flags=re.M))


def launched(output):
    return re.findall(r"launch (\d+)", output)


@pytest.mark.slow
def test_copying_or_renaming_the_ini_retrains_nothing(tmp_path):
    exp = Experiment(tmp_path / "exp", small_settings())
    exp.run()
    mtimes = exp.result_mtimes()
    copy = exp.folder / "exp2.ini"
    copy.write_text(set_key(exp.ini.read_text(), "mlp_funnel", "width", "{2-4}"))
    out = exp.command("mosaic_run", "exp2.ini", "exp2.db", check=0).stdout
    assert "5 runs, 1 to train" in out and launched(out) == ["3"], out
    (exp.folder / "renamed.ini").write_text(exp.ini.read_text())
    assert trained(snakemake(exp, "renamed.ini", "renamed.db")) == 0
    assert {h: t for h, t in exp.result_mtimes().items() if h in mtimes} == mtimes


@pytest.mark.slow
def test_comments_retrain_nothing_code_changes_retrain_the_runs_using_it(tmp_path):
    exp = Experiment(tmp_path / "exp", small_settings())
    exp.run()
    mtimes = exp.result_mtimes()
    mlp = exp.folder / "mlp.py"
    mlp.write_text("# a comment at the top\n\n" + mlp.read_text().replace("\n\n", "\n\n\n") + "\n# and below\n")
    assert launched(exp.run().stdout) == []
    mlp.write_text(mlp.read_text() + "# one more\n")
    assert trained(snakemake(exp)) == 0
    assert exp.result_mtimes() == mtimes

    mlp.write_text(mlp.read_text() + "UNUSED_SETTING = 1\n")  # code: the runs of its classes retrain
    assert trained(snakemake(exp)) == 4
    newer = exp.result_mtimes()
    assert all(newer[h] > t for h, t in mtimes.items())
    dataset = exp.folder / "dataset.py"
    dataset.write_text(dataset.read_text() + "\nANOTHER_SETTING = 2\n")
    assert sorted(launched(exp.run().stdout)) == ["1", "2", "3", "4"]


@pytest.mark.slow
def test_raising_epochs_continues_the_finished_runs(tmp_path):
    exp = Experiment(tmp_path / "exp", small_settings(epochs=2, widths="2"))
    exp.run()
    before = exp.query("SELECT run_id, epoch, train_loss, test_loss FROM losses ORDER BY run_id, epoch")
    exp.edit("PROCESS", "epochs", "4")
    exp.run()
    for folder in (path.parent for path in exp.runs_dir().glob("*/spec.json")):
        assert "continuing from the checkpoint at epoch 2" in (folder / "train.log").read_text()
        assert not (folder / "checkpoint.pt").exists()
    after = exp.query("SELECT run_id, epoch, train_loss, test_loss FROM losses ORDER BY run_id, epoch")
    assert [row for row in after if row[1] <= 2] == before
    assert exp.query("SELECT epochs FROM runs") == [(4,), (4,)]

    # The same as training 4 epochs at once.
    clean = Experiment(tmp_path / "clean", small_settings(epochs=4, widths="2"))
    clean.run()
    assert clean.query("SELECT run_id, epoch, train_loss, test_loss FROM losses ORDER BY run_id, epoch") == after

    # Through plain Snakemake too; lowering the epochs retrains from scratch.
    exp.edit("PROCESS", "epochs", "5")
    assert trained(snakemake(exp)) == 2
    assert exp.query("SELECT MAX(epoch) FROM losses") == [(5,)]
    exp.edit("PROCESS", "epochs", "3")
    assert trained(snakemake(exp)) == 2
    assert exp.query("SELECT run_id, epoch, train_loss, test_loss FROM losses ORDER BY run_id, epoch") == [
        row for row in after if row[1] <= 3
    ]


@pytest.mark.slow
def test_result_json_describes_the_run_without_the_ini(tmp_path):
    exp = Experiment(tmp_path / "exp", small_settings(widths="2"))
    exp.run()
    hashes = [h for (h,) in exp.query("SELECT run_hash FROM runs ORDER BY run_id")]
    result = json.loads((exp.runs_dir() / hashes[1] / "result.json").read_text())
    modules = {m["type"]: m for m in result["modules"]}
    assert modules["mlp"]["class"] == "mlp_brick" and modules["mlp"]["params"]["width"] == 2
    assert modules["mlp"]["section"] == "mlp_brick" and modules["mlp"]["path_to_class"] == "mlp.py"
    assert "dataset" in modules and result["process"]["epochs"] == 2
    assert {"lr", "loss_function", "optimizer", "seed"} <= set(result["process"])
    assert result["seed"] and result["replicate"] == 1
    assert result["modules"][0]["code"].startswith("ast:")


@pytest.mark.slow
def test_adding_a_learning_rate_trains_only_the_runs_at_the_new_one(tmp_path):
    exp = Experiment(tmp_path / "exp", small_settings(widths="2"))
    exp.run()
    mtimes = exp.result_mtimes()
    exp.edit("PROCESS", "lr", "1e-2, 0.05")
    out = exp.run().stdout
    assert "4 runs, 2 to train" in out, out
    after = exp.result_mtimes()
    assert len(after) == 4 and {h: t for h, t in after.items() if h in mtimes} == mtimes
