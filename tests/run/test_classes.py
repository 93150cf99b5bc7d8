"""Tests for mosaic.run.classes: loading user class files, building classes, detecting the forward protocol."""

import sys
import textwrap

import pytest
import torch

from mosaic.errors import MosaicError
from mosaic.run.classes import construct, load_class, load_file, module_name, takes_run_info


def write(path, source):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(textwrap.dedent(source))
    return str(path)


# ---------------------------------------------------------------------------------------------------------
# Loading files


def test_two_files_with_the_same_name_do_not_clash(tmp_path):
    first = write(tmp_path / "a" / "mlp.py", "class Net:\n    KIND = 'a'\n")
    second = write(tmp_path / "b" / "mlp.py", "class Net:\n    KIND = 'b'\n")
    net_a, net_b = load_class(first, "Net"), load_class(second, "Net")
    assert net_a is not net_b
    assert (net_a.KIND, net_b.KIND) == ("a", "b")
    assert module_name(first) != module_name(second)
    assert module_name(first).startswith("mosaic_user_mlp_")
    assert sys.modules[module_name(first)].Net is net_a
    assert sys.modules[module_name(second)].Net is net_b
    assert net_a.__module__ == module_name(first)
    # nothing registered under the bare stem, which would shadow a real `mlp` module
    assert sys.modules.get("mlp") is None or sys.modules["mlp"].__name__ == "mlp"


def test_a_file_is_executed_once_per_process(tmp_path):
    counter = tmp_path / "loads.txt"
    path = write(tmp_path / "counted.py", f"open({str(counter)!r}, 'a').write('x')\nclass C:\n    pass\n")
    module = load_file(path)
    assert load_file(path) is module
    assert load_class(path, "C") is load_class(path, "C")
    assert counter.read_text() == "x"


def test_classes_of_a_loaded_file_can_be_pickled(tmp_path):
    import pickle

    path = write(tmp_path / "picklable.py", "class Point:\n    def __init__(self, x):\n        self.x = x\n")
    point = load_class(path, "Point")(3)
    copy = pickle.loads(pickle.dumps(point))
    assert type(copy) is type(point) and copy.x == 3


def test_missing_class_names_file_and_class(tmp_path):
    path = write(tmp_path / "models" / "mlp.py", "class Net:\n    pass\n")
    with pytest.raises(MosaicError) as caught:
        load_class(path, "Missing")
    message = str(caught.value)
    assert path in message
    assert "Missing" in message
    assert "\n" not in message


def test_missing_file_is_a_mosaic_error(tmp_path):
    path = str(tmp_path / "nowhere.py")
    with pytest.raises(MosaicError, match="nowhere.py"):
        load_class(path, "Net")


def test_a_file_failing_on_import_can_be_fixed_and_reloaded(tmp_path):
    path = write(tmp_path / "broken.py", "raise ImportError('not yet')\n")
    with pytest.raises(ImportError, match="not yet"):
        load_file(path)
    assert module_name(path) not in sys.modules
    write(tmp_path / "broken.py", "class Fixed:\n    VALUE = 7\n")
    assert load_class(path, "Fixed").VALUE == 7


# ---------------------------------------------------------------------------------------------------------
# construct: arguments from the section, then from run_info


class Recorder:
    def __init__(self, width, input_size, activation="relu", *, depth=2):
        self.args = dict(width=width, input_size=input_size, activation=activation, depth=depth)


def test_construct_takes_the_section_before_run_info():
    obj = construct(Recorder, {"width": 3, "input_size": 5}, {"input_size": 2, "width": 9}, "[m] Recorder")
    assert obj.args == {"width": 3, "input_size": 5, "activation": "relu", "depth": 2}


def test_construct_falls_back_to_run_info_and_defaults():
    obj = construct(Recorder, {"width": 3}, {"input_size": 2, "run_id": 1}, "[m] Recorder")
    assert obj.args == {"width": 3, "input_size": 2, "activation": "relu", "depth": 2}


