"""The static constructor check (mosaic/experiment/signatures.py): required arguments and info() keys read from
the class files, a certainly-missing argument named with its section, class and file, and nothing claimed
where the file does not say for sure."""

import importlib.util
import inspect
import textwrap

import pytest

from mosaic.errors import ConfigError
from mosaic.experiment import load_experiment
from mosaic.experiment.signatures import UNKNOWN, check_constructors, info_keys, required_arguments
from tests.fakes import ROOT, TUTORIAL_INI


def write(tmp_path, source, name="classes.py"):
    path = tmp_path / name
    path.write_text(textwrap.dedent(source))
    return str(path)


def test_required_arguments_follow_the_bases_of_the_same_file(tmp_path):
    path = write(tmp_path, """
        import torch
        from torch import nn

        class Base:
            def __init__(self, a, b=1, *args, c, d=2, **kwargs):
                pass

        class Child(Base):
            def info(self):
                return {"x": 1}

        class Module(torch.nn.Module):
            pass

        class Plain:
            pass

        class Net(nn.Module):
            def __init__(self, input_size, /, hidden):
                super().__init__()
    """)
    assert required_arguments(path, "Base") == ("a", "c")
    assert required_arguments(path, "Child") == ("a", "c")
    assert required_arguments(path, "Module") == ()
    assert required_arguments(path, "Plain") == ()
    assert required_arguments(path, "Net") == ("input_size", "hidden")


def test_what_the_file_does_not_say_for_sure_is_unknown(tmp_path):
    path = write(tmp_path, """
        import dataclasses
        from elsewhere import Remote

        @dataclasses.dataclass
        class Data:
            size: int

        class FromElsewhere(Remote):
            pass

        class Two(Data, FromElsewhere):
            pass

        class Meta(metaclass=type):
            def __init__(self, a):
                pass

        class New:
            def __new__(cls, a):
                return object.__new__(cls)

        class Assigned:
            __init__ = Data.__init__

        class Decorated:
            @staticmethod
            def info():
                return {}

        if True:
            class Conditional:
                def __init__(self, a):
                    pass

        Alias = Data
    """)
    for name in ("Data", "FromElsewhere", "Two", "Meta", "New", "Assigned", "Conditional", "Alias", "Remote",
                 "Missing"):
        assert required_arguments(path, name) is UNKNOWN, name
    assert info_keys(path, "Decorated") is UNKNOWN


def test_info_keys_of_returned_dict_literals(tmp_path):
    path = write(tmp_path, """
        class Literal:
            def info(self):
                if self:
                    return {"input_size": 2, "output_size": 1}
                return dict(batch_size=4)

        class Empty:
            def info(self):
                return {}

        class NoneReturned:
            def info(self):
                print("nothing")

        class Computed:
            def info(self):
                return {**self.meta, "a": 1}

        class Variable:
            def info(self):
                meta = {"a": 1}
                return meta

        class Nested:
            def info(self):
                def inner():
                    return self.meta
                return {"a": inner()}
    """)
    assert info_keys(path, "Literal") == {"input_size", "output_size", "batch_size"}
    assert info_keys(path, "Empty") == set()
    assert info_keys(path, "NoneReturned") == set()
    assert info_keys(path, "Nested") == {"a"}
    assert info_keys(path, "Computed") is UNKNOWN
    assert info_keys(path, "Variable") is UNKNOWN


CLASS_FILES = [ROOT / "share" / "mlp.py", ROOT / "share" / "dataset.py", ROOT / "tests" / "run" / "toy" / "toy.py",
               ROOT / "tests" / "run" / "zoo" / "zoo.py", ROOT / "tests" / "run" / "toy" / "loss.py"]


