"""The pre-flight (mosaic/run/preflight.py): one batch through each distinct pipeline, in a subprocess, a
failure said in one line naming the user's own frame; the single-replicate warning; what a run's classes are
told when they return the wrong thing."""

import io
import os

import pytest

from mosaic.errors import MosaicError
from mosaic.experiment import load_experiment
from mosaic.experiment.signatures import LOADER_KEYS, RUN_INFO_KEYS
from mosaic.run import preflight
from mosaic.run.training import Pipeline, kind_of
from tests.fakes import TOY_DATA, Experiment, make_experiment, model_section, small_settings

BAD = '''\
import os
import time

import torch

from helper import explode


class Raises(torch.nn.Module):
    def __init__(self, input_size, output_size):
        super().__init__()
        self.lin = torch.nn.Linear(input_size, output_size)

    def forward(self, x):
        return explode(self.lin(x))


class Sleeps(Raises):
    def forward(self, x):
        time.sleep(60)


class Exits(Raises):
    def forward(self, x):
        os._exit(7)


class Shapes(Raises):
    def forward(self, x):
        return self.lin(x.repeat(1, 2))


class LossShapes(Raises):
    def forward(self, x):
        return self.lin(x).repeat(1, 2)


class NoParams(torch.nn.Module):
    def forward(self, x):
        return x.sum(1)


class OneLoader:
    def prepare(self, data, run_info, module_info):
        x = torch.randn(8, 3)
        return torch.utils.data.DataLoader(torch.utils.data.TensorDataset(x, x.sum(1)), batch_size=4)

    def info(self):
        return {"input_size": 3, "output_size": 1}
'''

HELPER = '''\
def explode(value):
    raise RuntimeError("boom in forward")
'''

BAD_DATA = "\n[toy]\ntype = data\nclass = OneLoader\npath_to_class = bad.py\n"


def bad(tmp_path, model, data=TOY_DATA):
    """An experiment of the toy data (or a data class of BAD) and one model class of BAD."""
    section = f"\n[model]\ntype = model\nclass = {model}\npath_to_class = bad.py\n"
    return make_experiment(tmp_path, data + section, files={"bad.py": BAD, "helper.py": HELPER})


def failure(tmp_path, experiment, monkeypatch):
    """The message of the one-batch check of the experiment's first run, run from its folder."""
    monkeypatch.chdir(tmp_path)
    with pytest.raises(MosaicError) as caught:
        preflight.check_one_batch("exp.ini", experiment.runs[:1])
    assert "\n" not in str(caught.value)
    return str(caught.value)


def test_one_run_stands_for_each_distinct_chain_of_classes(tmp_path):
    experiment = load_experiment(Experiment(tmp_path, small_settings(multiplicity=3)).ini)
    chosen = preflight.distinct_pipelines(experiment.runs)
    assert len(experiment.runs) == 12
    assert [run.pipeline for run in chosen] == ["dataset_OR(1,200,0.8) | mlp_funnel(4,2)",
                                                "dataset_OR(1,200,0.8) | mlp_brick(4,2)"]


def test_the_tutorial_passes(tmp_path, monkeypatch):
    experiment = load_experiment(Experiment(tmp_path, small_settings()).ini)
    monkeypatch.chdir(tmp_path)
    err = io.StringIO()
    preflight.before_training("config.ini", experiment, experiment.runs, err=err)
    assert err.getvalue() == ""
    assert not (tmp_path / ".runs").exists()


def test_a_forward_that_raises_names_the_users_innermost_frame(tmp_path, monkeypatch):
    experiment = bad(tmp_path, "Raises")
    assert failure(tmp_path, experiment, monkeypatch) == (
        "helper.py:2: RuntimeError: boom in forward (pre-flight of run 1, Toy() | Raises(): nothing was launched;"
        " --no-preflight skips this check)")
    assert not (tmp_path / ".runs").exists()


def test_an_error_raised_in_torch_names_the_users_call(tmp_path, monkeypatch):
    assert failure(tmp_path, bad(tmp_path, "Shapes"), monkeypatch) == (
        "bad.py:30: RuntimeError: mat1 and mat2 shapes cannot be multiplied (8x6 and 3x1) (pre-flight of run 1,"
        " Toy() | Shapes(): nothing was launched; --no-preflight skips this check)")


def test_an_error_outside_the_users_files_names_the_ini(tmp_path, monkeypatch):
    message = failure(tmp_path, bad(tmp_path, "LossShapes"), monkeypatch)
    assert message.startswith("exp.ini: RuntimeError: The size of tensor a (2) must match the size of tensor b"), \
        message


