"""Validation when the ini is read (not in every job), and the defects it used to let through."""

import subprocess
import sys

import pytest

from mosaic.errors import MosaicError
from mosaic.experiment import load_experiment, torchnames
from mosaic.experiment.values import parse_values
from tests.fakes import DATASET, FUNNEL, MONITOR, PROCESS, load_ini, toy, write_ini


def tutorial(process_extra="", monitor=MONITOR, sections=DATASET + FUNNEL, process=PROCESS):
    return "\n".join([process + process_extra, monitor, sections])


def fails(tmp_path, text, *needles):
    with pytest.raises(MosaicError) as caught:
        load_ini(tmp_path, text)
    message = str(caught.value)
    assert "\n" not in message
    for needle in needles:
        assert needle in message, message
    return message


# ---------------------------------------------------------------- torch names without torch


def test_unknown_loss_function_fails_at_load_with_a_suggestion(tmp_path):
    fails(tmp_path, tutorial("loss_function = NoSuchLoss\n"), "[PROCESS] loss_function", "'NoSuchLoss'")
    fails(tmp_path, tutorial("loss_function = MSELos\n"), "did you mean 'MSELoss'?")


def test_unknown_optimizer_fails_at_load_with_a_suggestion(tmp_path):
    fails(tmp_path, tutorial("optimizer = Adamm\n"), "[PROCESS] optimizer", "did you mean 'Adam'?")


def test_unknown_torch_loss_and_optimizer_are_mosaic_errors(tmp_path):
    # refused when the ini is read, before any run
    with pytest.raises(MosaicError, match="NoSuchLoss"):
        toy(tmp_path / "a", process="loss_function = NoSuchLoss\n")
    with pytest.raises(MosaicError, match="NoSuchOptim"):
        toy(tmp_path / "b", process="optimizer = NoSuchOptim\n")


def test_known_torch_names_load(tmp_path):
    experiment = load_ini(tmp_path, tutorial("loss_function = CrossEntropyLoss\noptimizer = SGD\n"))
    assert (experiment.process.loss_function, experiment.process.optimizer) == ("CrossEntropyLoss", "SGD")


def test_torch_name_lists_match_the_installed_torch():
    """Every loss and optimizer of the installed torch is accepted, and every name accepted exists."""
    losses, optimizers = torchnames.installed()
    assert losses == torchnames.LOSSES, "update mosaic/experiment/torchnames.py (python -m ...torchnames)"
    assert optimizers == torchnames.OPTIMIZERS, "update mosaic/experiment/torchnames.py"


def test_reading_an_ini_does_not_import_torch(tmp_path):
    ini = write_ini(tmp_path, tutorial("optimizer = SGD\n"))
    code = f"import sys; from mosaic.experiment import load_experiment; load_experiment({str(ini)!r});" \
           "print('torch' in sys.modules)"
    assert subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          check=True).stdout.strip() == "False"


# ---------------------------------------------------------------- [MONITOR] and [PROCESS] keys


def test_malformed_gpu_available_fails(tmp_path):
    for value in ("gpu0", "cuda:x", "cuda:0; cuda:1", "cuda:٣"):
        monitor = MONITOR.replace("gpu_available = None", f"gpu_available = {value}")
        fails(tmp_path, tutorial(monitor=monitor), "[MONITOR] gpu_available", "cuda:0")
    monitor = MONITOR.replace("gpu_available = None", "gpu_available = cuda:0, cuda:1 cuda:2")
    assert load_ini(tmp_path, tutorial(monitor=monitor)).monitor.gpu_available == ("cuda:0", "cuda:1", "cuda:2")


def test_misspelled_monitor_key_fails_instead_of_one_replicate(tmp_path):
    monitor = MONITOR.replace("multiplicity = 4", "multiplicty = 4")
    fails(tmp_path, tutorial(monitor=monitor), "[MONITOR] multiplicty", "did you mean 'multiplicity'?")


def test_unknown_monitor_key_fails_and_lists_the_known_ones(tmp_path):
    fails(tmp_path, tutorial(monitor=MONITOR + "colour = blue\n"), "[MONITOR] colour", "unknown key",
          "multiplicity")


def test_process_extra_keys_stay_but_near_misses_fail(tmp_path):
    experiment = load_ini(tmp_path, tutorial("smoothing = 0.9\ncomment = hello\n"))
    assert experiment.process.extra == (("smoothing", 0.9), ("comment", "hello"))  # momentum: a training setting
    fails(tmp_path, tutorial("optimiser = SGD\n"), "[PROCESS] optimiser", "did you mean 'optimizer'?")
    fails(tmp_path, tutorial("checkpoint_evry = 5\n"), "did you mean 'checkpoint_every'?")
    fails(tmp_path, tutorial("weigth_decay = 0.1\n"), "[PROCESS] weigth_decay", "did you mean 'weight_decay'?")
    fails(tmp_path, tutorial("Optimizer = SGD\n"), "[PROCESS] Optimizer", "did you mean 'optimizer'?")
    experiment = load_ini(tmp_path, tutorial("epochs_max = 10\nseed_note = first\n"))
    assert experiment.process.extra == (("epochs_max", 10), ("seed_note", "first"))


