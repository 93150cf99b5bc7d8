"""share/config_tuned.ini, the tutorial's tuned example, run as the README says: 2 shapes × 3 learning rates ×
3 replicates with a validation split; mosaic_run ends with the comparison at each shape's own best lr, chosen
on validation, and writes the tuning budget's plot beside the others."""

import re
import shutil
import sqlite3
import subprocess

import pytest

from tests.fakes import ROOT, command_env

pytestmark = pytest.mark.slow


def test_the_tuned_tutorial_runs_and_ends_with_the_tuned_comparison(tmp_path):
    for name in ("config_tuned.ini", "dataset.py", "mlp.py"):
        shutil.copy(ROOT / "share" / name, tmp_path / name)
    done = subprocess.run(["mosaic_run", "config_tuned.ini", "tuned.db"], cwd=tmp_path, capture_output=True,
                          text=True, timeout=600, env=command_env())
    assert done.returncode == 0, done.stdout + done.stderr
    out = done.stdout
    assert "mosaic: all 18 runs done; database tuned.db, plots in tuned_plots" in out
    assert "\ndataset_OR: each architecture at its best lr, selected on val_loss\n" in out
    for shape in ("mlp_funnel", "mlp_brick"):
        assert re.search(rf"^  {shape}: lr = \S+ selected of 3 settings \(mean val_loss ", out, re.M)
    assert out.endswith("\n\nthe statistical tables: mosaic_compare tuned.db --detail\n")
    assert (tmp_path / "tuned_plots" / "tuning.png").read_bytes().startswith(b"\x89PNG")
    with sqlite3.connect(tmp_path / "tuned.db") as db:
        assert db.execute("SELECT COUNT(*) FROM runs WHERE val_loss IS NOT NULL").fetchone() == (18,)
        lrs = db.execute("SELECT DISTINCT value FROM params WHERE module_type = 'PROCESS' AND name = 'lr'").fetchall()
    assert len(lrs) == 3