def test_a_data_class_returning_one_loader_says_what_it_returned(tmp_path, monkeypatch):
    experiment = bad(tmp_path, "Raises", data=BAD_DATA)
    assert failure(tmp_path, experiment, monkeypatch) == (
        "run 1 [toy] OneLoader: OneLoader.prepare returned a DataLoader; expected (train_loader, test_loader) or"
        " (train_loader, validation_loader, test_loader) (pre-flight of run 1, OneLoader() | Raises(): nothing was"
        " launched; --no-preflight skips this check)")


def test_a_model_without_parameters_fails_once(tmp_path, monkeypatch):
    message = failure(tmp_path, bad(tmp_path, "NoParams"), monkeypatch)
    assert message.startswith("the model modules have no parameters to optimize (pre-flight of run 1")


def test_a_subprocess_that_dies_without_a_word_is_said(tmp_path, monkeypatch):
    assert failure(tmp_path, bad(tmp_path, "Exits"), monkeypatch) == (
        "exp.ini: the pre-flight stopped (exit 7) before it could say why: no output; nothing was launched"
        " (--no-preflight skips this check)")


def test_a_check_that_takes_too_long_is_given_up_with_a_warning(tmp_path, monkeypatch):
    experiment = bad(tmp_path, "Sleeps")
    monkeypatch.chdir(tmp_path)
    err = io.StringIO()
    preflight.check_one_batch("exp.ini", experiment.runs, timeout=0.5, err=err)
    assert err.getvalue() == ("mosaic: warning: the pre-flight (one batch of 1 pipelines) took more than 0.5 s and"
                              " was stopped; launching without it (--no-preflight skips this check)\n")


def test_the_single_replicate_warning_comes_first_and_check_false_skips_the_checks(tmp_path, monkeypatch):
    experiment = bad(tmp_path, "Raises")
    (tmp_path / "exp.ini").write_text((tmp_path / "exp.ini").read_text().replace("[MONITOR]\nmultiplicity = 1\n",
                                                                                  ""))
    monkeypatch.chdir(tmp_path)
    err = io.StringIO()
    preflight.before_training("exp.ini", experiment, experiment.runs, check=False, err=err)
    assert err.getvalue() == ("mosaic: warning: exp.ini: no [MONITOR] section: each run is trained once"
                              " (multiplicity = 1); add [MONITOR] multiplicity = 3 for replicates to compare\n")


def test_frames_of_installed_packages_are_not_the_users(tmp_path):
    folder = tmp_path / "exp"
    files = {os.path.realpath(folder / "models.py")}
    assert preflight.user_frame(error_from(folder / "models.py"), files).lineno == 2
    assert preflight.user_frame(error_from(folder / "lib" / "helper.py"), files).lineno == 2
    assert preflight.user_frame(error_from(folder / ".venv" / "site-packages" / "pkg.py"), files) is None
    assert preflight.user_frame(error_from(tmp_path / "elsewhere.py"), files) is None


def error_from(path):
    """An exception raised at line 2 of a file at `path`."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("def f():\n    raise ValueError('x')\n")
    code = compile(path.read_text(), str(path), "exec")
    namespace = {}
    exec(code, namespace)
    try:
        namespace["f"]()
    except ValueError as error:
        return error


def test_kind_of():
    assert [kind_of(value) for value in (None, (1, 2, 3), [1], 3, object(), "a")] == [
        "None", "a tuple of 3 items", "a list of 1 item", "an int", "an object", "a str"]


def test_run_info_holds_what_the_static_check_assumes(tmp_path):
    """Before any info(): RUN_INFO_KEYS; the loaders once the data classes are built (signatures.py)."""
    experiment = make_experiment(tmp_path, TOY_DATA + model_section("Affine"))
    pipeline = Pipeline(experiment.runs[0], experiment, "cpu")
    assert set(pipeline.run_info) == {*RUN_INFO_KEYS, *LOADER_KEYS, "input_size", "output_size"}


def test_a_validation_split_that_cannot_be_carved_fails_the_pre_flight(tmp_path, monkeypatch):
    experiment = make_experiment(tmp_path, TOY_DATA + model_section("Affine"), process="validation_split = 0.01")
    assert failure(tmp_path, experiment, monkeypatch).startswith(
        "run 1: validation_split = 0.01 of 32 training samples leaves 32 to train on and 0 to validate on; each"
        " needs one at least (pre-flight of run 1")