@pytest.mark.parametrize("path", CLASS_FILES, ids=[path.name for path in CLASS_FILES])
def test_what_is_read_statically_is_what_python_sees(path):
    """Over the project's own class files: where the static reading answers, it is the signature's truth."""
    spec = importlib.util.spec_from_file_location(f"signatures_{path.stem}", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    answered = 0
    for name, cls in vars(module).items():
        if not inspect.isclass(cls) or cls.__module__ != module.__name__:
            continue
        static = required_arguments(str(path), name)
        if static is not UNKNOWN:
            answered += 1
            parameters = inspect.signature(cls).parameters.values()
            assert static == tuple(p.name for p in parameters if p.default is p.empty
                                   and p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD)), name
    assert answered


def tutorial(tmp_path, edits=(), extra=""):
    for name in ("dataset.py", "mlp.py"):
        (tmp_path / name).write_text((ROOT / "share" / name).read_text())
    text = TUTORIAL_INI
    for old, new in edits:
        assert old in text
        text = text.replace(old, new)
    (tmp_path / "config.ini").write_text(text + extra)
    return load_experiment(tmp_path / "config.ini")


def test_the_tutorial_passes(tmp_path):
    check_constructors(tutorial(tmp_path).runs, "config.ini")


def test_a_misspelled_key_is_named_with_its_section_class_and_file(tmp_path):
    experiment = tutorial(tmp_path, [("length = 4\nwidth = {2-4}", "length = 4\nwidht = {2-4}")])
    with pytest.raises(ConfigError) as caught:
        check_constructors(experiment.runs, "config.ini")
    assert str(caught.value) == (
        "config.ini: [mlp_funnel]: mlp_funnel (mlp.py) needs constructor argument 'width', neither in the section"
        " nor in the info() of the classes before it (found 'widht': did you mean 'width'?)")


def test_a_missing_argument_without_a_near_miss_lists_what_is_known(tmp_path):
    experiment = tutorial(tmp_path, [("train_prop = 0.8\n", "")])
    with pytest.raises(ConfigError) as caught:
        check_constructors(experiment.runs, "config.ini")
    assert str(caught.value) == (
        "config.ini: [dataset_OR]: dataset_OR (dataset.py) needs constructor argument 'train_prop', neither in the"
        " section nor in the info() of the classes before it (known: batch_size, data_size, device, replicate,"
        " run_hash, run_id, seed)")


def test_an_argument_from_an_earlier_info_or_the_loaders_passes(tmp_path):
    (tmp_path / "head.py").write_text(
        "class Head:\n    def __init__(self, input_size, output_size, train_loader, seed):\n        pass\n")
    extra = "\n[head]\ntype = head\nclass = Head\npath_to_class = head.py\n"
    experiment = tutorial(tmp_path, [("pipeline_scheme = mlp", "pipeline_scheme = mlp, head")], extra)
    check_constructors(experiment.runs, "config.ini")


@pytest.mark.parametrize("info", [
    "return {**self.meta}",  # computed: the keys are not known
    "return {'input_size': 2, 'output_size': 1, 'batch_size': 1}",
])
@pytest.mark.parametrize("prepare_line", [
    "run_info['width'] = 3",  # a prepare writing into run_info: anything may be there
    "run_info.update(width=3)",
    "",
])
def test_nothing_is_claimed_past_what_the_files_say(tmp_path, info, prepare_line):
    """The model's `width` removed from its section: an error only when neither the data class's info() nor
    its prepare() can provide it."""
    experiment = tutorial(tmp_path, [("width = {2-4}", "width_note = 1")])
    source = (tmp_path / "dataset.py").read_text()
    source = source.replace('return {"batch_size": self.batch_size, "input_size": 2, "output_size": 1}', info)
    source = source.replace("rng = np.random.default_rng(self.data_seed)",
                            f"rng = np.random.default_rng(self.data_seed)\n        {prepare_line}")
    (tmp_path / "dataset.py").write_text(source)
    if "meta" in info or prepare_line:
        check_constructors(experiment.runs, "config.ini")
    else:
        with pytest.raises(ConfigError, match="needs constructor argument 'width'"):
            check_constructors(experiment.runs, "config.ini")
