"""mosaic_rerun and mosaic_rekey (mosaic/ops/rerun.py, through the runner): selected runs continued or
retrained, the others untouched; keys applied without training. Real Snakemake runs in temporary folders."""

import re

import pytest

from tests.fakes import BAD_MODEL, Experiment, small_settings

pytestmark = pytest.mark.slow


def losses(exp, run_id, db=None):
    return exp.query(f"SELECT epoch, train_loss, test_loss FROM losses WHERE run_id = {run_id} ORDER BY epoch", db)


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
