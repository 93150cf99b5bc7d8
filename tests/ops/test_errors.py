"""Error types: their fields, their one-line message, and the exit status the command line gives each."""

import pytest

from mosaic.errors import (
    BusyError,
    ConfigError,
    DatabaseError,
    MosaicError,
    PausedError,
    RunError,
    UsageError,
    UserClassError,
    exit_code,
)
from mosaic.experiment import load_experiment
from mosaic.ops.cli import COMMANDS, command


def test_config_error_carries_its_place_and_formats_one_line():
    error = ConfigError("exp.ini", "not an integer:\n  'x'", section="mlp", key="width")
    assert (error.path, error.section, error.key) == ("exp.ini", "mlp", "width")
    assert str(error) == "exp.ini: [mlp] width: not an integer: 'x'"
    assert str(ConfigError("exp.ini", "file not found")) == "exp.ini: file not found"


def test_every_type_is_a_mosaic_error_with_its_fields():
    assert str(UserClassError("mlp.py", "no class 'Net'", "Net")) == "mlp.py: no class 'Net'"
    assert UserClassError("mlp.py", "x", "Net").class_name == "Net"
    assert RunError("2 of 4 runs failed", run_ids=[3, 4]).run_ids == (3, 4)
    assert str(DatabaseError("a.db", "not a Mosaic database")) == "a.db: not a Mosaic database"
    assert PausedError(3, "paused").remaining == 3
    for error in (UsageError("x"), BusyError("/f", "x"), RunError("x")):
        assert isinstance(error, MosaicError)


def test_ini_errors_are_config_errors_naming_section_and_key(tmp_path):
    ini = tmp_path / "bad.ini"
    ini.write_text("[PROCESS]\nrun_files_path = runs\n[mlp]\ntype = model\nwidth = {3\n")
    with pytest.raises(ConfigError) as caught:
        load_experiment(ini)
    assert caught.value.path == str(ini)
    with pytest.raises(ConfigError) as missing:
        load_experiment(tmp_path / "none.ini")
    assert str(missing.value) == f"{tmp_path / 'none.ini'}: file not found"


@pytest.mark.parametrize("error, code", [
    (RunError("x"), 1), (UsageError("x"), 2), (ConfigError("a.ini", "x"), 2), (UserClassError("a.py", "x"), 2),
    (DatabaseError("a.db", "x"), 2), (BusyError("/f", "x"), 3), (PausedError(2, "x"), 4), (MosaicError("x"), 2),
])
def test_one_table_maps_error_types_to_exit_codes(error, code):
    assert exit_code(error) == code


def test_a_command_prints_one_line_and_exits_with_its_types_code(capsys):
    @command
    def mosaic_failing(argv):
        raise BusyError("/work", "another mosaic_run is running in this folder")

    assert mosaic_failing([]) == 3
    assert capsys.readouterr().err == "mosaic_failing: /work: another mosaic_run is running in this folder\n"
    COMMANDS.pop("mosaic_failing")