def test_missing_required_key_names_the_near_miss(tmp_path):
    process = PROCESS.replace("epochs = 400", "epoch = 400")
    fails(tmp_path, tutorial(process=process), "[PROCESS] epochs", "required",
          "(found 'epoch': did you mean 'epochs'?)")


# ---------------------------------------------------------------- value grammar


def test_exponent_bounds_are_allowed():
    assert parse_values("{1e2..1e3}", "w") == list(range(100, 1001))
    assert parse_values("{1e0..3}", "w") == [1, 2, 3]
    with pytest.raises(MosaicError, match="non-integer bounds"):
        parse_values("{1e-2..1e-1}", "w")


def test_unicode_digits_are_not_numbers(tmp_path):
    assert parse_values("٣, ３", "w") == ["٣", "３"]
    assert parse_values("3, ٣", "w") == [3, "٣"]
    experiment = load_ini(tmp_path, tutorial(sections=DATASET + FUNNEL.replace("width = {2-4}", "width = ٣, ３")))
    assert len(experiment.runs) == 2 * 4
    process = PROCESS.replace("epochs = 400", "epochs = ٣")
    fails(tmp_path, tutorial(process=process), "[PROCESS] epochs", "not an integer")


def test_float_range_keeps_its_end_point_at_large_offsets():
    assert parse_values("{1000000..1000000.3:0.1}", "w") == [1000000.0, 1000000.1, 1000000.2, 1000000.3]
    assert parse_values("{10000000..10000000.2:0.1}", "w") == [10000000.0, 10000000.1, 10000000.2]
    assert parse_values("{1e8..100000000.3:0.3}", "w") == [1e8, 100000000.3]
    assert parse_values("{0.1-0.5:0.1}", "w") == [0.1, 0.2, 0.3, 0.4, 0.5]


def test_product_of_ranges_fails_fast_with_the_count(tmp_path):
    sections = DATASET + FUNNEL.replace("length = 4", "length = {1-100000}").replace("width = {2-4}",
                                                                                       "width = {1-100000}")
    fails(tmp_path, tutorial(sections=sections), "[mlp_funnel]", "10000000000 combinations")


def test_product_across_sections_fails_fast_with_the_run_count(tmp_path):
    sections = (DATASET.replace("data_size = 200", "data_size = {1-2000}")
                + FUNNEL.replace("width = {2-4}", "width = {1-1000}"))
    fails(tmp_path, tutorial(sections=sections), "8000000 runs")


# ---------------------------------------------------------------- schemes and class files


def test_typo_in_a_scheme_names_the_typo(tmp_path):
    process = PROCESS.replace("pipeline_scheme = mlp", "pipeline_scheme = mlpp")
    fails(tmp_path, tutorial(process=process), "[PROCESS] pipeline_scheme", "'mlpp'", "did you mean 'mlp'?")


def test_class_file_beside_the_ini_wins_over_the_current_directory(tmp_path, monkeypatch, capfd):
    ini = write_ini(tmp_path / "exp", tutorial())
    (tmp_path / "mlp.py").write_text("class other:\n    pass\n")  # same name, in the current directory
    monkeypatch.chdir(tmp_path)
    experiment = load_experiment(ini)
    assert experiment.runs[0].model_modules[0].path == str((tmp_path / "exp" / "mlp.py").resolve())
    assert capfd.readouterr().err == ""


def test_class_file_found_only_in_the_current_directory_gets_one_warning(tmp_path, monkeypatch, capfd):
    monkeypatch.setenv("MOSAIC_WARNED", "")  # restored afterwards: the warning state is per test

    ini = write_ini(tmp_path / "exp", tutorial(sections=DATASET + FUNNEL + FUNNEL.replace(
        "[mlp_funnel]", "[mlp_brick]").replace("class = mlp_funnel", "class = mlp_brick")))
    (tmp_path / "exp" / "mlp.py").rename(tmp_path / "mlp.py")
    monkeypatch.chdir(tmp_path)
    experiment = load_experiment(ini)
    load_experiment(ini)
    assert experiment.runs[0].model_modules[0].path == str((tmp_path / "mlp.py").resolve())
    lines = capfd.readouterr().err.splitlines()
    assert len(lines) == 1 and "mlp.py is not in the ini's folder" in lines[0], lines
    code = f"from mosaic.experiment import load_experiment; load_experiment({str(ini)!r})"
    child = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert child.stderr == ""  # a process this one starts (Snakemake, a job) does not say it again


# ---------------------------------------------------------------- commands


def test_unknown_status_selector_is_refused(small_experiment):
    result = small_experiment.command("mosaic_plotloss", "database.db", "out.pdf", "-status", "finished")
    assert result.returncode != 0
    assert "invalid choice: 'finished'" in result.stderr