def test_construct_fills_keyword_only_and_defaulted_arguments():
    run_info = {"input_size": 2, "activation": "tanh"}
    obj = construct(Recorder, {"width": 3, "depth": 5}, run_info, "[m] Recorder")
    assert obj.args == {"width": 3, "input_size": 2, "activation": "tanh", "depth": 5}


def test_construct_missing_argument_names_class_and_argument():
    with pytest.raises(MosaicError) as caught:
        construct(Recorder, {"width": 3}, {"run_id": 1, "device": "cpu"}, "run 1 [model] Recorder")
    message = str(caught.value)
    assert "Recorder" in message
    assert "'input_size'" in message
    assert "width" in message and "run_id" in message  # the names it could have used
    assert "\n" not in message


def test_construct_missing_argument_names_the_near_miss_of_the_section():
    with pytest.raises(MosaicError) as caught:
        construct(Recorder, {"width": 3, "input_sise": 2}, {"run_id": 1}, "run 1 [model] Recorder")
    assert str(caught.value) == ("run 1 [model] Recorder: constructor argument 'input_size' is neither in its"
                                 " section nor in run_info (found 'input_sise': did you mean 'input_size'?)")


def test_construct_kwargs_receive_the_remaining_section_params():
    class Open:
        def __init__(self, width, **kwargs):
            self.width, self.kwargs = width, kwargs

    section = {"width": 3, "alpha": 0.5, "act": "relu"}
    obj = construct(Open, section, {"input_size": 2, "width": 8}, "[m] Open")
    assert obj.width == 3
    assert obj.kwargs == {"alpha": 0.5, "act": "relu"}  # run_info is not dumped into **kwargs


def test_construct_ignores_var_positional_and_unused_section_params():
    class Star:
        def __init__(self, a, *rest):
            self.a, self.rest = a, rest

    obj = construct(Star, {"a": 1, "unused": 2}, {}, "[m] Star")
    assert (obj.a, obj.rest) == (1, ())


def test_construct_a_class_without_arguments():
    class Empty:
        pass

    assert isinstance(construct(Empty, {"width": 1}, {"run_id": 1}, "[m] Empty"), Empty)


def test_construct_torch_class_takes_device_from_run_info():
    section = {"in_features": 3, "out_features": 2}
    linear = construct(torch.nn.Linear, section, {"device": "cpu"}, "[m] Linear")
    assert linear.weight.shape == (2, 3)
    assert linear.bias is not None


# ---------------------------------------------------------------------------------------------------------
# Protocol detection


class Protocols:
    def seed(self, data, run_info, module_info):
        pass

    def renamed(self, x, info, minfo):
        pass

    def optional_info(self, data, run_info=None, module_info=None):
        pass

    def plain(self, x):
        pass

    def plain_with_options(self, x, mask=None, scale=None):
        pass

    def star(self, *args):
        pass

    def star_kwargs(self, x, *args, **kwargs):
        pass


@pytest.mark.parametrize(
    "method, expected",
    [
        ("seed", True),
        ("renamed", True),
        ("optional_info", True),
        ("plain", False),
        ("plain_with_options", False),
        ("star", False),
        ("star_kwargs", False),
    ],
)
def test_takes_run_info(method, expected):
    assert takes_run_info(getattr(Protocols(), method)) is expected


@pytest.mark.parametrize(
    "module",
    [
        torch.nn.Linear(2, 2),
        torch.nn.Sequential(torch.nn.Linear(2, 2)),
        torch.nn.LSTM(2, 2),
        torch.nn.TransformerEncoderLayer(4, 1),
    ],
    ids=["Linear", "Sequential", "LSTM", "TransformerEncoderLayer"],
)
def test_plain_torch_modules_are_called_with_data_only(module):
    assert takes_run_info(module.forward) is False


def test_takes_run_info_never_raises():
    assert takes_run_info(len) is False
    assert takes_run_info(object()) is False
