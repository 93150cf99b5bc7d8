"""The experiment launched from a folder (mosaic/ops/session.py): the ini found without being named, and the
settings mosaic_run was given kept for the commands that follow."""

import json

import pytest

from mosaic.ops import session
from tests.fakes import Experiment, small_settings


def test_session_reads_config_yaml_with_yaml(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "config").mkdir()
    (tmp_path / "config" / "config.yaml").write_text("database: x.db\nini: 'exps/a b.ini'  # my experiment\n")
    assert session.default_ini() == str(tmp_path / "exps" / "a b.ini")
    assert session.load()["ini"] == str(tmp_path / "exps" / "a b.ini")
    (tmp_path / "config" / "config.yaml").write_text("ini: exp.ini # trailing comment\n")
    assert session.default_ini() == str(tmp_path / "exp.ini")


def test_saved_settings_belong_to_their_ini(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    session.save("exp.ini", "db.db", "plots", cores=3, profile="/p/slurm")
    assert session.saved("exp.ini", "profile") == "/p/slurm" and session.saved("exp.ini", "cores") == 3
    assert session.saved("other.ini", "profile") is None


@pytest.mark.slow
def test_rekey_keeps_the_profile_the_user_chose(tmp_path):
    exp = Experiment(tmp_path, small_settings(widths="2"))
    profile = tmp_path / "myprofile"
    profile.mkdir()
    (profile / "config.yaml").write_text("printshellcmds: true\n")
    exp.run("--profile", str(profile), check=0)
    exp.command("mosaic_rekey", "config.ini", "database.db", check=0)
    state = json.loads((exp.folder / ".mosaic" / "experiment.json").read_text())
    assert state["profile"] == str(profile)
